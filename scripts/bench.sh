#!/usr/bin/env bash
# Benchmarks of issues 3 and 4. Prints figures; asserts nothing about time (not a test, not in
# .ci/run). Builds the static musl release binary once, starts its own docker-registry on
# 127.0.0.1 (htpasswd auth, access log on), then measures:
#   1. the binary: size as built (the release profile strips it) and `file`'s verdict;
#   2. `dockhand ci-env generic --no-login` and `ci-env generic` (login checked against the
#      local registry) with hyperfine;
#   3. retagging an image already in the registry under BENCH_TAGS new tags: one
#      `dockhand publish --tag …` against a shell loop of `skopeo copy` per tag, with the
#      registry requests each side makes, counted from the access log.
# Knobs: BENCH_TAGS (100), BENCH_RETAG_RUNS (10), BENCH_CIENV_RUNS (50), BENCH_OUT (where
# hyperfine's JSON goes; default $CARGO_TARGET_DIR/bench, else target/bench).
# Usage: CARGO_TARGET_DIR=/work/target-shared scripts/bench.sh 2>/dev/null | tee bench.txt
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh

tags=${BENCH_TAGS:-100}
retag_runs=${BENCH_RETAG_RUNS:-10}
cienv_runs=${BENCH_CIENV_RUNS:-50}
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
out=${BENCH_OUT:-$target_dir/bench}
mkdir -p "$out"

echo "== building the static musl release binary" >&2
nice -n 10 cargo build --release --target x86_64-unknown-linux-musl >&2
dockhand=$target_dir/x86_64-unknown-linux-musl/release/dockhand

work=$(mktemp -d)
# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
finish() {
  stop_registry
  rm -rf "$work"
}
trap finish EXIT

# ---------------------------------------------------------------- helpers
ms() { jq -r '.results[0] | [.median, .mean, .stddev, .min, .max] | map((. // 0) * 1000 * 100 | round / 100) | @tsv' "$1"; }
# LABEL JSON: one summary line from hyperfine's export
report() {
  local median mean stddev min max runs
  read -r median mean stddev min max < <(ms "$2")
  read -r runs user system < <(jq -r '.results[0] | [(.times | length), (.user, .system | . * 1000 | round)] | @tsv' "$2")
  printf '%-44s median %9.2f ms   mean %9.2f ± %.2f ms   min %9.2f   max %9.2f   (%s runs; client CPU user %s + sys %s ms)\n' \
    "$1" "$median" "$mean" "$stddev" "$min" "$max" "$runs" "$user" "$system"
}
median_ms() { jq '(.results[0].median // 0) * 1000 * 100 | round / 100' "$1"; }
access_lines() { grep -cE '"(GET|HEAD|PUT|POST|PATCH|DELETE) /v2/' "$REGISTRY_LOG" || true; }
# CPU time the registry process has used, in ms (utime + stime from /proc)
registry_cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$REGISTRY_PID/stat"; }
# LABEL COMMAND…: runs COMMAND once and prints the registry requests it made (by method, kind
# and status) and the registry's CPU time meanwhile
count_requests() {
  local label=$1 before cpu
  shift
  before=$(access_lines)
  cpu=$(registry_cpu_ms)
  "$@"
  sleep 0.3   # the registry writes an access line after the response: let the last ones land
  cpu=$(( $(registry_cpu_ms) - cpu ))
  grep -E '"(GET|HEAD|PUT|POST|PATCH|DELETE) /v2/' "$REGISTRY_LOG" | tail -n "+$((before + 1))" |
    awk '{ method = substr($6, 2); path = $7; sub(/\?.*/, "", path)
           kind = path ~ /^\/v2\/?$/ ? "ping" : path ~ /\/manifests\// ? "manifest" : path ~ /\/blobs\/uploads/ ? "upload" : path ~ /\/blobs\// ? "blob" : path ~ /\/tags\/list/ ? "tags" : "other"
           print method, kind, $9 }' | sort | uniq -c |
    awk -v label="$label" '{ total += $1; line = line sprintf("  %s %s→%s ×%d", $2, $3, $4, $1) }
      END { printf "%-44s %5d requests:%s\n", label, total, line }'
  echo "$(printf '%-44s' '')       registry CPU meanwhile: $cpu ms"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------- header
echo "== dockhand benchmarks"
echo "commit:     $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (+ uncommitted changes)')"
echo "dockhand:   $("$dockhand" --version)"
echo "date:       $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine:    $(uname -srm), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "tools:      $(hyperfine --version), $(skopeo --version), $(buildah --version | cut -d' ' -f1-3), docker-registry $(dpkg-query -W -f='${Version}' docker-registry)"
echo "load avg:   $(loadavg) (other work on the machine shows up in the figures)"

# ---------------------------------------------------------------- 1. binary
echo
echo "== 1. binary (x86_64-unknown-linux-musl, release profile)"
size=$(stat -c %s "$dockhand")
kind=$(file -b "$dockhand")
echo "path:       $dockhand"
echo "size:       $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MiB", s / 1048576 }'))   budget ≤ 8 MB (8000000 bytes): $([ "$size" -le 8000000 ] && echo met || echo MISSED)"
echo "file:       $kind"
case $kind in
  *static-pie\ linked* | *statically\ linked*) echo "static:     yes" ;;
  *) echo "static:     NO (goal missed)" ;;
esac
case $kind in
  *", stripped"*) echo "stripped:   yes (strip = true in the release profile)" ;;
  *) echo "stripped:   NO" ;;
esac

# ---------------------------------------------------------------- registry
echo "== starting docker-registry on 127.0.0.1 (htpasswd auth, access log on)" >&2
password=bench-$RANDOM$RANDOM
start_registry "$work/registry" on bench "$password"
registry=$REGISTRY_HOST

# a generic runner's job: its own HOME (no ~/.docker to copy), TMPDIR, buildah storage
mkdir -p "$work/home" "$work/tmp" "$work/project/img"
cat > "$work/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$work/storage/root"
runroot = "$work/storage/run"
CONF
export CONTAINERS_STORAGE_CONF=$work/storage.conf BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs
export HOME=$work/home TMPDIR=$work/tmp
export DOCKHAND_INSECURE_REGISTRIES=$registry DOCKHAND_REGISTRY=$registry
export DOCKHAND_REGISTRY_USERNAME=bench DOCKHAND_REGISTRY_PASSWORD=$password
export DOCKHAND_REPO=$registry/app DOCKHAND_SHA=0123456789abcdef0123456789abcdef01234567
export DOCKHAND_REF_NAME=main DOCKHAND_REF_TYPE=branch
cd "$work/project"
printf 'images:\n  - name: img\n    context: img\n' > dockhand.yaml
printf 'FROM scratch\nCOPY file.txt /file.txt\n' > img/Containerfile
echo "dockhand benchmark image" > img/file.txt

# ---------------------------------------------------------------- 2. ci-env
echo
echo "== 2. ci-env start-up (hyperfine -N, no shell; generic runner, empty HOME, registry $registry)"
echo "load avg:   $(loadavg)"
hyperfine -N --style basic --warmup 5 --runs "$cienv_runs" --export-json "$out/ci-env-no-login.json" \
  "$dockhand ci-env generic --no-login" >&2
hyperfine -N --style basic --warmup 5 --runs "$cienv_runs" --export-json "$out/ci-env-login.json" \
  "$dockhand ci-env generic" >&2
report "ci-env generic --no-login" "$out/ci-env-no-login.json"
report "ci-env generic (login: GET /v2/ ×2, bcrypt)" "$out/ci-env-login.json"
no_login=$(median_ms "$out/ci-env-no-login.json")
echo "goal ci-env --no-login ≤ 10 ms: $(awk -v m="$no_login" 'BEGIN { print (m <= 10 ? "met" : "MISSED") }') (median $no_login ms)"
count_requests "requests of one ci-env generic (login)" "$dockhand" -q ci-env generic -o "$work/env.sh"
count_requests "requests of one ci-env --no-login" "$dockhand" -q ci-env generic --no-login -o "$work/env.sh"

# ---------------------------------------------------------------- 3. retagging
echo
echo "== 3. retagging $tags tags onto an image already in the registry ($registry/app/img:src)"
# the job's docker config, which both dockhand publish and skopeo read
eval "$("$dockhand" -q ci-env generic)"
"$dockhand" -q build >&2
"$dockhand" -q publish --tag src >&2
src_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$registry/app/img:src")
echo "image:      $(find "$work/data" -path '*/blobs/*' -name data | wc -l) blobs in the registry (config + 1 layer + manifest), digest $src_digest"

# one side = one script taking a tag prefix and a count; every timed run pushes fresh tag names
cat > "$work/dockhand-retag.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
args=()
for i in \$(seq "\$2"); do args+=(--tag "\$1-t\$i"); done
exec "$dockhand" -q publish "\${args[@]}" >/dev/null
EOF
cat > "$work/skopeo-retag.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
for i in \$(seq "\$2"); do
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \\
    "docker://$registry/app/img:src" "docker://$registry/app/img:\$1-t\$i"
done
EOF
# hyperfine runs the same command line every time: a counter file gives each run its prefix
cat > "$work/next.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
n=\$(( \$(cat "$work/counter-\$1" 2>/dev/null || echo 0) + 1 ))
echo "\$n" > "$work/counter-\$1"
exec bash "$work/\$1-retag.sh" "\${1:0:1}\$n" $tags
EOF

count_requests "requests of dockhand publish, $tags tags" bash "$work/dockhand-retag.sh" dcount "$tags"
count_requests "requests of skopeo copy loop, $tags tags" bash "$work/skopeo-retag.sh" scount "$tags"
count_requests "requests of dockhand publish, 1 tag" bash "$work/dockhand-retag.sh" "done" 1
count_requests "requests of skopeo copy, 1 tag" skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$registry/app/img:src" "docker://$registry/app/img:sone"

echo "load avg:   $(loadavg)"
hyperfine --style basic --runs "$retag_runs" --export-json "$out/retag.json" \
  -n "dockhand publish, $tags tags" "bash $work/next.sh dockhand" \
  -n "skopeo copy loop, $tags tags" "bash $work/next.sh skopeo" >&2
hyperfine --style basic --warmup 1 --runs "$((retag_runs * 2))" --export-json "$out/publish-one.json" \
  -n "dockhand publish, 1 tag (fixed cost)" "$dockhand -q publish --tag one" >&2
jq '{results: [.results[0]]}' "$out/retag.json" > "$out/retag-dockhand.json"
jq '{results: [.results[1]]}' "$out/retag.json" > "$out/retag-skopeo.json"
report "dockhand publish, $tags tags" "$out/retag-dockhand.json"
report "skopeo copy loop, $tags tags" "$out/retag-skopeo.json"
report "dockhand publish, 1 tag (same tag each run)" "$out/publish-one.json"
d=$(median_ms "$out/retag-dockhand.json")
s=$(median_ms "$out/retag-skopeo.json")
echo "ratio:      skopeo loop / dockhand = $(awk -v d="$d" -v s="$s" 'BEGIN { printf "%.1f", s / d }') (medians)"

# every tag each side pushed resolves to the source digest
expected=$(( (retag_runs + 1) * tags ))
listed=$(skopeo list-tags --tls-verify=false "docker://$registry/app/img" | jq -r '.Tags[]')
for side in d s; do
  count=$(grep -cE "^$side(count|[0-9]+)-t[0-9]+$" <<< "$listed" || true)
  echo "check:      $count tags by $([ $side = d ] && echo dockhand || echo skopeo) (expected $expected)"
done
for reference in dcount-t1 "dcount-t$tags" scount-t1 "scount-t$tags"; do
  digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$registry/app/img:$reference")
  [ "$digest" = "$src_digest" ] || { echo "check:      $reference is $digest, not $src_digest" >&2; exit 1; }
done
echo "check:      sampled tags of both sides resolve to $src_digest"
echo
echo "hyperfine JSON: $out"
