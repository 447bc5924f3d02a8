#!/usr/bin/env bash
# Exporter scrape benchmark: quantwatch-exporter vs node/postgres/redis exporters (Debian),
# scraped as Prometheus scrapes (one kept-alive connection per target, the timeout header,
# all four in the same rounds). Prints Markdown tables (README "Performance" holds the last).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-exporter --release
cargo build --release --locked -p quantwatch-bench --bin exporter_scrape
exec "${CARGO_TARGET_DIR:-target}/release/exporter_scrape"
