#!/usr/bin/env bash
# Smoke-runs every cargo-fuzz target (satsuma-core's, and sfu_link for
# satsuma-sfu's links and rooms) for a short time.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 20)
#
# Builds all targets first (`cargo +nightly fuzz build`), then runs each one
# for SECONDS_PER_TARGET seconds with libFuzzer's -max_total_time. Exits
# non-zero if any target crashes, panics, times out on an input or runs out
# of memory; the reproducer lands in fuzz/artifacts/<target>/ and can be
# replayed with `cargo +nightly fuzz run <target> <file>`.
#
# Toolchain: cargo-fuzz needs nightly, while the repository pins stable in
# rust-toolchain.toml. This script always calls `cargo +nightly fuzz`, which
# works from any directory and overrides the pin (fuzz/rust-toolchain.toml
# only helps when cargo is started from inside fuzz/).
#
# Needs: a nightly toolchain (`rustup toolchain install nightly`) and
# cargo-fuzz (`cargo install cargo-fuzz --locked`).
#
# Build output stays in fuzz/target (cargo-fuzz's default; CARGO_TARGET_DIR
# is ignored here on purpose), corpora grow in fuzz/corpus/<target>/; both
# are git-ignored. Per-target logs go to fuzz/target/smoke-logs/.
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive integer, default 20)" >&2
    exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
unset CARGO_TARGET_DIR

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: no nightly toolchain; run: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is missing; run: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

echo "== $(cargo +nightly --version), $(cargo +nightly fuzz --version)"

echo "== building fuzz targets (cargo +nightly fuzz build)"
build_start=$(date +%s)
cargo +nightly fuzz build
build_secs=$(($(date +%s) - build_start))
echo "== build took ${build_secs}s"

mapfile -t targets < <(cargo +nightly fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "error: cargo fuzz list found no targets" >&2
    exit 2
fi

log_dir="fuzz/target/smoke-logs"
mkdir -p "$log_dir"

failed=()
summary=()
for target in "${targets[@]}"; do
    echo
    echo "== running target '$target' for ${secs}s (log: $log_dir/$target.log)"
    log="$log_dir/$target.log"
    start=$(date +%s)
    status=0
    # -timeout: an input taking over 10 s counts as a failure (a hang).
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$secs" \
        -timeout=10 \
        -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    took=$(($(date +%s) - start))

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    line="$target: ${took}s, ${runs:-?} execs, ${rate:-?} exec/s"
    if [[ $status -eq 0 ]]; then
        summary+=("PASS $line")
        echo "== PASS $line"
    else
        failed+=("$target")
        summary+=("FAIL $line (exit $status)")
        echo "== FAIL $line (exit $status); end of log:"
        tail -n 40 "$log"
    fi
done

echo
echo "== summary (build ${build_secs}s, ${secs}s per target)"
printf '   %s\n' "${summary[@]}"

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== ${#failed[@]} target(s) failed: ${failed[*]}; reproducers in fuzz/artifacts/" >&2
    exit 1
fi
echo "== all ${#targets[@]} targets passed"
