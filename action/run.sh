#!/usr/bin/env bash
# The action's fourth step: runs `dockhand COMMAND --output json` with the job's docker config,
# then writes the step outputs (delimiter syntax) and a step summary from the JSON document.
# Every input arrives as an environment variable and becomes one argv element; nothing the
# workflow passes is ever evaluated as shell code.
set -euo pipefail
action_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=action/lib.sh
. "$action_dir/lib.sh"

command=${DOCKHAND_ACTION_COMMAND:-run}
case "$command" in
  ci-env | remove-config) exit 0 ;;
  build | publish | cleanup | run | images) ;;
  *) fail "unknown command \`$command\`: expected ci-env, build, publish, cleanup, run, images or remove-config" ;;
esac
unset_empty GITHUB_TOKEN
adopt DOCKHAND_REPO DOCKHAND_ACTION_REPO
adopt DOCKHAND_CONFIG DOCKHAND_ACTION_CONFIG
adopt DOCKHAND_INSECURE_REGISTRIES DOCKHAND_ACTION_INSECURE_REGISTRIES
adopt DOCKHAND_BUILDER DOCKHAND_ACTION_BUILDER

true_input() {
  case "${1:-}" in
    true | True | TRUE) return 0 ;;
    false | False | FALSE | "") return 1 ;;
    *) fail "a boolean input must be true or false, not \`$1\`" ;;
  esac
}
# each line of a multi-line input, without blank lines
lines() { [ -z "${1:-}" ] || grep -v '^[[:space:]]*$' <<<"$1" || true; }

args=("$command" --output json)
case "$command" in
  publish | run | images)
    while IFS= read -r rule; do args+=(--tag "$rule"); done < <(lines "${DOCKHAND_ACTION_TAGS:-}")
    ;;
esac
case "$command" in
  cleanup | run)
    if true_input "${DOCKHAND_ACTION_DRY_RUN:-}"; then args+=(--dry-run); fi
    [ -z "${DOCKHAND_ACTION_KEEP_LAST:-}" ] || args+=(--keep-last "$DOCKHAND_ACTION_KEEP_LAST")
    [ -z "${DOCKHAND_ACTION_KEEP_WITHIN:-}" ] || args+=(--keep-within "$DOCKHAND_ACTION_KEEP_WITHIN")
    while IFS= read -r regex; do args+=(--keep-tag "$regex"); done < <(lines "${DOCKHAND_ACTION_KEEP_TAGS:-}")
    ;;
esac
while IFS= read -r arg; do args+=("$arg"); done < <(lines "${DOCKHAND_ACTION_ARGS:-}")

result=$(mktemp "${RUNNER_TEMP:-/tmp}/dockhand-result.XXXXXX")
trap 'rm -f "$result"' EXIT
# dockhand writes step outputs and a summary itself where it knows them; the action adds only
# what it did not write (see `wrote` below)
outputs_before=$(wc -c < "$GITHUB_OUTPUT")
summary_before=$(wc -c < "${GITHUB_STEP_SUMMARY:-/dev/null}")
# not folded in a group: this is the step's main log (dockhand folds its long parts itself)
status=0
dockhand "${args[@]}" > "$result" || status=$?
written=$(tail -c "+$((outputs_before + 1))" "$GITHUB_OUTPUT" | grep -oE '^[A-Za-z_][A-Za-z0-9_-]*(<<|=)' | tr -d '<=' || true)
wrote() { grep -qx "$1" <<<"$written"; }

wrote docker-config || [ -z "${DOCKER_CONFIG:-}" ] || set_output docker-config "$DOCKER_CONFIG"
if ! jq -e . "$result" > /dev/null 2>&1; then
  [ "$status" -ne 0 ] || fail "\`dockhand $command\` printed no JSON document"
  exit "$status"
fi
wrote json || set_output json "$(cat "$result")"

# `images` prints a list; publish, cleanup and run print one object
references=$(jq -r 'if type == "array" then .[].reference else (.pushed // [])[].reference end' "$result")
# one `reference@digest` per pushed reference, as dockhand itself writes them
digests=$(jq -r 'if type == "array" then empty else (.pushed // [])[] | select(.digest) | .reference + "@" + .digest end' "$result")
deleted=$(jq -r 'if type == "array" then 0 else (.deleted // []) | length end' "$result")
would_delete=$(jq -r 'if type == "array" then 0 else (.would_delete // []) | length end' "$result")
wrote references || set_output references "$references"
wrote digests || set_output digests "$digests"
wrote deleted || set_output deleted "$deleted"
wrote would-delete || set_output would-delete "$would_delete"

summary_after=$(wc -c < "${GITHUB_STEP_SUMMARY:-/dev/null}")
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ "$summary_after" -eq "$summary_before" ]; then
  jq -r --arg command "$command" '
    def cell: tostring | gsub("\\|"; "\\|") | gsub("\n"; " ");
    def rows($items; $keys): $items[:100][] | "| " + ([$keys[] as $k | (.[$k] // "") | cell] | join(" | ")) + " |";
    "### dockhand \($command)", "",
    (if type == "array" then
       "| image | reference |", "|---|---|", rows(.; ["image", "reference"])
     else
       (if has("pushed") then
          "Pushed \(.pushed | length) reference(s).", "",
          "| image | reference | digest |", "|---|---|---|", rows(.pushed; ["image", "reference", "digest"]), ""
        else empty end),
       (if has("kept") then
          (if has("would_delete") then "Dry run: would delete \(.would_delete | length), keep \(.kept | length)."
           else "Deleted \((.deleted // []) | length), kept \(.kept | length)." end), "",
          ((.deleted // .would_delete // []) as $gone
           | if ($gone | length) > 0 then
               "| repository | tag | digest | reason |", "|---|---|---|---|",
               rows($gone; ["repository", "tag", "digest", "reason"])
             else empty end)
        else empty end)
     end)
  ' "$result" >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
