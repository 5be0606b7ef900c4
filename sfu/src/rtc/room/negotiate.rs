//! Negotiation: bringing a peer's send-only tracks up to date and offering,
//! one offer at a time per peer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32};
use std::time::Duration;

use satsuma_core::wire::{Blob, Signal};
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::{Peer, RoomInner, Sub, TrackKey, feedback, spawn};
use crate::rtc::RtcError;
use crate::rtc::cancel::Cancel;

impl RoomInner {
    /// Renegotiates every peer whose subscriptions differ from what they
    /// should be, in the background.
    pub(super) fn renegotiate_all(&self) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        let peers: Vec<_> = self.state().peers.values().cloned().collect();
        for peer in peers {
            let room = Arc::clone(&room);
            spawn(async move {
                match room.renegotiate(&peer).await {
                    Ok(()) | Err(RtcError::Closed) => {}
                    Err(e) => room.failed("an offer", &e),
                }
            });
        }
    }

    /// Offers to `peer` if its subscriptions changed (or it never had an
    /// offer); if an offer is out, offers again once the answer is in.
    pub(super) async fn renegotiate(&self, peer: &Arc<Peer>) -> Result<(), RtcError> {
        {
            let mut neg = peer.neg();
            if neg.outstanding {
                neg.again = true;
                return Ok(());
            }
            neg.outstanding = true;
            neg.again = false;
        }
        loop {
            let result = self.offer(peer).await;
            let retry = {
                let mut neg = peer.neg();
                match result {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => {
                        neg.outstanding = false;
                        neg.again = false;
                        return Err(e);
                    }
                }
                if neg.again {
                    neg.again = false;
                    true
                } else {
                    neg.outstanding = false;
                    false
                }
            };
            if !retry {
                return Ok(());
            }
        }
    }

    /// Brings `peer`'s send-only tracks up to date and sends an offer.
    /// `Ok(false)` when nothing changed and an offer was made before.
    pub(super) async fn offer(&self, peer: &Arc<Peer>) -> Result<bool, RtcError> {
        if peer.cancel.is_cancelled() {
            return Err(RtcError::Closed);
        }
        let conn = peer.conn;
        let (adds, removes) = {
            let mut st = self.state();
            if st.closed || !st.peers.get(&conn).is_some_and(|p| Arc::ptr_eq(p, peer)) {
                return Err(RtcError::Closed);
            }
            let desired = st.desired(conn);
            let stale: Vec<_> = st
                .subs
                .iter()
                .filter(|((s, key), sub)| {
                    *s == conn
                        && !desired
                            .iter()
                            .any(|(k, _, g)| k == key && *g == sub.generation)
                })
                .map(|(k, _)| *k)
                .collect();
            let removes: Vec<_> = stale.iter().filter_map(|k| st.subs.remove(k)).collect();
            let adds: Vec<_> = desired
                .into_iter()
                .filter(|(key, _, _)| !st.subs.contains_key(&(conn, *key)))
                .collect();
            if !removes.is_empty() {
                st.rebuild_routes();
            }
            (adds, removes)
        };
        if adds.is_empty() && removes.is_empty() && peer.neg().offered {
            return Ok(false);
        }
        for sub in removes {
            sub.cancel.cancel();
            if let Err(e) = peer.pc.remove_track(&sub.sender).await {
                tracing::debug!(%conn, error = %e, "removing a track");
            }
        }
        for (key, capability, generation) in adds {
            match self.subscribe(peer, key, capability, generation).await {
                Ok(()) => {}
                Err(RtcError::Closed) => return Err(RtcError::Closed),
                // One track that cannot be added must not hold up the rest.
                Err(e) => self.failed("adding a track", &e),
            }
        }

        let offer = peer.pc.create_offer(None).await.map_err(RtcError::webrtc)?;
        let mut gathered = peer.pc.gathering_complete_promise().await;
        peer.pc
            .set_local_description(offer)
            .await
            .map_err(RtcError::webrtc)?;
        let wait = Duration::from_millis(self.rtc.settings.gather_timeout_ms);
        if tokio::time::timeout(wait, gathered.recv()).await.is_err() {
            tracing::warn!(%conn, "ICE gathering did not complete; offering what there is");
        }
        let sdp = peer
            .pc
            .local_description()
            .await
            .ok_or(RtcError::Unexpected("no local description"))?
            .sdp;
        let blob = Blob::copy_from(sdp.as_bytes()).ok_or(RtcError::Sdp("offer too long"))?;
        if peer.cancel.is_cancelled() {
            return Err(RtcError::Closed);
        }
        peer.neg().offered = true;
        self.outbox.signal(conn, Signal::Offer(blob));
        Ok(true)
    }

    /// Adds a send-only track for `key` to `peer`'s connection.
    pub(super) async fn subscribe(
        &self,
        peer: &Arc<Peer>,
        key: TrackKey,
        capability: RTCRtpCodecCapability,
        generation: u64,
    ) -> Result<(), RtcError> {
        let track = Arc::new(TrackLocalStaticRTP::new(
            capability,
            key.track_id(),
            key.stream_id(),
        ));
        let local: Arc<dyn TrackLocal + Send + Sync> = Arc::clone(&track) as _;
        let transceiver = peer
            .pc
            .add_transceiver_from_track(
                local,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: Vec::new(),
                }),
            )
            .await
            .map_err(RtcError::webrtc)?;
        let sender = transceiver.sender().await;
        let sub = Arc::new(Sub {
            key,
            generation,
            track,
            sender,
            skipped: AtomicBool::new(false),
            offset: AtomicU16::new(0),
            last_out: AtomicU32::new(u32::MAX),
            cancel: Cancel::new(),
        });
        let kept = {
            let mut st = self.state();
            let live = !st.closed
                && st
                    .peers
                    .get(&peer.conn)
                    .is_some_and(|p| Arc::ptr_eq(p, peer));
            if live {
                st.subs.insert((peer.conn, key), Arc::clone(&sub));
                st.rebuild_routes();
            }
            live
        };
        if !kept {
            return Err(RtcError::Closed);
        }
        if let Some(room) = self.me.upgrade() {
            spawn(feedback::run(room, Arc::clone(peer), sub));
        }
        Ok(())
    }
}
