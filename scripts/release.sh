#!/usr/bin/env bash
# Builds a release of this checkout into dist/ (or $DOCKHAND_DIST): every step of a release but
# the upload, so that it runs on any machine after scripts/setup.sh.
#
#   dist/dockhand-VERSION-x86_64-unknown-linux-musl    static binaries (the action's asset names)
#   dist/dockhand-VERSION-aarch64-unknown-linux-musl
#   dist/checksums.txt                                  their SHA-256, in `sha256sum` format
#   dist/dockhand-VERSION.cdx.json                      SBOM: every crate in the binaries (CycloneDX 1.5)
#
# The binaries are reproducible: the same commit built in another directory, at another time, by
# another user gives the same bytes. What makes them so: the toolchain pinned in
# rust-toolchain.toml, `--locked`, source paths remapped (the checkout to /dockhand, the cargo
# home to /cargo), SOURCE_DATE_EPOCH and the revision taken from the commit, and the release
# profile's single codegen unit. scripts/test-release.sh checks it by building twice.
#
# `--check` also compares the checksums with the lines action/checksums.txt holds for this
# version and fails unless every binary has its line and matches it (run it before tagging:
# docs/releasing.md).
set -euo pipefail
check=false
[ "${1:-}" != --check ] || check=true
cd "$(dirname "$0")/.."
repo=$PWD
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "release: no version in Cargo.toml" >&2; exit 1; }
dist=${DOCKHAND_DIST:-$repo/dist}
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

# the commit's facts, not the build's: the revision stamped into `--version`, and the time
# for anything that records one
if [ -z "${DOCKHAND_GIT_REVISION:-}" ]; then
  DOCKHAND_GIT_REVISION=$(git rev-parse --short=8 HEAD)
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
fi
export DOCKHAND_GIT_REVISION SOURCE_DATE_EPOCH
cargo_home=${CARGO_HOME:-$HOME/.cargo}

mkdir -p "$dist"
assets=()
for target in "${targets[@]}"; do
  # RUSTFLAGS for a target replace the ones in .cargo/config.toml: repeat +crt-static here
  flags_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_RUSTFLAGS"
  export "$flags_var=-C target-feature=+crt-static --remap-path-prefix=$repo=/dockhand --remap-path-prefix=$cargo_home=/cargo"
  echo "release: building $target ($DOCKHAND_GIT_REVISION, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
  nice -n 10 cargo build --quiet --locked --release --target "$target"
  unset "$flags_var"
  asset="dockhand-$version-$target"
  cp "${CARGO_TARGET_DIR:-$repo/target}/$target/release/dockhand" "$dist/$asset"
  assets+=("$asset")
done
(cd "$dist" && sha256sum "${assets[@]}" >checksums.txt)

# the SBOM: the crates cargo links into the binaries for these targets (normal dependencies
# only), with their registry checksums from Cargo.lock
metadata=$(cargo metadata --locked --format-version 1 \
  --filter-platform x86_64-unknown-linux-musl --filter-platform aarch64-unknown-linux-musl)
jq --arg version "$version" --arg epoch "$SOURCE_DATE_EPOCH" --slurpfile lock <(
  awk '/^\[\[package\]\]/ { if (name != "") print name "\t" ver "\t" sum; name = ""; ver = ""; sum = "" }
       /^name = / { gsub(/"/, "", $3); name = $3 }
       /^version = / { gsub(/"/, "", $3); ver = $3 }
       /^checksum = / { gsub(/"/, "", $3); sum = $3 }
       END { if (name != "") print name "\t" ver "\t" sum }' Cargo.lock |
    jq -R 'split("\t") | {key: "\(.[0])@\(.[1])", value: .[2]}' | jq -s from_entries
) '
  (.resolve.root) as $root
  | (.resolve.nodes | map({key: .id, value: .}) | from_entries) as $nodes
  | (.packages | map({key: .id, value: .}) | from_entries) as $packages
  # the crates reachable from dockhand through normal (not dev or build) dependencies
  | [$root] as $start
  | {seen: {}, todo: $start}
  | until(.todo == [];
      .todo[0] as $id | .todo |= .[1:]
      | if .seen[$id] then . else
          .seen[$id] = true
          | .todo += [$nodes[$id].deps[]
              | select(any(.dep_kinds[]; .kind == null)) | .pkg]
        end)
  | [.seen | keys[] | select(. != $root) | $packages[.]]
  | sort_by(.name, .version)
  | {
      bomFormat: "CycloneDX",
      specVersion: "1.5",
      version: 1,
      metadata: {
        timestamp: ($epoch | tonumber | todate),
        component: {type: "application", name: "dockhand", version: $version,
                    purl: "pkg:cargo/dockhand@\($version)"}
      },
      components: map({
        type: "library", name: .name, version: .version,
        purl: "pkg:cargo/\(.name)@\(.version)",
        licenses: (if .license then [{expression: .license}] else [] end),
        hashes: ($lock[0]["\(.name)@\(.version)"] as $sum
                 | if $sum and $sum != "" then [{alg: "SHA-256", content: $sum}] else [] end)
      })
    }' <<<"$metadata" >"$dist/dockhand-$version.cdx.json"

cat "$dist/checksums.txt"
echo "release: $(jq '.components | length' "$dist/dockhand-$version.cdx.json") crates in the SBOM" >&2

if $check; then
  status=0
  while read -r sum asset; do
    committed=$(awk -v asset="$asset" '$1 !~ /^#/ && $2 == asset { print $1 }' action/checksums.txt)
    if [ -z "$committed" ]; then
      echo "release: action/checksums.txt has no line for $asset; add: $sum  $asset" >&2
      status=1
    elif [ "$committed" != "$sum" ]; then
      echo "release: $asset is $sum, but action/checksums.txt says $committed" >&2
      status=1
    fi
  done <"$dist/checksums.txt"
  [ "$status" -eq 0 ] && echo "release: the binaries match action/checksums.txt" >&2
  exit "$status"
fi
