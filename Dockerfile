# Multi-stage build of the one binary; roles are chosen at run time (`serve --roles ...`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# SQLX_OFFLINE comes from .cargo/config.toml; librdkafka is built from source by rdkafka's default features.
RUN cargo build --release --locked --bin integration-service

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/integration-service /usr/local/bin/integration-service
USER 65534
ENTRYPOINT ["integration-service"]
CMD ["serve"]
