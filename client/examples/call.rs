//! A call over the network: the SFU (embedded, on loopback, unless
//! `--sfu HTTP_ADDR --intercom ADDR` name a running one), two desktop
//! members on WebRTC peer connections and a door intercom on its TCP link.
//! Every frame is SFrame-sealed by its sender and opened by each receiver;
//! the SFU records every payload it handles, and the record is scanned for
//! plaintext at the end.
//!
//! Everything the call prints as a result is also checked: a claim that does
//! not hold is marked FAILED and the command exits with status 1.
//!
//! `--stay SECONDS` keeps the call open afterwards for others to join (it
//! prints the command); `--guest PATH` starts that program
//! (`satsuma-headless`) as a guest who joins, talks and leaves meanwhile,
//! and checks what the guest saw against what the members saw.
//!
//! `cargo xtask demo` runs this (and `cargo xtask call` where no window can open).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A demo's edge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use satsuma_client::rtc::frames::FrameAssembler;
use satsuma_client::rtc::{ClientSettings, ClientStreams, RtcClient};
use satsuma_client::{Client, ClientError, ClientEvent, Endpoint};
use satsuma_core::committer::{Event, Member, MemberConfig};
use satsuma_core::media::Codec;
use satsuma_core::mls::{
    IdentityFingerprint, Introduction, MemberInfo, MemoryStore, SatsumaCrypto, Session,
    SessionConfig, Trust,
};
use satsuma_core::wire::{Blob, Capabilities, ConnId, Media, RoomName, Signal, Transport};
use tokio::sync::mpsc;

const ROOM: &str = "front-door";
/// What everyone says, in clear only inside the members.
const WORDS: &[u8] = b"the parcel is at the door, please come down ";
/// One pump of the call loop.
const TICK: Duration = Duration::from_millis(20);

/// Audio or video, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Audio,
    Video,
}

impl Kind {
    fn of(codec: Codec) -> Self {
        if codec == Codec::Vp8 {
            Self::Video
        } else {
            Self::Audio
        }
    }
}

/// Every claim the call makes, checked as it is printed.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn claim(&mut self, holds: bool, what: impl Into<String>) {
        let what = what.into();
        if holds {
            self.passed += 1;
            println!("  ok: {what}");
        } else {
            println!("  FAILED: {what}");
            self.failed.push(what);
        }
    }
}

struct Person {
    name: &'static str,
    client: Client<Session>,
    events: mpsc::Receiver<ClientEvent>,
    rtc: Option<(std::sync::Arc<RtcClient>, ClientStreams)>,
    conn: u64,
    fingerprint: IdentityFingerprint,
    /// Frames opened since the last `reset`, by sender connection and kind.
    heard: BTreeMap<(u64, Kind), usize>,
    /// Frames opened over the whole call, by kind.
    heard_total: BTreeMap<Kind, usize>,
    /// Frames that arrived and did not open.
    unopened: usize,
    /// Frames sent since the last `reset`, by kind.
    sent: BTreeMap<Kind, usize>,
    /// Sends that failed where they should not have.
    send_failures: Vec<String>,
    /// Frames said so far: RTP timestamps and sequence numbers go on from
    /// here (a receiver's SRTP replay window drops repeated ones).
    said: u32,
    /// The last sealed audio frame it sent: the SFU's record must hold it.
    last_sealed: Vec<u8>,
    introduced: Vec<Introduction>,
    /// Whether a reconnection kept the seat, once one happened.
    resumed: Option<bool>,
    /// Video frames being put together, per received track.
    assemblers: HashMap<u32, FrameAssembler>,
    /// Frames opened that are not this demo's (a guest's), by sender.
    foreign: BTreeMap<u64, usize>,
}

fn member(name: &str, transport: Transport) -> Member<Session> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).expect("the OS entropy source");
    let session = Session::create(
        SatsumaCrypto::from_seed(seed),
        MemberInfo::new(name, "demo").unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    let capabilities = Capabilities {
        can_commit: transport == Transport::WebRtc,
        transport,
    };
    Member::new(
        session,
        MemberConfig {
            room: RoomName::new(ROOM).unwrap(),
            capabilities,
        },
    )
}

impl Person {
    async fn join(
        name: &'static str,
        transport: Transport,
        http: SocketAddr,
        intercom: SocketAddr,
    ) -> Result<Self, ClientError> {
        let endpoint = match transport {
            Transport::WebRtc => Endpoint::WebSocket(http),
            Transport::Wire => Endpoint::Intercom(intercom),
        };
        let member = member(name, transport);
        let fingerprint = member.group().fingerprint();
        let (client, events) =
            Client::start(endpoint, RoomName::new(ROOM).unwrap(), member).await?;
        let rtc = if transport == Transport::WebRtc {
            // The door speaks G.711, so the desktops publish PCMU.
            let settings = ClientSettings {
                audio_codec: Codec::Pcmu,
                ..Default::default()
            };
            Some(RtcClient::new(&settings).await?)
        } else {
            None
        };
        Ok(Self {
            name,
            client,
            events,
            rtc,
            conn: 0,
            fingerprint,
            heard: BTreeMap::new(),
            heard_total: BTreeMap::new(),
            unopened: 0,
            sent: BTreeMap::new(),
            send_failures: Vec::new(),
            said: 0,
            last_sealed: Vec::new(),
            introduced: Vec::new(),
            resumed: None,
            assemblers: HashMap::new(),
            foreign: BTreeMap::new(),
        })
    }

    fn desktop(&self) -> bool {
        self.rtc.is_some()
    }

    /// Forgets what was sent and heard so far (not the call's totals).
    fn reset(&mut self) {
        self.heard.clear();
        self.sent.clear();
        self.unopened = 0;
        self.send_failures.clear();
    }

    /// Answers offers and opens every frame that arrived.
    async fn pump(&mut self) {
        let mut frames = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            match event {
                ClientEvent::Rtc(Signal::Offer(sdp)) => {
                    if let Some((rtc, _)) = &self.rtc
                        && let Err(e) = self.client.answer_offer(rtc, &sdp).await
                    {
                        self.send_failures.push(format!("answering an offer: {e}"));
                    }
                }
                ClientEvent::Media(m) => frames.push((m.sender.0, m.codec, m.payload.to_vec())),
                ClientEvent::Member(Event::Introduced(seen)) => {
                    let trust = match seen.trust {
                        Trust::FirstSeen => "an identity not seen before".to_owned(),
                        Trust::Known { verified: true } => "known, verified".to_owned(),
                        Trust::Known { verified: false } => "known".to_owned(),
                        Trust::NewKey { previous, .. } => {
                            format!("WARNING: a new key for this name (it had {previous})")
                        }
                    };
                    println!(
                        "  {} sees {} in the call: fingerprint {}, {trust}",
                        self.name, seen.info, seen.fingerprint
                    );
                    self.introduced.push(seen);
                }
                ClientEvent::Reconnected { resumed } => {
                    println!(
                        "  {} is back on a new link ({})",
                        self.name,
                        if resumed {
                            "seat kept"
                        } else {
                            "joined afresh"
                        }
                    );
                    self.resumed = Some(resumed);
                }
                ClientEvent::Error(code, text) => {
                    println!("  {} got an error from the SFU: {code:?} {text}", self.name);
                }
                _ => {}
            }
        }
        if let Some((_, streams)) = &mut self.rtc {
            while let Ok(r) = streams.media.try_recv() {
                let from = r.stream_id.parse().unwrap_or(u64::MAX);
                if r.video {
                    // Video frames travel in packets with a descriptor.
                    let pushed = self.assemblers.entry(r.ssrc).or_default().push(
                        r.sequence,
                        r.timestamp,
                        &r.payload,
                    );
                    if pushed.lost {
                        self.unopened += 1;
                    }
                    if let Some((_, frame)) = pushed.frame {
                        frames.push((from, Codec::Vp8, frame));
                    }
                } else {
                    frames.push((from, Codec::Pcmu, r.payload.to_vec()));
                }
            }
        }
        for (from, codec, sealed) in frames {
            // A frame that outran its commit is held, and comes back with
            // a later call, still tagged with its sender's connection.
            let tag = u32::try_from(from).unwrap_or(u32::MAX);
            match self.client.receive(codec, &sealed, tag) {
                Ok(heard) => {
                    for f in heard {
                        if f.frame.windows(WORDS.len()).any(|w| w == WORDS) {
                            let kind = Kind::of(f.codec);
                            *self.heard.entry((u64::from(f.tag), kind)).or_default() += 1;
                            *self.heard_total.entry(kind).or_default() += 1;
                        } else {
                            self.unopened += 1;
                            *self.foreign.entry(u64::from(f.tag)).or_default() += 1;
                        }
                    }
                }
                Err(_) => self.unopened += 1,
            }
        }
    }

    /// Seals and sends one frame. Before the tracks are negotiated a
    /// WebRTC send may be dropped (`strict` false); after, any send that
    /// does not go out is a failure.
    async fn send(&mut self, codec: Codec, frame: Vec<u8>, timestamp: u32, strict: bool) {
        let sealed = match self.client.seal(codec, &frame) {
            Ok(sealed) => sealed,
            Err(e) => {
                self.send_failures.push(format!("sealing: {e}"));
                return;
            }
        };
        let sent = match &self.rtc {
            Some((rtc, _)) if codec == Codec::Vp8 => rtc
                .send_video_frame(&sealed, timestamp)
                .await
                .map_err(|e| e.to_string()),
            Some((rtc, _)) => rtc
                .send_audio(&sealed, timestamp)
                .await
                .map_err(|e| e.to_string()),
            None => {
                let media = Media {
                    sender: ConnId(self.conn),
                    codec,
                    timestamp,
                    sequence: u16::try_from(self.said % 65_536).unwrap_or(0),
                    payload: Blob::copy_from(&sealed).unwrap(),
                };
                self.client
                    .send_media(media)
                    .await
                    .map(|()| true)
                    .map_err(|e| e.to_string())
            }
        };
        match sent {
            Ok(true) => {
                *self.sent.entry(Kind::of(codec)).or_default() += 1;
                if codec != Codec::Vp8 {
                    self.last_sealed = sealed;
                }
            }
            Ok(false) if !strict => {}
            Ok(false) => self.send_failures.push(format!(
                "a {codec:?} frame was not sent: no negotiated track"
            )),
            Err(e) => self
                .send_failures
                .push(format!("sending a {codec:?} frame: {e}")),
        }
    }

    /// One 20 ms frame of audio, and from a desktop a video frame every
    /// fifth time.
    async fn talk(&mut self, strict: bool) {
        let i = self.said;
        self.said += 1;
        let mut audio = WORDS.repeat(4);
        audio.truncate(160);
        self.send(Codec::Pcmu, audio, i * 160, strict).await;
        if self.desktop() && i.is_multiple_of(5) {
            let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
            frame.extend(WORDS.repeat(20));
            self.send(Codec::Vp8, frame, i * 1800, strict).await;
        }
    }

    async fn view(&self) -> Option<(u64, String, usize)> {
        self.client
            .with_member(|m| {
                let g = m.group();
                Some((
                    g.epoch()?,
                    g.safety_number().ok()?.to_string(),
                    g.roster().len(),
                ))
            })
            .await
            .ok()
            .flatten()
    }
}

/// What `to` should hear from `from`: audio always, video only between
/// desktops (the door has no screen, and the SFU sends it audio only).
fn kinds(from: &Person, to: &Person) -> &'static [Kind] {
    if from.desktop() && to.desktop() {
        &[Kind::Audio, Kind::Video]
    } else {
        &[Kind::Audio]
    }
}

async fn pump_all(people: &mut [&mut Person]) {
    for p in people.iter_mut() {
        p.pump().await;
    }
    tokio::time::sleep(TICK).await;
}

/// Pumps everyone until all show the same epoch with `n` members; `None`
/// if they do not within 30 seconds.
async fn settle(people: &mut [&mut Person], n: usize) -> Option<(u64, String)> {
    for _ in 0..1500 {
        let mut views = Vec::new();
        for p in people.iter_mut() {
            p.pump().await;
            views.push(p.view().await);
        }
        if views.iter().all(|v| v.as_ref().is_some_and(|v| v.2 == n))
            && views.windows(2).all(|w| w[0] == w[1])
        {
            let (epoch, number, _) = views[0].clone()?;
            for p in people.iter_mut() {
                p.conn = p
                    .client
                    .with_member(|m| m.conn())
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |c| c.0);
            }
            return Some((epoch, number));
        }
        tokio::time::sleep(TICK).await;
    }
    None
}

/// Whether every person has heard every kind it should from everyone else.
fn all_heard(people: &[&mut Person], enough: impl Fn(&Person, &Person, Kind) -> bool) -> bool {
    people.iter().all(|to| {
        people
            .iter()
            .filter(|from| from.conn != to.conn)
            .all(|from| kinds(from, to).iter().all(|&kind| enough(from, to, kind)))
    })
}

/// Talks until every track is negotiated and everyone hears everyone
/// (at most ten seconds), lets the last frames land, and starts counting
/// afresh. Whether everyone heard everyone.
async fn warm_up(people: &mut [&mut Person]) -> bool {
    let mut ready = false;
    for _ in 0..500 {
        for p in people.iter_mut() {
            p.talk(false).await;
        }
        pump_all(people).await;
        ready = all_heard(people, |from, to, kind| {
            to.heard.get(&(from.conn, kind)).is_some_and(|n| *n > 0)
        });
        if ready {
            break;
        }
    }
    for _ in 0..10 {
        pump_all(people).await;
    }
    for p in people.iter_mut() {
        p.reset();
    }
    ready
}

/// Everyone talks for `rounds` frames of 20 ms, then the call runs until
/// every frame sent has been opened by each receiver (at most three
/// seconds more). Checks that each was, exactly once, and that nothing
/// failed to send or to open.
async fn talk_for(people: &mut [&mut Person], rounds: u32, checks: &mut Checks) {
    for _ in 0..rounds {
        for p in people.iter_mut() {
            p.talk(true).await;
        }
        pump_all(people).await;
    }
    let complete = |people: &[&mut Person]| {
        all_heard(people, |from, to, kind| {
            to.heard.get(&(from.conn, kind)) >= from.sent.get(&kind)
        })
    };
    for _ in 0..150 {
        if complete(people) {
            break;
        }
        pump_all(people).await;
    }
    // Anything still on its way would show as a duplicate below.
    for _ in 0..5 {
        pump_all(people).await;
    }
    for to in people.iter() {
        let mut heard = Vec::new();
        let mut exact = true;
        for from in people.iter().filter(|from| from.conn != to.conn) {
            for &kind in kinds(from, to) {
                let got = to.heard.get(&(from.conn, kind)).copied().unwrap_or(0);
                let sent = from.sent.get(&kind).copied().unwrap_or(0);
                exact &= got == sent && sent > 0;
                heard.push(format!("{} {got}/{sent} {kind:?}", from.name).to_lowercase());
            }
        }
        checks.claim(
            exact,
            format!(
                "{:<6} opened every frame sent to it, once: {}",
                to.name,
                heard.join(", ")
            ),
        );
        checks.claim(
            to.unopened == 0,
            format!("{:<6} frames that did not open: {}", to.name, to.unopened),
        );
        checks.claim(
            to.send_failures.is_empty(),
            format!(
                "{:<6} every frame it said was sent{}",
                to.name,
                if to.send_failures.is_empty() {
                    String::new()
                } else {
                    format!(": {}", to.send_failures.join("; "))
                }
            ),
        );
    }
}

/// Pumps until every person has been introduced to every other, for at
/// most 5 s: introductions come as events, which can trail the group
/// state that `settle` reads.
async fn introductions_arrive(people: &mut [&mut Person]) {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let complete = people.iter().all(|to| {
            people.iter().filter(|p| p.name != to.name).all(|p| {
                to.introduced
                    .iter()
                    .any(|i| i.info.display_name.as_str() == p.name)
            })
        });
        if complete {
            return;
        }
        for p in people.iter_mut() {
            p.pump().await;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Every member was introduced to every other member it shared the call
/// with, once, as an identity not seen before, with the fingerprint that
/// member's own screen shows.
fn check_introductions(people: &[&mut Person], checks: &mut Checks) {
    for to in people {
        let mut wrong = Vec::new();
        let expected: BTreeSet<&str> = people
            .iter()
            .filter(|p| p.name != to.name)
            .map(|p| p.name)
            .collect();
        let mut seen = BTreeSet::new();
        for i in &to.introduced {
            let name = i.info.display_name.as_str();
            let own = people
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.fingerprint);
            if !seen.insert(name) {
                wrong.push(format!("{name} introduced twice"));
            }
            if i.trust != Trust::FirstSeen {
                wrong.push(format!("{name} not first seen: {:?}", i.trust));
            }
            if own != Some(i.fingerprint) {
                wrong.push(format!("{name}'s fingerprint differs from its own"));
            }
        }
        if seen != expected {
            wrong.push(format!("introduced {seen:?}, in the call {expected:?}"));
        }
        checks.claim(
            wrong.is_empty(),
            format!(
                "{:<6} was shown each other member once, new, with the fingerprint that member shows{}",
                to.name,
                if wrong.is_empty() {
                    String::new()
                } else {
                    format!(": {}", wrong.join("; "))
                }
            ),
        );
    }
}

/// Keeps the call open for `seconds` (talking on), printing every change
/// of epoch. With `guest`, that program (`satsuma-headless`) joins as
/// "guest" for part of the time, in a process of its own, and the call
/// checks that the guest and the members saw the same group and each
/// other's media.
async fn stay_open(
    people: &mut [&mut Person],
    http: SocketAddr,
    seconds: u64,
    guest: Option<&str>,
    checks: &mut Checks,
) -> Result<(), String> {
    use std::io::BufRead as _;
    println!(
        "\nThe call stays open for {seconds} s. Join it from another terminal with\n  cargo run -p satsuma-engine --bin satsuma-headless -- --server {http} --room {ROOM} --name you --codec pcmu"
    );
    let guest_seconds = seconds.saturating_sub(10).max(5);
    let mut child = match guest {
        Some(program) => {
            println!("A guest joins: {program}, for {guest_seconds} s.");
            Some(
                std::process::Command::new(program)
                    .args(["--server", &http.to_string(), "--room", ROOM])
                    .args(["--name", "guest", "--codec", "pcmu", "--tone", "660"])
                    .args(["--size", "160x96", "--fps", "10", "--bitrate", "200"])
                    .args(["--seconds", &guest_seconds.to_string()])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("the guest {program} cannot start: {e}"))?,
            )
        }
        None => None,
    };
    // The guest's JSON lines, read as they come.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    if let Some(out) = child.as_mut().and_then(|c| c.stdout.take()) {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
    }
    let members = people.len();
    let mut view = people[0].view().await;
    let mut numbers: BTreeMap<u64, String> = view.iter().map(|v| (v.0, v.1.clone())).collect();
    let mut most = members;
    let end = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut rounds = 0u32;
    let mut guest_done = false;
    while std::time::Instant::now() < end {
        for p in people.iter_mut() {
            p.talk(false).await;
        }
        pump_all(people).await;
        rounds += 1;
        if !rounds.is_multiple_of(10) {
            continue;
        }
        let now = people[0].view().await;
        if now.is_some() && now != view {
            if let Some((epoch, number, n)) = &now {
                println!("  epoch {epoch}: {n} members, safety number\n  {number}");
                numbers.insert(*epoch, number.clone());
                most = most.max(*n);
            }
            view = now;
        }
        if let Some(c) = child.as_mut() {
            guest_done |= c.try_wait().ok().flatten().is_some();
        }
        // Once the guest has come and gone, there is nothing more to see.
        if guest_done && most > members && view.as_ref().is_some_and(|v| v.2 == members) {
            break;
        }
    }
    for p in people.iter() {
        let from: Vec<String> = p
            .foreign
            .iter()
            .map(|(c, n)| format!("{n} from #{c}"))
            .collect();
        println!(
            "  {} opened frames not sent by this demo: {}",
            p.name,
            if from.is_empty() {
                "none".to_owned()
            } else {
                from.join(", ")
            }
        );
    }
    let Some(mut child) = child else {
        return Ok(());
    };
    let _ = child.kill();
    let _ = child.wait();
    let events: Vec<serde_json::Value> = lines
        .try_iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    checks.claim(
        most == members + 1 && view.as_ref().is_some_and(|v| v.2 == members),
        format!(
            "the guest joined ({most} members at most) and left ({} now)",
            view.map_or(0, |v| v.2)
        ),
    );
    let epochs: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["event"] == "epoch")
        .filter_map(|e| {
            Some((
                e["epoch"].as_u64()?,
                e["safety_number"].as_str()?.to_owned(),
            ))
        })
        .collect();
    checks.claim(
        !epochs.is_empty() && epochs.iter().all(|(e, n)| numbers.get(e) == Some(n)),
        format!(
            "the guest's screen showed the members' safety number in each of its {} epochs",
            epochs.len()
        ),
    );
    let report = events.iter().rev().find(|e| e["event"] == "media");
    let mut heard = Vec::new();
    let mut all = true;
    for p in people.iter() {
        let r = report
            .and_then(|m| m["received"].as_array())
            .and_then(|rs| rs.iter().find(|r| r["name"] == p.name));
        let opened = r.and_then(|r| r["audio"]["opened"].as_u64()).unwrap_or(0);
        let failed = r.map_or(0, |r| {
            r["audio"]["failed"].as_u64().unwrap_or(0) + r["video"]["failed"].as_u64().unwrap_or(0)
        });
        all &= opened > 0 && failed == 0;
        heard.push(format!("{} {opened} opened, {failed} failed", p.name));
    }
    checks.claim(
        all,
        format!(
            "the guest opened audio from each member: {}",
            heard.join("; ")
        ),
    );
    checks.claim(
        people.iter().all(|p| !p.foreign.is_empty()),
        "each member opened the guest's frames",
    );
    Ok(())
}

fn address(args: &[String], flag: &str) -> Result<Option<SocketAddr>, String> {
    args.windows(2)
        .find(|w| w[0] == flag)
        .map(|w| {
            w[1].parse::<SocketAddr>().map_err(|e| {
                format!(
                    "{flag} {}: {e} (give an address such as 127.0.0.1:8080)",
                    w[1]
                )
            })
        })
        .transpose()
}

#[tokio::main]
async fn main() -> ExitCode {
    match call().await {
        Ok(checks) if checks.failed.is_empty() => {
            println!("\nAll {} checks of this call passed.", checks.passed);
            ExitCode::SUCCESS
        }
        Ok(checks) => {
            eprintln!(
                "\n{} of {} checks of this call FAILED:",
                checks.failed.len(),
                checks.failed.len() + checks.passed
            );
            for failed in &checks.failed {
                eprintln!("  - {failed}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nthe call could not go on: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_lines)] // The call, told in order.
async fn call() -> Result<Checks, String> {
    let args: Vec<String> = std::env::args().collect();
    let mut checks = Checks::default();
    let capture = std::env::temp_dir().join(format!("satsuma-call-{}.capture", std::process::id()));
    let (http, intercom, server) = match (address(&args, "--sfu")?, address(&args, "--intercom")?) {
        (Some(http), Some(intercom)) => {
            println!("Using the SFU at {http} (intercom link {intercom}).");
            (http, intercom, None)
        }
        (None, None) => {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let config = satsuma_sfu::Config {
                http: loopback,
                intercom: Some(loopback),
                debug: satsuma_sfu::config::DebugSettings {
                    capture: Some(capture.clone()),
                },
                ..Default::default()
            };
            let server = satsuma_sfu::start(config)
                .await
                .map_err(|e| format!("the embedded SFU did not start: {e}"))?;
            let http = server.http_addr();
            let intercom = server
                .intercom_addr()
                .ok_or("the embedded SFU has no intercom link")?;
            println!(
                "An SFU is running in this process: signalling ws://{http}/v1/rooms/{ROOM}/ws, intercom link {intercom}."
            );
            (http, intercom, Some(server))
        }
        _ => return Err("give both --sfu HTTP_ADDR and --intercom ADDR, or neither".into()),
    };
    let join = |name, transport| async move {
        Person::join(name, transport, http, intercom)
            .await
            .map_err(|e| format!("{name} cannot join through {http} / {intercom}: {e}"))
    };

    println!(
        "\nAlice and Bob (desktops, WebRTC) and the door intercom (TCP link) join room {ROOM:?}."
    );
    let mut alice = join("alice", Transport::WebRtc).await?;
    let mut bob = join("bob", Transport::WebRtc).await?;
    let mut door = join("door", Transport::Wire).await?;
    let (epoch, number) = settle(&mut [&mut alice, &mut bob, &mut door], 3)
        .await
        .ok_or("the three did not reach one epoch within 30 s")?;
    println!(
        "  all three are in the MLS group at epoch {epoch}; every screen shows safety number\n  {number}"
    );

    println!(
        "\nThey talk for two seconds (audio from all, video from the desktops), every frame SFrame-sealed;\nthe first frames, until every track is negotiated, are not counted:"
    );
    let trio = &mut [&mut alice, &mut bob, &mut door];
    checks.claim(
        warm_up(trio).await,
        "every track negotiated, everyone hears everyone",
    );
    talk_for(trio, 100, &mut checks).await;

    println!("\nBob's network blips: his link drops and a new one takes his seat.");
    bob.client.drop_link().await.map_err(|e| e.to_string())?;
    for _ in 0..500 {
        if bob.resumed.is_some() {
            break;
        }
        pump_all(&mut [&mut alice, &mut bob, &mut door]).await;
    }
    let trio = &mut [&mut alice, &mut bob, &mut door];
    let (epoch2, number2) = settle(trio, 3)
        .await
        .ok_or("after Bob's reconnection the three did not agree within 30 s")?;
    checks.claim(
        trio[1].resumed == Some(true),
        format!(
            "bob kept his seat ({})",
            match trio[1].resumed {
                Some(true) => "resumed",
                Some(false) => "joined afresh",
                None => "not back yet",
            }
        ),
    );
    checks.claim(
        epoch2 == epoch && number2 == number,
        format!("still epoch {epoch2}, the same safety number {number2}"),
    );
    checks.claim(warm_up(trio).await, "everyone hears everyone again");

    println!("\nCarol joins from another desktop; the designated committer adds her.");
    let mut carol = join("carol", Transport::WebRtc).await?;
    let four = &mut [&mut alice, &mut bob, &mut door, &mut carol];
    let (epoch3, number3) = settle(four, 4)
        .await
        .ok_or("Carol was not added within 30 s")?;
    checks.claim(
        epoch3 > epoch2 && number3 != number2,
        format!("a new epoch {epoch3} and a new safety number\n  {number3}"),
    );
    introductions_arrive(four).await;
    check_introductions(four, &mut checks);

    println!("\nBob leaves; the committer removes him and the keys change again.");
    bob.client.leave().await.map_err(|e| e.to_string())?;
    let trio = &mut [&mut alice, &mut door, &mut carol];
    let (epoch4, number4) = settle(trio, 3)
        .await
        .ok_or("Bob was not removed within 30 s")?;
    checks.claim(
        epoch4 > epoch3 && number4 != number3,
        format!("a new epoch {epoch4} and a new safety number\n  {number4}"),
    );
    println!("\nAlice, the door and Carol talk for a second:");
    checks.claim(
        warm_up(trio).await,
        "every track negotiated, everyone hears everyone",
    );
    talk_for(trio, 50, &mut checks).await;

    let stay = match args.windows(2).find(|w| w[0] == "--stay") {
        Some(w) => w[1]
            .parse::<u64>()
            .map_err(|e| format!("--stay {}: {e} (give seconds)", w[1]))?,
        None => 0,
    };
    let guest = args
        .windows(2)
        .find(|w| w[0] == "--guest")
        .map(|w| w[1].clone());
    if stay > 0 || guest.is_some() {
        let trio = &mut [&mut alice, &mut door, &mut carol];
        stay_open(trio, http, stay.max(20), guest.as_deref(), &mut checks).await?;
    }

    let people = [&alice, &bob, &door, &carol];
    let Some(server) = server else {
        println!(
            "\nThe SFU runs in another process: its counters and its record of payloads cannot be read\nfrom here, so there is no plaintext scan. Run `cargo xtask demo` without --sfu for it."
        );
        return Ok(checks);
    };
    let forwarded = [
        (Kind::Audio, satsuma_sfu::metrics::Kind::Audio),
        (Kind::Video, satsuma_sfu::metrics::Kind::Video),
    ]
    .map(|(kind, metric)| {
        let opened: usize = people
            .iter()
            .map(|p| p.heard_total.get(&kind).copied().unwrap_or(0))
            .sum();
        (kind, server.metrics().sent_packets(metric), opened)
    });
    server.shutdown().await;
    println!();
    for (kind, sent, opened) in forwarded {
        checks.claim(
            opened > 0 && sent >= u64::try_from(opened).unwrap_or(u64::MAX),
            format!(
                "the SFU forwarded {sent} {} packets; the members opened {opened} of their frames",
                format!("{kind:?}").to_lowercase()
            ),
        );
    }
    let record = std::fs::read(&capture);
    let _ = std::fs::remove_file(&capture);
    let record = match record {
        Ok(bytes) => bytes,
        Err(e) => {
            checks.claim(
                false,
                format!("the SFU's record of payloads can be read: {e}"),
            );
            return Ok(checks);
        }
    };
    // The positive control: the record holds frames the SFU forwarded, as
    // sealed by their senders (a desktop's and the door's), so a scan that
    // finds no plaintext has really looked at the payloads.
    let holds =
        |sealed: &[u8]| !sealed.is_empty() && record.windows(sealed.len()).any(|w| w == sealed);
    checks.claim(
        holds(&alice.last_sealed) && holds(&door.last_sealed),
        format!(
            "the SFU's record ({} bytes) holds the sealed frames alice and the door sent",
            record.len()
        ),
    );
    let leaks = record.windows(WORDS.len()).filter(|w| *w == WORDS).count();
    checks.claim(
        leaks == 0,
        format!("occurrences of the spoken words in that record: {leaks}"),
    );
    Ok(checks)
}
