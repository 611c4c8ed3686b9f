#!/usr/bin/env bash
# `command: remove-config`: removes the job's private docker config that ci-env created, at once
# instead of at the end of the job (when the runner empties $RUNNER_TEMP anyway). Only a
# directory dockhand created (it holds dockhand's marker file) under $RUNNER_TEMP is removed;
# the runner's own ~/.docker is never touched and nobody is logged out of it.
set -euo pipefail
action_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=action/lib.sh
. "$action_dir/lib.sh"

[ "${DOCKHAND_ACTION_COMMAND:-}" = remove-config ] || exit 0
dir=${DOCKHAND_DOCKER_CONFIG:-${DOCKER_CONFIG:-}}
if [ -z "$dir" ] || [ ! -e "$dir" ]; then
  echo "dockhand: no job docker config to remove"
  exit 0
fi
if [ ! -f "$dir/.dockhand-job-dir" ]; then
  printf '::warning title=dockhand::not removing %s: dockhand did not create it\n' "$dir"
  exit 0
fi
real_dir=$(cd "$dir" && pwd -P)
real_temp=$(cd "${RUNNER_TEMP:?RUNNER_TEMP is not set}" && pwd -P)
case "$real_dir" in
  "$real_temp"/*) ;;
  *) printf '::warning title=dockhand::not removing %s: it is not under RUNNER_TEMP\n' "$dir"; exit 0 ;;
esac
rm -rf -- "$real_dir"
echo "dockhand: removed the job docker config $dir"
