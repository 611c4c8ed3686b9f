# dockhand container images.
#
# Targets (pick one with `--target`; the default is the last stage, `release`):
#   release   the minimal image: FROM scratch, the static musl binary, a CA bundle, /etc/passwd
#             and /etc/group with the non-root user `dockhand` (65532). No shell: run it as
#             `docker run IMAGE publish ...` or copy the binary out with `COPY --from=IMAGE`.
#   builder   Debian with buildah configured for rootless, daemonless builds (vfs storage, chroot
#             isolation), plus sh, git and jq: for runners that build images inside the job's
#             container (GitLab's docker and kubernetes executors).
#
# Where the root filesystem comes from is chosen with the build argument ROOTFS:
#   ROOTFS=compile (default)  compiles dockhand from this build context (real CI; needs the
#                             rust and debian base images)
#   ROOTFS=staged             takes prebuilt static binaries, CA bundle and passwd files that
#                             scripts/image.sh staged into the build context; needs no base
#                             image at all, so `release` builds on machines that cannot pull
# Either way the `rootfs` stage holds /rootfs and /home (the files every platform shares) and
# /binaries/ARCH/dockhand; the image for a platform takes the binary of its TARGETARCH (amd64,
# arm64), so one `--platform linux/amd64,linux/arm64` build of a staged context holding both
# binaries (`scripts/image.sh context DIR`) gives the two-platform index.
#
#   docker build -t dockhand .                                        # compile + release
#   docker build --target builder -t dockhand:builder .               # compile + builder
#   docker buildx build --platform linux/amd64,linux/arm64 -t dockhand .  # both platforms, one index
#   scripts/image.sh index localhost/dockhand:dev                     # the same from prebuilt binaries
#   dockhand run --config .github/dockhand.yaml                       # both images, both platforms
#                                                                     # (the release, docs/releasing.md)
#   scripts/image.sh                                                  # prebuilt binary + release

ARG ROOTFS=compile
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- compile: the static musl binary and the files the minimal image needs -----------------
# Runs on the build machine's platform and cross-compiles for the platform being built
# (TARGETARCH amd64 or arm64), so `--platform linux/arm64` needs no emulation here.
FROM --platform=$BUILDPLATFORM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS compile
# musl-gcc builds ring's C parts for x86_64, gcc-aarch64-linux-gnu (with its libc headers) links
# the arm64 build and compiles ring for it (.cargo/config.toml); `file` lets scripts/image.sh
# check that the result is static. Debian's stable versions are what the project tests with.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross file \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
WORKDIR /src
COPY . .
# .git is not in the build context: pass the revision `dockhand --version` prints
ARG DOCKHAND_GIT_REVISION=""
ENV DOCKHAND_GIT_REVISION=${DOCKHAND_GIT_REVISION}
# the image's files are laid out by the same script that stages them for ROOTFS=staged
ARG TARGETARCH=amd64
RUN case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-musl ;; \
      arm64) triple=aarch64-unknown-linux-musl ;; \
      *) echo "dockhand builds for amd64 and arm64, not $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && cargo build --release --locked --target "$triple" \
 && DOCKHAND_ARCH="$TARGETARCH" DOCKHAND_BINARY="target/$triple/release/dockhand" scripts/image.sh stage /

# --- staged: the same files, staged into the build context by scripts/image.sh -------------
FROM scratch AS staged
COPY rootfs/ /rootfs/
COPY home/ /home/
COPY binaries/ /binaries/

# --- rootfs: the stage ROOTFS names -----------------------------------------------------
FROM ${ROOTFS} AS rootfs

# --- builder: dockhand plus buildah, for builds inside the job's container -----------------
# Its RUN step executes on the target platform: an arm64 builder image needs emulation
# (qemu-user registered with binfmt_misc) on an x86_64 build machine, which the release
# workflow sets up (docs/releasing.md). The minimal image needs none.
FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS builder
# Debian's stable buildah, as tested here; pinning versions would break on each point release.
# `FROM debian:12` resolves on Docker Hub, as with docker (registries.conf.d/dockhand.conf).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends buildah uidmap ca-certificates git jq \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 dockhand \
 && useradd --uid 65532 --gid 65532 --create-home --shell /bin/sh dockhand \
 && echo 'dockhand:100000:65536' > /etc/subuid \
 && echo 'dockhand:100000:65536' > /etc/subgid \
 && mkdir -p /home/dockhand/.config/containers /etc/containers/registries.conf.d \
 && printf '[storage]\ndriver = "vfs"\n' > /home/dockhand/.config/containers/storage.conf \
 && printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' > /etc/containers/storage.conf \
 && printf 'unqualified-search-registries = ["docker.io"]\n' > /etc/containers/registries.conf.d/dockhand.conf \
 && chown -R dockhand:dockhand /home/dockhand/.config
ARG TARGETARCH
COPY --from=rootfs /binaries/${TARGETARCH}/dockhand /usr/local/bin/dockhand
# chroot isolation needs no runtime daemon and no extra privileges beyond user namespaces;
# where those are blocked (Docker's default seccomp profile), run the container as root
ENV BUILDAH_ISOLATION=chroot \
    STORAGE_DRIVER=vfs
USER 65532:65532
WORKDIR /home/dockhand
ARG DOCKHAND_VERSION=""
ARG DOCKHAND_REVISION=""
ARG DOCKHAND_SOURCE=""
LABEL org.opencontainers.image.title="dockhand (builder)" \
      org.opencontainers.image.description="dockhand with buildah for rootless, daemonless image builds in CI" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${DOCKHAND_VERSION}" \
      org.opencontainers.image.revision="${DOCKHAND_REVISION}" \
      org.opencontainers.image.source="${DOCKHAND_SOURCE}"
# no ENTRYPOINT: CI runners start a shell in this image and run the job's script
CMD ["dockhand", "--help"]

# --- release: the minimal image (default target) -------------------------------------------
FROM scratch AS release
ARG TARGETARCH
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs /binaries/${TARGETARCH}/dockhand /usr/local/bin/dockhand
COPY --from=rootfs --chown=65532:65532 /home/dockhand/ /home/dockhand/
ENV PATH=/usr/local/bin \
    HOME=/home/dockhand \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/dockhand
ARG DOCKHAND_VERSION=""
ARG DOCKHAND_REVISION=""
ARG DOCKHAND_SOURCE=""
LABEL org.opencontainers.image.title="dockhand" \
      org.opencontainers.image.description="Ship container images from CI: isolated per-job docker config, registry detection, build, publish and safe cleanup" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${DOCKHAND_VERSION}" \
      org.opencontainers.image.revision="${DOCKHAND_REVISION}" \
      org.opencontainers.image.source="${DOCKHAND_SOURCE}"
ENTRYPOINT ["/usr/local/bin/dockhand"]
CMD ["--help"]
