# One image with both quantwatch binaries; the container command picks which one runs
# (see docker-compose.yml): quantwatch-exporter (listens on 9877) or
# quantwatch-alert-router (listens on 9878).
#
#   docker build -t quantwatch:local .
#   docker run --rm -p 9877:9877 quantwatch:local quantwatch-exporter
#   docker run --rm -p 9878:9878 -e HEALTHCHECK_PORT=9878 quantwatch:local quantwatch-alert-router

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole workspace at once: a dependency-only layer would have to mirror every member's
# manifest and targets here and silently rot when the workspace changes (no Docker engine
# runs in CI to notice). Cargo.lock is honoured (--locked).
COPY . .
# The exporter is a static PIE (scripts/build-exporter says why and how).
RUN cargo build --release --locked -p quantwatch-alert-router \
 && scripts/build-exporter --release \
 && install -D -m 0755 target/release/quantwatch-exporter /out/quantwatch-exporter \
 && install -D -m 0755 target/release/quantwatch-alert-router /out/quantwatch-alert-router

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim
# TLS roots are compiled in (rustls + webpki-roots), so no ca-certificates; the healthcheck
# uses bash's /dev/tcp, so no curl or wget either. Only tzdata is installed: the exporter reads
# its trading time zone from /usr/share/zoneinfo (bookworm-slim ships without it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tzdata \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 quantwatch \
 && useradd --system --uid 10001 --gid quantwatch --home-dir /var/lib/quantwatch \
            --shell /usr/sbin/nologin quantwatch \
 && install -d -o quantwatch -g quantwatch -m 0750 /var/lib/quantwatch /var/lib/quantwatch/data
COPY --from=builder /out/ /usr/local/bin/
# The router keeps its SQLite store under ./data/ by default: mount a volume at
# /var/lib/quantwatch/data to keep it across restarts.
WORKDIR /var/lib/quantwatch
USER 10001:10001
EXPOSE 9877 9878
# GET /healthz over a raw TCP socket. HEALTHCHECK_PORT: 9877 (exporter, default) or 9878
# (router). Healthy = the process answers 200.
ENV HEALTHCHECK_PORT=9877
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ \"$status\" == HTTP/1.?' 200'* ]]"]
CMD ["quantwatch-exporter"]
