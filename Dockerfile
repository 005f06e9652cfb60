# syntax=docker/dockerfile:1
#
# hearsay: a static (musl) binary on distroless, running as non-root.
#   docker build -t hearsay:0.1.0 .
# The image needs no writable filesystem: run it with readOnlyRootFilesystem.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin hearsay \
    && cp target/x86_64-unknown-linux-musl/release/hearsay /hearsay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hearsay /hearsay
USER 65532:65532
# gossip, local API, metrics and probes
EXPOSE 7946 7070 9464
ENTRYPOINT ["/hearsay"]
CMD ["run"]
