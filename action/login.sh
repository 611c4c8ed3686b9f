#!/usr/bin/env bash
# The action's third step: when `registry` is given, adds its credentials to the job's docker
# config with `dockhand login` (checked against the registry first). The password goes to
# dockhand on stdin, never on its command line; it and the docker `auth` value derived from it
# are masked.
set -euo pipefail
action_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=action/lib.sh
. "$action_dir/lib.sh"

[ "${DOCKHAND_ACTION_COMMAND:-}" != remove-config ] || exit 0
[ -n "${DOCKHAND_ACTION_REGISTRY:-}" ] || exit 0
[ -n "${DOCKHAND_ACTION_USERNAME:-}" ] || fail "\`registry\` is set but \`username\` is not"
[ -n "${DOCKHAND_ACTION_PASSWORD:-}" ] || fail "\`registry\` is set but \`password\` is not"
mask "$DOCKHAND_ACTION_PASSWORD"
mask "$(printf '%s:%s' "$DOCKHAND_ACTION_USERNAME" "$DOCKHAND_ACTION_PASSWORD" | base64 -w0)"
adopt DOCKHAND_INSECURE_REGISTRIES DOCKHAND_ACTION_INSECURE_REGISTRIES

echo "::group::dockhand login $DOCKHAND_ACTION_REGISTRY"
printf '%s' "$DOCKHAND_ACTION_PASSWORD" \
  | dockhand login "$DOCKHAND_ACTION_REGISTRY" --username "$DOCKHAND_ACTION_USERNAME" --password-stdin
echo "::endgroup::"
