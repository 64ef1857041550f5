#!/usr/bin/env bash
# Run every test: installs what the tests need, then unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --locked "$@"
