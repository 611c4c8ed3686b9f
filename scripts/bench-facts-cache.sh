#!/usr/bin/env bash
# Facts-cache benchmark (hardening issue, item 14). Prints figures; asserts only that the plan is
# the same in every run.
#
# Three repositories of $IMAGES images each (one tag each, written straight into a local
# docker-registry's storage by scripts/seed-storage.py), planned three times with
# `dockhand cleanup --dry-run --keep-last 20 --keep-within 0s`: without --facts-cache, with a
# cache file that does not exist yet (cold), and with the file that run wrote (warm). For each:
# the requests the registry logged and a SHA-256 of the plan (its JSON, keys sorted).
#
#   scripts/bench-facts-cache.sh
#   IMAGES=1000 DOCKHAND_BINARY=dist/dockhand-0.1.0-x86_64-unknown-linux-musl scripts/bench-facts-cache.sh
#
# The binary is $DOCKHAND_BINARY, else the debug build (request counts do not depend on the build).
set -euo pipefail
cd "$(dirname "$0")/.."

images="${IMAGES:-400}"
for tool in docker-registry jq python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done

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
  nice -n 10 cargo build --quiet --bin dockhand
  cp "${CARGO_TARGET_DIR:-target}/debug/dockhand" "$work/dockhand"
fi

for name in a b c; do
  python3 scripts/seed-storage.py "$work/registry/data" "bench/$name" "$images" 60
done
start_registry "$work/registry" on || exit 1
printf 'images:\n  - name: a\n  - name: b\n  - name: c\n' > "$work/dockhand.yaml"

# measure NAME FLAGS...: one dry run; prints its requests and plan
measure() {
  local name=$1 before requests plan
  shift
  before=$(wc -l < "$REGISTRY_LOG")
  (cd "$work" && env -i PATH="$PATH" HOME="$work" DOCKHAND_REPO="$REGISTRY_HOST/bench" \
    DOCKHAND_INSECURE_REGISTRIES="$REGISTRY_HOST" ./dockhand cleanup --dry-run --output json \
    --keep-last 20 --keep-within 0s "$@" > "$name.json" 2> "$name.err") \
    || { cat "$work/$name.err" >&2; exit 1; }
  # every request, from the access log (its "response completed" lines leave out the 404s of
  # routes distribution 2.8 does not have, such as the referrers API)
  requests=$(tail -n +$((before + 1)) "$REGISTRY_LOG" | grep -c '^127\.0\.0\.1 - ' || true)
  plan=$(jq -S -c . "$work/$name.json" | sha256sum | cut -c1-12)
  printf '%-6s %6d requests  plan %s\n' "$name" "$requests" "$plan"
  echo "$plan" > "$work/$name.plan"
  echo "$requests" > "$work/$name.requests"
}

measure plain
measure cold --facts-cache facts.json
measure warm --facts-cache facts.json
echo "cache file: $(wc -c < "$work/facts.json") bytes for $((3 * images)) images"
awk -v warm="$(cat "$work/warm.requests")" -v plain="$(cat "$work/plain.requests")" \
  'BEGIN { printf "warm / without: %.1f %%\n", 100 * warm / plain }'
for run in cold warm; do
  cmp -s "$work/plain.plan" "$work/$run.plan" || { echo "bench: the $run plan differs" >&2; exit 1; }
done
