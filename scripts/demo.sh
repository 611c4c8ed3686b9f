#!/usr/bin/env bash
# The main job on the embedded default registry, from a clean clone on Debian 12:
# installs what is needed, builds the static binary, starts the CNCF distribution registry on
# 127.0.0.1 (basic auth, deletes enabled), then runs dockhand the way a CI job would.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh

if [ -n "${DOCKHAND_BIN:-}" ]; then
  dockhand=$DOCKHAND_BIN   # a binary you built already
else
  echo "== building the static musl binary" >&2
  cargo build --release --target x86_64-unknown-linux-musl
  dockhand=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/release/dockhand
fi
file "$dockhand" 2>/dev/null || true

work=$(mktemp -d)
# shellcheck source=scripts/lib/registry.sh
. "$root/scripts/lib/registry.sh"
finish() {
  stop_registry
  rm -rf "$work"
}
trap finish EXIT

echo "== starting docker-registry on 127.0.0.1 (basic auth, deletes enabled)" >&2
start_registry "$work/registry" off demo demo-password
registry=$REGISTRY_HOST
echo "registry: $registry" >&2

# buildah keeps its images in the demo's own storage, daemonless and rootless-friendly
cat > "$work/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$work/storage/root"
runroot = "$work/storage/run"
CONF
export CONTAINERS_STORAGE_CONF=$work/storage.conf BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs TMPDIR=$work

echo "== dockhand ci-env generic: the job's own docker config" >&2
export HOME=$work/home DOCKHAND_INSECURE_REGISTRIES=$registry
export DOCKHAND_REGISTRY=$registry DOCKHAND_REGISTRY_USERNAME=demo DOCKHAND_REGISTRY_PASSWORD=demo-password
export DOCKHAND_REPO=$registry/acme/demo
export DOCKHAND_SHA=0000000000000000000000000000000000000001   # the demo's "commits"
export DOCKHAND_REF_NAME=main DOCKHAND_REF_TYPE=branch
exports=$("$dockhand" ci-env generic)
eval "$exports"
echo "DOCKER_CONFIG=$DOCKER_CONFIG" >&2
ls -ld "$DOCKER_CONFIG" "$DOCKER_CONFIG/config.json" >&2

echo "== dockhand registry detect" >&2
"$dockhand" registry detect

echo "== dockhand images (examples/two-images)" >&2
cd "$root/examples/two-images"
"$dockhand" images

echo "== dockhand run on three commits: build → publish → cleanup (keep_last: 3)" >&2
for commit in 1 2 3; do
  DOCKHAND_SHA=$(printf '%040d' "$commit") "$dockhand" run
done

echo "== a fourth commit: run with --dry-run shows the plan without deleting" >&2
export DOCKHAND_SHA
DOCKHAND_SHA=$(printf '%040d' 4)
"$dockhand" run --dry-run

echo "== dockhand cleanup applies it" >&2
"$dockhand" cleanup

echo "== what skopeo (a peer client, using only the job's DOCKER_CONFIG) sees" >&2
for image in api web; do
  skopeo list-tags --tls-verify=false "docker://$registry/acme/demo/$image"
done
