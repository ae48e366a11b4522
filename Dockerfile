# syntax=docker/dockerfile:1
# The kubetape-gateway image: `docker build -t kubetape-gateway:0.1.0 .` at the repository root.
# deploy/ runs it as a Deployment (docs/operations.md).

# The toolchain of rust-toolchain.toml (scripts/lib/deploy_check.sh fails if they differ). The
# file itself is left out of the build context (.dockerignore), so cargo uses exactly the image's
# toolchain and rustup never downloads components the build does not use (rustfmt, clippy).
ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# Only the gateway, without the `quickstart` feature (its in-process sandbox cluster is for
# trying kubetape on a laptop, not for production). The cache mounts keep the registry and
# incremental artifacts between builds; the binary leaves the mounted target/ through /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p gateway --no-default-features --bin kubetape-gateway \
    && install -D -m 0755 target/release/kubetape-gateway /out/kubetape-gateway

# glibc, libgcc and CA certificates (the store's, STS's and the issuers' HTTPS), nothing else:
# no shell, no package manager. Debian 12 like the build stage, so the glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kubetape-gateway" \
      org.opencontainers.image.description="Authenticating, recording exec gateway for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kubetape-gateway /usr/local/bin/kubetape-gateway
# distroless's `nonroot` user, numerically, so that runAsNonRoot can verify it.
USER 65532:65532
# kubectl's HTTPS, and the ops listener (/healthz, /readyz, /metrics).
EXPOSE 8443 9090
# Kubernetes ignores HEALTHCHECK and probes /healthz and /readyz itself (deploy/base/deployment.yaml);
# the image has no shell or HTTP client a HEALTHCHECK command could run.
# checkov:skip=CKV_DOCKER_2: Kubernetes does not run HEALTHCHECK; its probes use /healthz and /readyz on the ops port
ENTRYPOINT ["/usr/local/bin/kubetape-gateway"]
CMD ["serve", "--config", "/etc/kubetape/config/gateway.toml"]
