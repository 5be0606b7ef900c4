//! The engine in real calls: the `satsuma-sfu` process on loopback and two
//! to four `satsuma-headless` processes, each a full member with Opus and
//! VP8 over WebRTC. Every assertion reads what a person in the call would
//! notice, from the JSON events the clients print.
// Everything unwrapped here comes from the SFU and members this test
// started (their JSON events) or its own constants: a failure is the test
// failing, never outside input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The real SFU, as its own process.
struct Sfu {
    child: Child,
    http: SocketAddr,
    /// The intercom link's TCP address.
    intercom: SocketAddr,
    capture: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sfu {
    fn start() -> Self {
        // `cargo test --workspace` builds every binary of the workspace
        // next to this test's directory.
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("satsuma-sfu"))
            .unwrap();
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p satsuma-sfu` (cargo xtask test does)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("capture.bin");
        let mut child = Command::new(bin)
            .args([
                "--http",
                "127.0.0.1:0",
                "--intercom",
                "127.0.0.1:0",
                "--capture",
            ])
            .arg(&capture)
            // A crashed member's seat is given up quickly.
            .env("SATSUMA_SFU_ROOMS__RECONNECT_GRACE_MS", "1500")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        let (http, intercom) = (address("http="), address("intercom="));
        Self {
            child,
            http,
            intercom,
            capture,
            _dir: dir,
        }
    }

    /// Every payload the SFU handled so far: 4-byte length, bytes.
    fn captured(&self) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(&self.capture).unwrap_or_default();
        let mut records = Vec::new();
        let mut rest = &bytes[..];
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = u32::from_be_bytes(*len) as usize;
            let Some(record) = tail.get(..len) else { break };
            records.push(record.to_vec());
            rest = &tail[len..];
        }
        records
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `satsuma-headless` process and every event it printed.
struct Member {
    name: String,
    tone: f32,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    events: Vec<Value>,
}

/// How long anything in these calls may take before the test fails
/// (generous: the suite runs on two loaded cores).
const PATIENCE: Duration = Duration::from_secs(90);

impl Member {
    fn join(sfu: &Sfu, name: &str, tone: f32, extra: &[&str]) -> Self {
        Self::join_with(sfu, name, tone, extra, None)
    }

    /// Joins with its audio devices on `pulse`'s sound server.
    fn join_with(sfu: &Sfu, name: &str, tone: f32, extra: &[&str], pulse: Option<&Pulse>) -> Self {
        let server = sfu.http.to_string();
        let mut args = vec!["--server", server.as_str(), "--room", "engine-test"];
        args.extend(extra);
        Self::spawn(name, tone, &args, pulse)
    }

    /// Starts a member with these arguments (the server's among them).
    fn spawn(name: &str, tone: f32, extra: &[&str], pulse: Option<&Pulse>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_satsuma-headless"));
        if let Some(pulse) = pulse {
            command.env("PULSE_SERVER", pulse.server());
        }
        let mut child = command
            .args(["--name", name])
            .args(if extra.contains(&"--mic") {
                vec![]
            } else {
                vec!["--tone".to_owned(), tone.to_string()]
            })
            // Small pictures keep two cores free for everyone else.
            .args(["--size", "160x96", "--fps", "10", "--bitrate", "200"])
            .args(["--stats-ms", "500"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("{who} printed a line that is not JSON ({e}): {line}"),
                }
            }
        });
        Self {
            name: name.to_owned(),
            tone,
            stdin: child.stdin.take(),
            child,
            lines,
            events: Vec::new(),
        }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads events until `done` holds for this member's history, or fails
    /// the test with what it saw.
    fn until(&mut self, what: &str, mut done: impl FnMut(&[Value]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.events) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(v) => self.events.push(v),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(e) => panic!(
                    "{} never saw {what} ({e:?}); its last events:\n{}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    /// Takes whatever arrived without waiting.
    fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.events.push(v);
        }
    }

    fn tail(&self) -> String {
        let start = self.events.len().saturating_sub(6);
        self.events[start..]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn last(&self, kind: &str) -> Option<&Value> {
        self.events.iter().rev().find(|e| e["event"] == kind)
    }

    /// The latest epoch and its safety number.
    fn epoch(&self) -> (u64, String) {
        let e = self.last("epoch").expect("an epoch event");
        (
            e["epoch"].as_u64().unwrap(),
            e["safety_number"].as_str().unwrap().to_owned(),
        )
    }

    /// What the latest report says was received from `name`.
    fn from<'a>(&'a self, name: &str) -> Option<&'a Value> {
        received_from(self.last("media")?, name)
    }

    fn sent_video(&self) -> u64 {
        self.last("media")
            .map_or(0, |m| m["sent"]["video"].as_u64().unwrap())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn received_from<'a>(media: &'a Value, name: &str) -> Option<&'a Value> {
    media["received"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

/// Whether the latest media report in `events` has `from`'s audio at
/// `hz` (within 15 Hz).
fn latest_tone_near(events: &[Value], from: &str, hz: f64) -> bool {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "media")
        .and_then(|m| received_from(m, from))
        .and_then(|r| r["audio"]["tone_hz"].as_f64())
        .is_some_and(|tone| (tone - hz).abs() < 15.0)
}

/// Whether `r` (what one member receives from another) shows the sender's
/// tone and moving pictures, with nothing that failed to open.
fn hears_and_sees(r: &Value, tone: f32) -> bool {
    let heard = r["audio"]["tone_hz"]
        .as_f64()
        .is_some_and(|hz| (hz - f64::from(tone)).abs() < 15.0);
    heard
        && r["video"]["decoded"].as_u64().unwrap_or(0) >= 5
        && r["video"]["last_frame_number"].is_u64()
}

fn failures(r: &Value) -> u64 {
    r["audio"]["failed"].as_u64().unwrap() + r["video"]["failed"].as_u64().unwrap()
}

/// Everyone hears everyone's tone and sees their pattern move.
fn all_hear_and_see(members: &mut [&mut Member]) {
    let senders: Vec<(String, f32)> = members.iter().map(|m| (m.name.clone(), m.tone)).collect();
    for m in members.iter_mut() {
        let others: Vec<_> = senders
            .iter()
            .filter(|(n, _)| *n != m.name)
            .cloned()
            .collect();
        m.until("everyone's tone and pictures", |events| {
            let Some(media) = events.iter().rev().find(|e| e["event"] == "media") else {
                return false;
            };
            others.iter().all(|(name, tone)| {
                received_from(media, name).is_some_and(|r| hears_and_sees(r, *tone))
            })
        });
    }
}

/// Every member reaches one epoch, at least `min`, and shows the same
/// safety number for it; returns them.
fn same_safety_number(members: &mut [&mut Member], min: u64) -> (u64, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for m in members.iter_mut() {
            m.until(&format!("an epoch of at least {min}"), |events| {
                events
                    .iter()
                    .any(|e| e["event"] == "epoch" && e["epoch"].as_u64() >= Some(min))
            });
            m.drain();
        }
        let seen: BTreeMap<String, (u64, String)> = members
            .iter()
            .map(|m| (m.name.clone(), m.epoch()))
            .collect();
        let first = seen.values().next().unwrap().clone();
        if seen.values().all(|s| s.0 == first.0) {
            assert!(
                seen.values().all(|s| *s == first),
                "one epoch, different safety numbers: {seen:?}"
            );
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "members never settled on one epoch: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_members_hear_and_see_each_other_under_one_safety_number() {
    let sfu = Sfu::start();
    let mut a = Member::join(&sfu, "Ada", 440.0, &[]);
    let mut b = Member::join(&sfu, "Bob", 660.0, &[]);
    let mut c = Member::join(&sfu, "Cyd", 990.0, &[]);
    all_hear_and_see(&mut [&mut a, &mut b, &mut c]);
    let (_, safety) = same_safety_number(&mut [&mut a, &mut b, &mut c], 0);
    // Eight groups of five digits (docs/mls.md).
    let groups: Vec<&str> = safety.split_whitespace().collect();
    assert!(
        groups.len() == 8
            && groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())),
        "{safety}"
    );

    // The pictures move, and their numbers are the sender's: each number
    // seen is one the sender has sent, and a later one is seen later.
    let seen: Vec<u64> = [&a, &b]
        .iter()
        .map(|m| {
            m.from("Cyd").unwrap()["video"]["last_frame_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for m in [&mut a, &mut b] {
        let before = m.from("Cyd").unwrap()["video"]["last_frame_number"]
            .as_u64()
            .unwrap();
        m.until("Cyd's pictures moving on", |events| {
            let media = events.iter().rev().find(|e| e["event"] == "media").unwrap();
            received_from(media, "Cyd").unwrap()["video"]["last_frame_number"]
                .as_u64()
                .is_some_and(|n| n > before)
        });
    }
    // What Cyd says she sent, in a report made after those were read.
    c.drain();
    let reports = c.events.len();
    c.until("a new report", |e| {
        e[reports..].iter().any(|e| e["event"] == "media")
    });
    let sent_by_cyd = c.sent_video();
    for n in seen {
        assert!(
            n < sent_by_cyd,
            "frame {n} seen, but Cyd sent only {sent_by_cyd}"
        );
    }

    // Introductions: each saw the other two as identities never seen.
    for m in [&a, &b, &c] {
        let introduced: Vec<_> = m
            .events
            .iter()
            .filter(|e| e["event"] == "introduced")
            .filter(|e| e["member"]["name"] != m.name.as_str())
            .collect();
        assert_eq!(introduced.len(), 2, "{}: {introduced:?}", m.name);
        assert!(introduced.iter().all(|e| e["trust"] == "first_seen"));
    }
    for m in [&mut a, &mut b, &mut c] {
        m.drain();
        let media = m.last("media").unwrap();
        for r in media["received"].as_array().unwrap() {
            assert_eq!(failures(r), 0, "{} failed to open frames: {r}", m.name);
        }
    }
}

#[test]
fn joins_and_leaves_during_media_lose_no_frame_and_a_leaver_is_locked_out() {
    let sfu = Sfu::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Member::join(&sfu, "Ada", 500.0, &[]);
    let mut b = Member::join(&sfu, "Bob", 750.0, &[]);
    all_hear_and_see(&mut [&mut a, &mut b]);

    // Cyd joins with her identity in a file, and later crashes: a leaver
    // who kept every key she had.
    let cyd_state = dir.path().join("cyd.state");
    let mut c = Member::join(
        &sfu,
        "Cyd",
        1100.0,
        &["--identity", cyd_state.to_str().unwrap()],
    );
    all_hear_and_see(&mut [&mut a, &mut b, &mut c]);
    let (_, with_cyd) = same_safety_number(&mut [&mut a, &mut b, &mut c], 0);

    // Dee joins and leaves cleanly while everyone talks.
    let mut d = Member::join(&sfu, "Dee", 1400.0, &["--no-video"]);
    d.until("joined", |e| e.iter().any(|e| e["event"] == "joined"));
    let joined_at = d.last("joined").unwrap()["epoch"].as_u64().unwrap();
    a.until("Dee's audio", |events| {
        events
            .iter()
            .rev()
            .find(|e| e["event"] == "media")
            .is_some_and(|m| {
                received_from(m, "Dee").is_some_and(|r| r["audio"]["tone_hz"].as_f64().is_some())
            })
    });
    d.command("leave");
    d.until("left", |e| e.iter().any(|e| e["event"] == "left"));
    let (epoch, after_dee) = same_safety_number(&mut [&mut a, &mut b, &mut c], joined_at + 1);
    assert_ne!(after_dee, with_cyd, "a leave must change the safety number");

    // A second of media in this epoch, then Cyd crashes. Her seat is
    // given up, the others move on without her.
    let reports = |m: &mut Member, n: usize| {
        let start = m.events.len();
        m.until("more reports", |e| {
            e[start..].iter().filter(|e| e["event"] == "media").count() >= n
        });
    };
    reports(&mut a, 2);
    let records_with_cyd = sfu.captured().len();
    let _ = c.child.kill();
    let _ = c.child.wait();
    let (_, after_cyd) = same_safety_number(&mut [&mut a, &mut b], epoch + 1);
    assert_ne!(after_cyd, after_dee);
    // The capture file is written in 8 KiB blocks: after a second of media
    // in the new epoch (well over 8 KiB), every record written before the
    // epoch changed is in the file.
    reports(&mut a, 2);
    let split = sfu.captured().len();
    reports(&mut a, 4);
    reports(&mut b, 1);
    let records = sfu.captured();
    assert!(
        records.len() > split + 100,
        "too little media after the split"
    );

    // Nothing failed to open anywhere through two joins and two leaves,
    // and the longest audio gap is printed for the README.
    for (m, other) in [(&mut a, "Bob"), (&mut b, "Ada")] {
        let r = m.from(other).unwrap().clone();
        assert_eq!(failures(&r), 0, "{} failed to open frames: {r}", m.name);
        // Frames that outran a commit were held and opened, none lost.
        assert_eq!(
            r["audio"]["opened"], r["audio"]["packets"],
            "{} did not open every audio frame that arrived: {r}",
            m.name
        );
        assert!(hears_and_sees(
            &r,
            if other == "Bob" { 750.0 } else { 500.0 }
        ));
        println!(
            "{} hearing {other} through 4 epoch changes: longest audio gap {} ms, {} slots concealed; audio {}",
            m.name, r["audio"]["longest_gap_ms"], r["audio"]["playout"]["concealed"], r["audio"]
        );
    }

    // Cyd's state file still holds her keys. With them she opens the
    // audio sealed while she was a member (the check can succeed), and
    // none sealed after she was removed.
    let opened = |records: &[Vec<u8>]| -> usize {
        use satsuma_core::media::Codec;
        use satsuma_core::mls::{Session, SessionConfig};
        let store = satsuma_engine::FileStore::open(&cyd_state).unwrap();
        let now = satsuma_core::Instant::from_millis(0);
        let mut session = Session::resume(
            now,
            satsuma_engine::os_seeded_crypto().unwrap(),
            SessionConfig::default(),
            store,
        )
        .unwrap();
        let mut out = vec![0; 4096];
        records
            .iter()
            .filter(|r| r.len() < 1000)
            .filter(|r| {
                Codec::Opus
                    .unprotect(session.keyring_mut(), r, &mut out)
                    .is_ok()
            })
            .count()
    };
    let before = opened(&records[..records_with_cyd]);
    let after = opened(&records[split..]);
    assert!(
        before > 50,
        "Cyd's keys opened only {before} frames of her own epoch"
    );
    assert_eq!(
        after, 0,
        "a removed member opened {after} frames sealed after she left"
    );
}

#[test]
fn a_lost_link_resumes_with_the_seat_and_the_media() {
    let sfu = Sfu::start();
    let mut a = Member::join(&sfu, "Ada", 520.0, &[]);
    let mut b = Member::join(&sfu, "Bob", 880.0, &[]);
    all_hear_and_see(&mut [&mut a, &mut b]);
    let (epoch, safety) = a.epoch();
    b.command("drop");
    b.until("resumed", |e| {
        e.iter()
            .any(|e| e["event"] == "link" && e["state"] == "resumed")
    });
    // Same seat, same group: no new epoch, same safety number.
    assert_eq!(b.epoch(), (epoch, safety.clone()));
    // Media flows again both ways, pictures included (after a key frame).
    let (da, db) = (
        a.from("Bob").unwrap()["video"]["decoded"].as_u64().unwrap(),
        b.from("Ada").unwrap()["video"]["decoded"].as_u64().unwrap(),
    );
    a.until("Bob's pictures after the resume", |events| {
        let media = events.iter().rev().find(|e| e["event"] == "media").unwrap();
        received_from(media, "Bob").is_some_and(|r| {
            r["video"]["decoded"].as_u64().unwrap() > da + 5 && hears_and_sees(r, 880.0)
        })
    });
    b.until("Ada's pictures after the resume", |events| {
        let media = events.iter().rev().find(|e| e["event"] == "media").unwrap();
        received_from(media, "Ada").is_some_and(|r| {
            r["video"]["decoded"].as_u64().unwrap() > db + 5 && hears_and_sees(r, 520.0)
        })
    });
    assert_eq!(a.epoch(), (epoch, safety), "the resume changed the group");
}

#[test]
fn mute_silences_the_tone_at_the_other_end() {
    let sfu = Sfu::start();
    let mut a = Member::join(&sfu, "Ada", 600.0, &["--no-video"]);
    let mut b = Member::join(&sfu, "Bob", 900.0, &["--no-video", "--levels"]);
    // Bob's speaking indicator for Ada, from the latest levels.
    let speaking = |events: &[Value]| {
        events
            .iter()
            .rev()
            .find(|e| e["event"] == "levels")
            .and_then(|l| {
                l["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["name"] == "Ada")
                    .cloned()
            })
            .map(|m| m["speaking"] == true)
    };
    let heard = |events: &[Value]| {
        events
            .iter()
            .rev()
            .find(|e| e["event"] == "media")
            .and_then(|m| received_from(m, "Ada"))
            .map(|r| r["audio"]["tone_hz"].as_f64())
    };
    b.until("Ada's tone", |e| {
        heard(e)
            .flatten()
            .is_some_and(|hz| (hz - 600.0).abs() < 15.0)
    });
    b.until("Ada speaking", |e| speaking(e) == Some(true));
    a.command("mute");
    b.until("silence from Ada", |e| heard(e) == Some(None));
    b.until("Ada not speaking", |e| speaking(e) == Some(false));
    a.command("unmute");
    b.until("Ada's tone again", |e| {
        heard(e)
            .flatten()
            .is_some_and(|hz| (hz - 600.0).abs() < 15.0)
    });
}

/// What a software intercom heard from the desktops: frames it opened,
/// per codec.
type Heard = BTreeMap<String, u64>;

/// An intercom on the SFU's intercom link, as the firmware is one (the
/// client crate's driver, `Transport::Wire`, cannot commit), in the
/// engine test's room: it waits to be added, opens every desktop frame
/// the SFU bridges to it until `frames` opened, and leaves.
fn software_intercom(sfu: &Sfu, frames: u64) -> Heard {
    use satsuma_client::{Client, ClientEvent, Endpoint};
    use satsuma_core::committer::{Member as CoreMember, MemberConfig};
    use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
    use satsuma_core::wire::{Capabilities, RoomName, Transport};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut seed = [0; 32];
        getrandom::fill(&mut seed).unwrap();
        let session = Session::create(
            SatsumaCrypto::from_seed(seed),
            MemberInfo::new("Door", "software-intercom").unwrap(),
            SessionConfig::default(),
            MemoryStore::new(),
        )
        .unwrap();
        let room = RoomName::new("engine-test").unwrap();
        let member = CoreMember::new(
            session,
            MemberConfig {
                room: room.clone(),
                capabilities: Capabilities {
                    can_commit: false,
                    transport: Transport::Wire,
                },
            },
        );
        let (client, mut events) = Client::start(Endpoint::Intercom(sfu.intercom), room, member)
            .await
            .unwrap();
        let mut heard = Heard::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while heard.values().sum::<u64>() < frames {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .unwrap_or_else(|_| panic!("the intercom heard only {heard:?}"))
                .expect("the intercom's link closed");
            if let ClientEvent::Media(m) = event
                && client.open(m.codec, &m.payload).is_ok()
            {
                *heard.entry(format!("{:?}", m.codec)).or_default() += 1;
            }
        }
        client.leave().await.unwrap();
        heard
    })
}

#[test]
fn desktops_send_g722_while_an_intercom_is_in_the_call_and_opus_after() {
    let sfu = Sfu::start();
    // Both ask for Opus (the default); Bob listens.
    let mut ada = Member::join(&sfu, "Ada", 600.0, &["--no-video"]);
    let mut bob = Member::join(&sfu, "Bob", 900.0, &["--no-video"]);
    let tone_from_ada = |events: &[Value]| latest_tone_near(events, "Ada", 600.0);
    bob.until("Ada's tone in Opus", tone_from_ada);
    let switches = |m: &Member| -> Vec<(String, bool)> {
        m.events
            .iter()
            .filter(|e| e["event"] == "audio_codec")
            .map(|e| {
                (
                    e["codec"].as_str().unwrap().to_owned(),
                    e["intercom"] == true,
                )
            })
            .collect()
    };
    assert!(
        switches(&ada).is_empty(),
        "no intercom yet: {:?}",
        switches(&ada)
    );

    // The intercom joins: Ada's audio reaches it, as G.722, and opens.
    let heard = software_intercom(&sfu, 100);
    assert_eq!(
        heard.keys().collect::<Vec<_>>(),
        ["G722"],
        "the intercom heard {heard:?}"
    );
    // It left: Ada goes back to Opus, and Bob heard her all along.
    ada.until("back to Opus", |e| {
        e.iter()
            .any(|e| e["event"] == "audio_codec" && e["codec"] == "opus")
    });
    assert_eq!(
        switches(&ada),
        [("g722".to_owned(), true), ("opus".to_owned(), false)]
    );
    bob.until("Bob back to Opus too", |e| {
        e.iter()
            .any(|e| e["event"] == "audio_codec" && e["codec"] == "opus")
    });
    assert_eq!(switches(&bob), switches(&ada));
    let mark = bob.events.len();
    bob.until("Ada's tone in Opus again", |e| tone_from_ada(&e[mark..]));
    let last = bob.from("Ada").unwrap();
    assert_eq!(last["audio"]["failed"], 0, "{last}");
    assert_eq!(last["audio"]["undecodable"], 0, "{last}");
}

/// A PulseAudio server of this test's own, with one null sink (a speaker
/// that plays nowhere) whose monitor is a microphone hearing exactly what
/// the sink plays: the audio devices of a machine without a sound card.
struct Pulse {
    child: Child,
    dir: tempfile::TempDir,
}

impl Pulse {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("native");
        let child = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "-n",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
            ])
            .arg(format!(
                "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .arg("--load=module-null-sink sink_name=null")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio is not installed: `cargo xtask setup` installs it");
        let mut pulse = Self { child, dir };
        // Ready once it lists its null sink (pactl: pulseaudio-utils).
        let deadline = Instant::now() + PATIENCE;
        loop {
            let sinks = Command::new("pactl")
                .args(["-s", &pulse.server(), "list", "short", "sinks"])
                .output()
                .expect("pactl is not installed: `cargo xtask setup` installs it");
            if String::from_utf8_lossy(&sinks.stdout).contains("null") {
                break pulse;
            }
            assert!(
                pulse.child.try_wait().unwrap().is_none(),
                "pulseaudio exited at start"
            );
            assert!(Instant::now() < deadline, "pulseaudio never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server(&self) -> String {
        format!("unix:{}", self.dir.path().join("native").display())
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_member_speaks_and_listens_through_real_audio_devices() {
    let pulse = Pulse::start();
    let listed = Command::new(env!("CARGO_BIN_EXE_satsuma-headless"))
        .arg("--list-devices")
        .env("PULSE_SERVER", pulse.server())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let devices: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(devices["host"], "PulseAudio", "{devices}");
    assert!(devices["cameras"].is_array(), "{devices}");
    assert!(
        devices["outputs"]
            .as_array()
            .unwrap()
            .contains(&"null".into()),
        "{devices}"
    );
    assert!(
        devices["inputs"]
            .as_array()
            .unwrap()
            .contains(&"null.monitor".into()),
        "{devices}"
    );

    // Ada's speaker is the null sink and her microphone its monitor: what
    // she hears from Bob she plays, captures and sends back. Bob hears his
    // own tone from Ada only if her audio went through both devices.
    let sfu = Sfu::start();
    let mut a = Member::join_with(
        &sfu,
        "Ada",
        0.0,
        &["--no-video", "--mic", "null.monitor", "--speaker", "null"],
        Some(&pulse),
    );
    a.until("her devices", |e| {
        e.iter().any(|e| {
            e["event"] == "devices" && e["microphone"] == "null.monitor" && e["speaker"] == "null"
        })
    });
    let mut b = Member::join(&sfu, "Bob", 820.0, &["--no-video"]);
    let bob_via_ada = |events: &[Value]| latest_tone_near(events, "Ada", 820.0);
    b.until(
        "his tone back through Ada's speaker and microphone",
        bob_via_ada,
    );

    // Her speaker goes off: nothing reaches her microphone any more.
    a.command("speaker off");
    b.until("silence from Ada", |e| {
        e.iter()
            .rev()
            .find(|e| e["event"] == "media")
            .and_then(|m| received_from(m, "Ada"))
            .is_some_and(|r| r["audio"]["tone_hz"].is_null())
    });
    // Back on, by name, during the call.
    a.command("speaker null");
    b.until("his tone again", bob_via_ada);

    // A device that is not there: a clear error naming those that are.
    a.command("mic no-such-mic");
    a.until("an error", |e| {
        e.iter().any(|e| {
            e["event"] == "error"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no-such-mic") && m.contains("null.monitor"))
        })
    });
    let out = Command::new(env!("CARGO_BIN_EXE_satsuma-headless"))
        .args([
            "--server",
            &sfu.http.to_string(),
            "--speaker",
            "no-such-speaker",
        ])
        .env("PULSE_SERVER", pulse.server())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no-such-speaker") && err.contains("null"),
        "{err}"
    );
}

#[test]
fn a_missing_camera_sends_the_test_pattern_and_says_why() {
    let sfu = Sfu::start();
    let mut a = Member::join(&sfu, "Ada", 560.0, &["--camera", "/dev/satsuma-no-camera"]);
    let mut b = Member::join(&sfu, "Bob", 840.0, &[]);
    a.until("the camera's error", |e| {
        e.iter().any(|e| {
            e["event"] == "error"
                && e["message"].as_str().is_some_and(|m| {
                    m.contains("/dev/satsuma-no-camera") && m.contains("test pattern")
                })
        })
    });
    b.until("Ada's test pattern", |e| {
        e.iter()
            .rev()
            .find(|e| e["event"] == "media")
            .and_then(|m| received_from(m, "Ada"))
            .is_some_and(|r| hears_and_sees(r, 560.0))
    });
}

/// The latest introduction of a member named `name`, with its trust.
fn introduced<'a>(events: &'a [Value], name: &str) -> Option<&'a Value> {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "introduced" && e["member"]["name"] == name)
}

#[test]
fn a_verified_identity_is_remembered_and_a_new_key_under_its_name_is_flagged() {
    let sfu = Sfu::start();
    let dir = tempfile::tempdir().unwrap();
    let ada = dir.path().join("ada.state");
    let bob = dir.path().join("bob.state");
    let (ada, bob) = (ada.display().to_string(), bob.display().to_string());
    let ada_args = ["--no-video", "--identity", ada.as_str()];
    let bob_args = ["--no-video", "--identity", bob.as_str()];

    // First call: Ada compares Bob's fingerprint and marks it verified.
    let mut a = Member::join(&sfu, "Ada", 500.0, &ada_args);
    let mut b = Member::join(&sfu, "Bob", 700.0, &bob_args);
    a.until("Bob, new", |e| {
        introduced(e, "Bob").is_some_and(|i| i["trust"] == "first_seen")
    });
    let leaf = introduced(&a.events, "Bob").unwrap()["member"]["leaf"]
        .as_u64()
        .unwrap();
    a.command(&format!("verify {leaf}"));
    a.until("Bob verified", |e| {
        e.iter().any(|e| {
            e["event"] == "verified"
                && e["member"]["name"] == "Bob"
                && e["member"]["verified"] == true
        })
    });
    for m in [&mut a, &mut b] {
        m.command("leave");
        m.until("left", |e| e.iter().any(|e| e["event"] == "left"));
    }
    drop((a, b));

    // Next call, same identities: Bob is known and verified.
    let mut a = Member::join(&sfu, "Ada", 500.0, &ada_args);
    let _b = Member::join(&sfu, "Bob", 700.0, &bob_args);
    a.until("Bob, known and verified", |e| {
        introduced(e, "Bob").is_some_and(|i| i["trust"] == "known" && i["verified"] == true)
    });
    // Someone else calls herself Bob, with a key of her own: the warning.
    let _impostor = Member::join(&sfu, "Bob", 900.0, &["--no-video"]);
    a.until("the warning", |e| {
        e.iter().any(|e| {
            e["event"] == "introduced"
                && e["member"]["name"] == "Bob"
                && e["trust"] == "new_key"
                && e["was_verified"] == true
        })
    });
}

#[test]
fn a_member_hosts_the_call_itself_and_another_joins_it() {
    // No SFU process: Ada's engine runs one in hers.
    let mut a = Member::spawn(
        "Ada",
        530.0,
        &["--host", "127.0.0.1:0", "--room", "at-home"],
        None,
    );
    a.until("hosting", |e| e.iter().any(|e| e["event"] == "hosting"));
    let local = a.last("hosting").unwrap()["local"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = Member::spawn(
        "Bob",
        770.0,
        &["--server", &local, "--room", "at-home"],
        None,
    );
    all_hear_and_see(&mut [&mut a, &mut b]);
    same_safety_number(&mut [&mut a, &mut b], 0);
    // The host leaves: the call ends for everyone, and Bob says so.
    a.command("leave");
    a.until("left", |e| e.iter().any(|e| e["event"] == "left"));
    let _ = a.child.wait();
    b.until("the link lost", |e| {
        e.iter()
            .any(|e| e["event"] == "link" || e["event"] == "left")
    });
}

#[test]
fn an_identity_in_the_os_data_directory_survives_a_restart() {
    let sfu = Sfu::start();
    let data = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_satsuma-headless"))
            .args(["--server", &sfu.http.to_string(), "--room", "profiles"])
            .args([
                "--name",
                "Ada",
                "--profile",
                "work",
                "--no-video",
                "--seconds",
                "2",
            ])
            .env("XDG_DATA_HOME", data.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "joined")
            .and_then(|e| e["fingerprint"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no joined event: {text}"))
    };
    let first = run();
    let state = data
        .path()
        .join("satsuma")
        .join("work")
        .join("member.state");
    assert!(state.exists(), "no state file at {}", state.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the identity file is readable by others");
    }
    assert_eq!(run(), first, "a restart changed the identity");
}

#[test]
fn bad_settings_and_an_unreachable_server_are_clear_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_satsuma-headless"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Port 9 (discard) on loopback: nothing listens.
    let server = ["--server", "127.0.0.1:9"];
    let (ok, err) = run(&[&server[..], &["--room", "no spaces"]].concat());
    assert!(
        !ok && err.contains("room name") && err.contains("A-Z a-z 0-9"),
        "{err}"
    );
    let (ok, err) = run(&[&server[..], &["--name", ""]].concat());
    assert!(!ok && err.contains("1 to 64 bytes"), "{err}");
    let (ok, err) = run(&[&server[..], &["--wav", "/nonexistent/clip.wav"]].concat());
    assert!(!ok && err.contains("/nonexistent/clip.wav"), "{err}");
    let (ok, err) = run(&server);
    assert!(
        !ok && err.contains("cannot join") && err.contains("refused"),
        "{err}"
    );
}
