//! The desktop app end to end: the real window (under Xvfb), driven
//! through WebDriver (`tauri-driver` and WebKitWebDriver), hosts a call
//! that headless members (the engine, real WebRTC and codecs) join.
//!
//! It checks what a person would see and hear: moving pictures in the
//! others' tiles, the same safety number as theirs, silence at a peer when
//! the app mutes, a new member in the list, the warning when a known name
//! comes back with a new key, and the join screen again after leaving.
//! Screenshots go to the folder it prints.

// Everything unwrapped here comes from the processes and window this test
// started and from its own scripts' JSON: a failure is the test failing,
// never outside input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use satsuma_engine::events::{CallEvent, RemoteStats};
use satsuma_engine::{AudioInput, Call, CallConfig, Identity, VideoInput};
use serde_json::{Value, json};
use support::webdriver::{Result, Session, request};

const LONG: Duration = Duration::from_secs(90);

/// A child process, in a process group of its own, killed with its
/// whole group when the test ends, however it ends (tauri-driver leaves
/// its WebKitWebDriver running when it is killed alone).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn need(program: &str) -> Result {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        Ok(())
    } else {
        Err(format!(
            "{program} is not installed: run `cargo xtask setup`"
        ))
    }
}

/// A virtual display: Xvfb picks a free number and prints it.
fn xvfb() -> Result<(Killed, String)> {
    let mut child = Command::new("Xvfb")
        .process_group(0)
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("Xvfb: {e}"))?;
    let mut out = child.stdout.take().ok_or("Xvfb: no stdout")?;
    let mut number = String::new();
    let mut byte = [0_u8];
    while std::io::Read::read(&mut out, &mut byte).map_err(|e| e.to_string())? == 1 {
        if byte[0] == b'\n' {
            break;
        }
        number.push(char::from(byte[0]));
    }
    if number.trim().is_empty() {
        return Err("Xvfb did not start".to_owned());
    }
    Ok((Killed(child), format!(":{}", number.trim())))
}

fn tauri_driver(display: &str) -> Result<(Killed, SocketAddr)> {
    let port = free_port();
    let native = free_port();
    let child = Command::new("tauri-driver")
        .process_group(0)
        .args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        // The app's own log comes through here: kept for a failing run.
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("tauri-driver: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while request(addr, "GET", "/status", None).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err("tauri-driver did not answer within 30 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((Killed(child), addr))
}

/// What a headless member saw.
#[derive(Debug, Default)]
struct Seen {
    epoch: u64,
    safety_number: String,
    received: Vec<RemoteStats>,
}

/// A headless member of the call.
struct Headless {
    call: Call,
    seen: Arc<Mutex<Seen>>,
}

impl Headless {
    async fn join(server: SocketAddr, name: &str, identity: Identity, hz: f32) -> Self {
        let mut config = CallConfig::new(server, "kitchen", name);
        config.identity = identity;
        config.device = "headless".to_owned();
        config.audio = AudioInput::Tone(hz);
        config.video = VideoInput::Pattern;
        config.stats_every = Duration::from_millis(500);
        let (call, mut events) = Call::join(config).await.expect("a headless member joins");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let into = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let mut s = into.lock().unwrap();
                match event {
                    CallEvent::Epoch {
                        epoch,
                        safety_number,
                        ..
                    } => {
                        s.epoch = epoch;
                        s.safety_number = safety_number;
                    }
                    CallEvent::Media { received, .. } => s.received = received,
                    _ => {}
                }
            }
        });
        Self { call, seen }
    }

    fn safety(&self) -> (u64, String) {
        let s = self.seen.lock().unwrap();
        (s.epoch, s.safety_number.clone())
    }

    /// The pictures decoded from `name`.
    fn pictures_from(&self, name: &str) -> Option<u64> {
        let s = self.seen.lock().unwrap();
        s.received
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| r.video.decoded)
    }

    /// The tone and level heard from `name`.
    fn hears(&self, name: &str) -> Option<(Option<f32>, f32)> {
        let s = self.seen.lock().unwrap();
        s.received
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| (r.audio.tone_hz, r.audio.level_dbfs))
    }
}

fn wait(what: &str, mut ok: impl FnMut() -> bool) -> Result {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > LONG {
            return Err(format!("timed out after {LONG:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Per tile: its name, and the mean and spread of the green channel of
/// its canvas, with a checksum of the pixels (read back from WebGL).
const TILES: &str = r"
const out = [];
for (const tile of document.querySelectorAll('#grid .tile:not(.self)')) {
  const canvas = tile.querySelector('canvas');
  const gl = canvas.getContext('webgl2');
  if (!gl || !(Number(tile.dataset.pictures) > 0)) { out.push({name: tile.dataset.name || '', drawn: false}); continue; }
  const w = canvas.width, h = canvas.height;
  const px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  let sum = 0, sq = 0, hash = 0;
  for (let i = 0; i < px.length; i += 4 * 7) {
    const g = px[i + 1];
    sum += g; sq += g * g;
    hash = (hash * 31 + px[i] + 3 * g + 7 * px[i + 2]) >>> 0;
  }
  const n = Math.ceil(px.length / 28);
  const mean = sum / n;
  out.push({name: tile.dataset.name || '', drawn: true, mean, spread: Math.sqrt(Math.max(0, sq / n - mean * mean)), hash,
            failing: tile.dataset.failing === 'true', pictures: Number(tile.dataset.pictures), conn: tile.dataset.conn,
            video: JSON.parse(tile.dataset.video || 'null')});
}
return out;
";

/// The spread of the green channel of your own tile's self-view, when it
/// shows a picture.
const SELF_VIEW: &str = r"
const tile = document.getElementById('self-tile');
const canvas = tile && tile.querySelector('canvas');
if (!canvas || canvas.hidden || !(Number(tile.dataset.pictures) > 0)) return false;
const gl = canvas.getContext('webgl2');
const px = new Uint8Array(canvas.width * canvas.height * 4);
gl.readPixels(0, 0, canvas.width, canvas.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
let sum = 0, sq = 0, n = 0;
for (let i = 1; i < px.length; i += 4 * 7) { sum += px[i]; sq += px[i] * px[i]; n += 1; }
const mean = sum / n;
return Math.sqrt(Math.max(0, sq / n - mean * mean));
";

fn tile<'a>(tiles: &'a Value, name: &str) -> Option<&'a Value> {
    tiles
        .as_array()?
        .iter()
        .find(|t| t["name"] == name && t["drawn"] == true)
}

fn visible(session: &Session, id: &str) -> Result<bool> {
    Ok(session.eval(
        "const e = document.getElementById(arguments[0]); return !!e && !e.hidden;",
        &[json!(id)],
    )? == true)
}

#[test]
fn the_app_hosts_a_call_that_headless_members_join() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn run() -> Result {
    for program in ["Xvfb", "tauri-driver", "WebKitWebDriver"] {
        need(program)?;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("app-screenshots");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    println!("screenshots: {}", shots.display());
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_xvfb, display) = xvfb()?;
    let (_driver, driver) = tauri_driver(&display)?;
    let app = Path::new(env!("CARGO_BIN_EXE_satsuma"));
    let args: Vec<String> = [
        "--data-dir",
        &home.path().join("ada").display().to_string(),
        "--tone",
        "440",
        "--no-speaker",
        "--host",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let session = Session::start(driver, app, &args)?;
    let outcome = drive(&session, &shots, home.path());
    if let Err(e) = &outcome {
        // What the window showed when it failed.
        let _ = session.screenshot(&shots.join("failure.png"));
        let text = session.eval("return document.body.innerText;", &[]);
        let _ = session.end();
        return Err(format!("{e}\nthe window said: {text:?}"));
    }
    let _ = session.end();
    outcome
}

fn drive(app: &Session, shots: &Path, home: &Path) -> Result {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let started = Instant::now();
    app.wait_for(
        "the join screen",
        LONG,
        "return document.body.dataset.ready === 'true';",
        &[],
    )?;

    // A bad server is refused with what to do, and the window stays.
    println!(
        "{:>5.1} s  A bad server is refused with what to do, and the window stays",
        started.elapsed().as_secs_f64()
    );
    app.type_into("#name", "Ada")?;
    app.type_into("#room", "kitchen")?;
    app.type_into("#server", "no such host!")?;
    app.click("#join-button")?;
    let hint = app.wait_for(
        "the bad-server error",
        LONG,
        "const e = document.getElementById('join-error'); return !e.hidden && document.getElementById('join-error-hint').textContent;",
        &[],
    )?;
    assert!(
        hint.as_str().unwrap_or_default().contains("host:port"),
        "{hint}"
    );
    app.screenshot(&shots.join("join-error.png"))?;

    // Nothing listens on the port: unreachable, and what to do.
    println!(
        "{:>5.1} s  Nothing listens on the port: unreachable, and what to do",
        started.elapsed().as_secs_f64()
    );
    app.type_into("#server", "127.0.0.1:1")?;
    app.click("#join-button")?;
    app.wait_for(
        "the unreachable-server error",
        LONG,
        "const e = document.getElementById('join-error'); return !e.hidden && document.getElementById('join-error-message').textContent.startsWith('Cannot reach the server at 127.0.0.1:1');",
        &[],
    )?;

    // A full room (a server whose rooms take one member, who is there).
    println!(
        "{:>5.1} s  A full room (a server whose rooms take one member, who is there)",
        started.elapsed().as_secs_f64()
    );
    let full = runtime.block_on(satsuma_sfu::start(satsuma_sfu::Config {
        http: ([127, 0, 0, 1], 0).into(),
        intercom: None,
        limits: satsuma_sfu::config::Limits {
            max_room_connections: 1,
            ..Default::default()
        },
        ..Default::default()
    }));
    let full = full.map_err(|e| format!("the one-member server: {e}"))?;
    let zed = runtime.block_on(Headless::join(
        full.http_addr(),
        "Zed",
        Identity::Ephemeral,
        220.0,
    ));
    wait("Zed in the one-member room", || zed.safety().1.len() > 10)?;
    app.type_into("#server", &full.http_addr().to_string())?;
    app.click("#join-button")?;
    app.wait_for(
        "the room-full error",
        LONG,
        "const e = document.getElementById('join-error'); return !e.hidden && document.getElementById('join-screen').hidden === false && document.getElementById('join-error-message').textContent === 'The room is full.';",
        &[],
    )?;
    runtime.block_on(async {
        let _ = zed.call.leave().await;
        full.shutdown().await;
    });

    // Hosting: the server left empty.
    println!(
        "{:>5.1} s  Hosting: the server left empty",
        started.elapsed().as_secs_f64()
    );
    app.type_into("#server", "")?;
    app.screenshot(&shots.join("join.png"))?;
    app.click("#join-button")?;
    let local = app.wait_for(
        "the call screen with the hosted address",
        LONG,
        "return !document.getElementById('call-screen').hidden && document.getElementById('host-addr').dataset.local;",
        &[],
    )?;
    let server: SocketAddr = local
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("hosted address {local}"))?;

    let bob = runtime.block_on(Headless::join(
        server,
        "Bob",
        Identity::File(home.join("bob.state")),
        660.0,
    ));
    let carol = runtime.block_on(Headless::join(
        server,
        "Carol",
        Identity::File(home.join("carol.state")),
        880.0,
    ));

    // The others' tiles show moving, non-blank pictures.
    println!(
        "{:>5.1} s  The others' tiles show moving, non-blank pictures",
        started.elapsed().as_secs_f64()
    );
    let first = app.wait_for(
        "Bob's and Carol's pictures",
        LONG,
        &format!("const t = (() => {{ {TILES} }})(); return t.filter(x => x.drawn && (x.name === 'Bob' || x.name === 'Carol')).length === 2 && t;"),
        &[],
    )?;
    // Moving: three different pictures in a row in each tile. However
    // long that takes (a loaded machine drops pictures, and a decoder
    // that fell behind waits for a key frame); a tile that freezes never
    // gets there.
    let mut seen: Vec<(&str, Vec<Value>)> = ["Bob", "Carol"]
        .iter()
        .map(|name| (*name, vec![tile(&first, name).unwrap()["hash"].clone()]))
        .collect();
    let start = Instant::now();
    let mut last = first.clone();
    while seen.iter().any(|(_, hashes)| hashes.len() < 3) {
        if start.elapsed() > LONG {
            return Err(format!(
                "the pictures did not move within {LONG:?}: hashes seen {seen:?}, the tiles last: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
        last = app.eval(TILES, &[])?;
        for (name, hashes) in &mut seen {
            let t = tile(&last, name).ok_or(format!("{name}'s tile went: {last}"))?;
            assert!(
                t["spread"].as_f64().unwrap_or(0.0) > 20.0,
                "{name}'s tile is blank: {t}"
            );
            assert_eq!(t["failing"], false, "{name}'s frames fail to decrypt: {t}");
            if hashes.last() != Some(&t["hash"]) {
                hashes.push(t["hash"].clone());
            }
        }
    }
    println!(
        "        moving after {:.1} s ({})",
        start.elapsed().as_secs_f64(),
        seen.iter()
            .map(|(name, _)| {
                let count = |tiles: &Value| tile(tiles, name).unwrap()["pictures"].as_u64();
                format!(
                    "{name}: pictures {:?} then {:?}",
                    count(&first),
                    count(&last)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The safety number on screen is the headless members'.
    println!(
        "{:>5.1} s  The safety number on screen is the headless members'",
        started.elapsed().as_secs_f64()
    );
    wait("the same safety number on all three screens", || {
        let shown = app
            .eval("return [...document.querySelectorAll('#safety-number span')].map(s => s.textContent).join(' ') + '|' + document.getElementById('epoch').textContent;", &[])
            .unwrap_or_default();
        let (epoch, number) = bob.safety();
        !number.is_empty()
            && carol.safety() == (epoch, number.clone())
            && shown.as_str() == Some(&format!("{number}|{epoch}"))
    })?;
    app.screenshot(&shots.join("call.png"))?;
    app.press("e")?;
    app.wait_for(
        "the encryption panel",
        LONG,
        "return !document.getElementById('panel').hidden;",
        &[],
    )?;
    app.screenshot(&shots.join("encryption.png"))?;

    // Mute silences the app's audio at a peer.
    println!(
        "{:>5.1} s  Mute silences the app's audio at a peer",
        started.elapsed().as_secs_f64()
    );
    wait("Ada's 440 Hz tone at Bob", || {
        bob.hears("Ada")
            .is_some_and(|(hz, db)| db > -40.0 && hz.is_some_and(|hz| (hz - 440.0).abs() < 30.0))
    })?;
    app.click("#mute")?;
    wait("silence from Ada at Bob after mute", || {
        bob.hears("Ada")
            .is_some_and(|(hz, db)| hz.is_none() && db < -60.0)
    })?;
    if !visible(app, "call-screen")? {
        return Err("the call screen went away".to_owned());
    }

    // Your own tile shows what you send (the test pattern: no camera).
    println!(
        "{:>5.1} s  Your own tile shows what you send",
        started.elapsed().as_secs_f64()
    );
    let spread = app.wait_for("the self-view", LONG, SELF_VIEW, &[])?;
    assert!(
        spread.as_f64().unwrap_or(0.0) > 20.0,
        "the self-view is blank: {spread}"
    );

    // Camera off: Bob's pictures from Ada stop.
    println!(
        "{:>5.1} s  Camera off: Bob's pictures from Ada stop",
        started.elapsed().as_secs_f64()
    );
    wait("Ada's pictures at Bob", || {
        bob.pictures_from("Ada").is_some_and(|n| n > 0)
    })?;
    app.press("v")?;
    let mut last = None;
    wait("Ada's pictures to stop at Bob after camera off", || {
        std::thread::sleep(Duration::from_millis(1_000));
        let now = bob.pictures_from("Ada");
        std::mem::replace(&mut last, now) == now
    })?;

    app.wait_for(
        "the self-view replaced by the initial",
        LONG,
        "const t = document.getElementById('self-tile'); return t.querySelector('canvas').hidden && !t.querySelector('.initial').hidden;",
        &[],
    )?;

    // The device pickers open (this machine has no sound server: the
    println!(
        "{:>5.1} s  The device pickers open",
        started.elapsed().as_secs_f64()
    );
    // panel says so instead of listing nothing).
    app.press("d")?;
    app.wait_for(
        "the devices panel with its pickers and a note",
        LONG,
        "return !document.getElementById('devices-panel').hidden && document.querySelectorAll('#pick-microphone option, #pick-speaker option, #pick-camera option').length >= 3 && document.getElementById('devices-note').textContent.length > 0;",
        &[],
    )?;
    app.press("d")?;

    // A third identity shows in the member list, as new.
    println!(
        "{:>5.1} s  A third identity shows in the member list, as new",
        started.elapsed().as_secs_f64()
    );
    let dave = runtime.block_on(Headless::join(server, "Dave", Identity::Ephemeral, 330.0));
    app.wait_for(
        "Dave in the member list",
        LONG,
        "const li = document.querySelector('#members li[data-name=\"Dave\"]'); const w = document.querySelector('#trust-warnings .first-seen'); return !!li && li.classList.contains('first-seen') && !!w && w.dataset.names.split('\\n').includes('Dave');",
        &[],
    )?;

    // Bob comes back with a new key: the warning cannot be missed.
    println!(
        "{:>5.1} s  Bob comes back with a new key: the warning cannot be missed",
        started.elapsed().as_secs_f64()
    );
    runtime
        .block_on(bob.call.leave())
        .map_err(|e| e.to_string())?;
    app.wait_for(
        "Bob gone from the member list",
        LONG,
        "return !document.querySelector('#members li[data-name=\"Bob\"]');",
        &[],
    )?;
    let impostor = runtime.block_on(Headless::join(server, "Bob", Identity::Ephemeral, 550.0));
    let warning = app.wait_for(
        "the new-key warning",
        LONG,
        "const w = document.querySelector('#trust-warnings .warning.new-key[data-name=\"Bob\"]'); return !!w && w.textContent;",
        &[],
    )?;
    assert!(
        warning.as_str().unwrap_or_default().contains("NEW KEY"),
        "{warning}"
    );
    app.wait_for(
        "Bob marked NEW KEY in the member list",
        LONG,
        "const li = document.querySelector('#members li[data-name=\"Bob\"]'); return !!li && li.classList.contains('new-key');",
        &[],
    )?;
    app.screenshot(&shots.join("warning.png"))?;

    // Leaving returns to the join screen, with the room in the recents.
    println!(
        "{:>5.1} s  Leaving returns to the join screen, with the room in the recents",
        started.elapsed().as_secs_f64()
    );
    app.press("\u{E00C}")?; // Escape: the panel closes
    app.click("#leave")?;
    app.wait_for(
        "the join screen after leaving",
        LONG,
        "return !document.getElementById('join-screen').hidden && document.getElementById('call-screen').hidden && document.getElementById('recent-list').textContent.includes('kitchen');",
        &[],
    )?;
    for member in [&carol, &dave, &impostor] {
        let _ = runtime.block_on(member.call.leave());
    }
    Ok(())
}
