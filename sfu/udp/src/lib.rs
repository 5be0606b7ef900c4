//! Batched UDP on Linux: [`Inbox`] reads many datagrams with one
//! `recvmmsg(2)`, [`Outbox`] sends many with one `sendmmsg(2)`. The SFU's
//! shards use both, and so does the load tool's bare relay (the baseline
//! the shards are measured against).
//!
//! The standard library has no wrapper for either call; this crate is the
//! one place in the workspace that makes them, each with a note on why it
//! is sound. Both types own every buffer the kernel reads or writes and
//! rebuild the kernel's pointer tables right before each call, so nothing
//! they point at can move or be freed while the call runs.

// The two system calls; every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// Datagrams received with one call.
pub struct Inbox {
    slot: usize,
    data: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    filled: usize,
}

impl Inbox {
    /// Room for `batch` datagrams of up to `slot` bytes each (a longer
    /// datagram is cut to `slot`, as `recv` would).
    pub fn new(batch: usize, slot: usize) -> Self {
        let batch = batch.max(1);
        let slot = slot.max(1);
        Self {
            slot,
            data: vec![0; batch * slot],
            lens: vec![0; batch],
            addrs: vec![zeroed_storage(); batch],
            iovs: Vec::with_capacity(batch),
            headers: Vec::with_capacity(batch),
            filled: 0,
        }
    }

    /// Reads every datagram waiting, up to the batch. With `wait`, blocks
    /// until at least one is in (a blocking socket); without, returns
    /// `WouldBlock` when none is.
    pub fn recv(&mut self, socket: &impl AsRawFd, wait: bool) -> io::Result<usize> {
        self.filled = 0;
        self.iovs.clear();
        self.headers.clear();
        for slot in self.data.chunks_exact_mut(self.slot) {
            self.iovs.push(libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            });
        }
        for (iov, addr) in self.iovs.iter_mut().zip(&mut self.addrs) {
            self.headers
                .push(header(std::ptr::from_mut(addr).cast(), storage_len(), iov));
        }
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        let n = loop {
            // SAFETY: every header points at one iovec and one
            // sockaddr_storage owned by `self`, each iovec at its own
            // `slot`-sized part of `self.data`; none of them moves or is
            // touched until the call returns, and the kernel writes at
            // most `msg_namelen` address bytes and `iov_len` data bytes
            // through them. The count passed is the headers' own.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr(),
                    count(self.headers.len()),
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break usize::try_from(n).unwrap_or(0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for (len, header) in self.lens.iter_mut().zip(&self.headers).take(n) {
            *len = usize::try_from(header.msg_len).unwrap_or(0).min(self.slot);
        }
        self.filled = n;
        Ok(n)
    }

    /// Datagram `i` of the last [`recv`](Self::recv) and its source; `None`
    /// past what it read or for a source that is neither IPv4 nor IPv6.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let start = i * self.slot;
        let data = self.data.get(start..start + self.lens.get(i).copied()?)?;
        Some((data, from_storage(self.addrs.get(i)?)?))
    }
}

/// Datagrams waiting to be sent with as few calls as the kernel allows.
/// Each one's bytes are copied in, so the caller's buffers are free at
/// once. With [`gso`](Self::gso) on, datagrams pushed one after the other
/// for the same destination, of one size (the last may be shorter), go as
/// one message the kernel splits (UDP GSO, `UDP_SEGMENT`): one trip
/// through the IP stack for all of them.
pub struct Outbox {
    data: Vec<u8>,
    messages: Vec<Message>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    controls: Vec<Control>,
    gso: bool,
}

/// One message of a batch: its bytes in `data`, its destination, and, when
/// it carries several datagrams, their size.
struct Message {
    start: usize,
    end: usize,
    to: SocketAddr,
    addr: libc::sockaddr_storage,
    addrlen: libc::socklen_t,
    /// The size of each datagram in it (the last may be shorter).
    segment: usize,
    /// Datagrams in it.
    count: usize,
    /// Another datagram of `segment` bytes or fewer may join it.
    open: bool,
}

/// Room for one `UDP_SEGMENT` control message, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 32]);

/// The most datagrams one GSO message carries (the kernel's limit is 64).
const MAX_SEGMENTS: usize = 64;
/// The most bytes one GSO message carries (a UDP payload's limit, less
/// headroom).
const MAX_GSO_BYTES: usize = 60_000;

/// What [`Outbox::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams it refused (a full socket buffer, an unreachable port):
    /// they are dropped, as a lost packet would be.
    pub failed: usize,
    /// System calls made.
    pub calls: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        Self {
            data: Vec::new(),
            messages: Vec::new(),
            iovs: Vec::new(),
            headers: Vec::new(),
            controls: Vec::new(),
            gso: false,
        }
    }

    /// Sends runs of equal-sized datagrams to one destination as one GSO
    /// message from now on (Linux 4.18 and later). Turned off again by
    /// itself if the kernel refuses one.
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.messages.iter().map(|m| m.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Queues `datagram` for `to`.
    pub fn push(&mut self, datagram: &[u8], to: SocketAddr) {
        if self.gso
            && let Some(last) = self.messages.last_mut()
            && last.open
            && last.to == to
            && !datagram.is_empty()
            && datagram.len() <= last.segment
            && last.count < MAX_SEGMENTS
            && last.end - last.start + datagram.len() <= MAX_GSO_BYTES
        {
            self.data.extend_from_slice(datagram);
            last.end = self.data.len();
            last.count += 1;
            // A shorter datagram ends the run.
            last.open = datagram.len() == last.segment;
            return;
        }
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        let (addr, addrlen) = to_storage(to);
        self.messages.push(Message {
            start,
            end: self.data.len(),
            to,
            addr,
            addrlen,
            segment: datagram.len(),
            count: 1,
            open: true,
        });
    }

    /// Sends everything queued and empties the queue. A datagram the kernel
    /// refuses is counted in [`Sent::failed`] and skipped (a GSO message's
    /// datagrams together); the rest still go, unless the socket's buffer
    /// is full (a non-blocking socket), when all the rest are counted as
    /// failed.
    pub fn send(&mut self, socket: &impl AsRawFd) -> Sent {
        let mut report = Sent::default();
        self.iovs.clear();
        self.headers.clear();
        self.controls.clear();
        self.controls.resize(self.messages.len(), Control([0; 32]));
        for m in &self.messages {
            let bytes = self.data.get_mut(m.start..m.end).unwrap_or_default();
            self.iovs.push(libc::iovec {
                iov_base: bytes.as_mut_ptr().cast(),
                iov_len: bytes.len(),
            });
        }
        for ((iov, m), control) in self
            .iovs
            .iter_mut()
            .zip(&mut self.messages)
            .zip(&mut self.controls)
        {
            let mut h = header(std::ptr::from_mut(&mut m.addr).cast(), m.addrlen, iov);
            if m.count > 1 {
                segment_control(&mut h, control, m.segment);
            }
            self.headers.push(h);
        }
        let fd: RawFd = socket.as_raw_fd();
        let mut done = 0;
        while done < self.headers.len() {
            let rest = self.headers.get_mut(done..).unwrap_or_default();
            report.calls += 1;
            // SAFETY: each header points at one iovec (a part of
            // `self.data`), one sockaddr_storage in `self.messages` and, for
            // a GSO message, one control buffer in `self.controls`, all
            // owned by `self` and untouched until the call returns;
            // sendmmsg reads through them and writes only each header's
            // `msg_len`. The count passed is `rest`'s own.
            let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), count(rest.len()), 0) };
            if n > 0 {
                let n = usize::try_from(n).unwrap_or(0);
                report.sent += self
                    .messages
                    .get(done..done + n)
                    .map_or(0, |ms| ms.iter().map(|m| m.count).sum());
                done += n;
                continue;
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let waiting = |ms: &[Message]| ms.iter().map(|m| m.count).sum::<usize>();
            if n < 0 && e.kind() == io::ErrorKind::WouldBlock {
                // The socket's buffer is full: nothing more goes now.
                report.failed += self.messages.get(done..).map_or(0, waiting);
                break;
            }
            // The first message of `rest` was refused: skip it. A kernel
            // or device that cannot segment refuses GSO with EIO or
            // EINVAL: send single datagrams from then on.
            if let Some(m) = self.messages.get(done) {
                report.failed += m.count;
                if m.count > 1 && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
                    self.gso = false;
                }
            }
            done += 1;
        }
        self.data.clear();
        self.messages.clear();
        report
    }
}

/// Attaches a `UDP_SEGMENT` control message of `segment` bytes, written in
/// `control`, to `h`.
fn segment_control(h: &mut libc::mmsghdr, control: &mut Control, segment: usize) {
    let size = u16::try_from(segment).unwrap_or(u16::MAX);
    // SAFETY: CMSG_SPACE only computes a length.
    let space = unsafe { libc::CMSG_SPACE(2) };
    h.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
    h.msg_hdr.msg_controllen = usize::try_from(space).unwrap_or(0).min(control.0.len());
    // SAFETY: the header's control buffer is `control`, 32 bytes aligned
    // for cmsghdr and at least CMSG_SPACE(2) (24) long, so CMSG_FIRSTHDR
    // returns a pointer to its start, where one cmsghdr and its 2 data
    // bytes fit; the data is written unaligned.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&raw const h.msg_hdr);
        if c.is_null() {
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            return;
        }
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = usize::try_from(libc::CMSG_LEN(2)).unwrap_or(0);
        libc::CMSG_DATA(c).cast::<u16>().write_unaligned(size);
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("batch", &self.lens.len())
            .field("slot", &self.slot)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.len())
            .field("messages", &self.messages.len())
            .field("bytes", &self.data.len())
            .field("gso", &self.gso)
            .finish_non_exhaustive()
    }
}

fn count(n: usize) -> libc::c_uint {
    libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX)
}

fn header(
    name: *mut libc::c_void,
    namelen: libc::socklen_t,
    iov: &mut libc::iovec,
) -> libc::mmsghdr {
    // SAFETY: mmsghdr is a C struct of integers and raw pointers, for which
    // all zero bytes are a valid value (null pointers, zero lengths).
    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
    h.msg_hdr.msg_name = name;
    h.msg_hdr.msg_namelen = namelen;
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is a C struct of integers, for which all
    // zero bytes are a valid value (family AF_UNSPEC).
    unsafe { std::mem::zeroed() }
}

fn storage_len() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<libc::sockaddr_storage>()).unwrap_or(0)
}

fn to_storage(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage = zeroed_storage();
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: family(libc::AF_INET),
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and
            // aligned for it (that is its purpose); the write covers only
            // the sockaddr_in's bytes.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: family(libc::AF_INET6),
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6);
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, libc::socklen_t::try_from(len).unwrap_or(0))
}

fn family(f: libc::c_int) -> libc::sa_family_t {
    libc::sa_family_t::try_from(f).unwrap_or(0)
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in here (its family says
            // so); sockaddr_storage is large and aligned enough for one.
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(s).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

// Test code only (clippy.toml allows unwrap in tests): every unwrap is a
// loopback socket call or a datagram the test itself sent, and a failure
// there is the test failing, never input from outside.
// Loopback sockets the tests bind themselves: an unwrap failing is the
// test failing, never outside input.
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn socket(v6: bool) -> UdpSocket {
        let s = UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    /// Many datagrams of different sizes to two receivers in one call,
    /// read back in one call each, byte for byte, with their sources.
    #[test]
    fn a_batch_goes_out_and_comes_back_whole() {
        for v6 in [false, true] {
            let Ok(sender) = UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }) else {
                continue; // No IPv6 loopback here.
            };
            let (a, b) = (socket(v6), socket(v6));
            let mut out = Outbox::new();
            let datagrams: Vec<Vec<u8>> =
                (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
            for (i, d) in datagrams.iter().enumerate() {
                let to = if i % 2 == 0 { &a } else { &b };
                out.push(d, to.local_addr().unwrap());
            }
            assert_eq!(out.len(), 10);
            let sent = out.send(&sender);
            assert_eq!((sent.sent, sent.failed, sent.calls), (10, 0, 1));
            assert!(out.is_empty());
            for (k, receiver) in [&a, &b].into_iter().enumerate() {
                let mut inbox = Inbox::new(16, 2048);
                let mut got = 0;
                while got < 5 {
                    let n = inbox.recv(receiver, true).unwrap();
                    for i in 0..n {
                        let (data, from) = inbox.get(i).unwrap();
                        assert_eq!(data, &datagrams[k + 2 * got][..]);
                        assert_eq!(from, sender.local_addr().unwrap());
                        got += 1;
                    }
                    assert!(inbox.get(n).is_none());
                }
                receiver.set_nonblocking(true).unwrap();
                let e = inbox.recv(receiver, false).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                assert!(inbox.get(0).is_none(), "nothing read, nothing to get");
            }
        }
    }

    /// A datagram longer than the slot is cut, as `recv` would cut it.
    #[test]
    fn a_long_datagram_is_cut_to_the_slot() {
        let (sender, receiver) = (socket(false), socket(false));
        sender
            .send_to(&[7; 300], receiver.local_addr().unwrap())
            .unwrap();
        let mut inbox = Inbox::new(4, 64);
        assert_eq!(inbox.recv(&receiver, true).unwrap(), 1);
        assert_eq!(inbox.get(0).unwrap().0, &[7; 64][..]);
    }

    /// A refused datagram (IPv4 to an IPv6 socket's peer) is counted and
    /// skipped; the ones after it still go.
    #[test]
    fn a_refused_datagram_does_not_stop_the_rest() {
        let (sender, receiver) = (socket(false), socket(false));
        let mut out = Outbox::new();
        out.push(b"one", receiver.local_addr().unwrap());
        out.push(b"two", "[::1]:9".parse().unwrap());
        out.push(b"three", receiver.local_addr().unwrap());
        let sent = out.send(&sender);
        assert_eq!((sent.sent, sent.failed), (2, 1));
        let mut buf = [0; 16];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"three");
    }

    /// With GSO, a run of equal-sized datagrams to one receiver (the last
    /// shorter) goes as one message and arrives as the datagrams it was,
    /// in order; a datagram for someone else is its own message.
    #[test]
    fn a_gso_run_arrives_as_its_datagrams() {
        let (sender, a, b) = (socket(false), socket(false), socket(false));
        let mut out = Outbox::new().gso(true);
        let run: Vec<Vec<u8>> = vec![vec![1; 100], vec![2; 100], vec![3; 100], vec![4; 40]];
        for d in &run {
            out.push(d, a.local_addr().unwrap());
        }
        // A longer one after the shorter starts a new message.
        out.push(&[5; 100], a.local_addr().unwrap());
        out.push(&[6; 100], b.local_addr().unwrap());
        assert_eq!(out.len(), 6);
        assert_eq!(out.messages.len(), 3, "one GSO message and two single ones");
        let sent = out.send(&sender);
        assert_eq!((sent.sent, sent.failed, sent.calls), (6, 0, 1));
        let mut buf = [0; 256];
        for d in run.iter().chain(std::iter::once(&vec![5; 100])) {
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..]);
        }
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[6; 100][..]);
    }
}
