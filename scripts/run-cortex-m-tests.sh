#!/usr/bin/env bash
# Runs the portable test suite on a Cortex-M4 in QEMU (mps2-an386), as the
# board crate's `portable-tests` binary (firmware-example/boards/mps2-an386),
# and prints its section sizes. Exits with the test binary's code: 0 when
# every test passed, 1 when one failed or the firmware panicked or faulted,
# 124 when QEMU had to be stopped by the timeout.
#
# Needs: rustup's thumbv7em-none-eabihf target (rust-toolchain.toml lists it),
# qemu-system-arm, binutils' size.
set -euo pipefail

# The firmware's rustflags (source paths remapped), as every firmware build has them.
. "$(dirname "$0")/firmware-flags.sh"
cd "$(dirname "$0")/../firmware-example"

elf=target/thumbv7em-none-eabihf/release/portable-tests

cargo build --release --bin portable-tests

echo "ELF section sizes of ${elf} (flash: .vector_table + .text + .rodata + .data; RAM: .data + .bss):"
# binutils' `size -A` reads ARM ELF files too: "name size addr" per section.
size -A "$elf" | awk '$1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ {
    printf "  %-14s %10d bytes\n", $1, $2
}'

# QEMU runs until the firmware exits through semihosting; the timeout guards
# against a firmware that hangs instead.
status=0
timeout --kill-after=10 600 cargo run --release --bin portable-tests || status=$?
if [ "$status" -eq 124 ]; then
    echo "error: QEMU did not exit within 600 s" >&2
fi
exit "$status"
