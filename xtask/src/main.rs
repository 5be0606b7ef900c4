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
/// Debian packages: (package, a command or file that proves it is there,
/// whether the desktop app needs it to build and run).
const APT_PACKAGES: &[(&str, &str, bool)] = &[
    // The Cortex-M4 board the firmware's tests run on, and the main job's
    // door intercom.
    ("qemu-system-arm", "qemu-system-arm", true),
    ("nodejs", "node", true),
    ("binutils", "readelf", false),
    // The desktop engine: codecs (found through pkg-config), the ALSA
    // headers cpal always compiles against on Linux, and a PulseAudio
    // server whose null sink is the audio device of the engine's tests.
    ("pkg-config", "pkg-config", true),
    ("libopus-dev", "/usr/include/opus/opus.h", true),
    ("libvpx-dev", "/usr/include/vpx/vpx_encoder.h", true),
    ("libasound2-dev", "/usr/include/alsa/asoundlib.h", true),
    ("pulseaudio", "pulseaudio", false),
    ("pulseaudio-utils", "pactl", false),
    // The desktop app (Tauri 2): WebKitGTK 4.1 and GTK 3 with their
    // headers, libxdo for the menu's shortcuts, npm for the UI's
    // TypeScript compiler; for its end-to-end test, a virtual display and
    // WebKit's WebDriver server.
    ("libwebkit2gtk-4.1-dev", "/usr/include/webkitgtk-4.1", true),
    ("libxdo-dev", "/usr/include/xdo.h", true),
    ("npm", "npm", true),
    ("xvfb", "Xvfb", false),
    ("webkit2gtk-driver", "WebKitWebDriver", false),
];

/// The WebDriver server for Tauri apps, pinned (2.x speaks to Tauri 2).
const TAURI_DRIVER: &str = "2.1.0";
/// The decoder of the intercom firmware's `defmt` log in QEMU.
const DEFMT_PRINT: &str = "1.2.0";

/// The UI's TypeScript compiler, from `shell/ui/package-lock.json`: there
/// when `npm ci` ran.
const TSC: &str = "shell/ui/node_modules/typescript/bin/tsc";

const USAGE: &str = "\
usage: cargo xtask <command>

  call     run the main job: the desktop app opens and hosts a call (its SFU
           in the app's process), for a second window or a headless member
           to join, and the door intercom boots in QEMU and joins it; with
           no display, a headless member hosts the same call in the terminal
  demo     the terminal demo: a call through an SFU embedded in the process
           (or `-- --sfu HTTP_ADDR --intercom ADDR` for a running one): two
           desktop members on WebRTC and a door intercom on its TCP link join,
           talk with SFrame-sealed audio and video, reconnect, change members,
           and the SFU's record of every payload is scanned for plaintext;
           every result it prints is checked, and a failed one fails it
  bundle   the desktop app as a Debian package (.deb), built in the dist
           profile (release, stripped)
  test     everything CI runs: fmt, clippy per package, the tests on x86_64,
           the same core tests on a Cortex-M4 in QEMU and on WebAssembly,
           no_std builds, the NUCLEO-F429ZI intercom's build, and a fuzz
           smoke run
  test-deep
           the model checker's deeper scenarios (minutes, not part of `test`):
           three members with every departure and a rejoin; four members
           with a crash and a restart
  bench [TABLE...]
           every benchmark table of the README (sframe, mls, mls-ab, load,
           soak, webrtc, engine; all when none is named), measured as the
           README says and written with date, commit and machine into
           bench/RESULTS.md and the README
  flash    the door intercom on a NUCLEO-F429ZI plugged in by its ST-LINK USB
           port: builds it in release (SATSUMA_SFU=IP:PORT and SATSUMA_ROOM=NAME
           at build time choose its SFU and room), flashes it with probe-rs
           (installed first if missing) and prints its defmt log until Ctrl-C;
           `-- ARGS` go to `probe-rs run` (e.g. `-- --probe VID:PID`)
  setup    only install what the other commands need
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("call") => setup(Needs::CALL).and_then(|()| app(&args[1..])),
        Some("demo") => setup(Needs::DEMO).and_then(|()| call(&args[1..])),
        Some("bundle") => setup(Needs::APP).and_then(|()| bundle()),
        Some("test") => setup(Needs::ALL).and_then(|()| test()),
        Some("test-deep") => setup(Needs::DEMO).and_then(|()| test_deep()),
        Some("bench") => setup(Needs::BENCH).and_then(|()| bench::bench(&args[1..])),
        Some("flash") => setup(Needs::FLASH).and_then(|()| flash(&args[1..])),
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
/// Whether cargo's incremental caches are off for the commands run (the
/// test command: a clean CI machine gains nothing from them, and they were
/// 3.7 GiB of its disk).
static NO_INCREMENTAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result {
    println!("\n$ {program} {}", args.join(" "));
    let mut command = Command::new(program);
    if NO_INCREMENTAL.load(std::sync::atomic::Ordering::Relaxed) {
        command.env("CARGO_INCREMENTAL", "0");
    }
    with_firmware_flags(&mut command);
    let status = ends_with_us(&mut command)
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

/// The rustflags every firmware build adds (source paths remapped, so that
/// panic locations do not carry the build machine's home directory), as
/// scripts/firmware-flags.sh prints them: the scripts source that file, and
/// their builds and this one's agree. Left unset, with a warning, where it
/// fails: the firmware still builds, a few KiB bigger.
fn with_firmware_flags(command: &mut Command) -> &mut Command {
    const VARIABLE: &str = "CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS";
    static FLAGS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let flags = FLAGS.get_or_init(|| {
        if let Ok(set) = env::var(VARIABLE) {
            return Some(set);
        }
        let script = root().join("scripts/firmware-flags.sh");
        match Command::new("bash").arg(&script).output() {
            Ok(out) if out.status.success() => {
                Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
            Ok(out) => {
                println!(
                    "warning: {} failed ({}): firmware source paths are not remapped",
                    script.display(),
                    out.status
                );
                None
            }
            Err(e) => {
                println!("warning: cannot run bash ({e}): firmware source paths are not remapped");
                None
            }
        }
    });
    if let Some(flags) = flags {
        command.env(VARIABLE, flags);
    }
    command
}

fn run(program: &str, args: &[&str]) -> Result {
    run_in(&root(), program, args)
}

/// Makes the process `command` starts end when this one does. Stopped by
/// SIGTERM (Ctrl-C reaches the whole process group, a `kill` does not), it
/// left the door's QEMU, its `defmt-print` and the headless host running.
fn ends_with_us(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    #[allow(unsafe_code)]
    // SAFETY: the hook runs in the child between fork and exec; it calls
    // only `prctl` and `getppid`, both async-signal-safe, and touches no
    // memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have ended before the line above took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::other("xtask ended while starting it"));
            }
            Ok(())
        })
    }
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

/// Which Debian packages a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apt {
    /// None: host code only, in pure Rust.
    None,
    /// What the desktop app needs to build and run.
    App,
    /// All of `APT_PACKAGES` (QEMU, Node.js, binutils, the engine's codecs
    /// and audio server, the app's WebKitGTK, Xvfb and WebDriver).
    All,
}

/// What a command needs installed before it runs.
#[derive(Debug, Clone, Copy)]
struct Needs {
    apt: Apt,
    /// The cross targets `rust-toolchain.toml` lists (Cortex-M4, wasm).
    targets: bool,
    /// cargo-fuzz, cargo-deny, tauri-driver and a nightly toolchain for
    /// the fuzzers.
    tools: bool,
    /// The UI's npm packages (`shell/ui/package-lock.json`).
    ui: bool,
    /// `defmt-print`, which decodes the QEMU intercom's log.
    firmware_log: bool,
}

impl Needs {
    /// The terminal demo: host code only.
    const DEMO: Self = Self {
        apt: Apt::None,
        targets: false,
        tools: false,
        ui: false,
        firmware_log: false,
    };
    /// The package: the desktop app.
    const APP: Self = Self {
        apt: Apt::App,
        targets: false,
        tools: false,
        ui: true,
        firmware_log: false,
    };
    /// The main job: the desktop app, and the door intercom's firmware
    /// for QEMU's Cortex-M4, with its log's decoder.
    const CALL: Self = Self {
        targets: true,
        firmware_log: true,
        ..Self::APP
    };
    /// The benchmarks: host code only.
    const BENCH: Self = Self::DEMO;
    /// Flashing the Nucleo: its Cortex-M4 target (probe-rs is the
    /// command's own to install, not the test set-up's: it builds for
    /// minutes).
    const FLASH: Self = Self {
        apt: Apt::None,
        targets: true,
        tools: false,
        ui: false,
        firmware_log: false,
    };
    /// The whole test suite, and `cargo xtask setup`.
    const ALL: Self = Self {
        apt: Apt::All,
        targets: true,
        tools: true,
        ui: true,
        firmware_log: true,
    };
}

fn setup(needs: Needs) -> Result {
    if needs.apt != Apt::None {
        apt_packages(needs.apt == Apt::All)?;
    }
    if needs.ui && !root().join(TSC).exists() {
        run_in(
            &root().join("shell/ui"),
            "npm",
            &["ci", "--no-audit", "--no-fund"],
        )?;
    }
    let toolchain = toolchain::Toolchain::read(&root().join("rust-toolchain.toml"))?;
    toolchain.install(needs.targets)?;
    if needs.firmware_log && !have("defmt-print") {
        run(
            "cargo",
            &[
                "install",
                "defmt-print",
                "--version",
                DEFMT_PRINT,
                "--locked",
            ],
        )?;
    }
    if needs.tools {
        for tool in ["cargo-fuzz", "cargo-deny"] {
            if !have(tool) {
                run("cargo", &["install", tool, "--locked"])?;
            }
        }
        // The app's WebDriver test drives WebKitWebDriver through it.
        if !have("tauri-driver") {
            run(
                "cargo",
                &[
                    "install",
                    "tauri-driver",
                    "--version",
                    TAURI_DRIVER,
                    "--locked",
                ],
            )?;
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

/// Installs the missing Debian packages: all of them, or those the app
/// needs.
fn apt_packages(all: bool) -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, _, for_app)| all || *for_app)
        .filter(|(_, proof, _)| {
            if proof.starts_with('/') {
                !Path::new(proof).exists()
            } else {
                !have(proof)
            }
        })
        .map(|(package, _, _)| *package)
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

/// The main job: the app, hosting its call; the same call hosted by a
/// headless member where no window can open. The door intercom joins
/// either where QEMU is installed.
fn app(extra: &[String]) -> Result {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !display {
        return headless_call(extra);
    }
    println!(
        "Opening Satsuma: it hosts the room `satsuma` on this computer (port 8480, or the \
         free port its window shows). Others join it from a second window:\n  \
         cargo run -p satsuma-shell -- --profile second --server 127.0.0.1:8480 --room satsuma --join\n\
         or from a terminal:\n  \
         cargo run -p satsuma-engine --bin satsuma-headless -- --server 127.0.0.1:8480 --room satsuma --name Bob\n\
         (from another machine, the address the window shows)."
    );
    let mut args = vec![
        "run",
        "--quiet",
        "-p",
        "satsuma-shell",
        "--bin",
        "satsuma",
        "--",
        "--server",
        "",
        "--room",
        "satsuma",
        "--join",
    ];
    // `cargo xtask call -- --tone 440`: the app's options after a `--`.
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
    args.extend(extra.iter().map(String::as_str));
    let door = door();
    let app = run("cargo", &args);
    if let Some(door) = door {
        door.stop();
    }
    app
}

/// The main job with no display: a headless member hosts the room
/// `satsuma` (its SFU in the process, on port 8480 and the intercom link
/// on 8481, as the app does), sending a tone and the test pattern, and the
/// door joins it. It stays until Ctrl-C, or `-- --seconds N`.
fn headless_call(extra: &[String]) -> Result {
    println!(
        "No display ($DISPLAY and $WAYLAND_DISPLAY are unset), so the app cannot open a \
         window: the same call runs headless in this terminal instead. A headless member \
         hosts the room `satsuma` on this computer (port 8480; the intercom link on 8481) \
         and prints what happens as JSON lines; Ctrl-C leaves. Others join it with:\n  \
         cargo run -p satsuma-engine --bin satsuma-headless -- --server 127.0.0.1:8480 --room satsuma --name Bob\n\
         (`cargo xtask demo` is the scripted tour of the protocol instead.)"
    );
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
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
    let headless = target_dir().join("debug/satsuma-headless");
    let headless = headless
        .to_str()
        .ok_or("the target directory's path is not UTF-8")?;
    let name = env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u != "root")
        .unwrap_or_else(|| "Host".to_owned());
    let door = door();
    let mut args = vec![
        "--host",
        "0.0.0.0:8480",
        "--room",
        "satsuma",
        "--name",
        &name,
        // Its identity and trust record kept between runs (in
        // ~/.local/share/satsuma/headless/), as the app keeps its own.
        "--profile",
        "headless",
        "--stats-ms",
        "5000",
    ];
    args.extend(extra.iter().map(String::as_str));
    let call = run(headless, &args);
    if let Some(door) = door {
        door.stop();
    }
    call
}

/// Creates `path` if missing, and makes it readable and writable by this
/// user alone.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The door's QEMU, and the `defmt-print` decoding its log.
struct Door {
    qemu: std::process::Child,
    log: Option<std::process::Child>,
}

impl Door {
    fn stop(self) {
        for mut child in std::iter::once(self.qemu).chain(self.log) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The door: the intercom firmware on QEMU's Cortex-M4, joining the app's
/// room through its intercom link (port 8481, beside the app's 8480) and
/// sending a 500 Hz tone. It retries until the app listens. `None`, with
/// the reason printed, where QEMU is missing or the firmware does not
/// build.
fn door() -> Option<Door> {
    if !have("qemu-system-arm") {
        println!(
            "No qemu-system-arm: the call has no door intercom (`apt-get install qemu-system-arm`)."
        );
        return None;
    }
    let firmware = root().join("firmware-example");
    let built = run_in(
        &firmware,
        "cargo",
        &[
            "build",
            "--quiet",
            "--release",
            "--no-default-features",
            "--bin",
            "intercom",
        ],
    );
    if let Err(e) = built {
        println!("The door intercom's firmware did not build ({e}): the call has no door.");
        return None;
    }
    let elf = firmware.join("target/thumbv7em-none-eabihf/release/intercom");
    // Its flash store, kept between runs: the door comes back as the same
    // member, so the app knows its key rather than warning of a new one.
    let state = target_dir().join("door.state");
    // It holds the door's private keys: readable by this user alone
    // (QEMU truncates it in place, keeping the mode).
    if let Err(e) = private_file(&state) {
        println!(
            "The door's store {} cannot be made private ({e}).",
            state.display()
        );
    }
    let semihosting = format!(
        "enable=on,target=native,arg=intercom,arg=8481,arg=satsuma,arg=500,arg=0,arg=pcmu,arg={}",
        state.display()
    );
    let decoder = have("defmt-print");
    if !decoder {
        println!("No defmt-print (`cargo xtask setup` installs it): the door's log is not shown.");
    }
    let door = ends_with_us(&mut Command::new("qemu-system-arm"))
        .args([
            "-cpu",
            "cortex-m4",
            "-machine",
            "mps2-an386",
            "-nographic",
            "-nic",
            "user,model=lan9118",
            "-semihosting-config",
            &semihosting,
            "-kernel",
        ])
        .arg(&elf)
        .stdin(std::process::Stdio::null())
        // Its log: defmt frames on QEMU's standard error, for defmt-print.
        .stderr(if decoder {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .spawn();
    match door {
        Ok(mut qemu) => {
            let log = qemu.stderr.take().and_then(|frames| {
                ends_with_us(&mut Command::new("defmt-print"))
                    .args(["-e"])
                    .arg(&elf)
                    .args(["--log-format", "door {t}s {s}", "stdin"])
                    .stdin(frames)
                    .spawn()
                    .map_err(|e| {
                        println!("defmt-print did not start ({e}): the door's log is not shown.")
                    })
                    .ok()
            });
            println!(
                "The door intercom boots on QEMU's Cortex-M4 (mps2-an386) and joins `satsuma` \
                 through the app's intercom link on port 8481: its lines start with `door`."
            );
            Some(Door { qemu, log })
        }
        Err(e) => {
            println!("QEMU did not start ({e}): the call has no door.");
            None
        }
    }
}

/// The Nucleo board's crate: a workspace of its own, built from its
/// directory so that its `.cargo/config.toml` (target, runner) applies.
const NUCLEO: &str = "firmware-example/boards/nucleo-f429zi";

/// The chip, as probe-rs names it.
const NUCLEO_CHIP: &str = "STM32F429ZITx";

/// The intercom on a NUCLEO-F429ZI: built in release, then flashed, run
/// and its defmt log printed by `probe-rs run`, which fails with its own
/// message ("No probe was found") when no board is plugged in.
fn flash(extra: &[String]) -> Result {
    if !have("probe-rs") {
        println!(
            "probe-rs is not installed: installing it (a few minutes, once) with
               cargo install probe-rs-tools --locked"
        );
        run("cargo", &["install", "probe-rs-tools", "--locked"]).map_err(|e| {
            format!(
                "{e}
install probe-rs yourself, then run `cargo xtask flash` again:
                   cargo install probe-rs-tools --locked"
            )
        })?;
    }
    let elf = build_nucleo()?;
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
    let mut args = vec!["run", "--chip", NUCLEO_CHIP];
    args.extend(extra.iter().map(String::as_str));
    args.push(&elf);
    run_in(&root().join(NUCLEO), "probe-rs", &args).map_err(|e| {
        format!(
            "{e}\nIs the board plugged in by its ST-LINK USB port? \
             `probe-rs list` shows the probes it sees."
        )
    })
}

/// Builds the Nucleo intercom in release; the ELF's path, as cargo reports
/// it (so `CARGO_TARGET_DIR` is honoured).
fn build_nucleo() -> Result<String> {
    let dir = root().join(NUCLEO);
    let args = [
        "build",
        "--release",
        "--bin",
        "intercom",
        "--message-format=json-render-diagnostics",
    ];
    println!(
        "
$ cargo {}",
        args.join(" ")
    );
    let output = with_firmware_flags(&mut Command::new("cargo"))
        .args(args)
        .current_dir(&dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the Nucleo intercom did not build ({})",
            output.status
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "intercom")
        .find_map(|m| m["executable"].as_str().map(str::to_owned))
        .ok_or_else(|| "cargo built no `intercom` executable".to_owned())
}

/// The app as a .deb, through the Tauri CLI from the UI's npm packages.
fn bundle() -> Result {
    run_in(
        &root().join("shell"),
        "node",
        &[
            "ui/node_modules/@tauri-apps/cli/tauri.js",
            "build",
            "--bundles",
            "deb",
            "--",
            "--profile",
            "dist",
        ],
    )?;
    let dir = target_dir().join("dist/bundle/deb");
    let debs: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    for deb in &debs {
        let size = std::fs::metadata(deb).map_or(0, |m| m.len());
        println!(
            "{}: {:.1} MiB",
            deb.display(),
            f64::from(u32::try_from(size / 1024).unwrap_or(u32::MAX)) / 1024.0
        );
    }
    if debs.is_empty() {
        return Err(format!("no .deb in {}", dir.display()));
    }
    Ok(())
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
    NO_INCREMENTAL.store(true, std::sync::atomic::Ordering::Relaxed);
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
        // Every target, binaries and examples included, in one build with
        // the features the tests unify; the demo and the load tool below
        // run what it built instead of asking cargo for another feature
        // set (which rebuilt PulseAudio's bindings, among others).
        run(
            "cargo",
            &["build", "--quiet", "--workspace", "--all-targets"],
        )?;
        run("cargo", &["test", "--workspace", "--all-targets"])?;
        run("cargo", &["test", "--workspace", "--doc"])
    })?;
    step(
        "the committer's model checker, exhaustive, optimised (tests/model)",
        &|| run("cargo", CHECKER),
    )?;
    let built = |path: &[&str]| -> Result<String> {
        let file = path
            .iter()
            .fold(target_dir().join("debug"), |dir, part| dir.join(part));
        if file.is_file() {
            Ok(file.display().to_string())
        } else {
            Err(format!("{} was not built by the test step", file.display()))
        }
    };
    step(
        "the terminal demo: a call through the embedded SFU, joined by a satsuma-headless guest",
        &|| {
            let guest = built(&["satsuma-headless"])?;
            run(&built(&["examples", "call"])?, &["--guest", &guest])
        },
    )?;
    step(
        "the SFU load tool, a short smoke run (not a measurement)",
        &|| {
            // The tool starts the `satsuma-sfu` beside it.
            built(&["satsuma-sfu"])?;
            run(&built(&["satsuma-load"])?, &["--quick"])
        },
    )?;
    step("core tests on a Cortex-M4 in QEMU (mps2-an386)", &|| {
        run("bash", &["scripts/run-cortex-m-tests.sh"])
    })?;
    step(
        "intercom firmware: MLS round trip on a Cortex-M4 in QEMU",
        &|| run("bash", &["scripts/run-firmware-qemu.sh"]),
    )?;
    step(
        "the firmware's network: LAN9118 + embassy-net on the Cortex-M4 in QEMU, DHCP, TCP and UDP echo",
        &|| run("bash", &["scripts/run-net-qemu.sh"]),
    )?;
    step(
        "the intercom firmware in a real call: QEMU, the SFU and a satsuma-headless desktop",
        &|| run("bash", &["scripts/run-intercom-qemu.sh"]),
    )?;
    step(
        "the intercom for NUCLEO-F429ZI builds (flashing needs the board)",
        &|| run("bash", &["scripts/build-nucleo.sh"]),
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
