#!/usr/bin/env bash
# The action's second step: `dockhand ci-env github --shell github` writes this job's private docker
# config under $RUNNER_TEMP, appends DOCKER_CONFIG and the DOCKHAND_* facts to $GITHUB_ENV (so
# the action's later steps and the job's later steps use it) and masks the secrets it handles.
# Skipped for `command: remove-config`.
set -euo pipefail
action_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=action/lib.sh
. "$action_dir/lib.sh"

[ "${DOCKHAND_ACTION_COMMAND:-}" != remove-config ] || exit 0
unset_empty GITHUB_TOKEN
adopt DOCKHAND_REPO DOCKHAND_ACTION_REPO
adopt DOCKHAND_CONFIG DOCKHAND_ACTION_CONFIG
adopt DOCKHAND_INSECURE_REGISTRIES DOCKHAND_ACTION_INSECURE_REGISTRIES

echo "::group::dockhand ci-env"
dockhand ci-env github --shell github
echo "::endgroup::"
