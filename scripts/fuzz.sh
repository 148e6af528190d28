#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the first
# crash, hang (per-input timeout) or out-of-memory of any of them.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 60
#
# Environment:
#   FUZZ_TARGETS    targets to run (default: "manifest command_output publish")
#   FUZZ_SANITIZER  address (default) or none; switching rebuilds everything
#
# Each target starts from fuzz/regressions/<target>/ (kept cases, replayed by the
# `fuzz_regressions` tests) and grows fuzz/corpus/<target>/ (git-ignored). A failing
# input lands in fuzz/artifacts/<target>/: fix the bug, then move the input into
# fuzz/regressions/<target>/ with a name that says what it was.
#
# The build is stable Rust: RUSTC_BOOTSTRAP=1 lets rustc accept the -Z flags cargo-fuzz
# passes. It uses its own target dir (fuzz/target): the instrumented build never
# touches the workspace's. The first build takes a while (~25 min on 2 cores).
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$root/fuzz/target"
sanitizer=${FUZZ_SANITIZER:-address}
targets=${FUZZ_TARGETS:-manifest command_output publish}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# One cargo invocation builds every target (they share all dependencies).
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"

# The publish target keeps a server's state under the temp dir: one of our own, emptied
# afterwards.
scratch="$CARGO_TARGET_DIR/tmp"
rm -rf "$scratch"
mkdir -p "$scratch"

failed=()
summary=()
for target in $targets; do
    # Per-input time limit: generous for publish (compiling a component under ASan),
    # tight elsewhere, where any input runs in microseconds.
    case "$target" in
        publish) timeout=30 ;;
        *) timeout=10 ;;
    esac
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="$CARGO_TARGET_DIR/fuzz-$target.log"
    echo "== $target: ${seconds} s (log: $log)"
    if TMPDIR="$scratch" cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" \
        "fuzz/corpus/$target" "fuzz/regressions/$target" \
        -- -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 \
        >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed+=("$target")
        # The panic or sanitizer report and the input's path.
        grep -E -A12 "panicked at|ERROR: (libFuzzer|AddressSanitizer)|^SUMMARY" "$log" | head -40 || true
        grep -E -A2 "^Failing input:" "$log" || true
    fi
    runs=$(grep -Eo "^Done [0-9]+ runs in [0-9]+ second" "$log" | tail -1 || true)
    execs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+" "$log" | grep -Eo "[0-9]+$" | tail -1 || true)
    rate=$(grep -Eo "stat::average_exec_per_sec: *[0-9]+" "$log" | grep -Eo "[0-9]+$" | tail -1 || true)
    summary+=("$target: $result, ${execs:-?} execs, ${rate:-?} exec/s ${runs:+($runs)}")
done
rm -rf "$scratch"

echo "== summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
