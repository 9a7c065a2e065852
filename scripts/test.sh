#!/usr/bin/env bash
# Runs the whole graphbox test suite on a fresh machine:
#   1. the Rust tests of every crate (cargo-nextest), including the store contract
#      suite, the api integration tests and the fts property tests;
#   2. the end-to-end tests under tests/sdk/, which start the real server binary and
#      drive it with the official Microsoft Graph Python SDKs (msgraph-sdk and
#      msgraph-beta-sdk) from a virtualenv this script creates in .venv/.
# Needs: cargo, cargo-nextest, python3 (3.10+). Installs nothing system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo nextest (workspace)"
cargo nextest run --workspace --features store/testsuite --no-fail-fast

if [ -d tests/sdk ] && ls tests/sdk/test_*.py >/dev/null 2>&1; then
  echo "== official SDK end-to-end tests (tests/sdk)"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
  cargo build --bin graphbox
  GRAPHBOX_BIN="${CARGO_TARGET_DIR:-target}/debug/graphbox" .venv/bin/python -m pytest -q tests/sdk
fi
