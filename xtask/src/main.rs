//! `cargo xtask …`: Satsuma's set-up, test and demo commands.
//!
//! Every command installs what it needs first: Debian packages when run as
//! root (otherwise it prints the exact `apt-get` line and stops), the Rust
//! targets named in `rust-toolchain.toml`, and cargo-fuzz.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod toolchain;

/// Debian packages, each with what proves it is there: a command, or an
/// absolute path for a library's header.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "qemu-system-arm"),
    ("nodejs", "node"),
    ("binutils", "readelf"),
    // The desktop engine: codecs (found through pkg-config), the ALSA
    // headers cpal always compiles against on Linux, and a PulseAudio
    // server whose null sink is the audio device of the engine's tests.
    ("pkg-config", "pkg-config"),
    ("libopus-dev", "/usr/include/opus/opus.h"),
    ("libvpx-dev", "/usr/include/vpx/vpx_encoder.h"),
    ("libasound2-dev", "/usr/include/alsa/asoundlib.h"),
    ("pulseaudio", "pulseaudio"),
    ("pulseaudio-utils", "pactl"),
];

const USAGE: &str = "\
usage: cargo xtask <command>

  call     run the main job: a call through an SFU embedded in the process
           (or `-- --sfu HTTP_ADDR --intercom ADDR` for a running one): two
           desktop members on WebRTC and a door intercom on its TCP link join,
           talk with SFrame-sealed audio and video, reconnect, change members,
           and the SFU's record of every payload is scanned for plaintext;
           every result it prints is checked, and a failed one fails it
  test     everything CI runs: fmt, clippy per package, the tests on x86_64,
           the same core tests on a Cortex-M4 in QEMU and on WebAssembly,
           no_std builds, and a fuzz smoke run
  test-deep
           the model checker's deeper scenarios (minutes, not part of `test`):
           three members with every departure and a rejoin; four members
           with a crash and a restart
  bench [TABLE...]
           every benchmark table of the README (sframe, mls, mls-ab, load,
           soak, webrtc, engine; all when none is named), measured as the
           README says and written with date, commit and machine into
           bench/RESULTS.md and the README
  setup    only install what the other commands need
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("call" | "demo") => setup(Needs::CALL).and_then(|()| call(&args[1..])),
        Some("test") => setup(Needs::ALL).and_then(|()| test()),
        Some("test-deep") => setup(Needs::CALL).and_then(|()| test_deep()),
        Some("bench") => setup(Needs::BENCH).and_then(|()| bench::bench(&args[1..])),
        Some("setup") => setup(Needs::ALL),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    // xtask/ sits in the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs a command in `dir`, echoing it, and fails on a non-zero exit.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result {
    println!("\n$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn run(program: &str, args: &[&str]) -> Result {
    run_in(&root(), program, args)
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What a command needs installed before it runs.
#[derive(Debug, Clone, Copy)]
struct Needs {
    /// The Debian packages of `APT_PACKAGES` (QEMU, Node.js, binutils, the
    /// engine's codecs and audio server).
    apt: bool,
    /// The cross targets `rust-toolchain.toml` lists (Cortex-M4, wasm).
    targets: bool,
    /// cargo-fuzz, cargo-deny and a nightly toolchain for the fuzzers.
    tools: bool,
}

impl Needs {
    /// The main job: a call on this machine, host code only.
    const CALL: Self = Self {
        apt: false,
        targets: false,
        tools: false,
    };
    /// The benchmarks: host code only.
    const BENCH: Self = Self::CALL;
    /// The whole test suite, and `cargo xtask setup`.
    const ALL: Self = Self {
        apt: true,
        targets: true,
        tools: true,
    };
}

fn setup(needs: Needs) -> Result {
    if needs.apt {
        apt_packages()?;
    }
    let toolchain = toolchain::Toolchain::read(&root().join("rust-toolchain.toml"))?;
    toolchain.install(needs.targets)?;
    if needs.tools {
        for tool in ["cargo-fuzz", "cargo-deny"] {
            if !have(tool) {
                run("cargo", &["install", tool, "--locked"])?;
            }
        }
        let nightly = toolchain::rustup()
            .args(["run", "nightly", "rustc", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !nightly {
            run(
                "rustup",
                &["toolchain", "install", "nightly", "--profile", "minimal"],
            )?;
        }
    }
    Ok(())
}

fn apt_packages() -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, proof)| {
            if proof.starts_with('/') {
                !Path::new(proof).exists()
            } else {
                !have(proof)
            }
        })
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        return Err(format!(
            "missing Debian packages; run as root:\n  sudo apt-get update && sudo {line}"
        ));
    }
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    run("apt-get", &args)
}

/// Where cargo builds.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn call(extra: &[String]) -> Result {
    let mut args = vec![
        "run",
        "--quiet",
        "-p",
        "satsuma-client",
        "--example",
        "call",
        "--",
    ];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}

/// The checker's scenarios too deep for every run (their state counts are
/// in docs/committer.md).
fn test_deep() -> Result {
    let mut args = CHECKER.to_vec();
    args.extend([
        "--",
        "--ignored",
        "deep_",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    run("cargo", &args)
}

/// The committer's model checker, optimised (unoptimised it is 30-50
/// times slower, and a debug `cargo test` skips it).
const CHECKER: &[&str] = &[
    "test",
    "--release",
    "-p",
    "satsuma-model",
    "--test",
    "checker",
];

/// Workspace members, each linted on its own so that features one package
/// turns on (std in the test crates) cannot hide a problem in another.
const PACKAGES: &[&str] = &[
    "satsuma-core",
    "satsuma-client",
    "satsuma-sfu",
    "satsuma-load",
    "satsuma-shell",
    "satsuma-engine",
    "satsuma-bench",
    "satsuma-tests",
    "satsuma-sim",
    "satsuma-portable-tests",
    "satsuma-wasm-tests",
    "satsuma-model",
    "xtask",
];

fn test() -> Result {
    let started = Instant::now();
    let step = |name: &str, f: &dyn Fn() -> Result| -> Result {
        let t = Instant::now();
        println!("\n=== {name}");
        f()?;
        println!("=== {name}: ok in {:.0?}", t.elapsed());
        Ok(())
    };

    step("format", &|| {
        run("cargo", &["fmt", "--all", "--check"])?;
        run_in(
            &root().join("firmware-example"),
            "cargo",
            &["fmt", "--check"],
        )?;
        run_in(&root().join("fuzz"), "cargo", &["fmt", "--check"])
    })?;
    step("dependency licenses, bans and sources (deny.toml)", &|| {
        run("cargo", &["deny", "check", "licenses", "bans", "sources"])
    })?;
    step("clippy, per package", &|| {
        for package in PACKAGES {
            run(
                "cargo",
                &[
                    "clippy",
                    "--quiet",
                    "-p",
                    package,
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?;
        }
        // The firmware (its QEMU board runs the portable suite) is its own
        // workspace, for thumbv7em-none-eabihf.
        run_in(
            &root().join("firmware-example"),
            "cargo",
            &["clippy", "--quiet", "--release", "--", "-D", "warnings"],
        )
    })?;
    step(
        "core builds no_std for the Cortex-M4 and WebAssembly",
        &|| {
            for target in ["thumbv7em-none-eabihf", "wasm32-unknown-unknown"] {
                run(
                    "cargo",
                    &[
                        "clippy",
                        "--quiet",
                        "-p",
                        "satsuma-core",
                        "--no-default-features",
                        "--target",
                        target,
                        "--",
                        "-D",
                        "warnings",
                    ],
                )?;
                run(
                    "cargo",
                    &[
                        "build",
                        "--quiet",
                        "-p",
                        "satsuma-core",
                        "--no-default-features",
                        "--features",
                        "defmt",
                        "--target",
                        target,
                    ],
                )?;
            }
            Ok(())
        },
    )?;
    step("tests on x86_64", &|| {
        run("cargo", &["test", "--workspace", "--all-targets"])?;
        run("cargo", &["test", "--workspace", "--doc"])
    })?;
    step(
        "the committer's model checker, exhaustive, optimised (tests/model)",
        &|| run("cargo", CHECKER),
    )?;
    step(
        "the main job: a call through the embedded SFU, joined by a satsuma-headless guest",
        &|| {
            run(
                "cargo",
                &[
                    "build",
                    "--quiet",
                    "-p",
                    "satsuma-engine",
                    "--bin",
                    "satsuma-headless",
                ],
            )?;
            let guest = target_dir().join("debug").join("satsuma-headless");
            call(&["--guest".to_owned(), guest.display().to_string()])
        },
    )?;
    step(
        "the SFU load tool, a short smoke run (not a measurement)",
        &|| {
            run(
                "cargo",
                &["build", "--quiet", "-p", "satsuma-sfu", "--bins"],
            )?;
            run(
                "cargo",
                &["run", "--quiet", "-p", "satsuma-load", "--", "--quick"],
            )
        },
    )?;
    step("core tests on a Cortex-M4 in QEMU (mps2-an386)", &|| {
        run("bash", &["scripts/run-cortex-m-tests.sh"])
    })?;
    step(
        "intercom firmware: MLS round trip on a Cortex-M4 in QEMU",
        &|| run("bash", &["scripts/run-firmware-qemu.sh"]),
    )?;
    step("core tests on WebAssembly", &|| {
        run("bash", &["scripts/run-wasm-tests.sh"])
    })?;
    step("fuzz smoke run", &|| {
        run("bash", &["scripts/fuzz-smoke.sh", "20"])
    })?;
    println!("\nall checks passed in {:.0?}", started.elapsed());
    Ok(())
}
