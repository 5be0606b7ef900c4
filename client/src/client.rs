//! A client of the SFU: a [`Member`] driven over a real link (WebSocket or
//! the intercom's TCP link), with resume after a lost connection.
//!
//! It owns the link and the member in one task; the handle sends commands
//! and the receiver gets [`ClientEvent`]s.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use satsuma_core::committer::{Event, Group, Member};
use satsuma_core::link::{Connection, LinkConfig, LinkEvent};
use satsuma_core::media::{Codec, MediaKeys, Unprotected};
use satsuma_core::sframe::KeyRing;
use satsuma_core::wire::{Blob, Entry, ErrorCode, Media, RoomName, Signal, ToServer};
use satsuma_core::{Clock, UnixTime};
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::link::{Endpoint, Link};

/// A frame that opened, as [`Client::receive`] hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// Its codec.
    pub codec: Codec,
    /// The caller's tag given with it (a stream or sender id).
    pub tag: u32,
    /// The MLS epoch it was sealed in.
    pub epoch: u64,
    /// The sender's leaf index in that epoch.
    pub sender: u64,
    /// The encoded frame, as its sender's encoder made it.
    pub frame: Vec<u8>,
}

/// What the client reports.
#[derive(Debug)]
pub enum ClientEvent {
    /// The committer's events: joined, new epoch, rejoining, ...
    Member(Event),
    /// A log entry, in the order the delivery service put it.
    Log {
        /// Its sequence number.
        seq: u64,
        /// The entry.
        entry: Entry,
    },
    /// A media frame (intercom link only).
    Media(Media),
    /// WebRTC signalling from the SFU.
    Rtc(Signal),
    /// The SFU reported an error (with its text, for a person to read).
    Error(ErrorCode, String),
    /// The link was lost and taken over by a new one (`resumed`), or the
    /// member joined again from the lobby.
    Reconnected {
        /// Whether the seat was kept.
        resumed: bool,
    },
    /// The client stopped: it left, or it could not reconnect.
    Closed,
}

type Inspect<G> = Box<dyn FnOnce(&mut Member<G>) + Send>;

enum Command<G> {
    Media(Media),
    Rtc(Signal),
    Leave,
    /// Drops the link without leaving, as a network failure would.
    Drop,
    Inspect(Inspect<G>),
}

/// The media path's SFrame keys: the member task hands each new epoch's
/// keys over after every step, and frames are sealed and opened here
/// without waiting for MLS work (a commit can take milliseconds, and
/// audio is due every 20). `None` for a group without SFrame keys.
type MediaRing = Arc<Mutex<Option<KeyRing>>>;

fn lock(ring: &MediaRing) -> MutexGuard<'_, Option<KeyRing>> {
    // A key ring never panics half-way through a change (the crate's
    // rule), so a poisoned lock still holds a whole ring.
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle to a running client.
pub struct Client<G> {
    commands: mpsc::Sender<Command<G>>,
    media: MediaRing,
}

// A handle is a channel to the client's task and the media keys: copies
// drive the same client (one task answers WebRTC offers while another
// seals media).
impl<G> Clone for Client<G> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            media: Arc::clone(&self.media),
        }
    }
}

impl<G> std::fmt::Debug for Client<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl<G: Group + Send + 'static> Client<G> {
    /// Connects, joins the member's room and runs until it leaves.
    ///
    /// # Errors
    /// When the first link cannot be opened or the member cannot join.
    pub async fn start(
        endpoint: Endpoint,
        room: RoomName,
        mut member: Member<G>,
    ) -> Result<(Self, mpsc::Receiver<ClientEvent>), ClientError> {
        let link = Link::open(&endpoint, &room).await?;
        member.set_time(UnixTime::now());
        let media = Arc::new(Mutex::new(member.media_ring()));
        let mut conn = Connection::new(member, LinkConfig::default());
        conn.link_up(now())?;
        let (commands, commands_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(4096);
        let mut task = Task {
            endpoint,
            room,
            conn,
            media: Arc::clone(&media),
            link: Some(link),
            events: events_tx,
            first: true,
        };
        task.hand_over_keys();
        let ring = Arc::clone(&media);
        tokio::spawn(async move {
            task.run(commands_rx).await;
            // Stopped (left, or gave up reconnecting): no key outlives
            // the call.
            if let Some(ring) = lock(&ring).as_mut() {
                ring.clear();
            }
        });
        Ok((Self { commands, media }, events))
    }

    /// Sends a media frame (intercom link).
    ///
    /// # Errors
    /// [`ClientError::Stopped`].
    pub async fn send_media(&self, media: Media) -> Result<(), ClientError> {
        self.send(Command::Media(media)).await
    }

    /// Sends WebRTC signalling (an answer).
    ///
    /// # Errors
    /// [`ClientError::Stopped`].
    pub async fn send_rtc(&self, signal: Signal) -> Result<(), ClientError> {
        self.send(Command::Rtc(signal)).await
    }

    /// Answers the SFU's WebRTC `offer` with `rtc` and sends the answer.
    ///
    /// # Errors
    /// [`ClientError::Rtc`] when the offer does not apply or the answer
    /// is too long to send; [`ClientError::Stopped`].
    pub async fn answer_offer(
        &self,
        rtc: &crate::rtc::RtcClient,
        offer: &[u8],
    ) -> Result<(), ClientError> {
        let answer = rtc.handle_offer(&String::from_utf8_lossy(offer)).await?;
        let blob = Blob::copy_from(answer.as_bytes())
            .ok_or(crate::rtc::RtcError::AnswerTooLong(answer.len()))?;
        self.send_rtc(Signal::Answer(blob)).await
    }

    /// Leaves the room and stops.
    ///
    /// # Errors
    /// [`ClientError::Stopped`].
    pub async fn leave(&self) -> Result<(), ClientError> {
        self.send(Command::Leave).await
    }

    /// Drops the link without a word, as a failing network would; the
    /// client then resumes on a new one.
    ///
    /// # Errors
    /// [`ClientError::Stopped`].
    pub async fn drop_link(&self) -> Result<(), ClientError> {
        self.send(Command::Drop).await
    }

    /// Runs `f` on the member (its MLS group, keys, safety number).
    ///
    /// # Errors
    /// [`ClientError::Stopped`].
    pub async fn with_member<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Member<G>) -> T + Send + 'static,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Inspect(Box::new(move |m| {
            let _ = tx.send(f(m));
        })))
        .await?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    async fn send(&self, command: Command<G>) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Stopped)
    }
}

impl<G> Client<G> {
    /// Runs `f` on the media path's keys, first erasing the epochs whose
    /// grace period is over.
    fn with_keys<T>(
        &self,
        f: impl FnOnce(&mut MediaKeys<'_>, satsuma_core::Instant) -> Result<T, satsuma_core::Error>,
    ) -> Result<T, ClientError> {
        let now = now();
        let mut guard = lock(&self.media);
        let ring = guard
            .as_mut()
            .ok_or(ClientError::Media(satsuma_core::Error::NoEpoch))?;
        if ring.poll_timeout().is_some_and(|at| at <= now) {
            ring.handle_timeout(now);
        }
        Ok(f(&mut MediaKeys::new(ring), now)?)
    }

    /// Seals one encoded frame with the current epoch's SFrame key, leaving
    /// the bytes `codec` keeps in clear (see `core::media`). It never waits
    /// for the member's MLS work.
    ///
    /// # Errors
    /// [`ClientError::Media`] before the member has a group (or after it
    /// left), or when the frame does not fit.
    pub fn seal(&self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.with_keys(|keys, _| {
            let mut out = vec![0; keys.max_protected_len(codec, frame.len())];
            let n = keys.protect(codec, frame, &mut out)?;
            out.truncate(n);
            Ok(out)
        })
    }

    /// Opens a sealed frame from another member, holding it if it was
    /// sealed in an epoch whose commit has not reached this member yet.
    /// Returns, in order, the held frames that open now (their epoch has
    /// arrived since) and then this one if it opened: media that outruns a
    /// key change is delayed, never lost. `tag` comes back with the frame.
    /// It never waits for the member's MLS work.
    ///
    /// # Errors
    /// [`ClientError::Media`] for a frame no key of this member opens (and
    /// none held for it).
    pub fn receive(
        &self,
        codec: Codec,
        sealed: &[u8],
        tag: u32,
    ) -> Result<Vec<ReceivedFrame>, ClientError> {
        self.with_keys(|keys, now| {
            let mut frames = Vec::new();
            while let Some(ready) = keys.take_ready() {
                // A held frame that still fails (a forgery under a future
                // KID) is dropped like any frame that does not open.
                if let Ok(Some(frame)) =
                    open_one(keys, ready.codec, ready.tag, &ready.protected, now)
                {
                    frames.push(frame);
                }
            }
            frames.extend(open_one(keys, codec, tag, sealed, now)?);
            Ok(frames)
        })
    }

    /// Opens a sealed frame from another member.
    ///
    /// # Errors
    /// [`ClientError::Media`] for a frame no key of this member opens.
    pub fn open(&self, codec: Codec, sealed: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.with_keys(|keys, _| {
            let mut out = vec![0; sealed.len()];
            let (_, n) = keys.unprotect(codec, sealed, &mut out)?;
            out.truncate(n);
            Ok(out)
        })
    }

    /// The KID this member seals with now, from the media path's keys
    /// (the member's own session hands its keys over and keeps none).
    #[must_use]
    pub fn sending_kid(&self) -> Option<u64> {
        lock(&self.media).as_ref()?.sending_kid()
    }
}

/// The client's clock: one origin for the whole process, so members,
/// sessions and their callers all read the same time.
#[must_use]
pub fn clock() -> Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    *CLOCK.get_or_init(Clock::new)
}

/// Opens `protected` into a fresh buffer.
fn open_one(
    keys: &mut MediaKeys<'_>,
    codec: Codec,
    tag: u32,
    protected: &[u8],
    now: satsuma_core::Instant,
) -> Result<Option<ReceivedFrame>, satsuma_core::Error> {
    let mut out = vec![0; protected.len()];
    match keys.unprotect_or_hold(now, codec, tag, protected, &mut out)? {
        Unprotected::Opened { opened, len } => {
            out.truncate(len);
            Ok(Some(ReceivedFrame {
                codec,
                tag,
                epoch: opened.epoch,
                sender: opened.sender,
                frame: out,
            }))
        }
        Unprotected::Held => Ok(None),
    }
}

fn now() -> satsuma_core::Instant {
    clock().now()
}

struct Task<G> {
    endpoint: Endpoint,
    room: RoomName,
    /// The member, its resume cursor and the link's upkeep, without IO.
    conn: Connection<G>,
    media: MediaRing,
    link: Option<Link>,
    events: mpsc::Sender<ClientEvent>,
    /// Whether the first link is still the one in use (its `Connected`
    /// is no reconnection).
    first: bool,
}

impl<G: Group + Send + 'static> Task<G> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command<G>>) {
        loop {
            // Key packages and the adds this member commits are dated and
            // checked with this device's own clock, never the SFU's.
            self.conn.member_mut().set_time(UnixTime::now());
            if self.link.is_none() && !self.reconnect().await {
                let _ = self.events.send(ClientEvent::Closed).await;
                return;
            }
            if self.flush().await.is_err() {
                self.lost();
                continue;
            }
            let wake = self.conn.poll_timeout().map(|at| clock().deadline(at));
            let Some(link) = self.link.as_mut() else {
                continue;
            };
            tokio::select! {
                received = link.recv() => match received {
                    Some(bytes) => {
                        if let Err(e) = self.conn.handle_message(now(), &bytes) {
                            tracing::warn!(error = %e, "undecodable message from the SFU");
                        }
                    }
                    None => self.lost(),
                },
                command = commands.recv() => {
                    let Some(command) = command else {
                        self.conn.leave(now());
                        let _ = self.flush().await;
                        return;
                    };
                    match command {
                        Command::Media(media) => {
                            // Media waits for no resume: a frame that
                            // finds no seat is late audio, dropped.
                            if self.conn.is_up()
                                && link.send(&ToServer::Media(media)).await.is_err()
                            {
                                self.lost();
                            }
                        }
                        Command::Rtc(signal) => {
                            // Before a resume completes the SFU offers
                            // again; this answer is then no use.
                            let _ = self.conn.send_rtc(now(), signal);
                        }
                        Command::Leave => {
                            self.conn.leave(now());
                            self.hand_over_keys();
                            let _ = self.flush().await;
                            let _ = self.events.send(ClientEvent::Closed).await;
                            return;
                        }
                        Command::Drop => self.lost(),
                        Command::Inspect(f) => f(self.conn.member_mut()),
                    }
                }
                () = sleep_until(wake) => self.conn.handle_timeout(now()),
            }
            // Before the events: whoever hears of a new epoch can seal
            // with it already.
            self.hand_over_keys();
            self.drain_events().await;
        }
    }

    /// Moves the keys of the epochs the member entered into the media
    /// path's ring, and erases those whose grace period is over (also
    /// when no media flows).
    fn hand_over_keys(&mut self) {
        let now = now();
        let mut guard = lock(&self.media);
        let Some(ring) = guard.as_mut() else {
            return;
        };
        if let Err(e) = self.conn.member_mut().hand_over_keys(now, ring) {
            tracing::warn!(error = %e, "new SFrame keys not handed to the media path");
        }
        if ring.poll_timeout().is_some_and(|at| at <= now) {
            ring.handle_timeout(now);
        }
    }

    /// The link broke: the seat waits for a resume on the next one.
    fn lost(&mut self) {
        self.link = None;
        self.conn.link_down(now());
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        while let Some(body) = self.conn.poll_transmit() {
            link.send_encoded(&body).await?;
        }
        Ok(())
    }

    async fn drain_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            let event = match event {
                LinkEvent::Member(event) => ClientEvent::Member(event),
                LinkEvent::Log { seq, entry } => ClientEvent::Log { seq, entry },
                LinkEvent::Media(media) => {
                    // Media that the application does not take in time is
                    // dropped, as a late frame would be; control never is.
                    let _ = self.events.try_send(ClientEvent::Media(media));
                    continue;
                }
                LinkEvent::Rtc(signal) => ClientEvent::Rtc(signal),
                LinkEvent::Error(code, text) => {
                    ClientEvent::Error(code, String::from_utf8_lossy(&text).into_owned())
                }
                LinkEvent::Clock(_) => continue,
                LinkEvent::Connected { resumed } => {
                    if std::mem::take(&mut self.first) {
                        continue;
                    }
                    ClientEvent::Reconnected { resumed }
                }
                LinkEvent::Reconnect => {
                    // Evicted, refused a resume, or behind a lost log
                    // entry: a new link joins afresh.
                    tracing::info!("the member needs a new connection: joining again");
                    self.link = None;
                    continue;
                }
            };
            let _ = self.events.send(event).await;
        }
    }

    /// A new link: the connection resumes the seat on it, or joins afresh.
    async fn reconnect(&mut self) -> bool {
        self.first = false;
        for attempt in 0..20u32 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
            let Ok(link) = Link::open(&self.endpoint, &self.room).await else {
                continue;
            };
            if self.conn.link_up(now()).is_err() {
                return false;
            }
            self.link = Some(link);
            return true;
        }
        false
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
