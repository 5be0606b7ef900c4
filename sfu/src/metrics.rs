//! Counters for `/metrics`, in the Prometheus text format.
//!
//! Lock-free atomics on the forwarding path; the text is built only when
//! `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use satsuma_core::committer::SenderError;

/// What kind of traffic a packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Audio media (RTP or `wire::Media`).
    Audio,
    /// Video media.
    Video,
    /// Signalling and the delivery service's messages.
    Control,
}

impl Kind {
    const ALL: [Self; 3] = [Self::Audio, Self::Video, Self::Control];

    fn label(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Control => "control",
        }
    }
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A subscriber's queue was full (it fell behind).
    SlowSubscriber,
    /// The sender is over its message rate.
    RateLimited,
    /// The sender is not (yet, or any more) a member of the group.
    NotMember,
    /// No codec both sides speak (desktop Opus to an intercom).
    Codec,
    /// The frame's SFrame KID names another member's leaf (or one the
    /// sender did not hold in that epoch): receivers would attribute it to
    /// someone else.
    WrongSender,
    /// The frame's SFrame KID names no epoch receivers still open, or one
    /// the group has not reached.
    UnknownEpoch,
    /// No SFrame header where the codec's layout puts one: no receiver
    /// could open the frame.
    NotSframe,
}

impl DropReason {
    const ALL: [Self; 7] = [
        Self::SlowSubscriber,
        Self::RateLimited,
        Self::NotMember,
        Self::Codec,
        Self::WrongSender,
        Self::UnknownEpoch,
        Self::NotSframe,
    ];

    /// What a frame the sender check refused is counted as.
    pub(crate) fn of_sender(error: &SenderError) -> Self {
        match error {
            SenderError::NotMember(_) => Self::NotMember,
            SenderError::Unreadable(_) => Self::NotSframe,
            SenderError::UnknownEpoch { .. } => Self::UnknownEpoch,
            // `NotSeated`, `WrongSender`, and whatever a later core adds:
            // the frame claims a leaf that is not the sender's.
            _ => Self::WrongSender,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::SlowSubscriber => "slow_subscriber",
            Self::RateLimited => "rate_limited",
            Self::NotMember => "not_member",
            Self::Codec => "codec",
            Self::WrongSender => "wrong_sender",
            Self::UnknownEpoch => "unknown_epoch",
            Self::NotSframe => "not_sframe",
        }
    }
}

/// What went wrong, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bytes that did not decode.
    Malformed,
    /// A message or frame over the size limit.
    TooLarge,
    /// A message out of place for the connection's state.
    Unexpected,
    /// A room or the server was full.
    Full,
    /// A connection over its message rate.
    RateLimited,
    /// A connection idle past the timeout.
    Idle,
    /// A resume that could not be honoured.
    Resume,
    /// Reading or writing a socket failed.
    Io,
    /// WebRTC signalling or a peer connection failed.
    Rtc,
}

impl ErrorKind {
    const ALL: [Self; 9] = [
        Self::Malformed,
        Self::TooLarge,
        Self::Unexpected,
        Self::Full,
        Self::RateLimited,
        Self::Idle,
        Self::Resume,
        Self::Io,
        Self::Rtc,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Unexpected => "unexpected",
            Self::Full => "full",
            Self::RateLimited => "rate_limited",
            Self::Idle => "idle",
            Self::Resume => "resume",
            Self::Io => "io",
            Self::Rtc => "rtc",
        }
    }
}

/// Upper bounds of the forwarding-latency histogram, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

#[derive(Debug, Default)]
struct Traffic {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    rooms: AtomicU64,
    connections: AtomicU64,
    members: AtomicU64,
    peers: AtomicU64,
    resume_bytes: AtomicU64,
    received: [Traffic; 3],
    sent: [Traffic; 3],
    drops: [AtomicU64; 7],
    errors: [AtomicU64; 9],
    retransmitted: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

fn index<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

impl Metrics {
    /// A packet or message arrived.
    pub fn received(&self, kind: Kind, bytes: usize) {
        let t = &self.received[index(&Kind::ALL, &kind)];
        t.packets.fetch_add(1, Relaxed);
        t.bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// A packet or message left.
    pub fn sent(&self, kind: Kind, bytes: usize) {
        let t = &self.sent[index(&Kind::ALL, &kind)];
        t.packets.fetch_add(1, Relaxed);
        t.bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// A packet was not forwarded.
    pub fn dropped(&self, why: DropReason) {
        self.drops[index(&DropReason::ALL, &why)].fetch_add(1, Relaxed);
    }

    /// Something went wrong.
    pub fn error(&self, kind: ErrorKind) {
        self.errors[index(&ErrorKind::ALL, &kind)].fetch_add(1, Relaxed);
    }

    /// The time from a packet's arrival to its hand-over to a subscriber's
    /// socket.
    pub fn forwarded_after(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|&b| us <= b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
    }

    /// Rooms open now, moved by `delta`.
    pub fn rooms_add(&self, delta: i64) {
        add_signed(&self.rooms, delta);
    }

    /// Connections open now (signalling and intercom links).
    pub fn connections_add(&self, delta: i64) {
        add_signed(&self.connections, delta);
    }

    /// Connections that are members of their room's group.
    pub fn members_add(&self, delta: i64) {
        add_signed(&self.members, delta);
    }

    /// WebRTC peer connections open now.
    pub fn peers_add(&self, delta: i64) {
        add_signed(&self.peers, delta);
    }

    /// Bytes kept for resumes over every room, moved by `delta`; the new
    /// total.
    pub fn resume_bytes_add(&self, delta: i64) -> u64 {
        add_signed(&self.resume_bytes, delta);
        self.resume_bytes.load(Relaxed)
    }

    /// How many packets of `kind` were sent so far.
    #[must_use]
    pub fn sent_packets(&self, kind: Kind) -> u64 {
        self.sent[index(&Kind::ALL, &kind)].packets.load(Relaxed)
    }

    /// How many were dropped for `why` so far.
    #[must_use]
    pub fn drops(&self, why: DropReason) -> u64 {
        self.drops[index(&DropReason::ALL, &why)].load(Relaxed)
    }

    /// The SFU sent a packet again, for a subscriber's NACK.
    pub fn retransmitted(&self) {
        self.retransmitted.fetch_add(1, Relaxed);
    }

    /// How many packets the SFU sent again so far.
    #[must_use]
    pub fn retransmissions(&self) -> u64 {
        self.retransmitted.load(Relaxed)
    }

    /// How many errors of `kind` were counted so far.
    #[must_use]
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[index(&ErrorKind::ALL, &kind)].load(Relaxed)
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauges = [
            ("satsuma_rooms", "Rooms open.", &self.rooms),
            (
                "satsuma_connections",
                "Sockets open: HTTP, WebSocket and intercom.",
                &self.connections,
            ),
            (
                "satsuma_members",
                "Connections that are members of their room's MLS group.",
                &self.members,
            ),
            (
                "satsuma_peer_connections",
                "WebRTC peer connections open.",
                &self.peers,
            ),
            (
                "satsuma_resume_history_bytes",
                "Bytes of control messages kept for resumes, over every room.",
                &self.resume_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Relaxed)
            );
        }
        for (name, help, traffic) in [
            ("satsuma_received", "received", &self.received),
            ("satsuma_sent", "sent", &self.sent),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name}_packets_total Packets and messages {help}.\n# TYPE {name}_packets_total counter"
            );
            for kind in Kind::ALL {
                let t = &traffic[index(&Kind::ALL, &kind)];
                let _ = writeln!(
                    out,
                    "{name}_packets_total{{kind=\"{}\"}} {}",
                    kind.label(),
                    t.packets.load(Relaxed)
                );
            }
            let _ = writeln!(
                out,
                "# HELP {name}_bytes_total Bytes {help}.\n# TYPE {name}_bytes_total counter"
            );
            for kind in Kind::ALL {
                let t = &traffic[index(&Kind::ALL, &kind)];
                let _ = writeln!(
                    out,
                    "{name}_bytes_total{{kind=\"{}\"}} {}",
                    kind.label(),
                    t.bytes.load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP satsuma_dropped_total Packets not forwarded, by reason.\n# TYPE satsuma_dropped_total counter"
        );
        for why in DropReason::ALL {
            let _ = writeln!(
                out,
                "satsuma_dropped_total{{reason=\"{}\"}} {}",
                why.label(),
                self.drops(why)
            );
        }
        let _ = writeln!(
            out,
            "# HELP satsuma_errors_total Errors, by kind.\n# TYPE satsuma_errors_total counter"
        );
        for kind in ErrorKind::ALL {
            let _ = writeln!(
                out,
                "satsuma_errors_total{{kind=\"{}\"}} {}",
                kind.label(),
                self.errors[index(&ErrorKind::ALL, &kind)].load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP satsuma_retransmitted_packets_total Packets sent again for a subscriber's NACK.\n\
             # TYPE satsuma_retransmitted_packets_total counter\n\
             satsuma_retransmitted_packets_total {}",
            self.retransmissions()
        );
        let name = "satsuma_forward_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a packet's arrival to its hand-over to a subscriber.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS_US.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            seconds(self.latency_sum_us.load(Relaxed))
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn add_signed(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta.unsigned_abs(), Relaxed);
    } else {
        // A gauge never goes below zero, even if a bug double-counts.
        let _ = counter.fetch_update(Relaxed, Relaxed, |v| {
            Some(v.saturating_sub(delta.unsigned_abs()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.rooms_add(2);
        m.rooms_add(-1);
        m.received(Kind::Audio, 100);
        m.sent(Kind::Video, 1200);
        m.sent(Kind::Video, 1200);
        m.dropped(DropReason::SlowSubscriber);
        m.error(ErrorKind::Malformed);
        m.forwarded_after(Duration::from_micros(40));
        m.forwarded_after(Duration::from_micros(3_000));
        let text = m.render();
        for line in [
            "satsuma_rooms 1",
            "satsuma_received_packets_total{kind=\"audio\"} 1",
            "satsuma_received_bytes_total{kind=\"audio\"} 100",
            "satsuma_sent_bytes_total{kind=\"video\"} 2400",
            "satsuma_dropped_total{reason=\"slow_subscriber\"} 1",
            "satsuma_errors_total{kind=\"malformed\"} 1",
            "satsuma_forward_latency_seconds_bucket{le=\"0.000025\"} 0",
            "satsuma_forward_latency_seconds_bucket{le=\"0.000050\"} 1",
            "satsuma_forward_latency_seconds_bucket{le=\"0.005000\"} 2",
            "satsuma_forward_latency_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn gauges_never_go_negative() {
        let m = Metrics::default();
        m.members_add(-3);
        assert!(m.render().lines().any(|l| l == "satsuma_members 0"));
    }
}
