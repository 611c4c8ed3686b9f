#!/usr/bin/env bash
# The action's first step: installs the dockhand release binary and puts it on PATH.
#
# The binary's SHA-256 is checked against action/checksums.txt, which is committed in the
# action's repository at the ref the workflow pinned (`uses: …/dockhand@v1`), never against a
# checksum downloaded beside the binary: a replaced release asset fails the job.
#
# The asset is the one for the runner's architecture: RUNNER_ARCH `X64` or `ARM64` (set by the
# runner), else `uname -m` (`x86_64` or `aarch64`) on runners that do not set it.
#
# Inputs (env): DOCKHAND_ACTION_VERSION (default: action/VERSION), DOCKHAND_ACTION_DOWNLOAD_URL
# (base URL of the release assets, default: the action repository's GitHub releases; file://
# works for mirrors and tests), DOCKHAND_ACTION_PASSWORD and DOCKHAND_ACTION_TOKEN (masked here,
# before anything else runs). Outputs: `path`, `version`.
set -euo pipefail
action_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=action/lib.sh
. "$action_dir/lib.sh"

# secrets first: nothing the action prints later can show them
mask "${DOCKHAND_ACTION_PASSWORD:-}"
mask "${DOCKHAND_ACTION_TOKEN:-}"

version=${DOCKHAND_ACTION_VERSION:-$(tr -d ' \n' < "$action_dir/VERSION")}
version=${version#v}
case "$version" in
  "" | *[!0-9A-Za-z.+-]*) fail "\`version\` must look like 1.2.3, not \`$version\`" ;;
esac

# the runner's RUNNER_ARCH (X64, ARM64, ...) when set, else the kernel's machine name
[ "$(uname -s)" = Linux ] || fail "dockhand ships for Linux only; this runner is $(uname -s)"
arch=${RUNNER_ARCH:-$(uname -m)}
case "$arch" in
  X64 | x86_64 | amd64) target=x86_64-unknown-linux-musl ;;
  ARM64 | aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
  *) fail "dockhand ships for Linux x86_64 (X64) and arm64 (ARM64) only; this runner is \`$arch\`" ;;
esac
asset="dockhand-$version-$target"

expected=$(awk -v asset="$asset" '$1 !~ /^#/ && $2 == asset { print $1 }' "$action_dir/checksums.txt")
[ -n "$expected" ] || fail "no checksum for \`$asset\` in action/checksums.txt at this action ref: \
pin a released version of the action (e.g. @v1) or set \`version\` to one it lists"

base=${DOCKHAND_ACTION_DOWNLOAD_URL:-}
if [ -z "$base" ]; then
  # the runner unpacks an action under …/_actions/OWNER/REPO/REF; GITHUB_ACTION_REPOSITORY is
  # empty inside composite actions (actions/runner#2473), so the path names the repository
  repository=${GITHUB_ACTION_REPOSITORY:-}
  if [ -z "$repository" ]; then
    case "$action_dir" in
      */_actions/*/*/*/action)
        rest=${action_dir##*/_actions/}          # OWNER/REPO/REF/action
        repository="${rest%%/*}/$(cut -d/ -f2 <<<"$rest")"
        ;;
    esac
  fi
  [ -n "$repository" ] || fail "cannot tell which repository this action comes from: set \`download-url\`"
  base="${GITHUB_SERVER_URL:-https://github.com}/$repository/releases/download"
fi
url="${base%/}/v$version/$asset"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# the tool cache survives between jobs on self-hosted runners; the checksum is checked on every use
install_dir="${RUNNER_TOOL_CACHE:-$RUNNER_TEMP}/dockhand/$version/$target"
binary="$install_dir/dockhand"
if [ -x "$binary" ] && [ "$(sha256_of "$binary")" = "$expected" ]; then
  echo "dockhand $version: using the verified copy in $install_dir"
else
  mkdir -p "$install_dir"
  download=$(mktemp "$install_dir/.download.XXXXXX")
  trap 'rm -f "$download"' EXIT
  echo "::group::Installing dockhand $version"
  echo "from $url"
  curl --fail --silent --show-error --location --retry 3 --output "$download" "$url" \
    || fail "cannot download \`$url\`"
  actual=$(sha256_of "$download")
  [ "$actual" = "$expected" ] || fail "checksum mismatch for \`$asset\`: expected $expected, got $actual"
  chmod 0755 "$download"
  mv -f "$download" "$binary"
  echo "::endgroup::"
fi

echo "$install_dir" >> "$GITHUB_PATH"
set_output path "$binary"
set_output version "$version"
"$binary" --version
