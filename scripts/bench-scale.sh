#!/usr/bin/env bash
# Scale benchmark (hardening issue, item 14). Prints figures; asserts nothing about durations.
#
# One repository of $TAGS distinct images (one tag each, config `created` spread over 60 days),
# written straight into a local docker-registry's storage by scripts/seed-storage.py (pushing
# 100,000 images through the API would take longer than what is measured). Then:
#   plan     `dockhand cleanup --dry-run --keep-last $KEEP --keep-within 0s`: the inventory and the
#            plan of every tag, with its wall time, peak RSS (GNU time) and requests
#   drain    the same cleanup with `--max-deletes $BUDGET`, rerun until it exits 0 (or $RUNS runs,
#            when set): each run's time, peak RSS and deletions; a finished drain must leave
#            exactly the newest $KEEP tags
# distribution 2.8 looks through every tag of the repository for each manifest it deletes, so
# deletes slow down as the repository grows: drain large repositories with RUNS set.
#
#   TAGS=100000 KEEP=1000 BUDGET=25000 scripts/bench-scale.sh
#   TAGS=20000 BUDGET=500 RUNS=1 scripts/bench-scale.sh
#   DOCKHAND_BINARY=dist/dockhand-0.1.0-x86_64-unknown-linux-musl scripts/bench-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tags="${TAGS:-100000}"
keep="${KEEP:-1000}"
budget="${BUDGET:-25000}"
runs="${RUNS:-0}"
for tool in docker-registry jq curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: GNU time is missing; run scripts/setup.sh" >&2; exit 1; }

work="$(mktemp -d)"
# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
finish() {
  stop_registry
  rm -rf "$work"
}
trap finish EXIT
if [ -n "${DOCKHAND_BINARY:-}" ]; then
  cp "$DOCKHAND_BINARY" "$work/dockhand"
else
  echo "bench: building the release binary (once)" >&2
  nice -n 10 cargo build --release --quiet --bin dockhand
  cp "${CARGO_TARGET_DIR:-target}/release/dockhand" "$work/dockhand"
fi

now() { date +%s.%N; }
since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.1f", end - start }'; }

started=$(now)
python3 scripts/seed-storage.py "$work/registry/data" bench/scale "$tags" 60
echo "seed: $tags images written into the registry's storage in $(since "$started") s"
start_registry "$work/registry" on || exit 1
host=$REGISTRY_HOST

# requests_since LINE: the requests the registry logged after line LINE
requests_since() {
  tail -n +$(($1 + 1)) "$REGISTRY_LOG" | grep -c 'msg="response completed' || true
}

# measure NAME FLAGS...: one cleanup run; prints its figures, leaves its JSON in $work/NAME.json
# and its exit status in $status
measure() {
  local name=$1 before started
  shift
  before=$(wc -l < "$REGISTRY_LOG")
  started=$(now)
  status=0
  env -i PATH="$PATH" HOME="$work" DOCKHAND_REPO="$host/bench/scale" \
    DOCKHAND_INSECURE_REGISTRIES="$host" \
    /usr/bin/time -f '%M' -o "$work/$name.rss" "$work/dockhand" cleanup --output json \
    --keep-last "$keep" --keep-within 0s "$@" > "$work/$name.json" 2> "$work/$name.err" || status=$?
  local seconds requests rss planned
  seconds=$(since "$started")
  requests=$(requests_since "$before")
  rss=$(tail -n 1 "$work/$name.rss")
  planned=$(jq '(.deleted // []) + (.would_delete // []) | length' "$work/$name.json" 2>/dev/null || echo "?")
  printf '%-8s exit %d  %6s s  peak RSS %6.1f MiB  %7d requests  %6s deleted (or to delete)\n' \
    "$name" "$status" "$seconds" "$(awk -v kib="$rss" 'BEGIN { print kib / 1024 }')" \
    "$requests" "$planned"
}

measure plan --dry-run
[ "$status" -eq 0 ] || { cat "$work/plan.err" >&2; exit 1; }

run=0
while :; do
  run=$((run + 1))
  measure "drain-$run" --max-deletes "$budget"
  case $status in
    0) break ;;
    3) ;;
    *) cat "$work/drain-$run.err" >&2; exit 1 ;;
  esac
  if [ "$runs" -gt 0 ] && [ "$run" -ge "$runs" ]; then
    echo "drain: stopped after $run runs (RUNS=$runs)"
    exit 0
  fi
  [ "$run" -lt 100 ] || { echo "bench: the drain did not finish in 100 runs" >&2; exit 1; }
done

left=$(curl -sf "http://$host/v2/bench/scale/tags/list?n=100000" | jq '.tags | length')
echo "left: $left tags (expected $keep) after $run runs"
[ "$left" -eq "$keep" ]
