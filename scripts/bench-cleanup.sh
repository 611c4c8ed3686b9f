#!/usr/bin/env bash
# Cleanup benchmark (issue 5). Prints figures; asserts nothing about durations.
#
# On a local docker-registry (127.0.0.1, deletes enabled, anonymous), three repositories of
# $TAGS distinct images each (config `created` spread over 60 days) are cut to their newest 20 in
# one run, by:
#   dockhand   `dockhand cleanup --keep-last 20 --keep-within 0s` (all three repositories at once)
#   bare       examples/bare_cleanup.rs: list, GET manifest + config per tag, DELETE by digest,
#              16 requests in flight, no safety checks: the registry-bound floor
#   skopeo     the loop a user writes: `skopeo list-tags`, `skopeo inspect --config` per tag,
#              `skopeo delete` per tag beyond 20, one repository after the other
# Each round starts a fresh registry; every run gets freshly seeded repositories, and what is
# left is checked (exactly the newest 20 tags) after the run. Within a round the tools run one
# after the other, so the ratios compare runs made under the same load (this machine is
# shared); the figures are medians over the rounds. The registry's own log counts each tool's
# requests. Then the peak RSS of planning 10,000 tags (examples/plan_10k.rs).
#
#   ROUNDS=3 SKOPEO_ROUNDS=3 TAGS=400 scripts/bench-cleanup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-3}"
skopeo_rounds="${SKOPEO_ROUNDS:-3}"
tags="${TAGS:-400}"
keep=20

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in docker-registry skopeo jq curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done
if [ ! -x /usr/bin/time ]; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

target="${CARGO_TARGET_DIR:-target}"
echo "bench: building release binaries (once)" >&2
nice -n 10 cargo build --release --quiet --examples --bin dockhand

work="$(mktemp -d)"
# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
finish() {
  stop_registry
  rm -rf "$work"
}
trap finish EXIT
# private copies: a build elsewhere in the same target dir cannot swap them mid-run
mkdir "$work/bin"
cp "$target/release/dockhand" "$target/release/examples/seed" "$target/release/examples/bare_cleanup" \
  "$target/release/examples/plan_10k" "$work/bin/"
bin="$work/bin"

# round_registry ROUND: a fresh docker-registry with its own storage, so that no round inherits
# another's leftovers; sets $host and $log
round_registry() {
  start_registry "$work/registry-$1" off || exit 1
  host=$REGISTRY_HOST
  log=$REGISTRY_LOG
}

# requests_since LINE: the requests the registry logged after line LINE, by method
requests_since() {
  tail -n +$(($1 + 1)) "$log" | grep 'msg="response completed' | grep -o 'http.request.method=[A-Z]*' \
    | sed 's/.*=//' | sort | uniq -c \
    | awk '{ total += $1; parts = parts sprintf("%s %s, ", $2, $1) }
           END { sub(/, $/, "", parts); printf "%d (%s)", total, parts }'
}

now() { date +%s.%N; }
since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.2f", end - start }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# seed PREFIX: three fresh repositories bench/PREFIX-1..3
seed() {
  for n in 1 2 3; do "$bin/seed" "$host" "bench/$1-$n" "$tags" 60 >/dev/null; done
}

# check PREFIX: each repository holds exactly the newest $keep tags
expected="$(for i in $(seq $((tags - keep)) $((tags - 1))); do printf 't%04d ' "$i"; done)"
check() {
  local n left
  for n in 1 2 3; do
    left="$(curl -sf "http://$host/v2/bench/$1-$n/tags/list" | jq -r '(.tags // []) | sort | join(" ")')"
    if [ "$left " != "$expected" ]; then
      echo "bench: bench/$1-$n holds the wrong tags after the run: $left" >&2
      exit 1
    fi
  done
}

run_dockhand() {
  local project="$work/project-$1"
  mkdir "$project"
  printf 'images:\n  - name: %s-1\n  - name: %s-2\n  - name: %s-3\n' "$1" "$1" "$1" > "$project/dockhand.yaml"
  (cd "$project" && env -i PATH="$PATH" HOME="$work" DOCKHAND_REPO="$host/bench" DOCKHAND_INSECURE_REGISTRIES="$host" \
    /usr/bin/time -f '%M' -o "$work/rss" "$bin/dockhand" -q cleanup --keep-last "$keep" --keep-within 0s \
      >/dev/null 2>"$work/dockhand-$1.log") || { cat "$work/dockhand-$1.log" >&2; exit 1; }
}

run_bare() {
  "$bin/bare_cleanup" "$host" "$keep" "bench/$1-1" "bench/$1-2" "bench/$1-3" >/dev/null
}

run_skopeo() {
  local n ref tag created
  for n in 1 2 3; do
    ref="docker://$host/bench/$1-$n"
    skopeo list-tags --tls-verify=false "$ref" | jq -r '.Tags[]' | while read -r tag; do
      created="$(skopeo inspect --config --tls-verify=false "$ref:$tag" | jq -r .created)"
      echo "$created $tag"
    done | sort -r | tail -n +$((keep + 1)) | while read -r created tag; do
      skopeo delete --tls-verify=false "$ref:$tag"
    done
  done
}

# timed CLIENT PREFIX: seeds fresh repositories, runs CLIENT on them, checks what is left, and
# prints the seconds it took; CLIENT's requests go to $work/requests-CLIENT
timed() {
  local mark start seconds
  seed "$2"
  mark="$(wc -l < "$log")"
  start="$(now)"
  "run_$1" "$2"
  seconds="$(since "$start")"
  check "$2"
  requests_since "$mark" > "$work/requests-$1"
  echo "$seconds"
}

declare -a dockhand_times=() bare_times=() skopeo_times=() dockhand_rss=() skopeo_ratios=() bare_ratios=()
for round in $(seq "$rounds"); do
  round_registry "$round"
  dockhand_times+=("$(timed dockhand "d$round")")
  dockhand_rss+=("$(cat "$work/rss")")
  bare_times+=("$(timed bare "b$round")")
  bare_ratios+=("$(awk -v d="${dockhand_times[-1]}" -v b="${bare_times[-1]}" 'BEGIN { printf "%.2f", d / b }')")
  line="bench: round $round: dockhand ${dockhand_times[-1]} s, bare ${bare_times[-1]} s"
  if [ "$round" -le "$skopeo_rounds" ]; then
    skopeo_times+=("$(timed skopeo "s$round")")
    skopeo_ratios+=("$(awk -v s="${skopeo_times[-1]}" -v d="${dockhand_times[-1]}" 'BEGIN { printf "%.1f", s / d }')")
    line="$line, skopeo ${skopeo_times[-1]} s"
  fi
  stop_registry
  echo "$line" >&2
done

dockhand_median="$(printf '%s\n' "${dockhand_times[@]}" | median)"
bare_median="$(printf '%s\n' "${bare_times[@]}" | median)"
skopeo_median="$(printf '%s\n' "${skopeo_times[@]}" | median)"
rss_median="$(printf '%s\n' "${dockhand_rss[@]}" | median)"
skopeo_ratio="$(printf '%s\n' "${skopeo_ratios[@]}" | median)"
bare_ratio="$(printf '%s\n' "${bare_ratios[@]}" | median)"

plan_out="$(/usr/bin/time -v "$bin/plan_10k" 10000 2>&1)"
plan_rss="$(echo "$plan_out" | awk -F': ' '/Maximum resident set size/ { print $2 }')"
plan_time="$(echo "$plan_out" | awk -F': +' '/planning took/ { print $2 }')"

deletes=$((3 * (tags - keep)))
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
echo
echo "commit    $commit"
echo "machine   $(nproc) cores, $(lscpu | awk -F': +' '/Model name/ { print $2; exit }'), $(free -g | awk '/Mem:/ { print $2 }') GiB RAM, $(uname -sr)"
echo "peers     $(docker-registry --version 2>/dev/null | head -1), $(skopeo --version)"
echo "load      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, at the end)"
echo
echo "cut 3 repositories x $tags tags to the newest $keep ($deletes deletes); median wall time"
printf '%-28s %8s %5s  %s\n' "client" "seconds" "runs" "registry requests (last run)"
printf '%-28s %8s %5s  %s\n' "dockhand cleanup" "$dockhand_median" "${#dockhand_times[@]}" "$(cat "$work/requests-dockhand")"
printf '%-28s %8s %5s  %s\n' "bare parallel HTTP (floor)" "$bare_median" "${#bare_times[@]}" "$(cat "$work/requests-bare")"
if [ "${#skopeo_times[@]}" -gt 0 ]; then
  printf '%-28s %8s %5s  %s\n' "skopeo loop" "$skopeo_median" "${#skopeo_times[@]}" "$(cat "$work/requests-skopeo")"
  echo
  echo "skopeo loop / dockhand   ${skopeo_ratio}x  (median of the rounds' ratios; goal >= 5x)"
fi
echo "dockhand / bare floor    ${bare_ratio}x  (median of the rounds' ratios; goal <= 1.3x)"
awk -v kib="$rss_median" 'BEGIN { printf "dockhand peak RSS during the cleanup  %.1f MiB\n", kib / 1024 }'
awk -v kib="$plan_rss" -v took="$plan_time" \
  'BEGIN { printf "plan_10k: planning 10,000 tags took %s, peak RSS %.1f MiB (goal <= 50 MB)\n", took, kib / 1024 }'
echo "all runs (s): dockhand ${dockhand_times[*]}; bare ${bare_times[*]}; skopeo ${skopeo_times[*]:-}"
