#!/usr/bin/env bash
# The door intercom for ST's NUCLEO-F429ZI: checks and builds it, and prints
# the flash and RAM it takes. It does not run it: that needs the board
# (`cargo xtask flash`). The crate (firmware-example/boards/nucleo-f429zi)
# is a workspace of its own, built from its directory so that its
# .cargo/config.toml applies; its README says why.
#
# Exits 0 when formatting, clippy (-D warnings) and the release build pass
# and the firmware links no getrandom function; 1 otherwise.
#
# Needs: rustup's thumbv7em-none-eabihf target (rust-toolchain.toml lists
# it), binutils' size and nm.
set -euo pipefail

# The firmware's rustflags (source paths remapped), as every firmware build has them.
. "$(dirname "$0")/firmware-flags.sh"
cd "$(dirname "$0")/../firmware-example/boards/nucleo-f429zi"

cargo fmt --check
cargo clippy --quiet --release --all-targets -- -D warnings
# Release: LTO, opt-level "s", one codegen unit (its Cargo.toml), with the
# default SFU address and room unless SATSUMA_SFU / SATSUMA_ROOM say
# otherwise.
cargo build --quiet --release --bin intercom

elf=target/thumbv7em-none-eabihf/release/intercom

# binutils' `size -A` reads ARM ELF files too: "name size addr".
echo "flash (.vector_table + .text + .rodata + .data) and RAM (.data + .bss + .uninit) of ${elf}:"
size -A "$elf" | awk '
    $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ {
        printf "  %-14s %10d bytes\n", $1, $2
    }
    $1 ~ /^\.(vector_table|text|rodata|data)$/ { flash += $2 }
    $1 ~ /^\.(data|bss|uninit)$/ { ram += $2 }
    END {
        # memory.x: 1,792 KiB of flash for the program (the last 256 KiB
        # are the flash store), 192 KiB of SRAM.
        printf "  flash %d bytes (%.1f KiB of 1792), RAM without the stack %d bytes (%.1f KiB of 192; the stack has the rest)\n",
            flash, flash / 1024, ram, ram / 1024
    }'

# The intercom's flash budget (issue 15): the whole firmware, network
# stack and codecs included, within 384 KiB, as on QEMU's board.
flash=$(size -A "$elf" | awk '$1 ~ /^\.(vector_table|text|rodata|data)$/ { flash += $2 } END { print flash }')
if [ "$flash" -gt $((384 * 1024)) ]; then
    echo "error: the Nucleo's intercom takes $flash bytes of flash, over the 384 KiB budget" >&2
    exit 1
fi
echo "flash budget (384 KiB): met, $((384 * 1024 - flash)) bytes to spare"

# Randomness comes only from the chip's RNG; getrandom's backend here always
# fails. No getrandom function may be linked at all.
if nm -C "$elf" | grep -q ' getrandom::'; then
    echo "error: ${elf} links getrandom:" >&2
    nm -C "$elf" | grep ' getrandom::' >&2
    exit 1
fi
echo "getrandom: not linked"
