//! A call between three MLS members, in one process: the group key changes
//! as people join and leave, every frame is SFrame-protected, and a
//! pretend forwarding server that logs every byte never sees a plaintext
//! one.
//!
//! What is real: the MLS group (mls-rs with Satsuma's crypto provider),
//! the designated-committer protocol (`committer::Member` in every client,
//! `committer::Room` as the delivery service) and every `wire` message,
//! encoded and decoded, the per-epoch SFrame keys, the safety numbers. What
//! is not yet: the network. The "server" here moves bytes between vectors;
//! the SFU is a later step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A demo's edge.
#![allow(clippy::cast_possible_truncation)] // Made-up media bytes wrap on purpose.

use std::io::Read;
use std::time::Duration;

use satsuma_core::Instant;
use satsuma_core::committer::{Event, Member, MemberConfig, Room, RoomConfig};
use satsuma_core::media::{Codec, MediaKeys};
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, ConnId, Message, RoomName, ToClient, ToServer, Transport};

/// A provider seeded from the operating system's entropy.
fn os_crypto() -> SatsumaCrypto {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .expect("the OS entropy source");
    SatsumaCrypto::from_seed(seed)
}

fn member(name: &str, device: &str, can_commit: bool) -> Member<Session> {
    let session = Session::create(
        os_crypto(),
        MemberInfo::new(name, device).unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap();
    let capabilities = Capabilities {
        can_commit,
        transport: if can_commit {
            Transport::WebRtc
        } else {
            Transport::Wire
        },
    };
    Member::new(
        session,
        MemberConfig {
            room: RoomName::new("demo-room").unwrap(),
            capabilities,
        },
    )
}

/// 20 ms of Opus-sized audio.
fn audio(i: usize, who: u8) -> Vec<u8> {
    (0..80).map(|j| (i * 31 + j) as u8 ^ who).collect()
}

/// The server: the delivery service for handshake messages, a forwarder
/// for media, and a log of every byte it handles.
struct Server {
    room: Room,
    log: Vec<u8>,
}

impl Server {
    /// Forwards a protected frame, keeping a copy of every byte.
    fn forward(&mut self, packet: &[u8]) -> Vec<u8> {
        self.log.extend_from_slice(packet);
        packet.to_vec()
    }
}

/// Everyone in the call, by name, with the connection the server gave them.
struct Call {
    server: Server,
    members: Vec<(&'static str, Member<Session>, Option<ConnId>)>,
}

impl Call {
    fn get(&mut self, name: &str) -> &mut Member<Session> {
        &mut self.members.iter_mut().find(|m| m.0 == name).unwrap().1
    }

    fn session(&self, name: &str) -> &Session {
        self.members.iter().find(|m| m.0 == name).unwrap().1.group()
    }

    /// Carries every handshake message, encoded on the wire and logged,
    /// until nothing moves; prints what the members report.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            for (name, member, conn) in &mut self.members {
                while let Some(request) = member.poll_transmit() {
                    moved = true;
                    let bytes = ToServer::from(request.clone()).encode().unwrap();
                    self.server.log.extend_from_slice(&bytes);
                    match self.server.room.handle(now, *conn, request) {
                        Ok(from) => *conn = Some(from),
                        Err(e) => println!("  server to {name}: {e}"),
                    }
                }
            }
            while let Some(transmit) = self.server.room.poll_transmit() {
                moved = true;
                // Encoded once, whatever the number of recipients.
                let bytes = ToClient::Control(transmit.message).encode().unwrap();
                self.server.log.extend_from_slice(&bytes);
                let to: Vec<ConnId> = self.server.room.recipients(transmit.to).collect();
                for (name, member, conn) in &mut self.members {
                    if !conn.is_some_and(|c| to.contains(&c)) {
                        continue; // not for it, or gone
                    }
                    if let Err(e) = member.handle_bytes(now, &bytes) {
                        println!("  {name} dropped a message: {e}");
                    }
                    while let Some(event) = member.poll_event() {
                        match event {
                            Event::Joined { epoch } => println!("  {name} is in, at epoch {epoch}"),
                            Event::NewEpoch { .. } => {}
                            other => println!("  {name}: {other:?}"),
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn show(&self) {
        for (_, member, _) in &self.members {
            let session = member.group();
            if session.epoch().is_some() {
                show(session);
            }
        }
    }
}

fn seal(mut from: MediaKeys<'_>, frame: &[u8]) -> Vec<u8> {
    let mut wire = vec![0u8; from.max_protected_len(Codec::Opus, frame.len())];
    let n = from.protect(Codec::Opus, frame, &mut wire).unwrap();
    wire.truncate(n);
    wire
}

fn open(mut to: MediaKeys<'_>, packet: &[u8]) -> Result<Vec<u8>, satsuma_core::Error> {
    let mut out = vec![0u8; packet.len()];
    let (_, len) = to.unprotect(Codec::Opus, packet, &mut out)?;
    out.truncate(len);
    Ok(out)
}

fn show(session: &Session) {
    println!(
        "  {:<6} epoch {}  safety number {}",
        session.info().display_name,
        session.epoch().unwrap(),
        session.safety_number().unwrap()
    );
}

fn main() {
    let mut now = Instant::ZERO;
    let tick = Duration::from_millis(20);
    let mut call = Call {
        server: Server {
            room: Room::new(RoomConfig::default()),
            log: Vec::new(),
        },
        members: vec![
            ("Alice", member("Alice", "alice-laptop", true), None),
            ("Bob", member("Bob", "bob-desktop", true), None),
        ],
    };
    println!(
        "Alice's identity fingerprint: {}",
        call.session("Alice").fingerprint()
    );

    println!("Alice and Bob open the empty room at the same moment:");
    call.get("Alice").join(now).unwrap();
    call.get("Bob").join(now).unwrap();
    call.settle(now);
    call.show();
    assert_eq!(
        call.session("Alice").safety_number().unwrap(),
        call.session("Bob").safety_number().unwrap()
    );
    assert_eq!(
        call.session("Alice").epoch(),
        Some(1),
        "one group, Bob added to it"
    );

    let mut opened = 0;
    let mut in_flight = Vec::new();
    for i in 0..100 {
        now = now.saturating_add(tick);
        let frame = audio(i, 0xa1);
        let sealed = seal(call.get("Alice").media(), &frame);
        let packet = call.server.forward(&sealed);
        if i >= 95 {
            // Still on the network when Carol's commit lands.
            in_flight.push((packet, frame));
            continue;
        }
        assert_eq!(open(call.get("Bob").media(), &packet).unwrap(), frame);
        opened += 1;
    }

    println!("Carol, the door intercom (it never commits while a desktop is there), joins:");
    call.members
        .push(("Carol", member("Carol", "front-door", false), None));
    call.get("Carol").join(now).unwrap();
    call.settle(now);
    call.show();
    for (packet, frame) in in_flight.drain(..) {
        assert_eq!(open(call.get("Bob").media(), &packet).unwrap(), frame);
        opened += 1;
    }
    println!("  the 5 frames sealed before the change still opened at Bob: no gap");
    let roster: Vec<String> = call
        .session("Carol")
        .roster()
        .iter()
        .map(|m| format!("{} [{}]", m.info, m.fingerprint))
        .collect();
    println!("  Carol's roster: {}", roster.join(", "));

    for i in 0..50 {
        now = now.saturating_add(tick);
        let frame = audio(i, 0xc3);
        let sealed = seal(call.get("Carol").media(), &frame);
        let packet = call.server.forward(&sealed);
        assert_eq!(open(call.get("Alice").media(), &packet).unwrap(), frame);
        assert_eq!(open(call.get("Bob").media(), &packet).unwrap(), frame);
        opened += 2;
    }
    println!("{opened} frames opened, every one byte for byte");

    println!("Bob's connection drops; he keeps his keys. Alice, the committer, removes him:");
    let bob_conn = call.members[1].2.take().unwrap();
    call.server.room.handle_disconnect(now, bob_conn);
    call.settle(now);
    call.show();
    let secret = audio(7, 0x5e);
    let sealed = seal(call.get("Alice").media(), &secret);
    let packet = call.server.forward(&sealed);
    assert_eq!(open(call.get("Carol").media(), &packet).unwrap(), secret);
    let refused = open(call.get("Bob").media(), &packet).unwrap_err();
    println!("  Bob tries to open a frame of the new epoch with the keys he kept: {refused}");

    assert!(
        !call
            .server
            .log
            .windows(16)
            .any(|w| w == &audio(3, 0xa1)[..16] || w == &secret[..16]),
        "plaintext reached the server"
    );
    println!(
        "The server handled {} bytes (handshakes and media) and never saw a plaintext byte",
        call.server.log.len()
    );
}
