#!/usr/bin/env bash
# MLS on the microcontroller: checks and builds the intercom firmware
# (firmware-example/, its own workspace: the intercom library and the board
# crates), prints the flash it takes, and runs its two-member and 16-member
# MLS + SFrame round trip on a Cortex-M4 in QEMU (mps2-an386, the board
# crate boards/mps2-an386). Exits 0 when everything passed: formatting,
# clippy (target and host), the intercom library's host unit tests, and every
# check the firmware makes; 1 on a failure; 124 when QEMU had to be stopped
# by the timeout.
#
# Needs: rustup's thumbv7em-none-eabihf target (rust-toolchain.toml lists
# it), qemu-system-arm, binutils' size and nm.
set -euo pipefail

# The firmware's rustflags (source paths remapped), as every firmware build has them.
. "$(dirname "$0")/firmware-flags.sh"
cd "$(dirname "$0")/../firmware-example"

# The intercom library knows no board: its unit tests run on the build
# machine.
host=$(rustc -vV | sed -n 's/^host: //p')

cargo fmt --check
cargo clippy --quiet --release -- -D warnings
cargo clippy --quiet -p satsuma-intercom --lib --tests --target "$host" -- -D warnings
cargo test --quiet -p satsuma-intercom --lib --target "$host"

# Release: LTO, opt-level "s", one codegen unit (Cargo.toml). Only the two
# binaries this script runs: the intercom is built without the board's
# default features (scripts/run-intercom-qemu.sh), and cargo keeps the
# last build of a binary under its name.
cargo build --release --bin mls-roundtrip --bin mls-footprint

out=target/thumbv7em-none-eabihf/release
footprint=$out/mls-footprint
roundtrip=$out/mls-roundtrip

sections() {
    # binutils' `size -A` reads ARM ELF files too: "name size addr".
    size -A "$1" | awk '$1 ~ /^\.(vector_table|text|rodata|data|bss)$/ {
        printf "  %-14s %10d bytes\n", $1, $2
    }'
}

echo
echo "flash (.vector_table + .text + .rodata + .data) and RAM (.data + .bss), release build:"
echo "${footprint}: core + MLS alone, every member operation, nothing else (the 256 KiB .text goal)"
sections "$footprint"
echo "${roundtrip}: the round trip below (its checks, printing and measuring; .bss holds its"
echo "3 MiB heap for 16 members, the 128 KiB emulated flash and a 32 KiB allocation table)"
sections "$roundtrip"

# The .text goal is a gate: over it, the run fails (after printing the rest,
# so the contributors below show where the bytes went). The firmware gates
# its own heap budgets (40 KiB as a member of 16, 80 KiB as their committer)
# and fails its run when one is exceeded.
text=$(size -A "$footprint" | awk '$1 == ".text" { print $2 }')
goal=${SATSUMA_TEXT_GOAL:-$((256 * 1024))}
text_over=0
if [ "$text" -le "$goal" ]; then
    echo "core + MLS .text: ${text} bytes, goal <= ${goal}: met"
else
    echo "core + MLS .text: ${text} bytes, goal <= ${goal}: MISSED" >&2
    text_over=1
fi

# Where it goes: symbol sizes summed by the crate that names them. With LTO,
# code inlined into a caller counts for the caller's crate.
echo "largest contributors to ${footprint} (crate, section, bytes):"
nm -S -t d -C "$footprint" | awk '$3 ~ /^[tTrR]$/ {
    section = ($3 ~ /[tT]/) ? ".text" : ".rodata"
    name = $0
    sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name)
    sub(/^[<&*]+/, "", name)
    sub(/^(dyn|mut|const) /, "", name)
    crate = (index(name, "::") > 0) ? substr(name, 1, index(name, "::") - 1) : "(unnamed)"
    total[crate " " section] += $2
} END { for (k in total) print total[k], k }' | sort -rn | head -12 |
    awk '{ printf "  %-28s %-8s %8d\n", $2, $3, $1 }'

# Randomness comes only from the seeds the firmware passes in; getrandom's
# backend here always fails. No getrandom function may be linked at all.
for elf in "$footprint" "$roundtrip"; do
    if nm -C "$elf" | grep -q ' getrandom::'; then
        echo "error: ${elf} links getrandom:" >&2
        nm -C "$elf" | grep ' getrandom::' >&2
        exit 1
    fi
done
echo "getrandom: not linked into either binary"

# QEMU runs until the firmware exits through semihosting; the timeout guards
# against a firmware that hangs instead.
echo
status=0
timeout --kill-after=10 600 cargo run --quiet --release --bin mls-roundtrip || status=$?
if [ "$status" -eq 124 ]; then
    echo "error: QEMU did not exit within 600 s" >&2
fi
if [ "$status" -eq 0 ] && [ "$text_over" -eq 1 ]; then
    echo "error: core + MLS .text is ${text} bytes, over the goal of ${goal}" >&2
    status=1
fi
exit "$status"
