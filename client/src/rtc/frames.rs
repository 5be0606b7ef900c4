//! Video frames over RTP: one sealed frame (SFrame ciphertext, whole-frame
//! encryption per RFC 9605) split over as many packets as it needs, and
//! put back together on the other side.
//!
//! A sealed frame has no codec structure left to packetise by, so each
//! packet's payload starts with one descriptor byte, after the SFrame RTP
//! payload format drafts:
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 7 | S | this packet starts a frame |
//! | 6 | E | this packet ends a frame (the RTP marker is set too) |
//! | 5-0 | | zero when sent, ignored when received |
//!
//! Every packet of a frame has the frame's RTP timestamp and consecutive
//! sequence numbers. A receiver that misses any packet of a frame drops
//! the whole frame and says so, so that the caller asks for a key frame
//! instead of decoding half a picture: [`FrameAssembler`] never returns a
//! frame with a hole in it.
//!
//! Audio frames are small and go one per packet with no descriptor, as the
//! intercom's link sends them.

pub use satsuma_core::media::{FRAME_END as END, FRAME_START as START};

/// The largest RTP payload the client sends: under a 1,280-byte IPv6
/// minimum MTU with the RTP, SRTP, UDP and IP headers.
pub const MAX_PAYLOAD: usize = 1_150;

/// The largest frame a receiver puts together by default: a 640×360 VP8
/// key frame at a high bitrate is under 100 KB; anything far larger is a
/// broken or hostile sender.
pub const MAX_FRAME: usize = 1 << 20;

/// The packets that carry `frame`, in order: each one's descriptor and
/// the part of the frame after it, so that a payload (descriptor and
/// part) is at most `max_payload` bytes long (at least 2). An empty frame
/// is one packet.
pub fn fragments(frame: &[u8], max_payload: usize) -> impl Iterator<Item = (u8, &[u8])> {
    let chunk = max_payload.max(2) - 1;
    let count = frame.len().div_ceil(chunk).max(1);
    (0..count).map(move |i| {
        let body = frame
            .get(i * chunk..((i + 1) * chunk).min(frame.len()))
            .unwrap_or_default();
        let start = if i == 0 { START } else { 0 };
        let end = if i + 1 == count { END } else { 0 };
        (start | end, body)
    })
}

/// The payloads of the packets that carry `frame`: [`fragments`], each
/// descriptor and part in one buffer.
pub fn packetize(frame: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    fragments(frame, max_payload)
        .map(|(descriptor, body)| [&[descriptor][..], body].concat())
        .collect()
}

/// What one packet did to the frame being put together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pushed {
    /// Packets were lost (or arrived broken) since the last frame: at
    /// least one frame is gone. Ask the sender for a key frame.
    pub lost: bool,
    /// A frame is complete: its RTP timestamp and bytes.
    pub frame: Option<(u32, Vec<u8>)>,
}

/// Puts one video stream's frames back together from its packets, in
/// arrival order. Bounded: a frame longer than its limit is dropped.
#[derive(Debug)]
pub struct FrameAssembler {
    max_frame: usize,
    expected: Option<u16>,
    /// The frame being assembled: its timestamp and bytes so far.
    partial: Option<(u32, Vec<u8>)>,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self::new(MAX_FRAME)
    }
}

impl FrameAssembler {
    /// An assembler that drops frames longer than `max_frame` bytes.
    #[must_use]
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            expected: None,
            partial: None,
        }
    }

    /// Takes one packet of the stream.
    pub fn push(&mut self, sequence: u16, timestamp: u32, payload: &[u8]) -> Pushed {
        let mut out = Pushed::default();
        let in_order = self.expected.is_none_or(|e| e == sequence);
        if !in_order {
            // Late or duplicate packets (behind `expected`) are ignored;
            // a gap ahead means packets were lost.
            let behind = self
                .expected
                .is_some_and(|e| e.wrapping_sub(sequence) < u16::MAX / 2);
            if behind {
                return out;
            }
            out.lost = true;
            self.partial = None;
        }
        self.expected = Some(sequence.wrapping_add(1));
        let Some((&flags, body)) = payload.split_first() else {
            out.lost = true;
            self.partial = None;
            return out;
        };
        if flags & START != 0 {
            if self.partial.take().is_some() {
                // The previous frame's end never came.
                out.lost = true;
            }
            self.partial = Some((timestamp, Vec::new()));
        }
        let Some((ts, bytes)) = self.partial.as_mut() else {
            // The middle of a frame whose start was lost, already reported.
            return out;
        };
        if *ts != timestamp || bytes.len() + body.len() > self.max_frame {
            out.lost = true;
            self.partial = None;
            return out;
        }
        bytes.extend_from_slice(body);
        if flags & END != 0 {
            out.frame = self.partial.take();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use super::*;

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    fn feed(a: &mut FrameAssembler, seq: &mut u16, ts: u32, packets: &[Vec<u8>]) -> Vec<Pushed> {
        packets
            .iter()
            .map(|p| {
                let r = a.push(*seq, ts, p);
                *seq = seq.wrapping_add(1);
                r
            })
            .collect()
    }

    #[test]
    fn frames_of_every_size_come_back_whole() {
        let mut a = FrameAssembler::default();
        let mut seq = u16::MAX - 3; // across the wrap
        for (i, n) in [0, 1, 1_148, 1_149, 1_150, 5_000, 40_000]
            .into_iter()
            .enumerate()
        {
            let f = frame(n, i as u8);
            let packets = packetize(&f, MAX_PAYLOAD);
            assert!(packets.iter().all(|p| p.len() <= MAX_PAYLOAD));
            assert_eq!(packets.len(), n.div_ceil(MAX_PAYLOAD - 1).max(1));
            let out = feed(&mut a, &mut seq, i as u32 * 3000, &packets);
            let done: Vec<_> = out.iter().filter_map(|p| p.frame.clone()).collect();
            assert_eq!(done, vec![(i as u32 * 3000, f)], "frame of {n} bytes");
            assert!(out.iter().all(|p| !p.lost));
        }
    }

    #[test]
    fn a_lost_packet_loses_its_frame_and_says_so_once() {
        let mut a = FrameAssembler::default();
        let mut seq = 100;
        let first = packetize(&frame(3_000, 1), MAX_PAYLOAD);
        assert_eq!(first.len(), 3);
        let mut out = feed(&mut a, &mut seq, 0, &first[..1]);
        seq = seq.wrapping_add(1); // the second packet is lost
        out.extend(feed(&mut a, &mut seq, 0, &first[2..]));
        assert!(
            out.iter().all(|p| p.frame.is_none()),
            "no frame with a hole"
        );
        assert_eq!(out.iter().filter(|p| p.lost).count(), 1);
        // The next frame arrives whole and is returned.
        let next = frame(2_000, 2);
        let out = feed(&mut a, &mut seq, 3000, &packetize(&next, MAX_PAYLOAD));
        assert_eq!(out.last().unwrap().frame, Some((3000, next)));
        assert!(out.iter().all(|p| !p.lost));
    }

    #[test]
    fn a_lost_start_or_end_loses_the_frame() {
        let mut a = FrameAssembler::default();
        let packets = packetize(&frame(3_000, 3), MAX_PAYLOAD);
        // Start lost: the rest of that frame is dropped.
        let out: Vec<_> = (1..packets.len())
            .map(|i| a.push(10 + i as u16, 0, &packets[i]))
            .collect();
        assert!(out.iter().all(|p| p.frame.is_none()));
        // End lost, then a new frame starts: the old one is reported lost.
        let mut a = FrameAssembler::default();
        let _ = a.push(1, 0, &packets[0]);
        let _ = a.push(2, 0, &packets[1]);
        let single = packetize(b"next", MAX_PAYLOAD);
        let out = a.push(3, 90, &single[0]);
        assert!(out.lost);
        assert_eq!(out.frame, Some((90, b"next".to_vec())));
    }

    #[test]
    fn duplicates_and_late_packets_change_nothing() {
        let mut a = FrameAssembler::default();
        let f = frame(2_500, 4);
        let p = packetize(&f, MAX_PAYLOAD);
        assert_eq!(a.push(5, 7, &p[0]), Pushed::default());
        assert_eq!(a.push(5, 7, &p[0]), Pushed::default(), "duplicate");
        assert_eq!(a.push(6, 7, &p[1]), Pushed::default());
        assert_eq!(a.push(4, 7, &p[1]), Pushed::default(), "late");
        assert_eq!(a.push(7, 7, &p[2]).frame, Some((7, f)));
    }

    #[test]
    fn hostile_packets_are_bounded_and_never_panic() {
        let mut a = FrameAssembler::new(4_000);
        // A frame that never ends is cut at the limit.
        let mut lost = false;
        for i in 0..10u16 {
            let flags = if i == 0 { START } else { 0 };
            let mut p = vec![flags];
            p.extend([0u8; 1_000]);
            lost |= a.push(i, 1, &p).lost;
        }
        assert!(lost);
        // Empty payloads, a timestamp change inside a frame.
        assert!(a.push(10, 1, &[]).lost);
        let _ = a.push(11, 1, &[START, 1, 2]);
        let out = a.push(12, 2, &[END, 3]);
        assert!(out.lost && out.frame.is_none());
    }
}
