//! RTCP from a subscriber about a track it is sent: key-frame requests go to
//! the publisher with its SSRC; receiver reports and REMB decide whether
//! its video pauses; NACKs are answered from the packets sent to that
//! subscriber (its track's `History`), to it alone: the publisher is not
//! asked, and no other subscriber sees the retransmission.

use std::time::Instant;

use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use satsuma_core::wire::ConnId;

use super::peer::{Kind, NACK_HISTORY};
use super::shard::Shard;

impl Shard {
    /// `packets` from the subscriber `key` about its track of `about`.
    pub(super) fn feedback(
        &mut self,
        key: u64,
        about: (ConnId, Kind),
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let room = peer.room;
        let mut key_frame = false;
        let mut fir = Vec::new();
        let mut bad = false;
        for packet in packets {
            let any = packet.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.answer_nack(key, about, nack, now);
            } else if any.downcast_ref::<PictureLossIndication>().is_some() {
                key_frame = true;
            } else if let Some(f) = any.downcast_ref::<FullIntraRequest>() {
                fir.extend(f.fir.iter().map(|e| e.sequence_number));
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                bad |= self.lossy(&rr.reports);
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                bad |= self.lossy(&sr.reports);
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                let floor = self.settings.remb_pause_bps;
                #[allow(clippy::cast_precision_loss)] // A threshold; precision is irrelevant.
                if floor > 0 && f64::from(remb.bitrate) < floor as f64 {
                    bad = true;
                }
            }
        }
        if bad && let Some(peer) = self.peers.get_mut(&key) {
            if peer.bad_report.is_none_or(|at| {
                now.saturating_duration_since(at).as_millis()
                    >= u128::from(self.settings.recover_after_ms)
            }) {
                tracing::debug!(conn = %peer.conn, "subscriber reports loss: video paused");
            }
            peer.bad_report = Some(now);
        }
        let Some(ssrc) = self.publisher_ssrc(room, about) else {
            return;
        };
        if about.1 == Kind::Video && key_frame {
            self.request_key_frame(room, about, now);
        }
        if about.1 == Kind::Video && !fir.is_empty() {
            self.send_to_publisher(
                room,
                about,
                now,
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
                })],
            );
        }
    }

    /// Sends `key` again each packet of its track `about` that `nack`
    /// names and its history still holds; the rest are gone for good (a
    /// key-frame request follows from the subscriber if it needs one).
    fn answer_nack(
        &mut self,
        key: u64,
        about: (ConnId, Kind),
        nack: &TransportLayerNack,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(out) = peer.outgoing.get(&about) else {
            return;
        };
        let (Some(history), sender) = (&out.history, out.sender) else {
            return;
        };
        if nack.media_ssrc != out.ssrc {
            return;
        }
        let mut again = Vec::new();
        'pairs: for pair in &nack.nacks {
            for seq in *pair {
                // At most a history's worth, whatever the NACK claims.
                if again.len() == NACK_HISTORY {
                    break 'pairs;
                }
                if let Some(packet) = history.get(seq) {
                    again.push(packet.clone());
                }
            }
        }
        let Some(mut sender) = peer.pc.rtp_sender(sender) else {
            return;
        };
        for packet in again {
            if sender.write_rtp(now, packet).is_ok() {
                self.metrics.retransmitted();
            }
        }
        self.touch(key);
    }

    fn lossy(&self, reports: &[ReceptionReport]) -> bool {
        let limit = u32::from(self.settings.loss_pause_percent) * 256;
        reports
            .iter()
            .any(|r| u32::from(r.fraction_lost) * 100 > limit)
    }
}
