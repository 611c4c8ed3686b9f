#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test (unit tests and the
# integration tests that drive the real registry, buildah and skopeo on 127.0.0.1), then
# builds and checks the container images.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# the library's unit tests, then the integration tests (one binary, tests/it)
cargo test --lib --test it "$@"
# the images: release build, buildah builds of the minimal and the builder image, checks inside
scripts/test-packaging.sh --builder
