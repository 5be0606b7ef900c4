//! The bare UDP relay (`--transport relay`, and the baseline of
//! `--baseline`): the same packets as the desktop plane's, forwarded with
//! no WebRTC at all, so that the SFU's numbers can be read as a share of
//! what this machine's kernel and loopback allow.
//!
//! It runs as a child process of the tool (`satsuma-load --serve-relay`),
//! one thread, one UDP socket with 4 MiB buffers, like one SFU shard. Each
//! wake-up reads up to [`BATCH`] datagrams with one `recvmmsg`, and sends
//! every copy they make with one `sendmmsg`: the least work per packet a
//! user-space forwarder can do, short of GSO or kernel bypass.
//!
//! A datagram is a [`HEADER`] (room number, member number, kind) and a
//! payload. The relay learns a member's address from its datagrams (a
//! hello before the media starts, then every packet), and forwards media
//! to the room's other members; hellos are not forwarded.

// sched_setaffinity(2) has no safe wrapper in the standard library; the
// call below says why it is sound. (recvmmsg and sendmmsg are
// satsuma-udp's, shared with the SFU's shards.)
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use satsuma_udp::{Inbox, Outbox};

/// Room (u32), member (u16), kind (u8), reserved (u8); big-endian.
pub(crate) const HEADER: usize = 8;
pub(crate) const HELLO: u8 = 0;
pub(crate) const MEDIA: u8 = 1;
/// Bytes an RTP header (12) and an SRTP authentication tag (16, AES-GCM)
/// add to a payload on the desktop plane; a relay datagram carries the
/// same payload padded by this much less its own header, so the two
/// planes move the same number of bytes.
pub(crate) const RTP_OVERHEAD: usize = 28;
/// Datagrams read per `recvmmsg`.
const BATCH: usize = 64;
/// The largest datagram.
const MTU: usize = 1500;

/// `room`, `member`, `kind` as the datagram's first bytes.
pub(crate) fn header(room: u32, member: u16, kind: u8) -> [u8; HEADER] {
    let mut h = [0; HEADER];
    h[..4].copy_from_slice(&room.to_be_bytes());
    h[4..6].copy_from_slice(&member.to_be_bytes());
    h[6] = kind;
    h
}

fn parse(datagram: &[u8]) -> Option<(u32, u16, u8)> {
    let room = u32::from_be_bytes(datagram.get(..4)?.try_into().ok()?);
    let member = u16::from_be_bytes(datagram.get(4..6)?.try_into().ok()?);
    Some((room, member, *datagram.get(6)?))
}

/// Runs the relay until the process is killed: prints `relay=ADDR` on
/// stdout once it listens.
pub(crate) fn serve() -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    socket.set_recv_buffer_size(4 << 20)?;
    socket.set_send_buffer_size(4 << 20)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let socket = UdpSocket::from(socket);
    let mut stdout = io::stdout();
    writeln!(stdout, "relay={}", socket.local_addr()?)?;
    stdout.flush()?;
    let mut relay = Relay::new();
    loop {
        relay.step(&socket)?;
    }
}

/// The relay's state: the rooms' members and their addresses, and the
/// buffers of one batch.
struct Relay {
    rooms: HashMap<u32, Vec<(u16, SocketAddr)>>,
    inbox: Inbox,
    outbox: Outbox,
}

impl Relay {
    fn new() -> Self {
        Self {
            rooms: HashMap::new(),
            inbox: Inbox::new(BATCH, MTU),
            outbox: Outbox::new(),
        }
    }

    /// One batch: what is waiting in (at least one datagram), its copies
    /// out. Returns the datagrams read.
    fn step(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let n = self.inbox.recv(socket, true)?;
        for i in 0..n {
            let Some((datagram, from)) = self.inbox.get(i) else {
                continue;
            };
            let Some((room, member, kind)) = parse(datagram) else {
                continue;
            };
            let members = self.rooms.entry(room).or_default();
            match members.iter_mut().find(|(m, _)| *m == member) {
                Some((_, addr)) => *addr = from,
                None => members.push((member, from)),
            }
            if kind != MEDIA {
                continue;
            }
            for (m, to) in members.iter() {
                if *m != member {
                    self.outbox.push(datagram, *to);
                }
            }
        }
        self.outbox.send(socket);
        Ok(n)
    }
}

/// Keeps this process (and the threads it starts from now on) on `cpu`.
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a bit array, for which all zero bytes are the
    // empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET sets one bit of `set` through a checked index (a
    // `cpu` past the set's 1024 bits panics rather than writes).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t that outlives the call, and the
    // size passed is its own; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of_val(&set), &raw const set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// Test code only (clippy.toml allows unwrap in tests): every unwrap is a
// loopback socket call or a datagram the test itself sent, and a failure
// there is the test failing, never input from outside.
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The relay over real sockets: a hello is not forwarded, media goes
    /// to every other member of the room and to no one else, byte for byte.
    #[test]
    fn media_reaches_the_rooms_other_members_only() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = socket.local_addr().unwrap();
        let member = |room: u32, m: u16| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s.connect(at).unwrap();
            s.send(&header(room, m, HELLO)).unwrap();
            s
        };
        let a = member(1, 0);
        let b = member(1, 1);
        let c = member(1, 2);
        let other = member(2, 0);
        let mut relay = Relay::new();
        let mut hellos = 0;
        while hellos < 4 {
            hellos += relay.step(&socket).unwrap();
        }
        let mut buf = [0; 64];
        assert!(b.recv(&mut buf).is_err(), "a hello was forwarded");
        let mut packet = header(1, 0, MEDIA).to_vec();
        packet.extend_from_slice(b"frame");
        a.send(&packet).unwrap();
        assert_eq!(relay.step(&socket).unwrap(), 1);
        for s in [&b, &c] {
            let n = s.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &packet[..]);
        }
        assert!(a.recv(&mut buf).is_err(), "the sender hears itself");
        assert!(other.recv(&mut buf).is_err(), "another room hears it");
    }
}
