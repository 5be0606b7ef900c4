//! Puts `memory.x` where the linker finds it, passes the link scripts once
//! each, and turns the build-time settings (`SATSUMA_SFU`, `SATSUMA_ROOM`)
//! into constants, refusing bad ones here rather than on the board.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddrV4;
use std::path::PathBuf;

/// Where the SFU's intercom link listens when `SATSUMA_SFU` is not set.
const DEFAULT_SFU: &str = "192.168.1.10:8481";
/// The room joined when `SATSUMA_ROOM` is not set.
const DEFAULT_ROOM: &str = "front-door";
/// The longest room name the SFU takes (`satsuma_core::wire::RoomName`).
const ROOM_MAX: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    // cortex-m-rt's script, once. Built from firmware-example/ or below,
    // cargo already passes it from firmware-example/.cargo/config.toml;
    // from anywhere else (`--manifest-path` from the repository's root) it
    // does not, and a second copy would fail the link.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let has_link_x = flags
        .split('\u{1f}')
        .any(|flag| flag == "-Tlink.x" || flag == "link-arg=-Tlink.x");
    if !has_link_x {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }
    // defmt's script: where its interned strings go.
    // firmware-example/.cargo/config.toml passes `-Tdefmt.x` too (the QEMU
    // board logs with defmt); it is added here only when missing.
    let has_defmt_x = flags
        .split('\u{1f}')
        .any(|flag| flag == "-Tdefmt.x" || flag == "link-arg=-Tdefmt.x");
    if !has_defmt_x {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");

    println!("cargo:rerun-if-env-changed=SATSUMA_SFU");
    println!("cargo:rerun-if-env-changed=SATSUMA_ROOM");
    let sfu = env::var("SATSUMA_SFU").unwrap_or_else(|_| DEFAULT_SFU.to_owned());
    let sfu: SocketAddrV4 = sfu.parse().map_err(|_| {
        format!("SATSUMA_SFU={sfu:?} is not an IPv4 address and port, e.g. {DEFAULT_SFU}")
    })?;
    let room = env::var("SATSUMA_ROOM").unwrap_or_else(|_| DEFAULT_ROOM.to_owned());
    let room_ok = !room.is_empty()
        && room.len() <= ROOM_MAX
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !room_ok {
        return Err(format!(
            "SATSUMA_ROOM={room:?}: a room name is 1-{ROOM_MAX} bytes of ASCII letters, digits, '-', '_' and '.'"
        )
        .into());
    }

    let [a, b, c, d] = sfu.ip().octets();
    let mut settings = String::new();
    writeln!(
        settings,
        "/// The SFU's address (`SATSUMA_SFU` at build time)."
    )?;
    writeln!(
        settings,
        "pub const SFU_ADDRESS: embassy_net::Ipv4Address = embassy_net::Ipv4Address::new({a}, {b}, {c}, {d});"
    )?;
    writeln!(
        settings,
        "/// The SFU's intercom port (`SATSUMA_SFU` at build time)."
    )?;
    writeln!(settings, "pub const SFU_PORT: u16 = {};", sfu.port())?;
    writeln!(
        settings,
        "/// The room joined (`SATSUMA_ROOM` at build time)."
    )?;
    writeln!(settings, "pub const ROOM: &str = {room:?};")?;
    fs::write(out.join("settings.rs"), settings)?;
    Ok(())
}
