#!/usr/bin/env bash
# The image test. Builds the static release binaries for x86_64 and arm64 (unless
# $DOCKHAND_BINARY and $DOCKHAND_BINARY_ARM64 name them), checks that the arm64 one is a static
# aarch64 executable that runs under qemu-aarch64-static, builds the minimal image from the
# x86_64 one with buildah exactly as scripts/image.sh does for users (the
# Dockerfile's `release` target, ROOTFS=staged: no base image, nothing pulled), then checks the
# image: at most 10 MB, a non-root user, the files it ships, and dockhand running inside it as
# that user (--help, --version, and `ci-env`, which reads the environment and writes the job's
# docker config under /tmp). Then builds the minimal image for both platforms as one manifest
# list (scripts/image.sh index), pushes it to a docker-registry on 127.0.0.1 and reads each
# platform back with skopeo --override-arch: its config names the architecture and its binary is
# the one built for it, and runs (arm64 under qemu). buildah keeps its storage in a temp dir
# (vfs), removed at the end, with the registry.
#
# The Dockerfile's `compile` and `builder` stages need base images from Docker Hub, which these
# machines cannot pull: hadolint checks them (tests/it/packaging.rs). With --builder, this script
# also builds the `builder` target on a stand-in for debian:bookworm-slim made with debootstrap
# from Debian's package mirror (slow, needs that mirror and `apt-get install debootstrap`) and
# checks what it holds; building images inside it needs a real container runtime, not tested.
# Then it builds both images for both platforms as the release does (dockhand build and publish
# with .github/dockhand.yaml on the tag build v1.2.3, arm64 Debian stand-in debootstrapped too),
# running arm64 programs under qemu-aarch64-static registered in a binfmt_misc instance of a
# private user namespace (needs root and Linux 6.7 or later; the machine's own binfmt_misc is
# never touched), and reads every image's platforms back from the registry with skopeo.
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
if [ -z "${DOCKHAND_BINARY_ARM64:-}" ]; then
  echo "test-packaging: building the static arm64 release binary" >&2
  nice -n 10 cargo build --quiet --locked --release --target aarch64-unknown-linux-musl
  DOCKHAND_BINARY_ARM64="${CARGO_TARGET_DIR:-$repo/target}/aarch64-unknown-linux-musl/release/dockhand"
fi
export DOCKHAND_BINARY_AMD64=$DOCKHAND_BINARY DOCKHAND_BINARY_ARM64

work=$(mktemp -d)
export DOCKHAND_BUILDAH_ROOT=$work/buildah
b() { buildah --root "$DOCKHAND_BUILDAH_ROOT/root" --runroot "$DOCKHAND_BUILDAH_ROOT/run" --storage-driver vfs "$@"; }
container=""
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; then wait "$registry_pid" 2>/dev/null || true; fi
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

# --- the arm64 binary: static, aarch64, and it runs (under qemu-user on this x86_64 machine) ---
arm64_file=$(file -b "$DOCKHAND_BINARY_ARM64")
echo "arm64 binary: $arm64_file"
echo "arm64 binary size: $(stat -c %s "$DOCKHAND_BINARY_ARM64") bytes"
check "the arm64 binary is an aarch64 ELF executable" grep -q '^ELF 64-bit LSB .*, ARM aarch64,' <<<"$arm64_file"
# what `file` says of a static executable: no program interpreter to load
is_static() { grep -Eq 'statically linked|static-pie linked' <<<"$1" && ! grep -q interpreter <<<"$1"; }
check "the arm64 binary is static (no program interpreter)" is_static "$arm64_file"
arm64() { qemu-aarch64-static "$DOCKHAND_BINARY_ARM64" "$@"; }
check "the arm64 binary prints its usage under qemu" grep -q '^Usage: dockhand' <<<"$(arm64 --help)"
check "the arm64 binary's --version is the x86_64 one's" \
  test "$(arm64 --version)" = "$("$DOCKHAND_BINARY" --version)"
arm64_job=$work/arm64-job
mkdir -p "$arm64_job"
arm64_exports=$(cd "$arm64_job" && TMPDIR=$arm64_job DOCKHAND_REPO=registry.example.com/acme/app \
  arm64 ci-env generic --no-login 2>"$work/arm64-ci-env.log") || cat "$work/arm64-ci-env.log" >&2
arm64_config=$(sed -n "s/^export DOCKER_CONFIG='\(.*\)'$/\1/p" <<<"$arm64_exports")
check "ci-env generic under qemu writes a private job config" \
  test "$(stat -c %a "$arm64_config/config.json" 2>/dev/null || true)" = 600 -a "$(stat -c %a "$arm64_config" 2>/dev/null || true)" = 700
check "ci-env generic under qemu exports the repo" \
  grep -qx "export DOCKHAND_REPO='registry.example.com/acme/app'" <<<"$arm64_exports"
detected=$(arm64 registry detect ghcr.io/acme/app)
check "registry detect under qemu names GitHub for ghcr.io" \
  test "$(sed -n 's/^implementation: *//p' <<<"$detected")" = github
check "registry detect under qemu gives the x86_64 binary's answer" \
  test "$detected" = "$("$DOCKHAND_BINARY" registry detect ghcr.io/acme/app)"

# --- the minimal image, amd64 -----------------------------------------------------------
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

# --- the minimal image for amd64 and arm64 as one index, through a registry ----------------
index=localhost/dockhand:index
build_index() { scripts/image.sh index "$index" > "$work/index.json"; }
check "the two-platform index builds from files only" build_index
# staging refuses a binary of the other architecture
wrong_arch() {
  ! DOCKHAND_ARCH=arm64 scripts/image.sh stage "$work/wrong-arch" 2>"$work/wrong-arch.log" \
    && grep -q 'is not an arm64 executable' "$work/wrong-arch.log"
}
check "image.sh refuses the x86_64 binary for the arm64 image" wrong_arch
registry_dir=$work/registry
mkdir -p "$registry_dir/storage"
printf 'version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-not-secret\n' \
  "$registry_dir/storage" > "$registry_dir/config.yml"
: > "$registry_dir/log"
docker-registry serve "$registry_dir/config.yml" >> "$registry_dir/log" 2>&1 < /dev/null &
registry_pid=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p;T;q' "$registry_dir/log")
  [ -z "$port" ] || break
  kill -0 "$registry_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$port" ] || { cat "$registry_dir/log" >&2; echo "test-packaging: docker-registry did not start" >&2; exit 1; }
remote=127.0.0.1:$port/acme/dockhand:multi
check "buildah pushes the index with both images" \
  b manifest push --quiet --all --tls-verify=false "$index" "docker://$remote"
raw=$(skopeo inspect --raw --tls-verify=false "docker://$remote")
check "the registry serves an OCI image index" \
  test "$(jq -r '.mediaType' <<<"$raw")" = application/vnd.oci.image.index.v1+json
check "the index lists linux/amd64 and linux/arm64" \
  test "$(jq -c '[.manifests[].platform | .os + "/" + .architecture] | sort' <<<"$raw")" = '["linux/amd64","linux/arm64"]'
for platform in amd64 arm64; do
  if [ "$platform" = amd64 ]; then
    built=$DOCKHAND_BINARY machine=x86-64 runner=()
  else
    built=$DOCKHAND_BINARY_ARM64 machine="ARM aarch64" runner=(qemu-aarch64-static)
  fi
  pulled=$work/pulled-$platform
  skopeo --override-os linux --override-arch "$platform" copy --quiet --src-tls-verify=false \
    "docker://$remote" "dir:$pulled"
  check "$platform: the config says linux/$platform" \
    test "$(jq -r '.os + "/" + .architecture' "$pulled/$(jq -r '.config.digest | sub("^sha256:"; "")' "$pulled/manifest.json")")" = "linux/$platform"
  rootfs=$pulled/rootfs
  mkdir "$rootfs"
  for layer in $(jq -r '.layers[].digest | sub("^sha256:"; "")' "$pulled/manifest.json"); do
    tar -xf "$pulled/$layer" -C "$rootfs"
  done
  check "$platform: the image's binary is the one built for it" \
    test "$(sha256sum < "$rootfs/usr/local/bin/dockhand")" = "$(sha256sum < "$built")"
  described=$(file -b "$rootfs/usr/local/bin/dockhand")
  check "$platform: file says it is a $machine executable" grep -q "^ELF 64-bit LSB .*, $machine," <<<"$described"
  check "$platform: file says it is static" is_static "$described"
  check "$platform: the image's binary runs" \
    grep -q '^Usage: dockhand' <<<"$("${runner[@]}" "$rootfs/usr/local/bin/dockhand" --help)"
  check "$platform: the image holds the CA bundle and the user" \
    test -s "$rootfs/etc/ssl/certs/ca-certificates.crt" -a "$(grep -c '^dockhand:x:65532:65532:' "$rootfs/etc/passwd")" = 1
done

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

  # --- both images for both platforms, as the release builds them: dockhand with
  # .github/dockhand.yaml, pushed to the registry, each platform read back with skopeo --------
  # The builder's arm64 RUN step needs arm64 programs to run: inside a user and mount namespace
  # of its own (ids 0-65535 mapped to themselves) with a binfmt_misc instance of its own (Linux
  # 6.7 and later) where qemu-aarch64-static is registered; the machine's registrations are
  # not touched. The arm64 Debian stand-in is debootstrapped the same way (--foreign, then the
  # second stage under qemu).
  echo "test-packaging: debootstrap an arm64 stand-in for debian:bookworm-slim" >&2
  nice debootstrap --variant=minbase --arch=arm64 --foreign bookworm "$work/debian-arm64" \
    http://deb.debian.org/debian > "$work/debootstrap-arm64.log"
  # the qemu-aarch64 entry of Debian's qemu-user-static, with flag F (the interpreter is opened
  # now, so it also runs inside chroots)
  # shellcheck disable=SC2016 # the register syntax's own escapes
  qemu_entry=':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F'
  # emulated COMMAND...: runs COMMAND in such a namespace
  emulated() {
    local sync child pid
    sync=$(mktemp -d "$work/userns.XXXXXX")
    # shellcheck disable=SC2016 # expanded by the namespace's shell
    unshare --user --mount --fork bash -c '
      echo $$ > "$0/pid"
      while [ ! -e "$0/mapped" ]; do sleep 0.1; done
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
      printf "%s\n" "$1" > /proc/sys/fs/binfmt_misc/register
      shift
      exec "$@"' "$sync" "$qemu_entry" "$@" &
    child=$!
    while [ ! -s "$sync/pid" ] && kill -0 "$child" 2>/dev/null; do sleep 0.1; done
    pid=$(cat "$sync/pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      echo "0 0 65536" > "/proc/$pid/uid_map"
      echo "0 0 65536" > "/proc/$pid/gid_map"
      touch "$sync/mapped"
    fi
    wait "$child"
  }
  emulated env container=lxc chroot "$work/debian-arm64" /debootstrap/debootstrap --second-stage \
    > "$work/debootstrap-arm64-second.log" 2>&1 || { tail "$work/debootstrap-arm64-second.log" >&2; exit 1; }
  multi=$work/multi
  mkdir -p "$multi/.github"
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/storage/root"\nrunroot = "%s/storage/run"\n' \
    "$multi" "$multi" > "$multi/storage.conf"
  cp Dockerfile "$multi/"
  cp .github/dockhand.yaml "$multi/.github/"
  scripts/image.sh context "$multi/dist/image"
  release_repo=127.0.0.1:$port/release
  # the Debian stand-ins as one local index docker.io/library/debian:bookworm-slim, then the
  # tag build of v1.2.3 as the release job runs it (dockhand build, then publish), then what
  # each platform's builder image runs
  # shellcheck disable=SC2016 # expanded by the namespace's shell
  emulated env -i PATH="$PATH" HOME="$multi" CONTAINERS_STORAGE_CONF="$multi/storage.conf" \
    BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs MULTI="$multi" WORK="$work" DOCKHAND="$DOCKHAND_BINARY" \
    GITHUB_ACTIONS=true GITHUB_REPOSITORY=acme/dockhand GITHUB_REF=refs/tags/v1.2.3 \
    GITHUB_REF_NAME=v1.2.3 GITHUB_REF_TYPE=tag GITHUB_SHA="$(git rev-parse HEAD)" \
    DOCKHAND_REPO="$release_repo" DOCKHAND_INSECURE_REGISTRIES="127.0.0.1:$port" bash -euo pipefail -c '
      ids=()
      for arch in amd64 arm64; do
        if [ "$arch" = amd64 ]; then tree=$WORK/debian; else tree=$WORK/debian-arm64; fi
        container=$(buildah from --arch "$arch" --os linux scratch)
        buildah copy "$container" "$tree" / > /dev/null
        buildah config --arch "$arch" --os linux \
          --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
        ids+=("$(buildah commit --quiet "$container" "localhost/stand-in/debian:$arch")")
        buildah rm "$container" > /dev/null
      done
      buildah manifest create docker.io/library/debian:bookworm-slim > /dev/null
      for id in "${ids[@]}"; do
        buildah manifest add docker.io/library/debian:bookworm-slim "containers-storage:$id" > /dev/null
      done
      cd "$MULTI"
      "$DOCKHAND" build --config .github/dockhand.yaml > "$MULTI/built" 2> "$MULTI/build.log" \
        || { tail -30 "$MULTI/build.log" >&2; exit 1; }
      "$DOCKHAND" publish --config .github/dockhand.yaml --output json > "$MULTI/publish.json" \
        2> "$MULTI/publish.log" || { cat "$MULTI/publish.log" >&2; exit 1; }
      # `build` prints each image and its local name
      list=$(awk -F "\t" "\$1 == \"dockhand-builder\" { print \$2 }" "$MULTI/built")
      for arch in amd64 arm64; do
        container=$(buildah from --quiet --arch "$arch" --os linux "$list")
        buildah run --isolation chroot "$container" -- sh -c "uname -m; dockhand --version; buildah --version" \
          < /dev/null > "$MULTI/runs-$arch" 2> /dev/null
        buildah rm "$container" > /dev/null
      done
    ' || echo "test-packaging: the two-platform release build failed" >&2
  check "dockhand pushed both images under the release tags" \
    test "$(jq -c "[.pushed[].reference] | sort" "$multi/publish.json" 2>/dev/null)" \
    = "$(jq -nc --arg r "$release_repo" '[("dockhand", "dockhand-builder") as $i | ("1", "1.2", "1.2.3", "latest") | "\($r)/\($i):\(.)"] | sort')"
  for image in dockhand dockhand-builder; do
    raw=$(skopeo inspect --raw --tls-verify=false "docker://$release_repo/$image:1.2.3" 2>/dev/null || true)
    check "$image: the release tag names an index of linux/amd64 and linux/arm64" \
      test "$(jq -c '[.manifests[].platform | .os + "/" + .architecture] | sort' <<<"$raw" 2>/dev/null)" = '["linux/amd64","linux/arm64"]'
    for platform in amd64 arm64; do
      if [ "$platform" = amd64 ]; then
        built=$DOCKHAND_BINARY machine=x86-64 runner=()
      else
        built=$DOCKHAND_BINARY_ARM64 machine="ARM aarch64" runner=(qemu-aarch64-static)
      fi
      pulled=$multi/pulled-$image-$platform
      skopeo --override-os linux --override-arch "$platform" copy --quiet --src-tls-verify=false \
        "docker://$release_repo/$image:1.2.3" "dir:$pulled" || true
      rootfs=$pulled/rootfs
      mkdir -p "$rootfs"
      for layer in $(jq -r '.layers[].digest | sub("^sha256:"; "")' "$pulled/manifest.json" 2>/dev/null); do
        tar -xf "$pulled/$layer" -C "$rootfs" 2>/dev/null || true
      done
      check "$image $platform: the binary is the one built for it" \
        test "$(sha256sum < "$rootfs/usr/local/bin/dockhand" 2>/dev/null)" = "$(sha256sum < "$built")"
      check "$image $platform: it runs" \
        grep -q '^Usage: dockhand' <<<"$("${runner[@]}" "$rootfs/usr/local/bin/dockhand" --help 2>/dev/null)"
      if [ "$image" = dockhand-builder ]; then
        check "$image $platform: its buildah is a $machine executable" \
          grep -q "^ELF 64-bit LSB .*, $machine," <<<"$(file -b "$rootfs/usr/bin/buildah" 2>/dev/null)"
        check "$image $platform: dockhand and buildah run in it, on $platform" \
          test "$(sed -n 1p "$multi/runs-$platform" 2>/dev/null) $(sed -n 2p "$multi/runs-$platform" 2>/dev/null)" \
          = "$([ "$platform" = amd64 ] && echo x86_64 || echo aarch64) $("$DOCKHAND_BINARY" --version)" \
          -a -n "$(sed -n '3s/^buildah version //p' "$multi/runs-$platform" 2>/dev/null)"
      fi
    done
  done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
