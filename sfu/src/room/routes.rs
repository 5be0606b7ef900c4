//! Where intercom media goes: a snapshot of the wire members' media queues
//! and of who may send under which KID, rebuilt when membership, a link or
//! the epoch changes, read without the room's lock.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use satsuma_core::committer::Senders;
use satsuma_core::media::Codec;
use satsuma_core::wire::{ConnId, Media, ToClient, Transport};
use tokio::sync::mpsc;

use super::{Inner, MediaItem, Room, encode};
use crate::metrics::{DropReason, Kind};

#[derive(Debug, Default)]
pub(super) struct Routes {
    pub wire: Vec<(ConnId, mpsc::Sender<MediaItem>)>,
    pub members: Vec<ConnId>,
    /// Whether any member is on WebRTC: only then does intercom audio
    /// cross the bridge.
    pub desktops: bool,
    /// Each member's leaf in the epochs receivers still open: a frame
    /// whose KID names another leaf is refused.
    pub senders: Arc<Senders>,
}

impl Room {
    /// An intercom member's media frame: forwarded only if its SFrame KID
    /// names the member's own leaf.
    pub(crate) fn media(&self, conn: ConnId, mut media: Media, arrived: Instant) {
        let routes = self.routes();
        if !routes.members.contains(&conn) {
            self.context.metrics.dropped(DropReason::NotMember);
            return;
        }
        if let Err(e) = routes
            .senders
            .check_frame(conn, media.codec, &media.payload)
        {
            self.refusals
                .note(&self.context.metrics, conn, "intercom", &e);
            return;
        }
        media.sender = conn;
        // Video never crosses to desktops from an intercom link (intercoms
        // publish audio; the bridge carries audio only).
        if routes.desktops && media.codec != Codec::Vp8 {
            self.rtc.forward_wire(&media);
        }
        self.to_intercoms(&routes, media, arrived);
    }

    pub(super) fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.routes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// `media`, from a member (the caller checked, on the same `routes`),
    /// to every intercom member but its sender: encoded once, only if
    /// someone takes it, with no copy of the payload.
    pub(super) fn to_intercoms(&self, routes: &Routes, media: Media, arrived: Instant) {
        let metrics = &self.context.metrics;
        let sender = media.sender;
        let video = media.codec == Codec::Vp8;
        let kind = if video { Kind::Video } else { Kind::Audio };
        let message = ToClient::Media(media);
        let mut bytes = None;
        for (conn, tx) in &routes.wire {
            if *conn == sender {
                continue;
            }
            // A link that falls behind loses video first: a half-full queue
            // still takes audio.
            if video && tx.capacity() * 2 < tx.max_capacity() {
                metrics.dropped(DropReason::SlowSubscriber);
                continue;
            }
            let b = bytes.get_or_insert_with(|| encode(&message));
            if tx.try_send((b.clone(), arrived, kind)).is_err() {
                metrics.dropped(DropReason::SlowSubscriber);
            }
        }
    }

    pub(super) fn update_routes(&self) {
        let inner = self.lock();
        self.update_routes_locked(&inner);
    }

    pub(super) fn update_routes_locked(&self, inner: &Inner) {
        let wire = inner
            .members
            .iter()
            .filter(|(_, t)| *t == Transport::Wire)
            .filter_map(|(conn, _)| {
                let link = inner.seats.get(*conn)?.link.as_ref()?;
                Some((*conn, link.media.clone()))
            })
            .collect();
        let members = inner.members.iter().map(|(c, _)| *c).collect();
        let desktops = inner.members.iter().any(|(_, t)| *t == Transport::WebRtc);
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Routes {
            wire,
            members,
            desktops,
            senders: Arc::clone(&inner.senders),
        });
    }
}
