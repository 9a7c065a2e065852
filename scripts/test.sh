#!/usr/bin/env bash
# Runs the whole graphbox test suite on a fresh machine:
#   1. the Rust tests of every crate (cargo-nextest), including the store contract
#      suite, the api integration tests and the fts property tests;
#   2. the end-to-end tests under tests/sdk/, which start the real server binary and
#      drive it with the official Microsoft Graph Python SDKs (msgraph-sdk and
#      msgraph-beta-sdk) from a virtualenv this script creates in .venv/.
# Needs: cargo, cargo-nextest, python3 (3.10+), node/npm; PostgreSQL server binaries
# (scripts/services.sh apt-installs `postgresql` if initdb is missing). Installs
# moto and Azurite into ~/.cache/graphbox/services, nothing else system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL store tests and the S3 / Azure blob tests need real servers
# (they fail, never skip, without them). Unless the caller (e.g. .ci/run)
# provides them, start the throwaway ones of scripts/services.sh and stop
# them when this script ends.
if [ -z "${GRAPHBOX_TEST_POSTGRES_URL:-}" ] || [ -z "${GRAPHBOX_TEST_S3_URL:-}" ] \
   || [ -z "${GRAPHBOX_TEST_AZURE_URL:-}" ]; then
  echo "== starting PostgreSQL, the S3 emulator and Azurite (scripts/services.sh)"
  export GRAPHBOX_SERVICES_STATE="${GRAPHBOX_SERVICES_STATE:-$PWD/.services/test-$$}"
  trap 'bash scripts/services.sh stop' EXIT
  eval "$(bash scripts/services.sh start)"
fi

echo "== cargo nextest (workspace)"
cargo nextest run --workspace --features store/testsuite --no-fail-fast

if [ -d tests/sdk ] && ls tests/sdk/test_*.py >/dev/null 2>&1; then
  echo "== official SDK end-to-end tests (tests/sdk)"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
  # Same packages and features as the nextest run above, so this reuses its
  # build instead of compiling the dependencies again with other features.
  cargo build --workspace --features store/testsuite --bins
  export GRAPHBOX_BIN="${CARGO_TARGET_DIR:-target}/debug/graphbox"
  .venv/bin/python -m pytest -q tests/sdk

  echo "== the same SDK tests on PostgreSQL + S3 (a fresh database and prefix)"
  # The identity tests set up their own deployment (as each module does in
  # its own data directory on SQLite), so they get a database of their own.
  pg_sdk() {
    local db="graphbox_sdk_$1_$$"
    shift
    psql "$GRAPHBOX_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db"
    GRAPHBOX_META="${GRAPHBOX_TEST_POSTGRES_URL%/*}/$db" \
    GRAPHBOX_BLOBS="${GRAPHBOX_TEST_S3_URL%/}/$db" \
      .venv/bin/python -m pytest -q "$@"
  }
  pg_sdk graph tests/sdk --ignore=tests/sdk/test_identity.py
  pg_sdk identity tests/sdk/test_identity.py

  echo "== scale-out: two instances on one PostgreSQL + S3; admin migrate SQLite -> PostgreSQL + S3"
  .venv/bin/python -m pytest -q tests/scale

  echo "== backup client end to end: backup, incremental, restore, kill -9, locks, prune, object-store repositories"
  .venv/bin/python -m pytest -q tests/backup
fi
