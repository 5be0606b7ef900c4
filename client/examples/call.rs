//! A call over the network: the SFU (embedded, on loopback, unless
//! `--sfu HTTP_ADDR --intercom ADDR` name a running one), two desktop
//! members on WebRTC peer connections and a door intercom on its TCP link.
//! Every frame is SFrame-sealed by its sender and opened by each receiver;
//! the SFU records every payload it handles, and the record is scanned for
//! plaintext at the end.
//!
//! `cargo xtask call` runs this.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A demo's edge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use satsuma_client::rtc::{ClientSettings, ClientStreams, RtcClient};
use satsuma_client::{Client, ClientEvent, Endpoint};
use satsuma_core::committer::{Event, Member, MemberConfig};
use satsuma_core::media::Codec;
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig, Trust};
use satsuma_core::wire::{Blob, Capabilities, ConnId, Media, RoomName, Signal, Transport};
use tokio::sync::mpsc;

const ROOM: &str = "front-door";
/// What everyone says, in clear only inside the members.
const WORDS: &[u8] = b"the parcel is at the door, please come down ";

struct Person {
    name: &'static str,
    client: Client<Session>,
    events: mpsc::Receiver<ClientEvent>,
    rtc: Option<(std::sync::Arc<RtcClient>, ClientStreams)>,
    conn: u64,
    /// Frames opened, by sender connection; frames that did not open.
    heard: BTreeMap<u64, usize>,
    unopened: usize,
    /// Frames said so far: RTP timestamps and sequence numbers go on from
    /// here (a receiver's SRTP replay window drops repeated ones).
    said: u32,
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
    ) -> Self {
        let endpoint = match transport {
            Transport::WebRtc => Endpoint::WebSocket(http),
            Transport::Wire => Endpoint::Intercom(intercom),
        };
        let (client, events) = Client::start(
            endpoint,
            RoomName::new(ROOM).unwrap(),
            member(name, transport),
        )
        .await
        .unwrap();
        let rtc = if transport == Transport::WebRtc {
            // The door speaks G.711, so the desktops publish PCMU.
            let settings = ClientSettings {
                audio_codec: Codec::Pcmu,
                ..Default::default()
            };
            Some(RtcClient::new(&settings).await.unwrap())
        } else {
            None
        };
        Self {
            name,
            client,
            events,
            rtc,
            conn: 0,
            heard: BTreeMap::new(),
            unopened: 0,
            said: 0,
        }
    }

    /// Answers offers and opens every frame that arrived.
    async fn pump(&mut self) {
        let mut frames = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            match event {
                ClientEvent::Rtc(Signal::Offer(sdp)) => {
                    if let Some((rtc, _)) = &self.rtc {
                        let answer = rtc
                            .handle_offer(&String::from_utf8_lossy(&sdp))
                            .await
                            .unwrap();
                        let answer = Blob::copy_from(answer.as_bytes()).unwrap();
                        self.client.send_rtc(Signal::Answer(answer)).await.unwrap();
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
                }
                _ => {}
            }
        }
        if let Some((_, streams)) = &mut self.rtc {
            while let Ok(r) = streams.media.try_recv() {
                let codec = if r.video { Codec::Vp8 } else { Codec::Pcmu };
                frames.push((
                    r.stream_id.parse().unwrap_or(u64::MAX),
                    codec,
                    r.payload.to_vec(),
                ));
            }
        }
        if frames.is_empty() {
            return;
        }
        let mut opened = Vec::new();
        for (from, codec, sealed) in frames {
            // A frame that outran its commit is held, and comes back with
            // a later call, still tagged with its sender's connection.
            let tag = u32::try_from(from).unwrap_or(u32::MAX);
            match self.client.receive(codec, sealed, tag).await {
                Ok(heard) => opened.extend(heard.into_iter().map(|f| {
                    (
                        u64::from(f.tag),
                        f.frame.windows(WORDS.len()).any(|w| w == WORDS),
                    )
                })),
                Err(_) => opened.push((from, false)),
            }
        }
        for (from, ok) in opened {
            if ok {
                *self.heard.entry(from).or_default() += 1;
            } else {
                self.unopened += 1;
            }
        }
    }

    async fn seal(&self, codec: Codec, frame: Vec<u8>) -> Vec<u8> {
        self.client.seal(codec, frame).await.unwrap()
    }

    /// One 20 ms frame of audio, and a video frame every fifth time.
    async fn talk(&mut self) {
        let i = self.said;
        self.said += 1;
        let mut audio = WORDS.repeat(4);
        audio.truncate(160);
        let sealed = self.seal(Codec::Pcmu, audio).await;
        match &self.rtc {
            Some((rtc, _)) => {
                let _ = rtc.send_audio(&sealed, i * 160).await;
                if i.is_multiple_of(5) {
                    let mut frame =
                        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
                    frame.extend(WORDS.repeat(20));
                    let video = self.seal(Codec::Vp8, frame).await;
                    let _ = rtc.send_video(&video, i * 1800, true).await;
                }
            }
            None => {
                let media = Media {
                    sender: ConnId(self.conn),
                    codec: Codec::Pcmu,
                    timestamp: i * 160,
                    sequence: u16::try_from(i % 65_536).unwrap_or(0),
                    payload: Blob::copy_from(&sealed).unwrap(),
                };
                let _ = self.client.send_media(media).await;
            }
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

/// Pumps everyone until all show the same epoch with `n` members.
async fn settle(people: &mut [&mut Person], n: usize) -> (u64, String) {
    for _ in 0..1500 {
        let mut views = Vec::new();
        for p in people.iter_mut() {
            p.pump().await;
            views.push(p.view().await);
        }
        if views.iter().all(|v| v.as_ref().is_some_and(|v| v.2 == n))
            && views.windows(2).all(|w| w[0] == w[1])
        {
            let (epoch, number, _) = views[0].clone().unwrap();
            for p in people.iter_mut() {
                p.conn = p
                    .client
                    .with_member(|m| m.conn())
                    .await
                    .unwrap()
                    .map_or(0, |c| c.0);
            }
            return (epoch, number);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the call did not settle");
}

async fn talk_for(people: &mut [&mut Person], rounds: u32) {
    for _ in 0..rounds {
        for p in people.iter_mut() {
            p.talk().await;
        }
        for p in people.iter_mut() {
            p.pump().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..25 {
        for p in people.iter_mut() {
            p.pump().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(people: &[&mut Person]) {
    let names: BTreeMap<u64, &str> = people.iter().map(|p| (p.conn, p.name)).collect();
    for p in people {
        let heard: Vec<String> = p
            .heard
            .iter()
            .map(|(from, n)| {
                format!(
                    "{} {n}",
                    names.get(from).copied().unwrap_or("a former member")
                )
            })
            .collect();
        println!(
            "  {:<6} opened frames from: {}; frames it could not open: {}",
            p.name,
            heard.join(", "),
            p.unopened
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].parse::<SocketAddr>().unwrap())
    };
    let capture = std::env::temp_dir().join(format!("satsuma-call-{}.capture", std::process::id()));
    let (http, intercom, server) = match (arg("--sfu"), arg("--intercom")) {
        (Some(http), Some(intercom)) => {
            println!("Using the SFU at {http} (intercom link {intercom}).");
            (http, intercom, None)
        }
        _ => {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let config = satsuma_sfu::Config {
                http: loopback,
                intercom: Some(loopback),
                debug: satsuma_sfu::config::DebugSettings {
                    capture: Some(capture.clone()),
                },
                ..Default::default()
            };
            let server = satsuma_sfu::start(config).await.expect("the embedded SFU");
            let (http, intercom) = (server.http_addr(), server.intercom_addr().unwrap());
            println!(
                "An SFU is running in this process: signalling ws://{http}/v1/rooms/{ROOM}/ws, intercom link {intercom}."
            );
            (http, intercom, Some(server))
        }
    };

    println!(
        "\nAlice and Bob (desktops, WebRTC) and the door intercom (TCP link) join room {ROOM:?}."
    );
    let mut alice = Person::join("alice", Transport::WebRtc, http, intercom).await;
    let mut bob = Person::join("bob", Transport::WebRtc, http, intercom).await;
    let mut door = Person::join("door", Transport::Wire, http, intercom).await;
    let (epoch, number) = settle(&mut [&mut alice, &mut bob, &mut door], 3).await;
    println!(
        "  all three are in the MLS group at epoch {epoch}; every screen shows safety number\n  {number}"
    );

    println!(
        "\nThey talk for two seconds (audio from all, video from the desktops), every frame SFrame-sealed:"
    );
    talk_for(&mut [&mut alice, &mut bob, &mut door], 100).await;
    report(&[&mut alice, &mut bob, &mut door]);

    println!("\nBob's network blips: his link drops and a new one takes his seat.");
    bob.client.drop_link().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (epoch2, number2) = settle(&mut [&mut alice, &mut bob, &mut door], 3).await;
    println!(
        "  still epoch {epoch2}, same safety number: {}",
        if number2 == number { "yes" } else { "NO" }
    );

    println!("\nCarol joins from another desktop; the designated committer adds her.");
    let mut carol = Person::join("carol", Transport::WebRtc, http, intercom).await;
    let (epoch3, number3) = settle(&mut [&mut alice, &mut bob, &mut door, &mut carol], 4).await;
    println!("  epoch {epoch3}, new safety number\n  {number3}");

    println!("\nBob leaves; the committer removes him and the keys change again.");
    bob.client.leave().await.unwrap();
    let (epoch4, number4) = settle(&mut [&mut alice, &mut door, &mut carol], 3).await;
    println!("  epoch {epoch4}, safety number\n  {number4}");
    for p in [&mut alice, &mut door, &mut carol] {
        p.heard.clear();
        p.unopened = 0;
    }
    talk_for(&mut [&mut alice, &mut door, &mut carol], 50).await;
    report(&[&mut alice, &mut door, &mut carol]);

    if let Some(server) = server {
        let forwarded = [
            satsuma_sfu::metrics::Kind::Audio,
            satsuma_sfu::metrics::Kind::Video,
        ]
        .map(|k| server.metrics().sent_packets(k));
        server.shutdown().await;
        let bytes = std::fs::read(&capture).unwrap_or_default();
        let _ = std::fs::remove_file(&capture);
        let leaks = bytes.windows(WORDS.len()).filter(|w| *w == WORDS).count();
        println!(
            "\nThe SFU forwarded {} audio and {} video packets and recorded {} bytes of every payload it handled;\n  occurrences of the spoken words in that record: {leaks}.",
            forwarded[0],
            forwarded[1],
            bytes.len()
        );
        assert_eq!(leaks, 0, "plaintext reached the SFU");
    }
}
