# One image with every CareLoop service binary and the careloop CLI.
#   docker build -t careloop:0.1.0 .
# Build stage: the Rust toolchain and a C compiler; protos compile with protox (no protoc needed).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -executable -name 'careloop*' -exec cp {} /out/ \;

# Runtime stage: glibc and CA certificates only, no shell or package manager, non-root (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 50051 9090
# The chart sets the command per service, e.g. /usr/local/bin/careloop-plans --config /etc/careloop/config.toml
ENTRYPOINT ["/usr/local/bin/careloop-plans"]
