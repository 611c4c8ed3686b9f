#!/usr/bin/env bash
# The image test. Builds the static release binary (unless $DOCKHAND_BINARY names one), builds
# the minimal image from it with buildah exactly as scripts/image.sh does for users (the
# Dockerfile's `release` target, ROOTFS=staged: no base image, nothing pulled), then checks the
# image: at most 10 MB, a non-root user, the files it ships, and dockhand running inside it as
# that user (--help, --version, and `ci-env`, which reads the environment and writes the job's
# docker config under /tmp). buildah keeps its storage in a temp dir (vfs), removed at the end.
#
# The Dockerfile's `compile` and `builder` stages need base images from Docker Hub, which these
# machines cannot pull: hadolint checks them (tests/it/packaging.rs). With --builder, this script
# also builds the `builder` target on a stand-in for debian:bookworm-slim made with debootstrap
# from Debian's package mirror (slow, needs that mirror and `apt-get install debootstrap`) and
# checks what it holds; building images inside it needs a real container runtime, not tested.
set -euo pipefail
with_builder=false
[ "${1:-}" != --builder ] || with_builder=true
cd "$(dirname "$0")/.."
repo=$PWD

if [ -z "${DOCKHAND_BINARY:-}" ]; then
  echo "test-packaging: building the static release binary" >&2
  nice -n 10 cargo build --quiet --locked --release --target x86_64-unknown-linux-musl
  DOCKHAND_BINARY="${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-musl/release/dockhand"
fi
export DOCKHAND_BINARY

work=$(mktemp -d)
export DOCKHAND_BUILDAH_ROOT=$work/buildah
b() { buildah --root "$DOCKHAND_BUILDAH_ROOT/root" --runroot "$DOCKHAND_BUILDAH_ROOT/run" --storage-driver vfs "$@"; }
container=""
cleanup() {
  [ -z "$container" ] || b rm "$container" >/dev/null 2>&1 || true
  b rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok      $name"
  else
    failed=$((failed + 1))
    echo "FAILED  $name" >&2
  fi
}

tag=localhost/dockhand:test
check "the image builds from the prebuilt binary with nothing pulled" \
  scripts/image.sh build "$tag"
report=$(scripts/image.sh check "$tag") || report='{}'
echo "$report"
size=$(jq -r '.size_bytes // 0' <<<"$report")
check "image.sh check: dockhand --help runs in the image as its user" test "$size" -gt 0
check "the image holds at most 10 MB" test "$size" -le 10000000
check "the image runs as dockhand (65532:65532)" test "$(jq -r '.user // ""' <<<"$report")" = "65532:65532"
echo "image size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f MB", s / 1000000 }'))"

config=$(b inspect --type image "$tag" | jq '.OCIv1.config')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
check "the entrypoint is the binary" \
  test "$(jq -c '.Entrypoint' <<<"$config")" = '["/usr/local/bin/dockhand"]'
check "the OCI labels name the version and the revision" \
  test "$(jq -r '.Labels["org.opencontainers.image.version"] + " " + .Labels["org.opencontainers.image.revision"]' <<<"$config")" \
  = "$version $(git rev-parse HEAD)"

container=$(b from --quiet "$tag")
root=$(b mount "$container")
check "/etc/passwd names the non-root user" grep -qx 'dockhand:x:65532:65532:dockhand:/home/dockhand:/sbin/nologin' "$root/etc/passwd"
check "the CA bundle is there" test -s "$root/etc/ssl/certs/ca-certificates.crt"
check "/tmp is world-writable and sticky" test "$(stat -c %a "$root/tmp")" = 1777
check "the home directory belongs to the user" test "$(stat -c %u "$root/home/dockhand")" = 65532
check "there is no shell in the minimal image" test ! -e "$root/bin/sh"
b umount "$container" >/dev/null

in_image() { b run --isolation chroot "$container" -- "$@"; }
check "--version in the image is the binary's" \
  test "$(in_image dockhand --version)" = "$("$DOCKHAND_BINARY" --version)"

# ci-env as the image's user: reads the environment, writes the job config under /tmp
b config --env DOCKHAND_REPO=registry.example.com/acme/app --env TMPDIR=/tmp "$container"
exports=$(in_image dockhand ci-env generic --no-login 2>"$work/ci-env.log") || cat "$work/ci-env.log" >&2
job_dir=$(sed -n "s/^export DOCKER_CONFIG='\(.*\)'$/\1/p" <<<"$exports")
check "ci-env in the image exports a DOCKER_CONFIG under /tmp" test "${job_dir#/tmp/dockhand-}" != "$job_dir"
root=$(b mount "$container")
check "the job config belongs to the image's user, mode 0700" \
  test "$(stat -c '%u %a' "$root$job_dir" 2>/dev/null)" = "65532 700"
check "ci-env exported the repo from the environment" grep -qx "export DOCKHAND_REPO='registry.example.com/acme/app'" <<<"$exports"
b umount "$container" >/dev/null

if [ "$with_builder" = true ]; then
  command -v debootstrap >/dev/null || { echo "test-packaging: apt-get install debootstrap" >&2; exit 1; }
  echo "test-packaging: debootstrap a stand-in for debian:bookworm-slim" >&2
  nice debootstrap --variant=minbase bookworm "$work/debian" http://deb.debian.org/debian > "$work/debootstrap.log"
  base=$(b from scratch)
  b copy "$base" "$work/debian" / >/dev/null
  b config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$base"
  b commit --quiet "$base" docker.io/library/debian:bookworm-slim >/dev/null
  b rm "$base" >/dev/null
  staged=$work/staged
  mkdir "$staged"
  scripts/image.sh stage "$staged"
  check "the builder target builds" b bud --quiet --pull=never --isolation chroot --layers=false \
    --file Dockerfile --target builder --build-arg ROOTFS=staged --tag localhost/dockhand:builder "$staged"
  builder=$(b from --quiet localhost/dockhand:builder)
  # shellcheck disable=SC2016 # expanded by the image's shell
  facts=$(b run --isolation chroot "$builder" -- sh -c \
    'id -u; dockhand --version; buildah --version; echo "$BUILDAH_ISOLATION $STORAGE_DRIVER"; cat /etc/subuid')
  b rm "$builder" >/dev/null
  check "the builder image runs as 65532" test "$(sed -n 1p <<<"$facts")" = 65532
  check "the builder image has dockhand and buildah" \
    test "$(sed -n 2p <<<"$facts")" = "$("$DOCKHAND_BINARY" --version)" -a -n "$(sed -n '3s/^buildah version //p' <<<"$facts")"
  check "buildah is set for chroot isolation, vfs, and subordinate ids" \
    test "$(sed -n '4,5p' <<<"$facts" | tr '\n' ' ')" = "chroot vfs dockhand:100000:65536 "
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
