//! A call: one member in one room on an SFU, with audio and video
//! encoded, sealed with the group's SFrame keys, sent over WebRTC, and the
//! other members' frames received, opened, decoded and played.
//!
//! One task owns everything (the client, the WebRTC peer, the codecs, the
//! playout buffers); the [`Call`] handle sends it commands and
//! [`CallEvent`]s come back on a channel. Video is encoded on tokio's
//! blocking pool; each member's video is decoded on a thread of its own
//! behind a two-frame queue, so a decoder that falls behind drops video
//! (until the next key frame) instead of delaying the call.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use satsuma_client::rtc::frames::FrameAssembler;
use satsuma_client::rtc::{ClientSettings, ClientStreams, Received, RtcClient};
use satsuma_client::{Client, ClientError, ClientEvent, Endpoint, ReceivedFrame};
use satsuma_core::committer::{Event, Member, MemberConfig, RoomState, SeatStatus};
use satsuma_core::media::{Codec, Vp8Header};
use satsuma_core::mls::{MemberInfo, MemoryStore, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, RoomName, Signal, Transport};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::camera::{Camera, CameraError};
use crate::devices::{DeviceAudio, DeviceError};
use crate::events::{
    AudioStats, CallEvent, LinkState, MemberLevel, MemberView, RemoteStats, SPEAKING_DBFS,
    SentStats, VideoStats,
};
use crate::jitter::{JitterBuffer, Playout};
use crate::media::CodecError;
use crate::media::audio::{AudioDecoder, AudioEncoder, FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::pattern::read_frame_number;
use crate::media::tone::{SILENCE_DBFS, detect_frequency, level_dbfs};
use crate::media::video::{I420, Vp8Config, Vp8Decoder, Vp8Encoder};
use crate::source::{AudioInput, AudioSource, VideoInput, VideoSource, WavError};
use crate::{FileStore, os_seeded_crypto};

/// Where the member's identity and trust record live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// In this state file (created on first use, mode 0600): the same
    /// identity key and trust record across runs.
    File(PathBuf),
    /// In the OS data directory, under this profile name
    /// ([`FileStore::for_profile`]: `<data dir>/satsuma/<profile>/`,
    /// private to the user): what an app uses.
    Profile(String),
    /// A new identity for this call only, forgotten when it ends.
    Ephemeral,
}

/// Where a call's audio is played.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioOutput {
    /// Nowhere (a headless member decodes and analyses it only).
    #[default]
    None,
    /// The speaker of this name ([`crate::devices::list`]), or the
    /// default one.
    Device(Option<String>),
}

/// The size, rate and bitrate of the video sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate.
    pub bitrate_kbps: u32,
}

impl Default for VideoFormat {
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 800,
        }
    }
}

/// How to join a call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The SFU's HTTP address (its WebSocket signalling).
    pub server: SocketAddr,
    /// The room.
    pub room: String,
    /// The name others see.
    pub name: String,
    /// This device's name.
    pub device: String,
    /// Where the identity lives.
    pub identity: Identity,
    /// The microphone.
    pub audio: AudioInput,
    /// The speaker.
    pub speaker: AudioOutput,
    /// The audio codec sent. While an intercom is in the call it is
    /// G.722 instead, unless this is one an intercom decodes (PCMU or
    /// G.722): the engine switches on the epoch that seats the intercom,
    /// and back on the one that removes the last
    /// ([`CallEvent::AudioCodec`]).
    pub audio_codec: Codec,
    /// The camera.
    pub video: VideoInput,
    /// The video sent.
    pub video_format: VideoFormat,
    /// Whether to hand every decoded picture over as
    /// [`CallEvent::Picture`] (the app does; the headless client reads
    /// the frame numbers only).
    pub pictures: bool,
    /// How often [`CallEvent::Media`] reports.
    pub stats_every: Duration,
    /// Whether to report [`CallEvent::Levels`] every 100 ms.
    pub levels: bool,
    /// Whether to hand every other picture sent back as
    /// [`CallEvent::Preview`] (the app's self-view).
    pub preview: bool,
    /// Local addresses for ICE host candidates.
    pub ips: Vec<std::net::IpAddr>,
    /// Whether this member takes its turn as the room's committer (true).
    /// A device that should not spend the work (an MLS commit for a large
    /// room is the heaviest thing a member does) says `false`, as an
    /// intercom does: the committer rule then passes it over, and falls
    /// back to it only when no member that can commit is left.
    pub can_commit: bool,
}

impl CallConfig {
    /// A call to `room` on `server` as `name`, with a tone and the test
    /// pattern, a fresh identity, Opus.
    #[must_use]
    pub fn new(server: SocketAddr, room: &str, name: &str) -> Self {
        Self {
            server,
            room: room.to_owned(),
            name: name.to_owned(),
            device: "desktop".to_owned(),
            identity: Identity::Ephemeral,
            audio: AudioInput::Tone(440.0),
            speaker: AudioOutput::None,
            audio_codec: Codec::Opus,
            video: VideoInput::Pattern,
            video_format: VideoFormat::default(),
            pictures: false,
            stats_every: Duration::from_secs(1),
            levels: false,
            preview: false,
            ips: vec![std::net::IpAddr::from([127, 0, 0, 1])],
            can_commit: true,
        }
    }
}

/// Why a call could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The room or member name is not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The identity file could not be opened.
    #[error("identity: {0}")]
    Identity(#[from] crate::Error),
    /// The member's MLS state could not be created or loaded.
    #[error("member state: {0}")]
    Session(#[from] satsuma_core::mls::SessionError),
    /// The SFU could not be reached, or refused.
    #[error("server: {0}")]
    Client(#[from] ClientError),
    /// The WebRTC peer could not be set up.
    #[error("webrtc: {0}")]
    Rtc(#[from] satsuma_client::rtc::RtcError),
    /// A codec could not be set up.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The WAV file cannot be played.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A microphone or speaker cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The call has ended.
    #[error("the call has ended")]
    Ended,
}

enum Command {
    Verify(u32),
    Video(VideoInput),
    Microphone(AudioInput),
    Speaker(AudioOutput),
    Mute(bool),
    Camera(bool),
    Leave,
    DropLink,
}

/// A running call.
#[derive(Debug, Clone)]
pub struct Call {
    commands: mpsc::Sender<Command>,
    fingerprint: String,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Verify(_) => "Verify",
            Self::Video(_) => "Video",
            Self::Microphone(_) => "Microphone",
            Self::Speaker(_) => "Speaker",
            Self::Mute(_) => "Mute",
            Self::Camera(_) => "Camera",
            Self::Leave => "Leave",
            Self::DropLink => "DropLink",
        })
    }
}

impl Call {
    /// Joins the call. Events (joined, epochs, members, media statistics,
    /// pictures) arrive on the returned channel until [`CallEvent::Left`].
    ///
    /// # Errors
    /// When a setting is invalid, the identity cannot be opened, the SFU
    /// cannot be reached or a codec cannot start.
    pub async fn join(config: CallConfig) -> Result<(Self, mpsc::Receiver<CallEvent>), CallError> {
        let room = RoomName::new(&config.room).map_err(|_| CallError::Invalid {
            what: "room name",
            reason: format!(
                "{:?}: 1 to {} characters of A-Z a-z 0-9 - _ .",
                config.room,
                satsuma_core::wire::limits::ROOM_NAME
            ),
        })?;
        let session = open_session(&config)?;
        let fingerprint = session.fingerprint().to_string();
        let member = Member::new(
            session,
            MemberConfig {
                room: room.clone(),
                capabilities: Capabilities {
                    can_commit: config.can_commit,
                    transport: Transport::WebRtc,
                },
            },
        );
        let audio_in = AudioSource::open(&config.audio)?;
        let devices = open_devices(&config.audio, &config.speaker).await?;
        let encoder = AudioEncoder::new(config.audio_codec)?;
        let f = config.video_format;
        let (source, camera_error) = open_video(&config.video, f).await;
        let video = match source {
            Some(source) => Some((source, Vp8Encoder::new(&vp8_config(f))?)),
            None => None,
        };
        let (rtc, streams) = RtcClient::new(&ClientSettings {
            audio_codec: config.audio_codec,
            ips: config.ips.clone(),
            ..Default::default()
        })
        .await?;
        let (client, client_events) =
            Client::start(Endpoint::WebSocket(config.server), room, member).await?;
        let (commands, commands_rx) = mpsc::channel(16);
        let (events, events_rx) = mpsc::channel(1024);
        let (offers, offers_rx) = mpsc::channel(4);
        tokio::spawn(answer_offers(
            offers_rx,
            Arc::clone(&rtc),
            client.clone(),
            events.clone(),
        ));
        let (views, views_rx) = mpsc::channel(16);
        let (decoded_tx, decoded_rx) = mpsc::channel(VIDEO_QUEUE * 4);
        let task = Task {
            fingerprint: fingerprint.clone(),
            views,
            config,
            client,
            rtc,
            audio_in,
            devices,
            camera_error,
            encoder,
            video,
            key_frame_wanted: true,
            muted: false,
            camera: true,
            audio_ts: random_u32(),
            video_frames: 0,
            remotes: HashMap::new(),
            held: HashMap::new(),
            held_order: VecDeque::new(),
            next_frame_id: 0,
            roster: Vec::new(),
            epoch_reported: None,
            sent: SentStats::default(),
            own_loudest: SILENCE_DBFS,
            level_slots: 0,
            offers,
            decoded_tx,
            events,
        };
        tokio::spawn(task.run(client_events, streams, commands_rx, views_rx, decoded_rx));
        Ok((
            Self {
                commands,
                fingerprint,
            },
            events_rx,
        ))
    }

    /// This member's identity fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Switches the microphone: another device, or a tone, a file, silence.
    /// A device that cannot be opened is reported as
    /// [`CallEvent::Error`], and silence is sent until the next switch.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn set_microphone(&self, input: AudioInput) -> Result<(), CallError> {
        self.send(Command::Microphone(input)).await
    }

    /// Switches the speaker (or plays nowhere), as
    /// [`Call::set_microphone`].
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn set_speaker(&self, output: AudioOutput) -> Result<(), CallError> {
        self.send(Command::Speaker(output)).await
    }

    /// Marks the identity of the member at `leaf` as verified: its
    /// fingerprint was compared out of band and matched. Saved in this
    /// member's trust record (with a profile or state file, for later
    /// calls too); [`CallEvent::Verified`] follows, or
    /// [`CallEvent::Error`] when no member sits at `leaf`.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn mark_verified(&self, leaf: u32) -> Result<(), CallError> {
        self.send(Command::Verify(leaf)).await
    }

    /// Mutes (silence is sent) or unmutes the microphone.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn set_muted(&self, muted: bool) -> Result<(), CallError> {
        self.send(Command::Mute(muted)).await
    }

    /// Turns the camera on or off (no video is sent while off).
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn set_camera(&self, on: bool) -> Result<(), CallError> {
        self.send(Command::Camera(on)).await
    }

    /// Switches the camera: another device, the test pattern, or none.
    /// A camera that cannot be opened is reported as [`CallEvent::Error`]
    /// and the test pattern is sent instead. The next frame sent is a key
    /// frame.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn set_video_input(&self, input: VideoInput) -> Result<(), CallError> {
        self.send(Command::Video(input)).await
    }

    /// Leaves the call.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn leave(&self) -> Result<(), CallError> {
        self.send(Command::Leave).await
    }

    /// Drops the link to the SFU without leaving, as a failing network
    /// would; the call resumes on a new link.
    ///
    /// # Errors
    /// [`CallError::Ended`].
    pub async fn drop_link(&self) -> Result<(), CallError> {
        self.send(Command::DropLink).await
    }

    async fn send(&self, c: Command) -> Result<(), CallError> {
        self.commands.send(c).await.map_err(|_| CallError::Ended)
    }
}

/// The video source `input` asks for; with a camera that cannot be
/// opened, the test pattern and why.
async fn open_video(input: &VideoInput, f: VideoFormat) -> (Option<VideoSource>, Option<String>) {
    match input {
        VideoInput::None => (None, None),
        VideoInput::Pattern => (Some(VideoSource::pattern(f.width, f.height)), None),
        VideoInput::Camera(path) => {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || {
                Camera::open(path.as_deref(), f.width, f.height, f.fps)
            })
            .await
            .unwrap_or(Err(CameraError::NoCamera));
            match opened {
                Ok(camera) => (Some(VideoSource::camera(camera, f.width, f.height)), None),
                Err(e) => (
                    Some(VideoSource::pattern(f.width, f.height)),
                    Some(format!("{e}; sending the test pattern instead")),
                ),
            }
        }
    }
}

fn vp8_config(f: VideoFormat) -> Vp8Config {
    Vp8Config {
        width: f.width,
        height: f.height,
        fps: f.fps.max(1),
        bitrate_kbps: f.bitrate_kbps,
    }
}

fn open_session(config: &CallConfig) -> Result<Session, CallError> {
    let info = MemberInfo::new(&config.name, &config.device).map_err(|_| CallError::Invalid {
        what: "name or device",
        reason: format!(
            "{:?} on {:?}: each 1 to {} bytes",
            config.name,
            config.device,
            satsuma_core::mls::MAX_DISPLAY_NAME_LEN
        ),
    })?;
    let crypto = os_seeded_crypto()?;
    let now = satsuma_client::clock().now();
    let store = match &config.identity {
        Identity::Ephemeral => {
            return Ok(Session::create(
                crypto,
                info,
                SessionConfig::default(),
                MemoryStore::new(),
            )?);
        }
        Identity::Profile(name) => FileStore::for_profile(name)?,
        Identity::File(path) => FileStore::open(path)?,
    };
    Ok(if store.has_record() {
        Session::resume(now, crypto, SessionConfig::default(), store)?
    } else {
        Session::create(crypto, info, SessionConfig::default(), store)?
    })
}

/// The device thread with the microphone and speaker of `audio` and
/// `speaker` open, if either is a device.
async fn open_devices(
    audio: &AudioInput,
    speaker: &AudioOutput,
) -> Result<Option<DeviceAudio>, DeviceError> {
    let mic = match audio {
        AudioInput::Device(name) => Some(name.clone()),
        _ => None,
    };
    let out = match speaker {
        AudioOutput::Device(name) => Some(name.clone()),
        AudioOutput::None => None,
    };
    if mic.is_none() && out.is_none() {
        return Ok(None);
    }
    // Opening a device blocks on the sound server.
    tokio::task::spawn_blocking(move || {
        let mut devices = DeviceAudio::start()?;
        if let Some(name) = mic {
            devices.open_microphone(name.as_deref())?;
        }
        if let Some(name) = out {
            devices.open_speaker(name.as_deref())?;
        }
        Ok(Some(devices))
    })
    .await
    .map_err(|_| DeviceError::Stopped)?
}

/// Answers the SFU's offers one at a time, in order, off the media task.
async fn answer_offers(
    mut offers: mpsc::Receiver<Vec<u8>>,
    rtc: Arc<RtcClient>,
    client: Client<Session>,
    events: mpsc::Sender<CallEvent>,
) {
    while let Some(sdp) = offers.recv().await {
        match client.answer_offer(&rtc, &sdp).await {
            Ok(()) => {}
            Err(ClientError::Stopped) => return,
            Err(e) => {
                let message = format!("answering the SFU's offer: {e}");
                tracing::warn!("{message}");
                let _ = events
                    .send(CallEvent::Error {
                        message,
                        code: None,
                    })
                    .await;
            }
        }
    }
}

/// Beep detection: a frame louder than this after frames quieter than
/// that (the beeps are -12 and -42 dBFS).
const BEEP_LOUD_DBFS: f32 = -25.0;
const BEEP_QUIET_DBFS: f32 = -32.0;

/// The name the roster gives the member at `leaf`.
fn name_at(roster: &[MemberView], leaf: Option<u32>) -> Option<String> {
    let leaf = leaf?;
    roster
        .iter()
        .find(|m| m.leaf == leaf)
        .map(|m| m.name.clone())
}

/// Wall-clock time in µs since the Unix epoch: comparable between
/// processes on one machine, unlike `Instant`.
fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn random_u32() -> u32 {
    let mut b = [0; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

/// Playout waits for this many frames (60 ms) and holds at most 25.
const JITTER_TARGET: usize = 3;
const JITTER_CAPACITY: usize = 25;
/// Tone detection looks at the last 200 ms played.
const ANALYSIS_FRAMES: usize = 10;
/// At most one key-frame request per track in this long.
const PLI_INTERVAL: Duration = Duration::from_millis(300);
/// Levels are reported every this many 20 ms slots (100 ms).
const LEVEL_SLOTS: u32 = 5;
/// A sender silent this long has left the call.
const GONE_AFTER: Duration = Duration::from_secs(5);
/// Frames remembered while held for their commit (core holds at most 64).
const HELD_FRAMES: usize = 64;

/// What this member receives from one sender.
struct Remote {
    conn: u64,
    leaf: Option<u32>,
    audio_codec: Option<Codec>,
    decoder: Option<AudioDecoder>,
    jitter: Option<JitterBuffer>,
    analysis: VecDeque<Vec<i16>>,
    audio: AudioStats,
    video_ssrc: Option<u32>,
    assembler: FrameAssembler,
    /// Its video decoder, on a thread of its own.
    video_worker: Option<VideoWorker>,
    waiting_for_key: bool,
    last_pli: Option<Instant>,
    video: VideoStats,
    /// When its last packet came.
    heard_at: Instant,
    /// 20 ms slots played in a row below the beep's quiet level.
    quiet_frames: u32,
    /// The loudest slot played since the last levels report.
    loudest: f32,
}

impl Remote {
    fn new(conn: u64) -> Self {
        Self {
            conn,
            leaf: None,
            audio_codec: None,
            decoder: None,
            jitter: None,
            analysis: VecDeque::new(),
            audio: AudioStats::default(),
            video_ssrc: None,
            assembler: FrameAssembler::default(),
            video_worker: None,
            waiting_for_key: true,
            last_pli: None,
            video: VideoStats::default(),
            heard_at: Instant::now(),
            quiet_frames: 0,
            loudest: SILENCE_DBFS,
        }
    }
}

/// The group as one epoch left it.
struct View {
    epoch: u64,
    safety_number: String,
    members: Vec<MemberView>,
    /// An intercom is a member: the audio sent must be one it decodes.
    intercom: bool,
}

/// Whether an intercom (a member on the intercom link) sits in the room.
fn intercom_present(room: Option<&RoomState>) -> bool {
    room.is_some_and(|r| {
        r.leaves()
            .iter()
            .flatten()
            .any(|s| s.transport == Transport::Wire && s.status == SeatStatus::Present)
    })
}

/// The audio codec to send: `preferred`, unless an intercom is in the
/// call and does not decode it (then G.722, wideband).
fn audio_codec_for(preferred: Codec, intercom: bool) -> Codec {
    if intercom && !preferred.intercom_decodes() {
        Codec::G722
    } else {
        preferred
    }
}

struct Task {
    config: CallConfig,
    /// This member's identity fingerprint.
    fingerprint: String,
    views: mpsc::Sender<View>,
    client: Client<Session>,
    rtc: Arc<RtcClient>,
    audio_in: AudioSource,
    /// The device thread, once a microphone or speaker was asked for.
    devices: Option<DeviceAudio>,
    /// Why the camera asked for could not be used (reported at the start).
    camera_error: Option<String>,
    encoder: AudioEncoder,
    video: Option<(VideoSource, Vp8Encoder)>,
    key_frame_wanted: bool,
    muted: bool,
    camera: bool,
    audio_ts: u32,
    video_frames: u64,
    remotes: HashMap<u64, Remote>,
    /// Frames held for their commit, by the id they were opened under:
    /// their sender and RTP time.
    held: HashMap<u32, (u64, Option<u32>)>,
    held_order: VecDeque<u32>,
    next_frame_id: u32,
    roster: Vec<MemberView>,
    epoch_reported: Option<u64>,
    sent: SentStats,
    /// The loudest frame sent since the last levels report, and the slots
    /// since it.
    own_loudest: f32,
    level_slots: u32,
    offers: mpsc::Sender<Vec<u8>>,
    /// Where the members' video decoders send their pictures.
    decoded_tx: mpsc::Sender<Decoded>,
    events: mpsc::Sender<CallEvent>,
}

impl Task {
    async fn run(
        mut self,
        mut client_events: mpsc::Receiver<ClientEvent>,
        mut streams: ClientStreams,
        mut commands: mpsc::Receiver<Command>,
        mut views: mpsc::Receiver<View>,
        mut decoded: mpsc::Receiver<Decoded>,
    ) {
        let mut audio_tick = interval(Duration::from_millis(20));
        audio_tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let fps = u64::from(self.config.video_format.fps.max(1));
        let mut video_tick = interval(Duration::from_micros(1_000_000 / fps));
        video_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut stats_tick = interval(self.config.stats_every.max(Duration::from_millis(50)));
        let video_timestamp_step = u32::try_from(90_000 / fps).unwrap_or(3_000);
        if self.devices.is_some() {
            self.report_devices().await;
        }
        if let Some(message) = self.camera_error.take() {
            self.error(format!("camera: {message}")).await;
        }
        let mut video_ts = random_u32();
        loop {
            tokio::select! {
                event = client_events.recv() => {
                    let Some(event) = event else { break };
                    if !self.on_client_event(event).await {
                        break;
                    }
                }
                Some(packet) = streams.media.recv() => self.on_packet(packet).await,
                Some(view) = views.recv() => self.new_epoch(view).await,
                Some((conn, decoded)) = decoded.recv() => self.decoded(conn, decoded).await,
                Some(feedback) = streams.feedback.recv() => {
                    if let satsuma_client::rtc::Feedback::KeyFrame { video: true } = feedback {
                        self.key_frame_wanted = true;
                    }
                }
                _ = audio_tick.tick() => {
                    self.send_audio().await;
                    for event in self.play_out() {
                        self.emit(event).await;
                    }
                    if self.config.levels {
                        self.report_levels().await;
                    }
                }
                _ = video_tick.tick(), if self.video.is_some() && self.camera => {
                    self.send_video(video_ts).await;
                    video_ts = video_ts.wrapping_add(video_timestamp_step);
                }
                _ = stats_tick.tick() => self.report().await,
                command = commands.recv() => match command {
                    Some(Command::Verify(leaf)) => self.verify(leaf),
                    Some(Command::Video(input)) => self.switch_video(input).await,
                    Some(Command::Microphone(input)) => self.switch_microphone(input).await,
                    Some(Command::Speaker(output)) => self.switch_speaker(output).await,
                    Some(Command::Mute(m)) => self.muted = m,
                    Some(Command::Camera(on)) => {
                        self.camera = on;
                        self.key_frame_wanted |= on;
                    }
                    Some(Command::DropLink) => {
                        if self.client.drop_link().await.is_err() {
                            break;
                        }
                    }
                    Some(Command::Leave) | None => {
                        let _ = self.client.leave().await;
                        break;
                    }
                },
            }
        }
        self.report().await;
        self.rtc.close().await;
        let _ = self.events.send(CallEvent::Left).await;
    }

    async fn emit(&mut self, event: CallEvent) {
        let _ = self.events.send(event).await;
    }

    async fn error(&mut self, message: String) {
        tracing::warn!("{message}");
        self.emit(CallEvent::Error {
            message,
            code: None,
        })
        .await;
    }

    /// Handles one client event; false when the call is over.
    async fn on_client_event(&mut self, event: ClientEvent) -> bool {
        match event {
            ClientEvent::Rtc(Signal::Offer(sdp)) => {
                // Answered on the signalling task: ICE gathering must not
                // hold up a single audio frame.
                if self.offers.send(sdp.to_vec()).await.is_err() {
                    return false;
                }
            }
            ClientEvent::Member(Event::Joined { epoch }) => {
                let fingerprint = self.fingerprint.clone();
                self.emit(CallEvent::Joined { epoch, fingerprint }).await;
                self.fetch_view();
            }
            ClientEvent::Member(Event::NewEpoch { .. }) => self.fetch_view(),
            ClientEvent::Member(Event::Introduced(i)) => {
                self.emit(CallEvent::introduced(&i)).await;
            }
            ClientEvent::Member(Event::DeliveryServiceMisbehaved(m)) => {
                self.error(format!("the SFU misbehaved ({m:?}); the call is unchanged"))
                    .await;
            }
            ClientEvent::Member(Event::Stuck(e)) => {
                self.error(format!("an MLS operation failed: {e}")).await;
            }
            ClientEvent::Member(_) | ClientEvent::Log { .. } | ClientEvent::Media(_) => {}
            ClientEvent::Rtc(_) => {}
            ClientEvent::Error(code, text) => {
                let message = format!("the SFU reported {code:?}: {text}");
                tracing::warn!("{message}");
                self.emit(CallEvent::Error {
                    message,
                    code: Some(code.name().to_owned()),
                })
                .await;
            }
            ClientEvent::Reconnected { resumed } => {
                let state = if resumed {
                    LinkState::Resumed
                } else {
                    LinkState::Rejoined
                };
                self.emit(CallEvent::Link { state }).await;
                self.request_key_frames().await;
            }
            ClientEvent::Closed => {
                self.emit(CallEvent::Link {
                    state: LinkState::Closed,
                })
                .await;
                return false;
            }
        }
        true
    }

    /// Reads the group's epoch, safety number and roster as they are now,
    /// on a task of its own: the member may be busy with the next commit,
    /// and media must not wait for it. The answer comes back as a
    /// [`View`].
    fn fetch_view(&self) {
        let client = self.client.clone();
        let views = self.views.clone();
        tokio::spawn(async move {
            let view = client
                .with_member(|m| {
                    let g = m.group();
                    Some(View {
                        epoch: g.epoch()?,
                        safety_number: g.safety_number().ok()?.to_string(),
                        members: g
                            .roster()
                            .iter()
                            .map(|e| {
                                MemberView::of(e, g.trust_of(&e.info, e.fingerprint) == Some(true))
                            })
                            .collect(),
                        intercom: intercom_present(m.room()),
                    })
                })
                .await;
            if let Ok(Some(view)) = view {
                let _ = views.send(view).await;
            }
        });
    }

    /// Marks `leaf`'s identity as verified, off the media task (the
    /// record is saved to disk).
    fn verify(&self, leaf: u32) {
        let client = self.client.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let marked = client
                .with_member(move |m| {
                    let entry = m
                        .group()
                        .roster()
                        .into_iter()
                        .find(|e| e.leaf_index == leaf)?;
                    Some(
                        m.mark_verified(entry.fingerprint)
                            .map(|_| MemberView::of(&entry, true)),
                    )
                })
                .await;
            let event = match marked {
                Ok(Some(Ok(member))) => CallEvent::Verified { member },
                Ok(Some(Err(e))) => CallEvent::Error {
                    message: format!("the trust record could not be saved: {e}"),
                    code: None,
                },
                Ok(None) => CallEvent::Error {
                    message: format!("no member sits at leaf {leaf}"),
                    code: None,
                },
                Err(_) => return,
            };
            let _ = events.send(event).await;
        });
    }

    /// Reports an epoch once. The member runs ahead of this task, so a
    /// view may come for an epoch already reported, or after a later one.
    async fn new_epoch(&mut self, view: View) {
        if self.epoch_reported.is_some_and(|e| e >= view.epoch) {
            return;
        }
        self.epoch_reported = Some(view.epoch);
        self.roster.clone_from(&view.members);
        self.choose_audio_codec(view.intercom).await;
        self.emit(CallEvent::Epoch {
            epoch: view.epoch,
            safety_number: view.safety_number,
            members: view.members,
        })
        .await;
        // New keys: every picture from now on must start from a key frame
        // sealed with them.
        self.request_key_frames().await;
    }

    /// Sends audio an intercom decodes while one is in the call, and the
    /// configured codec otherwise. A codec that cannot start leaves the
    /// audio as it was, with an error event.
    async fn choose_audio_codec(&mut self, intercom: bool) {
        let wanted = audio_codec_for(self.config.audio_codec, intercom);
        if wanted == self.encoder.codec() {
            return;
        }
        let encoder = match AudioEncoder::new(wanted) {
            Ok(encoder) => encoder,
            Err(e) => {
                self.error(format!("audio stays {:?}: {e}", self.encoder.codec()))
                    .await;
                return;
            }
        };
        if let Err(e) = self.rtc.set_audio_codec(wanted).await {
            self.error(format!("audio stays {:?}: {e}", self.encoder.codec()))
                .await;
            return;
        }
        self.encoder = encoder;
        self.emit(CallEvent::AudioCodec {
            codec: wanted.audio_name().unwrap_or("other").to_owned(),
            intercom,
        })
        .await;
    }

    async fn request_key_frames(&mut self) {
        let ssrcs: Vec<u32> = self.remotes.values().filter_map(|r| r.video_ssrc).collect();
        for ssrc in ssrcs {
            self.pli(ssrc, true).await;
        }
    }

    /// Asks for a key frame of `ssrc`, at most once per interval unless
    /// `force`.
    async fn pli(&mut self, ssrc: u32, force: bool) {
        let now = Instant::now();
        let Some(remote) = self
            .remotes
            .values_mut()
            .find(|r| r.video_ssrc == Some(ssrc))
        else {
            return;
        };
        if !force && remote.last_pli.is_some_and(|t| now - t < PLI_INTERVAL) {
            return;
        }
        remote.last_pli = Some(now);
        remote.video.key_frames_requested += 1;
        let _ = self.rtc.request_key_frame(ssrc).await;
    }

    /// Opens the device thread if it is not running yet, and runs `f` on
    /// it off the media task (opening a device blocks).
    async fn with_devices(
        &mut self,
        f: impl FnOnce(&mut DeviceAudio) -> Result<Option<String>, DeviceError> + Send + 'static,
    ) -> Result<Option<String>, DeviceError> {
        let devices = self.devices.take();
        let (devices, result) = tokio::task::spawn_blocking(move || {
            let mut devices = match devices {
                Some(d) => d,
                None => match DeviceAudio::start() {
                    Ok(d) => d,
                    Err(e) => return (None, Err(e)),
                },
            };
            let r = f(&mut devices);
            (Some(devices), r)
        })
        .await
        .unwrap_or((None, Err(DeviceError::Stopped)));
        self.devices = devices;
        result
    }

    async fn switch_microphone(&mut self, input: AudioInput) {
        let opened = match &input {
            AudioInput::Device(name) => {
                let name = name.clone();
                self.with_devices(move |d| d.open_microphone(name.as_deref()).map(Some))
                    .await
            }
            _ => {
                if let Some(d) = &self.devices {
                    d.close_microphone();
                }
                Ok(None)
            }
        };
        match (opened, AudioSource::open(&input)) {
            (Ok(_), Ok(source)) => {
                self.audio_in = source;
                self.config.audio = input;
                self.report_devices().await;
            }
            (Err(e), _) => {
                // The old microphone is closed: silence until a switch.
                self.audio_in = AudioSource::Silence;
                self.config.audio = AudioInput::Silence;
                self.error(format!("microphone: {e}")).await;
            }
            (_, Err(e)) => self.error(format!("microphone: {e}")).await,
        }
    }

    async fn switch_video(&mut self, input: VideoInput) {
        let f = self.config.video_format;
        let (source, failure) = open_video(&input, f).await;
        self.video = match (source, self.video.take()) {
            (None, _) => None,
            (Some(source), Some((_, encoder))) => Some((source, encoder)),
            (Some(source), None) => match Vp8Encoder::new(&vp8_config(f)) {
                Ok(encoder) => Some((source, encoder)),
                Err(e) => {
                    self.error(format!("camera: {e}")).await;
                    None
                }
            },
        };
        if let Some(message) = failure {
            self.error(format!("camera: {message}")).await;
        }
        self.key_frame_wanted = true;
        self.config.video = input;
    }

    async fn switch_speaker(&mut self, output: AudioOutput) {
        let opened = match &output {
            AudioOutput::Device(name) => {
                let name = name.clone();
                self.with_devices(move |d| d.open_speaker(name.as_deref()).map(Some))
                    .await
            }
            AudioOutput::None => {
                if let Some(d) = &self.devices {
                    d.close_speaker();
                }
                Ok(None)
            }
        };
        match opened {
            Ok(_) => {
                self.config.speaker = output;
                self.report_devices().await;
            }
            Err(e) => {
                self.config.speaker = AudioOutput::None;
                self.error(format!("speaker: {e}")).await;
            }
        }
    }

    async fn report_devices(&mut self) {
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "default".to_owned());
        let microphone = match &self.config.audio {
            AudioInput::Device(n) => Some(name(n)),
            _ => None,
        };
        let speaker = match &self.config.speaker {
            AudioOutput::Device(n) => Some(name(n)),
            AudioOutput::None => None,
        };
        self.emit(CallEvent::Devices {
            microphone,
            speaker,
        })
        .await;
    }

    async fn send_audio(&mut self) {
        if self.config.audio == AudioInput::None {
            return;
        }
        let (mut pcm, onset) = self.audio_in.next_frame();
        if let (AudioInput::Device(_), Some(devices)) = (&self.config.audio, self.devices.as_mut())
        {
            devices.next_frame(&mut pcm);
        }
        if self.muted {
            pcm.fill(0);
        } else if onset {
            self.emit(CallEvent::BeepSent { at_us: wall_us() }).await;
        }
        self.own_loudest = self.own_loudest.max(level_dbfs(&pcm));
        let ts = self.audio_ts;
        self.audio_ts = ts.wrapping_add(self.encoder.rtp_ticks_per_frame());
        let sent = match self.encoder.encode(&pcm) {
            Ok(frame) => match self.client.seal(self.encoder.codec(), &frame) {
                Ok(sealed) => self
                    .rtc
                    .send_audio(&sealed, ts)
                    .await
                    .map_err(|e| e.to_string()),
                // Not in a group yet: nothing to seal with.
                Err(ClientError::Media(_)) => return,
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(true) => self.sent.audio += 1,
            // The track is not negotiated yet.
            Ok(false) => {}
            Err(e) => {
                self.sent.failed += 1;
                tracing::debug!("audio frame not sent: {e}");
            }
        }
    }

    async fn send_video(&mut self, ts: u32) {
        let Some((mut source, mut encoder)) = self.video.take() else {
            return;
        };
        let force = std::mem::take(&mut self.key_frame_wanted);
        let pts = self.video_frames;
        self.video_frames += 1;
        // The self-view: every other picture sent.
        let preview = self.config.preview && pts.is_multiple_of(2);
        let encoded = tokio::task::spawn_blocking(move || {
            let picture = source.next_picture();
            let r = encoder.encode(&picture, pts, force);
            let shown = preview.then(|| picture.into_owned());
            (source, encoder, r, shown)
        })
        .await;
        let Ok((source, encoder, encoded, shown)) = encoded else {
            self.error("the video encoder crashed; video stopped".into())
                .await;
            return;
        };
        if let Some(reason) = source.camera_failure() {
            self.error(format!("camera {reason}")).await;
        }
        self.video = Some((source, encoder));
        if let Some(picture) = shown {
            self.emit(CallEvent::Preview {
                picture: Arc::new(picture),
            })
            .await;
        }
        let frames = match encoded {
            Ok(f) => f,
            Err(e) => {
                self.sent.failed += 1;
                self.error(format!("encoding video: {e}")).await;
                return;
            }
        };
        for frame in frames {
            let key = frame.key;
            let sent = match self.client.seal(Codec::Vp8, &frame.data) {
                Ok(sealed) => self
                    .rtc
                    .send_video_frame(&sealed, ts)
                    .await
                    .map_err(|e| e.to_string()),
                Err(ClientError::Media(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(true) => {
                    self.sent.video += 1;
                    self.sent.key_frames += u64::from(key);
                }
                Ok(false) => {
                    // Not delivered: whoever waits needs a key frame.
                    self.key_frame_wanted |= key;
                }
                Err(e) => {
                    self.sent.failed += 1;
                    tracing::debug!("video frame not sent: {e}");
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: Received) {
        let Ok(conn) = packet.stream_id.parse::<u64>() else {
            return;
        };
        let remote = self
            .remotes
            .entry(conn)
            .or_insert_with(|| Remote::new(conn));
        remote.heard_at = Instant::now();
        if packet.video {
            remote.video.packets += 1;
            if remote.video_ssrc != Some(packet.ssrc) {
                // A new track (first sight, or after a renegotiation):
                // start from a key frame.
                remote.video_ssrc = Some(packet.ssrc);
                remote.assembler = FrameAssembler::default();
                remote.waiting_for_key = true;
                self.pli(packet.ssrc, true).await;
            }
            let Some(remote) = self.remotes.get_mut(&conn) else {
                return;
            };
            let pushed = remote
                .assembler
                .push(packet.sequence, packet.timestamp, &packet.payload);
            if pushed.lost {
                remote.video.lost += 1;
                remote.waiting_for_key = true;
                self.pli(packet.ssrc, false).await;
            }
            if let Some((_, sealed)) = pushed.frame {
                if let Some(r) = self.remotes.get_mut(&conn) {
                    r.video.frames += 1;
                }
                self.open(Codec::Vp8, &sealed, conn, None).await;
            }
        } else {
            remote.audio.packets += 1;
            let Some(codec) = packet.codec.filter(|c| c.is_audio()) else {
                return;
            };
            self.open(codec, &packet.payload, conn, Some(packet.timestamp))
                .await;
        }
    }

    /// Opens a sealed frame, and any held frames whose epoch has come.
    /// Each frame goes to the key ring under an id of its own, so a held
    /// frame comes back with its sender and RTP time.
    async fn open(&mut self, codec: Codec, sealed: &[u8], conn: u64, ts: Option<u32>) {
        let id = self.next_frame_id;
        self.next_frame_id = id.wrapping_add(1);
        match self.client.receive(codec, sealed, id) {
            Ok(frames) => {
                let mut this_opened = false;
                for frame in frames {
                    let (from, ts) = if frame.tag == id {
                        this_opened = true;
                        (conn, ts)
                    } else if let Some(held) = self.held.remove(&frame.tag) {
                        held
                    } else {
                        continue;
                    };
                    self.opened(from, frame, ts).await;
                }
                if !this_opened {
                    // Held until its commit arrives.
                    if self.held_order.len() >= HELD_FRAMES
                        && let Some(oldest) = self.held_order.pop_front()
                    {
                        self.held.remove(&oldest);
                    }
                    self.held.insert(id, (conn, ts));
                    self.held_order.push_back(id);
                }
            }
            Err(ClientError::Media(_)) => {
                let ssrc = {
                    let remote = self
                        .remotes
                        .entry(conn)
                        .or_insert_with(|| Remote::new(conn));
                    if codec.is_audio() {
                        remote.audio.failed += 1;
                        None
                    } else {
                        remote.video.failed += 1;
                        remote.waiting_for_key = true;
                        remote.video_ssrc
                    }
                };
                if let Some(ssrc) = ssrc {
                    self.pli(ssrc, false).await;
                }
            }
            Err(_) => {}
        }
    }

    async fn opened(&mut self, conn: u64, frame: ReceivedFrame, ts: Option<u32>) {
        let remote = self
            .remotes
            .entry(conn)
            .or_insert_with(|| Remote::new(conn));
        remote.leaf = u32::try_from(frame.sender).ok();
        if frame.codec.is_audio() {
            remote.audio.opened += 1;
            if remote.audio_codec != Some(frame.codec) {
                remote.audio_codec = Some(frame.codec);
                remote.decoder = AudioDecoder::new(frame.codec).ok();
                let ticks = AudioEncoder::new(frame.codec)
                    .map(|e| e.rtp_ticks_per_frame())
                    .unwrap_or(960);
                remote.jitter = Some(JitterBuffer::new(ticks, JITTER_TARGET, JITTER_CAPACITY));
            }
            if let (Some(jitter), Some(ts)) = (remote.jitter.as_mut(), ts) {
                jitter.push(ts, frame.frame);
            }
            return;
        }
        remote.video.opened += 1;
        let key = Vp8Header::parse(&frame.frame).is_ok_and(|h| h.key_frame);
        if remote.waiting_for_key && !key {
            remote.video.skipped += 1;
            if let Some(ssrc) = remote.video_ssrc {
                self.pli(ssrc, false).await;
            }
            return;
        }
        if remote.video_worker.is_none() {
            remote.video_worker = VideoWorker::start(conn, self.decoded_tx.clone());
        }
        let Some(worker) = &remote.video_worker else {
            return;
        };
        match worker.frames.try_send(frame.frame) {
            // The decoder can start from here: the frames before it need
            // not have been decoded.
            Ok(()) if key => remote.waiting_for_key = false,
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                // The decoder is behind (a slow machine): drop this frame
                // rather than fall further behind, and start again from a
                // key frame.
                remote.video.dropped += 1;
                remote.waiting_for_key = true;
                if let Some(ssrc) = remote.video_ssrc {
                    self.pli(ssrc, false).await;
                }
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => remote.video_worker = None,
        }
    }

    /// A picture (or a failure) from a member's video decoder.
    async fn decoded(&mut self, conn: u64, decoded: Result<Option<I420>, CodecError>) {
        let pictures = self.config.pictures;
        let Some(remote) = self.remotes.get_mut(&conn) else {
            return;
        };
        match decoded {
            Ok(Some(picture)) => {
                remote.video.decoded += 1;
                let number = read_frame_number(&picture);
                remote.video.last_frame_number = number;
                remote.video.width = picture.width;
                remote.video.height = picture.height;
                if pictures {
                    let leaf = remote.leaf;
                    self.emit(CallEvent::Picture {
                        conn,
                        leaf,
                        frame_number: number,
                        picture: Arc::new(picture),
                    })
                    .await;
                }
            }
            Ok(None) => {}
            Err(_) => {
                remote.waiting_for_key = true;
                let ssrc = remote.video_ssrc;
                if let Some(ssrc) = ssrc {
                    self.pli(ssrc, false).await;
                }
            }
        }
    }

    /// Plays one 20 ms slot of every member's audio.
    /// Returns a [`CallEvent::BeepHeard`] for each beep that starts.
    fn play_out(&mut self) -> Vec<CallEvent> {
        let mut beeps = Vec::new();
        let speaker = match (&self.config.speaker, &self.devices) {
            (AudioOutput::Device(_), Some(d)) => Some(d),
            _ => None,
        };
        let mut mix = speaker.map(|_| [0i32; FRAME_SAMPLES]);
        for remote in self.remotes.values_mut() {
            let (Some(jitter), Some(decoder)) = (remote.jitter.as_mut(), remote.decoder.as_mut())
            else {
                continue;
            };
            let pcm = match jitter.pop() {
                Playout::Frame(f) => match decoder.decode(&f) {
                    Ok(pcm) => Some(pcm),
                    Err(_) => {
                        remote.audio.undecodable += 1;
                        decoder.conceal().ok()
                    }
                },
                Playout::Conceal => decoder.conceal().ok(),
                Playout::Idle => None,
            };
            if let Some(pcm) = pcm {
                if let Some(mix) = mix.as_mut() {
                    for (m, s) in mix.iter_mut().zip(&pcm) {
                        *m += i32::from(*s);
                    }
                }
                // A beep: loud after at least 100 ms of quiet.
                let level = level_dbfs(&pcm);
                remote.loudest = remote.loudest.max(level);
                if level > BEEP_LOUD_DBFS && remote.quiet_frames >= 5 {
                    beeps.push(CallEvent::BeepHeard {
                        conn: remote.conn,
                        name: name_at(&self.roster, remote.leaf),
                        at_us: wall_us(),
                    });
                }
                remote.quiet_frames = if level < BEEP_QUIET_DBFS {
                    remote.quiet_frames + 1
                } else {
                    0
                };
                if remote.analysis.len() >= ANALYSIS_FRAMES {
                    remote.analysis.pop_front();
                }
                remote.analysis.push_back(pcm);
            }
        }
        if let (Some(speaker), Some(mix)) = (speaker, mix) {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (out, m) in frame.iter_mut().zip(mix) {
                *out = i16::try_from(m.clamp(i32::from(i16::MIN), i32::from(i16::MAX)))
                    .unwrap_or_default();
            }
            speaker.play(&frame);
        }
        beeps
    }

    /// Every [`LEVEL_SLOTS`] slots: how loud everyone was.
    async fn report_levels(&mut self) {
        self.level_slots += 1;
        if self.level_slots < LEVEL_SLOTS {
            return;
        }
        self.level_slots = 0;
        let mut members: Vec<MemberLevel> = self
            .remotes
            .values_mut()
            .map(|r| {
                let dbfs = std::mem::replace(&mut r.loudest, SILENCE_DBFS);
                MemberLevel {
                    conn: r.conn,
                    leaf: r.leaf,
                    name: name_at(&self.roster, r.leaf),
                    dbfs,
                    speaking: dbfs > SPEAKING_DBFS,
                }
            })
            .collect();
        members.sort_by_key(|m| m.conn);
        let own_dbfs = std::mem::replace(&mut self.own_loudest, SILENCE_DBFS);
        self.emit(CallEvent::Levels { own_dbfs, members }).await;
    }

    async fn report(&mut self) {
        // A member who left sends nothing more (a muted one sends
        // silence): forget it.
        self.remotes
            .retain(|_, r| r.heard_at.elapsed() < GONE_AFTER);
        let mut received: Vec<RemoteStats> = self
            .remotes
            .values()
            .map(|r| {
                let mut audio = r.audio.clone();
                if let Some(j) = &r.jitter {
                    audio.playout = j.stats();
                    audio.longest_gap_ms = audio.playout.longest_gap * 20;
                }
                let window: Vec<i16> = r.analysis.iter().flatten().copied().collect();
                audio.tone_hz = (window.len() >= FRAME_SAMPLES * 5)
                    .then(|| detect_frequency(&window, SAMPLE_RATE))
                    .flatten();
                audio.level_dbfs = level_dbfs(&window);
                RemoteStats {
                    conn: r.conn,
                    leaf: r.leaf,
                    name: name_at(&self.roster, r.leaf),
                    audio,
                    video: r.video.clone(),
                }
            })
            .collect();
        received.sort_by_key(|r| r.conn);
        let devices = self.devices.as_ref().map(DeviceAudio::stats);
        self.emit(CallEvent::Media {
            sent: self.sent,
            received,
            devices,
        })
        .await;
    }
}

/// A member's decoded picture (or why there is none), by its connection.
type Decoded = (u64, Result<Option<I420>, CodecError>);

/// Frames waiting for a member's video decoder, at most (200 ms at
/// 30 fps): past this the decoder is behind, and frames are dropped until
/// the next key frame instead of piling up (a slow machine would otherwise
/// show video ever further behind, and hold up the call's task while it
/// waits). Two were too few: in the app test on one loaded core a decoder
/// fell two frames behind, dropped one, and the picture froze until a key
/// frame came.
const VIDEO_QUEUE: usize = 6;

/// One member's VP8 decoder on a thread of its own, fed through a queue of
/// [`VIDEO_QUEUE`] frames. The thread ends when the member's entry (and so
/// the queue's sender) goes, or the call does.
struct VideoWorker {
    frames: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl std::fmt::Debug for VideoWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWorker").finish_non_exhaustive()
    }
}

impl VideoWorker {
    fn start(conn: u64, out: mpsc::Sender<Decoded>) -> Option<Self> {
        let mut decoder = Vp8Decoder::new().ok()?;
        let (frames, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(VIDEO_QUEUE);
        std::thread::Builder::new()
            .name(format!("vp8-decode-{conn}"))
            .spawn(move || {
                while let Ok(frame) = queue.recv() {
                    let decoded = decoder.decode(&frame);
                    if out.blocking_send((conn, decoded)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Self { frames })
    }
}
