#!/usr/bin/env bash
# Installs what dockhand's build, tests and demo need on a fresh Debian 12 machine (as root, or
# with sudo available). Idempotent: a second run only checks.
set -euo pipefail

apt_packages=(
  musl-tools        # musl-gcc: ring's C parts for the static musl build
  docker-registry   # the CNCF distribution registry the tests and the demo run on 127.0.0.1
  skopeo            # a peer client that reads back what dockhand pushed
  buildah           # the default, daemonless builder
  apache2-utils     # htpasswd for the registry's basic-auth variant
  busybox-static    # a tiny base for builds with RUN steps
  hyperfine         # benchmarks (scripts/bench.sh)
  jq file           # bench.sh reads hyperfine's JSON and checks the binary is static
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
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
