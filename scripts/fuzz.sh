#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the fts codec (fuzz/), on the stable toolchain.
#
#   scripts/fuzz.sh [seconds-per-target]      (default 20)
#
# Environment: FUZZ_TARGETS (default "frame lex ast roundtrip"), FUZZ_JOBS
# (targets run at once, default 2), FUZZ_EXTRA_ARGS (more libFuzzer flags).
#
# How: the targets in fuzz/fuzz_targets/ link libFuzzer through the
# `libfuzzer-sys` crate (fetched by cargo from crates.io; it compiles libFuzzer
# with the system C++ compiler). We build them with plain `cargo build
# --release` and the same stable codegen flags `cargo fuzz build -s none` uses
# (SanitizerCoverage via `-Cpasses=sancov-module`, `--cfg fuzzing`, debug
# assertions and overflow checks on), so no nightly toolchain and no extra tool
# is needed. Interactively, `cargo fuzz run <target> -s none` (cargo-fuzz 0.13,
# `cargo install cargo-fuzz --locked`) works on stable as well.
#
# Each target runs for the given time on a scratch copy of its checked-in seed
# corpus (fuzz/corpus/<target>/), two targets at a time on a 2-core machine.
# Exits non-zero if any target finds a crash, panic, timeout or OOM, and prints
# the path and hex of the failing input (kept under fuzz/artifacts/<target>/).
# Reproduce one with: <fuzz-target-binary> <path-to-input>.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
targets=(${FUZZ_TARGETS:-frame lex ast roundtrip})
jobs="${FUZZ_JOBS:-2}"
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [seconds-per-target]" >&2; exit 2 ;; esac

command -v c++ >/dev/null || command -v g++ >/dev/null || {
  echo "fuzz.sh: a C++ compiler (g++) is needed to build libFuzzer" >&2; exit 2; }

triple="$(rustc -vV | sed -n 's/^host: //p')"
# Own target dir: the instrumentation flags would otherwise invalidate the
# workspace's cached build (and vice versa).
target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-$PWD/fuzz/target}"

# The flags of `cargo fuzz build -s none` (cargo-fuzz 0.13), all stable.
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-sanitizer-coverage-stack-depth
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
  -Cdebug-assertions
  -Coverflow-checks
  -Ccodegen-units=1
)

echo "== building fuzz targets (${targets[*]}) for $triple"
t0=$(date +%s)
bin_args=()
for t in "${targets[@]}"; do bin_args+=(--bin "$t"); done
# --target keeps build scripts and proc macros uninstrumented (RUSTFLAGS then
# applies to target code only).
RUSTFLAGS="${flags[*]}" cargo build --release \
  --manifest-path fuzz/Cargo.toml --target "$triple" --target-dir "$target_dir" \
  "${bin_args[@]}"
echo "   built in $(( $(date +%s) - t0 )) s"
bindir="$target_dir/$triple/release"

work="$(mktemp -d "${TMPDIR:-/tmp}/fts-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

run_one() {
  local t="$1" art="fuzz/artifacts/$1"
  mkdir -p "$work/$t" "$art"
  cp -R "fuzz/corpus/$t/." "$work/$t/"
  local before; before="$(ls "$work/$t" | wc -l)"
  local rc=0
  "$bindir/$t" "$work/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$art/" ${FUZZ_EXTRA_ARGS:-} \
    >"$work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
  echo "$before" >"$work/$t.seeds"
}

echo "== fuzzing ${#targets[@]} targets for ${secs} s each, ${jobs} at a time"
running=0
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "missing seed corpus fuzz/corpus/$t" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

failed=0
for t in "${targets[@]}"; do
  rc="$(cat "$work/$t.rc")"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)"
  cov="$(grep -Eo 'cov: [0-9]+' "$work/$t.log" | tail -1 || true)"
  corpus="$(ls "$work/$t" | wc -l)"
  if [ "$rc" = 0 ]; then
    echo "   $t: ok, ${execs:-?} runs, ${cov:-cov: ?}, corpus $(cat "$work/$t.seeds") -> $corpus"
  else
    failed=1
    echo "   $t: FAILED (exit $rc)"
    sed -n '/==ERROR\|panicked\|^thread\|deadly signal\|Test unit written\|SUMMARY/p' "$work/$t.log" | head -20 | sed 's/^/      /'
    for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$t.log"); do
      echo "   failing input: $f ($(wc -c <"$f") bytes); reproduce: $bindir/$t $f"
      od -An -tx1 -v "$f" | head -32 | sed 's/^/      /'
    done
    echo "   full log (last 40 lines):"
    tail -40 "$work/$t.log" | sed 's/^/      /'
  fi
done
exit "$failed"
