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

// recvmmsg(2), sendmmsg(2) and sched_setaffinity(2) have no safe wrapper
// in the standard library; each call below says why it is sound.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd as _;

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
    rooms: HashMap<u32, Vec<(u16, SocketAddrV4)>>,
    inbox: Inbox,
    outbox: Outbox,
}

impl Relay {
    fn new() -> Self {
        Self {
            rooms: HashMap::new(),
            inbox: Inbox::new(),
            outbox: Outbox::new(),
        }
    }

    /// One batch: what is waiting in (at least one datagram), its copies
    /// out. Returns the datagrams read.
    fn step(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let n = self.inbox.recv(socket)?;
        self.outbox.clear();
        for i in 0..n {
            let (datagram, from) = self.inbox.get(i);
            let (Some((room, member, kind)), Some(from)) = (parse(datagram), from) else {
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
                    self.outbox.push(i, *to);
                }
            }
        }
        self.outbox.send(socket, &self.inbox)?;
        Ok(n)
    }
}

/// Receive buffers for one `recvmmsg`: [`BATCH`] slots of [`MTU`] bytes
/// with their lengths and source addresses.
struct Inbox {
    data: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Inbox {
    fn new() -> Self {
        Self {
            data: vec![0; BATCH * MTU],
            lens: vec![0; BATCH],
            addrs: vec![zeroed_sockaddr(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
        }
    }

    /// Blocks until at least one datagram is in, then takes every one
    /// waiting, up to [`BATCH`].
    fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.iovs.clear();
        self.headers.clear();
        for slot in self.data.chunks_exact_mut(MTU) {
            self.iovs.push(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
        }
        for (iov, addr) in self.iovs.iter_mut().zip(&mut self.addrs) {
            let mut header = zeroed_mmsghdr();
            header.msg_hdr.msg_name = std::ptr::from_mut(addr).cast();
            header.msg_hdr.msg_namelen = socklen::<libc::sockaddr_in>();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        loop {
            // SAFETY: every header points at one iovec and one sockaddr_in
            // of `self`, each iovec at its own MTU-sized slot of
            // `self.data`; none of them moves or is read until the call
            // returns, and the kernel writes at most `msg_namelen` address
            // bytes and `iov_len` data bytes into them. The length passed
            // is the headers' count.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr(),
                    u32::try_from(self.headers.len()).unwrap_or(0),
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = usize::try_from(n).unwrap_or(0);
            for (len, header) in self.lens.iter_mut().zip(&self.headers).take(n) {
                *len = usize::try_from(header.msg_len).unwrap_or(0).min(MTU);
            }
            return Ok(n);
        }
    }

    /// Datagram `i` of the last `recv` and where it came from (IPv4 only:
    /// the relay listens on 127.0.0.1).
    fn get(&self, i: usize) -> (&[u8], Option<SocketAddrV4>) {
        let start = i * MTU;
        let len = self.lens.get(i).copied().unwrap_or(0);
        let data = self.data.get(start..start + len).unwrap_or_default();
        let from = self.addrs.get(i).and_then(|a| {
            (i32::from(a.sin_family) == libc::AF_INET).then(|| {
                SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )
            })
        });
        (data, from)
    }
}

/// The copies one batch makes: which received datagram, to whom.
struct Outbox {
    copies: Vec<(usize, libc::sockaddr_in)>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Outbox {
    fn new() -> Self {
        Self {
            copies: Vec::with_capacity(BATCH * 4),
            iovs: Vec::with_capacity(BATCH * 4),
            headers: Vec::with_capacity(BATCH * 4),
        }
    }

    fn clear(&mut self) {
        self.copies.clear();
    }

    fn push(&mut self, datagram: usize, to: SocketAddrV4) {
        let mut addr = zeroed_sockaddr();
        addr.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(0);
        addr.sin_port = to.port().to_be();
        addr.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        self.copies.push((datagram, addr));
    }

    /// Sends every copy, as few `sendmmsg` calls as the kernel allows.
    fn send(&mut self, socket: &UdpSocket, inbox: &Inbox) -> io::Result<()> {
        self.iovs.clear();
        self.headers.clear();
        for &(i, _) in &self.copies {
            let data = inbox.get(i).0;
            self.iovs.push(libc::iovec {
                // sendmmsg only reads through it.
                iov_base: data.as_ptr().cast_mut().cast(),
                iov_len: data.len(),
            });
        }
        for (iov, (_, addr)) in self.iovs.iter_mut().zip(&mut self.copies) {
            let mut header = zeroed_mmsghdr();
            header.msg_hdr.msg_name = std::ptr::from_mut(addr).cast();
            header.msg_hdr.msg_namelen = socklen::<libc::sockaddr_in>();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        let mut done = 0;
        while done < self.headers.len() {
            let rest = self.headers.get_mut(done..).unwrap_or_default();
            // SAFETY: each header points at one iovec (a slice of the
            // inbox's buffer, borrowed for this call) and one sockaddr_in
            // in `self.copies`; nothing moves until the call returns, and
            // sendmmsg only reads them (it writes `msg_len`, in the
            // headers themselves). The length passed is `rest`'s count.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    rest.as_mut_ptr(),
                    u32::try_from(rest.len()).unwrap_or(0),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    // A member gone (ICMP port unreachable on loopback):
                    // skip its copy, as the kernel would drop it anyway.
                    io::ErrorKind::ConnectionRefused => {
                        done += 1;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            done += usize::try_from(n).unwrap_or(0).max(1);
        }
        Ok(())
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(0)
}

fn zeroed_sockaddr() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is a plain C struct of integers, for which all
    // zero bytes are a valid value (AF_UNSPEC, port 0, 0.0.0.0).
    unsafe { std::mem::zeroed() }
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct of integers and raw pointers, for
    // which all zero bytes are a valid value (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
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
