# rollguard container image: the release binary on distroless.
#
#   docker build -t ghcr.io/rollguard/rollguard:0.1.0 .
#
# The runtime image has no shell and no package manager, and runs as the
# distroless `nonroot` user (65532), which the manifests require too.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies in their own layer: a source change does not download them again.
COPY Cargo.toml Cargo.lock ./
RUN cargo fetch --locked
COPY src ./src
RUN cargo build --release --locked --bin rollguard \
    && install -D -m 0755 target/release/rollguard /out/rollguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/rollguard /rollguard
USER 65532:65532
# Return memory freed after large reviews at once (src/lib.rs ALLOCATOR_ENV).
ENV MIMALLOC_PURGE_DELAY=0 MIMALLOC_ARENA_EAGER_COMMIT=0
# 8443: HTTPS admission (/mutate, /validate, /audit); 8080: /healthz, /readyz, /metrics.
EXPOSE 8443 8080
ENTRYPOINT ["/rollguard"]
