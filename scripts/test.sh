#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test (unit tests and the
# integration tests that drive the real registry, buildah and skopeo on 127.0.0.1), then
# builds the release twice (reproducibility) and checks the container images.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# the library's unit tests, then the integration tests (one binary, tests/it)
cargo test --lib --test it "$@"
# the release: both binaries built twice (here and from a copy elsewhere), compared byte for byte
scripts/test-release.sh
# the images, from those binaries: buildah builds of the minimal and the builder image, checks inside
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
amd64="$PWD/dist/dockhand-$version-x86_64-unknown-linux-musl"
arm64="$PWD/dist/dockhand-$version-aarch64-unknown-linux-musl"
DOCKHAND_BINARY="$amd64" DOCKHAND_BINARY_ARM64="$arm64" scripts/test-packaging.sh --builder
# the release workflow's images job (dockhand publishing its own images), which needs those
# binaries and so is left out of the first run (`#[ignore]`)
DOCKHAND_BINARY_AMD64="$amd64" DOCKHAND_BINARY_ARM64="$arm64" \
  cargo test --test it -- --ignored packaging::release_workflow::
