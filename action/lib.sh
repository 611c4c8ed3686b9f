# Helpers the action's steps share (sourced, never run). They speak the runner's file and
# workflow-command protocol: $GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH, ::group::, ::add-mask::.
# shellcheck shell=bash

# Unsets each named variable that is set but empty: an input left blank reaches the step as an
# empty env value, and dockhand (like most CLIs) reads an empty DOCKHAND_* value as given.
unset_empty() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || unset "$name"
  done
}

# Exports dockhand's variable NAME from the action's input variable FROM, when the input is not
# empty. A blank input leaves NAME as the workflow set it (or unset): mapping inputs straight
# onto dockhand's names in `env:` would shadow a job-level value with the empty string.
adopt() {
  local name=$1 from=$2
  if [ -n "${!from:-}" ]; then export "$name=${!from}"; fi
}

# Masks a value in the job's log, one line at a time (the runner masks single lines).
mask() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    [ -z "$line" ] || printf '::add-mask::%s\n' "$line"
  done <<<"$1"
}

# A delimiter for `name<<DELIM` blocks that cannot occur in the value.
delimiter() {
  local value=$1 delim
  while :; do
    delim="dockhand_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    case "$value" in *"$delim"*) ;; *) break ;; esac
  done
  printf '%s' "$delim"
}

# Appends one output in the delimiter syntax (`name<<DELIM`, value lines, `DELIM`), as the
# Actions toolkit does for every value: safe whatever the value holds.
set_output() {
  local name=$1 value=$2 delim
  delim=$(delimiter "$value")
  printf '%s<<%s\n%s\n%s\n' "$name" "$delim" "$value" "$delim" >> "$GITHUB_OUTPUT"
}

# Exits with an error annotation.
fail() {
  printf '::error title=dockhand::%s\n' "$*"
  exit 1
}
