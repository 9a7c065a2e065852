#!/usr/bin/env bash
# Starts and stops the real backing services the scale-out tests need:
#   * a throwaway PostgreSQL cluster from the machine's postgresql packages
#     (initdb in a temporary directory, a private port on 127.0.0.1 and a
#     private unix socket directory; no system service is touched);
#   * an S3 emulator (moto's server, from PyPI, in a virtualenv);
#   * the Azurite Azure Blob emulator (from the npm registry).
#
#   scripts/services.sh start   start everything, create the bucket and the
#                               container, print the environment (eval-able)
#   scripts/services.sh env     print the environment of the running services
#   scripts/services.sh stop    stop everything `start` started, remove its data
#
# Tools are installed once into $GRAPHBOX_SERVICES_CACHE (default
# ~/.cache/graphbox/services): `pip install` and `npm install` only, nothing
# else is downloaded. If `initdb` is missing, the `postgresql` apt package is
# installed. Run state (data directories, logs, pids) lives in a temporary
# directory recorded in $GRAPHBOX_SERVICES_STATE (default <repo>/.services/default).
#
# Exported variables:
#   GRAPHBOX_TEST_POSTGRES_URL   postgres://… of a superuser on the cluster
#                                (tests create their own databases)
#   GRAPHBOX_TEST_S3_URL         s3://<bucket>/  plus AWS_* for the emulator
#   GRAPHBOX_TEST_AZURE_URL      az://<container>/  plus AZURE_* / AZURITE_*
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${GRAPHBOX_SERVICES_CACHE:-$HOME/.cache/graphbox/services}"
state="${GRAPHBOX_SERVICES_STATE:-$repo/.services/default}"
bucket=graphbox-test
container=graphbox-test

log() { echo "services: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a PostgreSQL tool; as root, as the `postgres` (or `nobody`) user since
# PostgreSQL refuses to run as root.
pg_as() {
  if [ "$(id -u)" = 0 ]; then
    local u=postgres
    id "$u" >/dev/null 2>&1 || u=nobody
    runuser -u "$u" -- "$@"
  else
    "$@"
  fi
}

pg_bin() {
  local b
  if command -v initdb >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/initdb" ] && { echo "$b"; return; }
  done
  return 1
}

install_tools() {
  mkdir -p "$cache"
  if ! pg_bin >/dev/null; then
    log "initdb not found: installing the postgresql package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  if [ ! -x "$cache/venv/bin/moto_server" ] || [ ! -f "$cache/venv/.graphbox-ok" ]; then
    log "installing moto[server] and azure-storage-blob into $cache/venv"
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6' \
      'boto3' 'azure-storage-blob>=12' >&2
    touch "$cache/venv/.graphbox-ok"
  fi
  if [ ! -x "$cache/node/node_modules/.bin/azurite-blob" ]; then
    log "installing azurite into $cache/node"
    mkdir -p "$cache/node"
    (cd "$cache/node" && npm install --silent --no-audit --no-fund azurite@3 >&2)
  fi
}

wait_for() { # what, command...
  local what="$1"; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$what did not come up; see the logs in $(cat "$state/run")"
  return 1
}

print_env() {
  [ -f "$state/env" ] || { log "not running (no $state/env); run: scripts/services.sh start"; exit 1; }
  cat "$state/env"
}

start() {
  if [ -f "$state/env" ]; then
    log "already running (stop first: scripts/services.sh stop)"
    print_env
    return
  fi
  install_tools
  local run bin pgport s3port azport
  run="$(mktemp -d "${TMPDIR:-/tmp}/graphbox-services.XXXXXX")"
  chmod 755 "$run"
  mkdir -p "$state"
  echo "$run" >"$state/run"

  # PostgreSQL
  bin="$(pg_bin)"
  pgport="$(free_port)"
  mkdir -p "$run/pg"
  [ "$(id -u)" = 0 ] && chown "$(id -u postgres 2>/dev/null || id -u nobody)" "$run/pg"
  pg_as "$bin/initdb" -D "$run/pg/data" -U postgres --auth=trust -E UTF8 --no-locale >"$run/initdb.log" 2>&1 \
    || { cat "$run/initdb.log" >&2; exit 1; }
  pg_as "$bin/pg_ctl" -D "$run/pg/data" -l "$run/pg/server.log" -w -t 60 \
    -o "-p $pgport -k $run/pg -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >&2
  echo "pg $bin $run/pg/data" >>"$state/started"

  # S3 emulator
  s3port="$(free_port)"
  nohup "$cache/venv/bin/moto_server" -H 127.0.0.1 -p "$s3port" >"$run/moto.log" 2>&1 &
  echo "pid $!" >>"$state/started"

  # Azurite
  azport="$(free_port)"
  mkdir -p "$run/azurite"
  nohup "$cache/node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$azport" \
    --location "$run/azurite" --skipApiVersionCheck --loose --silent >"$run/azurite.log" 2>&1 &
  echo "pid $!" >>"$state/started"

  cat >"$state/env" <<EOF
export GRAPHBOX_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$pgport/postgres'
export GRAPHBOX_TEST_S3_URL='s3://$bucket/'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='us-east-1'
export AWS_DEFAULT_REGION='us-east-1'
export AWS_ENDPOINT_URL='http://127.0.0.1:$s3port'
export AWS_ALLOW_HTTP='true'
export GRAPHBOX_TEST_AZURE_URL='az://$container/'
export AZURE_STORAGE_USE_EMULATOR='true'
export AZURITE_BLOB_STORAGE_URL='http://127.0.0.1:$azport'
export AZURE_STORAGE_ACCOUNT_NAME='devstoreaccount1'
export AZURE_STORAGE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AZURE_ALLOW_HTTP='true'
EOF

  wait_for postgres "$bin/pg_isready" -q -h 127.0.0.1 -p "$pgport"
  wait_for "the S3 emulator" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3port/moto-api/')"
  wait_for azurite python3 -c "import socket; socket.create_connection(('127.0.0.1',$azport),1)"
  "$cache/venv/bin/python" - "$s3port" "$azport" >&2 <<'EOF'
import sys, boto3
from azure.storage.blob import BlobServiceClient
s3port, azport = sys.argv[1], sys.argv[2]
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3port}", region_name="us-east-1",
             aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="graphbox-test")
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint=http://127.0.0.1:{azport}/devstoreaccount1;")
BlobServiceClient.from_connection_string(conn).create_container("graphbox-test")
EOF
  log "started (PostgreSQL :$pgport, S3 :$s3port, Azurite :$azport; state in $run)"
  print_env
}

stop() {
  [ -f "$state/started" ] || { log "nothing to stop"; rm -rf "$state"; return 0; }
  local kind a b
  while read -r kind a b; do
    case "$kind" in
      pg) pg_as "$a/pg_ctl" -D "$b" -m fast -w stop >&2 || true ;;
      pid) kill "$a" 2>/dev/null || true ;;
    esac
  done <"$state/started"
  if [ -f "$state/run" ]; then rm -rf "$(cat "$state/run")"; fi
  rm -rf "$state"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
