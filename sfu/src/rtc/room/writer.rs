//! Per-peer tasks: the writer that drains a subscriber's queues (audio
//! first) into its tracks, and the RTCP writer for feedback relayed to it as
//! a publisher.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::mpsc;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_local::TrackLocalWriter as _;

use super::{Outgoing, Rtcp};
use crate::rtc::Rtc;

/// Drains `audio` before `video` until `cancelled`.
pub(super) async fn run(
    rtc: Arc<Rtc>,
    cancelled: impl Future<Output = ()> + Send + 'static,
    mut audio: mpsc::Receiver<Outgoing>,
    mut video: mpsc::Receiver<Outgoing>,
) {
    tokio::pin!(cancelled);
    loop {
        let out = tokio::select! {
            biased;
            () = &mut cancelled => break,
            Some(out) = audio.recv() => out,
            Some(out) = video.recv() => out,
            else => break,
        };
        write(&rtc, out).await;
    }
}

async fn write(rtc: &Rtc, out: Outgoing) {
    let Outgoing {
        sub,
        mut packet,
        arrival,
        rebase,
    } = out;
    let incoming = packet.header.sequence_number;
    let last = sub.last_out.load(Relaxed);
    let last = u16::try_from(last).ok();
    if rebase && let Some(prev) = last {
        // Continue right after the last packet this subscriber got, so the
        // pause does not look like loss.
        let offset = incoming.wrapping_sub(prev.wrapping_add(1));
        sub.offset.store(offset, Relaxed);
    }
    let seq = incoming.wrapping_sub(sub.offset.load(Relaxed));
    packet.header.sequence_number = seq;
    if last.is_none_or(|prev| is_newer(seq, prev)) {
        sub.last_out.store(u32::from(seq), Relaxed);
    }
    match sub.track.write_rtp(&packet).await {
        Ok(0) => {} // Not negotiated yet.
        Ok(_) => {
            rtc.metrics.sent(sub.key.kind(), packet.payload.len());
            rtc.metrics.forwarded_after(arrival.elapsed());
        }
        Err(e) => tracing::trace!(error = %e, "writing RTP"),
    }
}

/// Whether `a` comes after `b` in 16-bit sequence space.
fn is_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Writes RTCP relayed to a publisher until `cancelled`.
pub(super) async fn run_rtcp(
    pc: Arc<RTCPeerConnection>,
    cancelled: impl Future<Output = ()> + Send + 'static,
    mut rx: mpsc::Receiver<Rtcp>,
) {
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            () = &mut cancelled => break,
            batch = rx.recv() => match batch {
                Some(batch) => {
                    if let Err(e) = pc.write_rtcp(&batch).await {
                        tracing::debug!(error = %e, "relaying RTCP to a publisher");
                    }
                }
                None => break,
            },
        }
    }
}
