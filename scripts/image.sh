#!/usr/bin/env bash
# Builds and checks dockhand's minimal image from a prebuilt static binary, with buildah and no
# base image (nothing is pulled): the Dockerfile's `release` target with ROOTFS=staged.
#
#   scripts/image.sh stage DIR           write DIR/rootfs, DIR/home and DIR/binaries/ARCH/dockhand:
#                                        the files the image for $DOCKHAND_ARCH holds
#   scripts/image.sh context DIR         the same for both platforms: DIR/binaries/amd64/dockhand
#                                        and DIR/binaries/arm64/dockhand (the build context of
#                                        .github/dockhand.yaml, which the release builds)
#   scripts/image.sh build [TAG]         stage into a temp dir, `buildah bud` it, print the image id
#   scripts/image.sh check TAG           size ≤ 10 MB, non-root user, `dockhand --help` runs inside
#   scripts/image.sh index TAG           the minimal image for linux/amd64 and linux/arm64 as one
#                                        manifest list TAG (push it with `buildah manifest push --all`)
#
# $DOCKHAND_ARCH (amd64, the default, or arm64) is the platform `stage` and `build` make. Their
# binary is $DOCKHAND_BINARY, else the musl release build for that platform under
# $CARGO_TARGET_DIR (default target/): x86_64- or aarch64-unknown-linux-musl; with --build it is
# built first when missing (`nice cargo build --release --target TRIPLE`). `context` and `index`
# take each platform's binary from $DOCKHAND_BINARY_AMD64 and $DOCKHAND_BINARY_ARM64, else those
# builds. Every platform is assembled from files on a scratch base: nothing runs inside the
# image, so arm64 needs no emulation; the Dockerfile picks the binary of the platform it builds
# (TARGETARCH). The CA bundle is $DOCKHAND_CA_BUNDLE, else the host's
# /etc/ssl/certs/ca-certificates.crt. buildah's storage is the system's unless
# $DOCKHAND_BUILDAH_ROOT is set, then $DOCKHAND_BUILDAH_ROOT/{root,run} with the vfs driver
# (what the tests use, so they never touch the system store).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

arch=${DOCKHAND_ARCH:-amd64}
# the Rust target and what `file` says of its executables, per platform
triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
  esac
}
machine_of() {
  case "$1" in
    amd64) echo x86-64 ;;
    arm64) echo "ARM aarch64" ;;
  esac
}
case "$arch" in
  amd64 | arm64) target_triple=$(triple_of "$arch") ;;
  *) echo "image.sh: \`DOCKHAND_ARCH\` must be amd64 or arm64, not \`$arch\`" >&2; exit 1 ;;
esac
readonly max_bytes=$((10 * 1000 * 1000))
readonly user_id=65532

die() { echo "image.sh: $*" >&2; exit 1; }

# what to remove on exit, whatever happens: temp dirs and working containers
temp_dirs=()
containers=()
on_exit() {
  local container
  for container in "${containers[@]}"; do buildah_cmd rm "$container" >/dev/null 2>&1 || true; done
  [ "${#temp_dirs[@]}" -eq 0 ] || rm -rf "${temp_dirs[@]}"
}
trap on_exit EXIT

buildah_cmd() {
  if [ -n "${DOCKHAND_BUILDAH_ROOT:-}" ]; then
    buildah --root "$DOCKHAND_BUILDAH_ROOT/root" --runroot "$DOCKHAND_BUILDAH_ROOT/run" \
      --storage-driver vfs "$@"
  else
    buildah "$@"
  fi
}

# binary_path ARCH [GIVEN]: GIVEN, else the musl release build for ARCH in the target dir
binary_path() {
  if [ -n "${2:-}" ]; then
    echo "$2"
  else
    echo "${CARGO_TARGET_DIR:-$repo/target}/$(triple_of "$1")/release/dockhand"
  fi
}

# A static executable has no program interpreter (PT_INTERP): it runs FROM scratch. It must be
# one for the platform ARCH being built.
assert_static() {
  local binary=$1 platform=$2 description triple
  triple=$(triple_of "$platform")
  description=$(file -b "$binary")
  case "$description" in
    *ELF*"dynamically linked"*) die "\`$binary\` is dynamically linked: build it with --target $triple" ;;
    *ELF*", $(machine_of "$platform"),"*) ;;
    *ELF*) die "\`$binary\` is not an $platform executable ($description): build it with --target $triple" ;;
    *) die "\`$binary\` is not an ELF executable ($description)" ;;
  esac
}

# stage_binary DIR ARCH BINARY: the static binary for ARCH, where the Dockerfile takes it from
# for the platform it builds (binaries/TARGETARCH/dockhand).
stage_binary() {
  local dir=$1 platform=$2 binary=$3
  [ -x "$binary" ] || die "no dockhand binary for $platform at \`$binary\` (build it, or run \`$0 build --build\`)"
  assert_static "$binary" "$platform"
  install -D -m 0755 "$binary" "$dir/binaries/$platform/dockhand"
}

# stage DIR: the image's files for $DOCKHAND_ARCH, laid out as the Dockerfile's `staged` stage
# copies them.
stage() {
  stage_binary "$1" "$arch" "$(binary_path "$arch" "${DOCKHAND_BINARY:-}")"
  stage_shared "$1"
}

# context DIR: the build context of both platforms' images (the release's).
context() {
  stage_binary "$1" amd64 "$(binary_path amd64 "${DOCKHAND_BINARY_AMD64:-}")"
  stage_binary "$1" arm64 "$(binary_path arm64 "${DOCKHAND_BINARY_ARM64:-}")"
  stage_shared "$1"
}

# stage_shared DIR: the files every platform's image holds besides the binary.
stage_shared() {
  local dir=$1 ca
  ca=${DOCKHAND_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  [ -s "$ca" ] || die "no CA bundle at \`$ca\` (install ca-certificates, or set DOCKHAND_CA_BUNDLE)"
  install -D -m 0644 "$ca" "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\ndockhand:x:%s:%s:dockhand:/home/dockhand:/sbin/nologin\n' \
    "$user_id" "$user_id" > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\ndockhand:x:%s:\n' "$user_id" > "$dir/rootfs/etc/group"
  chmod 0644 "$dir/rootfs/etc/passwd" "$dir/rootfs/etc/group"
  install -d -m 1777 "$dir/rootfs/tmp"
  # /home comes with the root filesystem (root's); the user's home is copied with --chown
  install -d -m 0755 "$dir/rootfs/home" "$dir/home/dockhand"
}

# build TAG [--manifest LIST]: the minimal image for $DOCKHAND_ARCH
build() {
  local tag=${1:-localhost/dockhand:dev} context version revision
  shift || true
  if [ "${build_first:-false}" = true ] && [ ! -x "$(binary_path "$arch" "${DOCKHAND_BINARY:-}")" ]; then
    echo "image.sh: building the static binary" >&2
    (cd "$repo" && nice -n 10 cargo build --release --target "$target_triple")
  fi
  context=$(mktemp -d)
  temp_dirs+=("$context")
  stage "$context"
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
  revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)
  # the staged context holds only rootfs/ and home/; the Dockerfile stays in the repository
  buildah_cmd bud --quiet --isolation chroot --layers=false \
    --file "$repo/Dockerfile" --target release \
    --build-arg ROOTFS=staged \
    --build-arg "DOCKHAND_VERSION=$version" \
    --build-arg "DOCKHAND_REVISION=$revision" \
    --build-arg "DOCKHAND_SOURCE=${DOCKHAND_SOURCE:-}" \
    --platform "linux/$arch" \
    --tag "$tag" "$@" "$context"
}

# index TAG: a manifest list TAG holding the minimal image for each platform, built from that
# platform's binary in one build of the two-platform context
index() {
  local tag=${1:?usage: image.sh index TAG} dir version revision
  dir=$(mktemp -d)
  temp_dirs+=("$dir")
  context "$dir"
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
  revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)
  buildah_cmd manifest rm "$tag" >/dev/null 2>&1 || true
  buildah_cmd bud --quiet --isolation chroot --layers=false \
    --file "$repo/Dockerfile" --target release \
    --build-arg ROOTFS=staged \
    --build-arg "DOCKHAND_VERSION=$version" \
    --build-arg "DOCKHAND_REVISION=$revision" \
    --build-arg "DOCKHAND_SOURCE=${DOCKHAND_SOURCE:-}" \
    --platform linux/amd64,linux/arm64 \
    --manifest "$tag" "$dir" >/dev/null
  buildah_cmd manifest inspect "$tag"
}

check() {
  local tag=${1:?usage: image.sh check TAG} config user size container mount help
  config=$(buildah_cmd inspect --type image "$tag" | jq '.OCIv1.config')
  user=$(jq -r '.User // ""' <<<"$config")
  case "${user%%:*}" in
    "" | 0 | root) die "the image runs as \`${user:-root}\`, not a non-root user" ;;
  esac
  container=$(buildah_cmd from --quiet "$tag")
  containers+=("$container")
  mount=$(buildah_cmd mount "$container")
  size=$(du -sb "$mount" | cut -f1)
  buildah_cmd umount "$container" >/dev/null
  [ "$size" -le "$max_bytes" ] || die "the image holds $size bytes, more than $max_bytes"
  help=$(buildah_cmd run --isolation chroot "$container" -- dockhand --help)
  grep -q '^Usage: dockhand' <<<"$help" || die "\`dockhand --help\` printed no usage line in the image"
  jq -n --arg tag "$tag" --arg user "$user" --argjson size "$size" \
    --argjson entrypoint "$(jq '.Entrypoint' <<<"$config")" \
    '{image: $tag, user: $user, size_bytes: $size, entrypoint: $entrypoint}'
}

build_first=false
args=()
for arg in "$@"; do
  case "$arg" in
    --build) build_first=true ;;
    *) args+=("$arg") ;;
  esac
done
set -- "${args[@]}"
case "${1:-}" in
  stage) [ -n "${2:-}" ] || die "usage: image.sh stage DIR"; stage "$2" ;;
  context) [ -n "${2:-}" ] || die "usage: image.sh context DIR"; context "$2" ;;
  build) shift; build "$@" ;;
  index) index "${2:-}" ;;
  check) check "${2:-}" ;;
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
