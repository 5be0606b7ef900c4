//! A room's time: the log's commit deadline, each lost seat's reconnect
//! grace, and closing the room once it is empty. All on the server's one
//! clock (`RoomContext::clock`).

use std::sync::Arc;

use satsuma_core::wire::{ConnId, Transport};

use tokio::sync::watch;

use super::Room;

impl Room {
    /// The commit deadline and the reconnect grace periods.
    pub(super) async fn run_timers(self: Arc<Self>) {
        loop {
            let Some(deadline) = self.tick() else {
                self.close().await;
                return;
            };
            match deadline {
                Some(at) => {
                    let at = self.context.clock.deadline(at);
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Handles what is due; the next deadline, or `None` once the room is
    /// empty and closed.
    fn tick(&self) -> Option<Option<satsuma_core::Instant>> {
        let now = self.now();
        let mut inner = self.lock();
        inner.log.handle_timeout(now);
        // A connection the log let go as silent (`STALL_ROUNDS`) has been
        // told; its seat, link and peer go too, so it cannot resume into a
        // room that no longer knows it.
        self.flush(&mut inner);
        let let_go: Vec<_> = inner
            .seats
            .iter()
            .map(|(conn, _)| conn)
            .filter(|conn| !inner.log.connections().any(|c| c == *conn))
            .collect();
        for conn in let_go {
            if let Some(seat) = inner.seats.close(conn) {
                tracing::info!(room = %self.name.as_str(), conn = conn.0, "silent through every deadline: let go");
                self.release(&mut inner, conn, seat);
            }
        }
        for (conn, seat) in inner.seats.handle_timeout(now) {
            tracing::info!(room = %self.name.as_str(), conn = conn.0, "reconnect grace over: seat released");
            self.release(&mut inner, conn, seat);
        }
        self.flush(&mut inner);
        if (inner.opened && inner.seats.is_empty()) || inner.closed {
            inner.closed = true;
            return None;
        }
        Some(
            inner
                .log
                .poll_timeout()
                .into_iter()
                .chain(inner.seats.poll_timeout())
                .min(),
        )
    }

    async fn close(&self) {
        // The hub may be gone already (shutting down): nothing to tell.
        let _ = self.context.closed.send((self.name.clone(), self.id));
        let _ = self.members_tx.send(Vec::new());
        self.rtc.close().await;
        tracing::info!(room = %self.name.as_str(), "room closed");
    }

    /// Hands membership changes to the media plane, in order.
    pub(super) async fn run_members(
        self: Arc<Self>,
        mut rx: watch::Receiver<Vec<(ConnId, Transport)>>,
    ) {
        while rx.changed().await.is_ok() {
            let members = rx.borrow_and_update().clone();
            let done = members.is_empty() && self.lock().closed;
            self.rtc.set_members(members).await;
            if done {
                return;
            }
        }
    }
}
