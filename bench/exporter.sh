#!/usr/bin/env bash
# Exporter scrape benchmark: quantwatch-exporter vs node/postgres/redis exporters (Debian).
# Prints a Markdown table (README "Performance" holds the last measured one).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p quantwatch-exporter --bin quantwatch-exporter
cargo build --release --locked -p quantwatch-bench --bin exporter_scrape
exec target/release/exporter_scrape
