#!/usr/bin/env bash
# Runs every test: unit tests of the decision core, config, API and adapters, and the integration
# tests that start real etcd and PostgreSQL 15 (nodes run as the postgres OS user). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
profile="default"
if [ "${CI:-}" = "true" ]; then profile="ci"; fi
cargo nextest run --workspace --profile "$profile" "$@"
