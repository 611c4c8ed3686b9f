#!/usr/bin/env bash
# The reproducibility test: scripts/release.sh run here, then again on a copy of the same commit in
# another directory (its own target dir, so nothing is shared but the cargo home), and the two
# dist/ directories compared byte for byte: both binaries, checksums.txt and the SBOM. The
# binaries are then checked to be static executables for their architecture. Afterwards
# dist/ holds the release, which scripts/test-packaging.sh can reuse (DOCKHAND_BINARY).
#
# The copy is the working tree's tracked files (`git stash create`, else HEAD): on a clean
# checkout, as in CI, exactly the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scripts/release.sh
other=$(mktemp -d /tmp/dockhand-release-XXXXXX)
trap 'rm -rf "$other"' EXIT
tree=$(git stash create)
git archive "${tree:-HEAD}" | tar -x -C "$other"
# the revision and time of this commit, as the first build took them from git
(
  cd "$other"
  unset CARGO_TARGET_DIR
  DOCKHAND_GIT_REVISION=$(git -C "$repo" rev-parse --short=8 HEAD) \
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct HEAD) \
    scripts/release.sh >/dev/null
)
if diff -r "$repo/dist" "$other/dist"; then
  echo "ok      the release is reproducible: $(cd "$repo/dist" && echo *)"
else
  echo "FAILED  two builds of the same commit differ" >&2
  exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
for pair in x86_64:x86-64 aarch64:aarch64; do
  binary="dist/dockhand-$version-${pair%%:*}-unknown-linux-musl"
  description=$(file -b "$binary")
  case "$description" in
    *"${pair#*:}"*static*) echo "ok      $binary: ${description%%,*}, static" ;;
    *) echo "FAILED  $binary is not a static ${pair#*:} executable: $description" >&2; exit 1 ;;
  esac
done
