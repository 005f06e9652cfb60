# syntax=docker/dockerfile:1
#
# hearsay: a static binary on distroless, running as non-root.
#   docker build -t hearsay:0.1.0 .
# The image needs no writable filesystem: run it with readOnlyRootFilesystem.
# The binary is glibc, linked statically (no libc or NSS modules are needed
# in the image; tests/image.rs builds it the same way and runs the image).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target x86_64-unknown-linux-gnu --bin hearsay \
    && cp target/x86_64-unknown-linux-gnu/release/hearsay /hearsay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /hearsay /hearsay
USER 65532:65532
# gossip, local API, metrics and probes
EXPOSE 7946 7070 9464
ENTRYPOINT ["/hearsay"]
CMD ["run"]
