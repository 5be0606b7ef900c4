#!/usr/bin/env bash
# The rustflags every firmware build adds (QEMU's workspace and the Nucleo's,
# target thumbv7em-none-eabihf). The scripts that build firmware source this
# file; `cargo xtask` runs it and passes what it prints to the cargo it
# starts, so every build of a run agrees and none is rebuilt between steps.
#
# A panic location names its source file by the path rustc was given. For a
# crates.io dependency that is "$CARGO_HOME/registry/src/index.crates.io-
# <hash>/", 91 times in the Nucleo's intercom: 5.4 KiB of flash that grow
# with the build machine's home directory (the budget passed on one machine
# and failed on another) and that tell anyone reading the flash who built
# it. Remapped, a location reads "smoltcp-0.13.1/src/iface/interface.rs" or
# "core/src/sframe/keyring.rs", wherever it was built.
#
# cargo joins CARGO_TARGET_<TRIPLE>_RUSTFLAGS with the config files'
# `rustflags` arrays, so these come on top of firmware-example's and the
# board's .cargo/config.toml. Paths with spaces are not supported (the
# variable is split on spaces).

satsuma_firmware_rustflags() {
    local root home flags dir
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    home=${CARGO_HOME:-$HOME/.cargo}
    # The sources are unpacked by the first build that needs them; fetch
    # first so the first build is remapped like every later one.
    if ! compgen -G "$home/registry/src/*/" >/dev/null; then
        (cd "$root/firmware-example" && cargo fetch --quiet)
    fi
    flags="--remap-path-prefix=$root/="
    for dir in "$home"/registry/src/*/; do
        flags+=" --remap-path-prefix=$dir="
    done
    printf '%s' "$flags"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    satsuma_firmware_rustflags
else
    # Set by `cargo xtask` (from this file): kept as it is.
    if [ -z "${CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS:-}" ]; then
        CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS=$(satsuma_firmware_rustflags)
        export CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS
    fi
fi
