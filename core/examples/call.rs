//! A call between three MLS members, in one process: the group key changes
//! as people join and leave, every frame is SFrame-protected, and a
//! pretend forwarding server that logs every byte never sees a plaintext
//! one.
//!
//! What is real: the MLS group (mls-rs with Satsuma's crypto provider),
//! the key packages, commits and Welcomes, the per-epoch SFrame keys, the
//! safety numbers. What is not yet: the network. The "server" here is a
//! vector; the SFU and the delivery service are a later step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A demo's edge.
#![allow(clippy::cast_possible_truncation)] // Made-up media bytes wrap on purpose.

use std::io::Read;
use std::time::Duration;

use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::mls::{Event, MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};

/// A provider seeded from the operating system's entropy.
fn os_crypto() -> SatsumaCrypto {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .expect("the OS entropy source");
    SatsumaCrypto::from_seed(seed)
}

fn member(name: &str, device: &str) -> Session {
    Session::create(
        os_crypto(),
        MemberInfo::new(name, device).unwrap(),
        SessionConfig::default(),
        MemoryStore::new(),
    )
    .unwrap()
}

/// 20 ms of Opus-sized audio.
fn audio(i: usize, who: u8) -> Vec<u8> {
    (0..80).map(|j| (i * 31 + j) as u8 ^ who).collect()
}

struct Server {
    log: Vec<u8>,
}

impl Server {
    /// Forwards a protected frame, keeping a copy of every byte.
    fn forward(&mut self, packet: &[u8]) -> Vec<u8> {
        self.log.extend_from_slice(packet);
        packet.to_vec()
    }
}

fn seal(from: &mut Session, frame: &[u8]) -> Vec<u8> {
    let mut wire = vec![0u8; frame.len() + 64];
    let n = Codec::Opus
        .protect(from.keyring_mut(), frame, &mut wire)
        .unwrap();
    wire.truncate(n);
    wire
}

fn open(to: &mut Session, packet: &[u8]) -> Result<Vec<u8>, satsuma_core::Error> {
    let mut out = vec![0u8; packet.len()];
    let (_, len) = Codec::Opus.unprotect(to.keyring_mut(), packet, &mut out)?;
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
    let mut server = Server { log: Vec::new() };
    let mut now = Instant::ZERO;
    let tick = Duration::from_millis(20);

    let mut alice = member("Alice", "alice-laptop");
    let mut bob = member("Bob", "bob-desktop");
    let mut carol = member("Carol", "front-door");
    println!("Alice's identity fingerprint: {}", alice.fingerprint());

    alice.create_group(b"demo-room", now).unwrap();
    let kp = bob.key_package().unwrap();
    let add_bob = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(now).unwrap();
    bob.join(add_bob.welcome.as_deref().unwrap(), now).unwrap();
    println!(
        "Bob joins (commit {} B, Welcome {} B):",
        add_bob.commit.len(),
        add_bob.welcome.as_ref().map_or(0, Vec::len)
    );
    show(&alice);
    show(&bob);
    assert_eq!(alice.safety_number().unwrap(), bob.safety_number().unwrap());

    let mut opened = 0;
    let mut in_flight = Vec::new();
    for i in 0..100 {
        now = now.saturating_add(tick);
        let frame = audio(i, 0xa1);
        let packet = server.forward(&seal(&mut alice, &frame));
        if i >= 95 {
            // Still on the network when Carol's commit lands.
            in_flight.push((packet, frame));
            continue;
        }
        assert_eq!(open(&mut bob, &packet).unwrap(), frame);
        opened += 1;
    }

    let kp = carol.key_package().unwrap();
    let add_carol = alice.commit(&[&kp], &[]).unwrap();
    alice.apply_pending_commit(now).unwrap();
    assert!(matches!(
        bob.handle_message(&add_carol.commit, now).unwrap(),
        Event::NewEpoch { epoch: 2, .. }
    ));
    carol
        .join(add_carol.welcome.as_deref().unwrap(), now)
        .unwrap();
    println!("Carol (the door intercom) joins: the key changes");
    for s in [&alice, &bob, &carol] {
        show(s);
    }
    for (packet, frame) in in_flight.drain(..) {
        assert_eq!(open(&mut bob, &packet).unwrap(), frame);
        opened += 1;
    }
    println!("  the 5 frames sealed before the change still opened at Bob: no gap");
    let roster: Vec<String> = carol
        .roster()
        .iter()
        .map(|m| format!("{} [{}]", m.info, m.fingerprint))
        .collect();
    println!("  Carol's roster: {}", roster.join(", "));

    for i in 0..50 {
        now = now.saturating_add(tick);
        let frame = audio(i, 0xc3);
        let packet = server.forward(&seal(&mut carol, &frame));
        assert_eq!(open(&mut alice, &packet).unwrap(), frame);
        assert_eq!(open(&mut bob, &packet).unwrap(), frame);
        opened += 2;
    }
    println!("{opened} frames opened, every one byte for byte");

    let bob_leaf = bob.own_index().unwrap();
    let remove_bob = alice.commit(&[], &[bob_leaf]).unwrap();
    alice.apply_pending_commit(now).unwrap();
    carol.handle_message(&remove_bob.commit, now).unwrap();
    let removed = bob.handle_message(&remove_bob.commit, now).unwrap();
    println!("Bob leaves ({removed:?}); the key changes again:");
    show(&alice);
    show(&carol);
    let secret = audio(7, 0x5e);
    let packet = server.forward(&seal(&mut alice, &secret));
    assert_eq!(open(&mut carol, &packet).unwrap(), secret);
    let refused = open(&mut bob, &packet).unwrap_err();
    println!("  Bob tries to open a frame of the new epoch: {refused}");

    assert!(
        !server.log.windows(16).any(|w| w == &audio(3, 0xa1)[..16]),
        "plaintext reached the server"
    );
    println!(
        "The server forwarded {} bytes and never saw a plaintext byte",
        server.log.len()
    );
}
