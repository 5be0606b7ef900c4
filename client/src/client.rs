//! A client of the SFU: a [`Member`] driven over a real link (WebSocket or
//! the intercom's TCP link), with resume after a lost connection.
//!
//! It owns the link and the member in one task; the handle sends commands
//! and the receiver gets [`ClientEvent`]s.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use satsuma_core::committer::{Event, Group, Member, Status};
use satsuma_core::media::{Codec, MediaKeys, Unprotected};
use satsuma_core::resume::{Cursor, CursorLimits};
use satsuma_core::sframe::KeyRing;
use satsuma_core::wire::{
    Blob, Down, Entry, ErrorCode, LinkMsg, Media, Message as _, Open, RoomName, Signal, ToClient,
    ToServer,
};
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
        member.join(now())?;
        let media = Arc::new(Mutex::new(member.media_ring()));
        let (commands, commands_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(4096);
        let mut task = Task {
            endpoint,
            room,
            member,
            media: Arc::clone(&media),
            link: Some(link),
            cursor: Cursor::new(CursorLimits::default()),
            ping_every: PING_EVERY,
            events: events_tx,
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
    member: Member<G>,
    media: MediaRing,
    link: Option<Link>,
    /// The seat, both counts, and the control messages sent that may not
    /// have arrived: what a resume replays, each way.
    cursor: Cursor<Vec<u8>>,
    /// How often to say something on an otherwise quiet link.
    ping_every: Duration,
    events: mpsc::Sender<ClientEvent>,
}

/// How often a link says it is alive, at most (the SFU may ask for more).
const PING_EVERY: Duration = Duration::from_secs(10);

impl<G: Group + Send + 'static> Task<G> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command<G>>) {
        let mut last_sent = Instant::now();
        loop {
            // Key packages and the adds this member commits are dated and
            // checked with this device's own clock, never the SFU's.
            self.member.set_time(UnixTime::now());
            if self.flush().await.is_err() {
                self.link = None;
            }
            if self.link.is_none() && !self.reconnect().await {
                let _ = self.events.send(ClientEvent::Closed).await;
                return;
            }
            let deadline = self.member.poll_timeout().map(|at| clock().deadline(at));
            let ping_at = last_sent + self.ping_every;
            let wake = deadline.map_or(ping_at, |d| d.min(ping_at));
            let Some(link) = self.link.as_mut() else {
                continue;
            };
            tokio::select! {
                received = link.recv() => match received {
                    Some(bytes) => self.receive(&bytes).await,
                    None => self.link = None,
                },
                command = commands.recv() => {
                    let Some(command) = command else {
                        self.member.leave(now());
                        let _ = self.flush().await;
                        return;
                    };
                    match command {
                        Command::Media(media) => {
                            last_sent = Instant::now();
                            if link.send(&ToServer::Media(media)).await.is_err() {
                                self.link = None;
                            }
                        }
                        Command::Rtc(signal) => {
                            if link.send(&ToServer::Rtc(signal)).await.is_err() {
                                self.link = None;
                            }
                        }
                        Command::Leave => {
                            self.member.leave(now());
                            self.hand_over_keys();
                            let _ = self.flush().await;
                            let _ = self.events.send(ClientEvent::Closed).await;
                            return;
                        }
                        Command::Drop => self.link = None,
                        Command::Inspect(f) => f(&mut self.member),
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= ping_at {
                        last_sent = Instant::now();
                        if link.send(&ToServer::Ping { nonce: 0 }).await.is_err() {
                            self.link = None;
                        }
                    }
                    self.member.handle_timeout(now());
                }
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
        if let Err(e) = self.member.hand_over_keys(now, ring) {
            tracing::warn!(error = %e, "new SFrame keys not handed to the media path");
        }
        if ring.poll_timeout().is_some_and(|at| at <= now) {
            ring.handle_timeout(now);
        }
    }

    async fn receive(&mut self, bytes: &[u8]) {
        let message = match ToClient::decode(bytes) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable message from the SFU");
                return;
            }
        };
        match message {
            ToClient::Media(media) => {
                // Media that the application does not take in time is
                // dropped, as a late frame would be; control never is.
                let _ = self.events.try_send(ClientEvent::Media(media));
            }
            ToClient::Rtc(signal) => {
                let _ = self.events.send(ClientEvent::Rtc(signal)).await;
            }
            ToClient::Link(LinkMsg::Resumable { token, ping_ms, .. }) => {
                if let Some(conn) = self.member.conn() {
                    self.cursor.resumable(conn, token);
                }
                self.ping_every = Duration::from_millis(u64::from(ping_ms))
                    .clamp(Duration::from_millis(100), PING_EVERY);
            }
            ToClient::Link(LinkMsg::Resumed { .. } | LinkMsg::Pong { .. }) => {}
            ToClient::Link(LinkMsg::Error { code, text }) => {
                let text = String::from_utf8_lossy(&text).into_owned();
                let _ = self.events.send(ClientEvent::Error(code, text)).await;
            }
            ToClient::Control(message) => {
                // Counted, like the SFU's history of this seat: exactly
                // the `Control` messages.
                self.cursor.received();
                if message == Down::KeyPackageRefused {
                    let text = "the committer could not add our key package".to_owned();
                    let _ = self
                        .events
                        .send(ClientEvent::Error(ErrorCode::KeyPackageRefused, text))
                        .await;
                }
                if let Down::Entry { seq, entry } = &message {
                    let _ = self
                        .events
                        .send(ClientEvent::Log {
                            seq: *seq,
                            entry: entry.clone(),
                        })
                        .await;
                }
                if let Err(e) = self.member.handle_message(now(), message) {
                    tracing::debug!(error = %e, "the member set a message aside");
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        while let Some(request) = self.member.poll_transmit() {
            let message = ToServer::from(request);
            if matches!(message, ToServer::Control(_)) {
                // Kept before it is sent: a message lost with the link is
                // sent again on a resume.
                let body = match message.encode() {
                    Ok(body) => body,
                    Err(e) => {
                        // Too large for the wire (a commit and its Welcome
                        // near their bounds): the link is fine, the log's
                        // deadline hands the work on.
                        tracing::warn!(error = %e, "a control message cannot be sent");
                        continue;
                    }
                };
                self.cursor.sent(body.clone());
                link.send_encoded(&body).await?;
            } else {
                link.send(&message).await?;
            }
        }
        Ok(())
    }

    async fn drain_events(&mut self) {
        while let Some(event) = self.member.poll_event() {
            let _ = self.events.send(ClientEvent::Member(event)).await;
        }
        if self.member.status() == Status::Idle {
            // Evicted, or behind a lost log entry: the seat is no use (a
            // resume would replay what this member cannot fold), so a new
            // link joins afresh and brings a fresh snapshot of the room.
            tracing::info!("the member needs a new connection: joining again");
            self.cursor.reset();
            self.link = None;
        }
    }

    /// A new link: resume the seat, or join afresh if that is refused.
    async fn reconnect(&mut self) -> bool {
        for attempt in 0..20u32 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
            let Ok(mut link) = Link::open(&self.endpoint, &self.room).await else {
                continue;
            };
            if let Some(resume) = self.cursor.resume(self.room.clone()) {
                if self.resume(&mut link, resume).await {
                    self.link = Some(link);
                    let _ = self
                        .events
                        .send(ClientEvent::Reconnected { resumed: true })
                        .await;
                    return true;
                }
                // Refused: a new link and a fresh join.
                self.cursor.reset();
                let Ok(fresh) = Link::open(&self.endpoint, &self.room).await else {
                    continue;
                };
                link = fresh;
            }
            self.member.handle_disconnect(now());
            self.cursor.reset();
            if self.member.join(now()).is_err() {
                return false;
            }
            self.link = Some(link);
            let _ = self
                .events
                .send(ClientEvent::Reconnected { resumed: false })
                .await;
            return true;
        }
        false
    }

    /// Takes the seat over on `link`: the SFU answers how many of our
    /// control messages it handled, and we send the rest again. `false` if
    /// it refused, or the link broke meanwhile.
    async fn resume(&mut self, link: &mut Link, resume: Open) -> bool {
        if link.send(&ToServer::Open(resume)).await.is_err() {
            return false;
        }
        let Some(first) = link.recv().await else {
            return false;
        };
        let Ok(ToClient::Link(LinkMsg::Resumed { received })) = ToClient::decode(&first) else {
            return false;
        };
        let again: Vec<Vec<u8>> = match self.cursor.resumed(received) {
            Ok(again) => again.cloned().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot send again what the SFU missed");
                return false;
            }
        };
        for body in &again {
            if link.send_encoded(body).await.is_err() {
                return false;
            }
        }
        true
    }
}
