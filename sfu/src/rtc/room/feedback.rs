//! RTCP from a subscriber about one of its tracks: key-frame requests and
//! NACKs go to the publisher with its SSRC (and sequence numbers mapped
//! back); receiver reports and REMB decide whether its video pauses.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use webrtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use webrtc::rtcp::receiver_report::ReceiverReport;
use webrtc::rtcp::reception_report::ReceptionReport;
use webrtc::rtcp::sender_report::SenderReport;
use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

use super::{Peer, RoomInner, Rtcp, Sub};

/// Reads `sub`'s RTCP until it or its peer ends.
pub(super) async fn run(room: Arc<RoomInner>, peer: Arc<Peer>, sub: Arc<Sub>) {
    let peer_gone = peer.cancel.cancelled();
    let sub_gone = sub.cancel.cancelled();
    tokio::pin!(peer_gone, sub_gone);
    loop {
        tokio::select! {
            () = &mut peer_gone => break,
            () = &mut sub_gone => break,
            read = sub.sender.read_rtcp() => match read {
                Ok((packets, _)) => room.on_feedback(&peer, &sub, &packets),
                Err(e) => {
                    tracing::trace!(error = %e, "subscriber RTCP ended");
                    break;
                }
            },
        }
    }
}

impl RoomInner {
    fn on_feedback(&self, peer: &Peer, sub: &Sub, packets: &Rtcp) {
        let mut key_frame = false;
        let mut nacks = Vec::new();
        let mut fir = Vec::new();
        for packet in packets {
            let any = packet.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() {
                key_frame = true;
            } else if let Some(f) = any.downcast_ref::<FullIntraRequest>() {
                fir.extend(f.fir.iter().map(|e| e.sequence_number));
            } else if let Some(n) = any.downcast_ref::<TransportLayerNack>() {
                let offset = sub.offset.load(Relaxed);
                nacks.extend(n.nacks.iter().map(|p| NackPair {
                    packet_id: p.packet_id.wrapping_add(offset),
                    lost_packets: p.lost_packets,
                }));
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                self.reports(peer, &rr.reports);
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                self.reports(peer, &sr.reports);
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                let floor = self.rtc.settings.remb_pause_bps;
                #[allow(clippy::cast_precision_loss)] // A threshold; precision is irrelevant.
                if floor > 0 && f64::from(remb.bitrate) < floor as f64 {
                    self.bad_report(peer);
                }
            }
        }
        if key_frame && sub.key.video {
            self.request_key_frame(sub.key);
        }
        if !fir.is_empty() && sub.key.video {
            self.to_publisher(sub.key, |ssrc| {
                vec![Box::new(FullIntraRequest {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                    fir: fir
                        .iter()
                        .map(|&sequence_number| FirEntry {
                            ssrc,
                            sequence_number,
                        })
                        .collect(),
                })]
            });
        }
        if !nacks.is_empty() {
            self.to_publisher(sub.key, |ssrc| {
                vec![Box::new(TransportLayerNack {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                    nacks,
                })]
            });
        }
    }

    fn reports(&self, peer: &Peer, reports: &[ReceptionReport]) {
        let limit = u32::from(self.rtc.settings.loss_pause_percent) * 256;
        if reports
            .iter()
            .any(|r| u32::from(r.fraction_lost) * 100 > limit)
        {
            self.bad_report(peer);
        }
    }
}
