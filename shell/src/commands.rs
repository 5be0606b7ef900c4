//! What the UI can ask of the app, as Tauri commands, and the call it
//! runs.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use satsuma_client::{ClientError, LinkError};
use satsuma_engine::events::CallEvent;
use satsuma_engine::host::Hosted;
use satsuma_engine::{AudioInput, AudioOutput, Call, CallConfig, CallError, Identity, VideoInput};
use serde::{Deserialize, Serialize};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{Manager as _, State};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Options;
use crate::frames::{self, Credit};
use crate::settings::{RecentRoom, Settings};

/// The port a server is assumed to listen on when none is given.
pub const DEFAULT_PORT: u16 = 8480;

/// The app's state, shared by its commands.
#[derive(Debug)]
pub struct AppState {
    options: Options,
    dir: PathBuf,
    settings: Mutex<Settings>,
    warnings: Mutex<Vec<String>>,
    call: tokio::sync::Mutex<Option<Running>>,
    credit: Arc<Credit>,
}

#[derive(Debug)]
struct Running {
    call: Call,
    hosted: Option<Hosted>,
    forward: JoinHandle<()>,
}

impl AppState {
    /// The state of an app started with `options`, its profile in `dir`.
    #[must_use]
    pub fn new(options: Options, dir: PathBuf) -> Self {
        let (settings, damaged) = Settings::load(&dir);
        Self {
            options,
            dir,
            settings: Mutex::new(settings),
            warnings: Mutex::new(damaged.map(|e| e.to_string()).into_iter().collect()),
            call: tokio::sync::Mutex::new(None),
            credit: Arc::new(Credit::default()),
        }
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the settings and saves them; a failure to save is told to
    /// the UI as a warning string.
    fn update(&self, change: impl FnOnce(&mut Settings)) -> Option<String> {
        let mut settings = self.settings();
        change(&mut settings);
        settings.save(&self.dir).err().map(|e| e.to_string())
    }
}

/// Why the UI's request failed: what happened, and what to do about it.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct UiError {
    /// A stable name the UI can test (`unreachable`, `bad_server`,
    /// `invalid`, `profile_in_use`, `cannot_host`, `not_in_call`, ...).
    pub kind: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl UiError {
    fn new(kind: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn ended() -> Self {
        Self::new("ended", "The call has ended.", "Join again.")
    }

    fn not_in_call() -> Self {
        Self::new(
            "not_in_call",
            "You are not in a call.",
            "Join a room first.",
        )
    }

    fn of_call(e: CallError, server: &str) -> Self {
        match e {
            CallError::Client(ClientError::Link(e)) => match io_cause(&e) {
                Some(io) => Self::new(
                    "unreachable",
                    format!("Cannot reach the server at {server}: {io}."),
                    "Check the address and that satsuma-sfu runs there, or leave the server empty to host the call on this computer.",
                ),
                None => Self::new(
                    "unreachable",
                    format!("The server at {server} did not answer as a Satsuma server: {e}."),
                    "Check the address: it is the SFU's HTTP port (8480 by default).",
                ),
            },
            CallError::Identity(satsuma_engine::Error::Locked { path }) => Self::new(
                "profile_in_use",
                format!(
                    "This profile is in use by another Satsuma window ({}).",
                    path.display()
                ),
                "Close the other window, or start this one with --profile OTHER_NAME.",
            ),
            CallError::Invalid { what, reason } => Self::new(
                "invalid",
                format!("The {what} is not valid: {reason}."),
                "Change it and join again.",
            ),
            other => Self::new("failed", format!("The call could not start: {other}."), ""),
        }
    }
}

/// The OS error under a link error (refused, unreachable, timed out), if
/// that is what it is.
fn io_cause(e: &LinkError) -> Option<&std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// What the UI needs to draw the join screen.
#[derive(Debug, Serialize)]
pub struct Startup {
    /// The name, room and server to show.
    pub name: String,
    /// The room to show.
    pub room: String,
    /// The server to show (empty: host here).
    pub server: String,
    /// Rooms joined before.
    pub recent: Vec<RecentRoom>,
    /// The profile and where it lives.
    pub profile: String,
    /// Its directory.
    pub dir: String,
    /// Whether to join at once.
    pub join: bool,
    /// Whether the microphone is a test tone.
    pub tone: Option<f32>,
    /// Things the person should know (a damaged settings file, ...).
    pub warnings: Vec<String>,
}

/// The join screen's contents, and whether to join at once.
#[tauri::command]
pub fn startup(state: State<'_, AppState>) -> Startup {
    let settings = state.settings().clone();
    let o = &state.options;
    Startup {
        name: o
            .name
            .clone()
            .or_else(|| (!settings.name.is_empty()).then(|| settings.name.clone()))
            .unwrap_or_else(user_name),
        room: o
            .room
            .clone()
            .or_else(|| settings.recent.first().map(|r| r.room.clone()))
            .unwrap_or_else(|| "satsuma".to_owned()),
        server: o.server.clone().unwrap_or(settings.server),
        recent: settings.recent,
        profile: o.profile.clone(),
        dir: state.dir.display().to_string(),
        join: o.join,
        tone: o.tone,
        warnings: std::mem::take(
            &mut *state
                .warnings
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
    }
}

/// The account's name, capitalised, as a first guess at the name others
/// see (empty when there is none).
fn user_name() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let mut chars = user.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The devices a person can pick, and the ones picked.
#[derive(Debug, Serialize)]
pub struct Devices {
    /// Microphones.
    pub microphones: Vec<String>,
    /// Speakers.
    pub speakers: Vec<String>,
    /// Cameras: path and name.
    pub cameras: Vec<(String, String)>,
    /// Picked (none: the default).
    pub microphone: Option<String>,
    /// Picked.
    pub speaker: Option<String>,
    /// Picked.
    pub camera: Option<String>,
    /// Why there is no audio device list, if there is none.
    pub audio_error: Option<String>,
}

/// The microphones, speakers and cameras of this machine.
#[tauri::command]
pub async fn devices(state: State<'_, AppState>) -> Result<Devices, UiError> {
    let (audio, cameras) = tokio::task::spawn_blocking(|| {
        (
            satsuma_engine::devices::list(),
            satsuma_engine::camera::list(),
        )
    })
    .await
    .map_err(|e| UiError::new("failed", format!("listing devices failed: {e}"), ""))?;
    let settings = state.settings().clone();
    let (microphones, speakers, audio_error) = match audio {
        Ok(a) => (a.inputs, a.outputs, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    Ok(Devices {
        microphones,
        speakers,
        cameras: cameras.into_iter().map(|c| (c.path, c.name)).collect(),
        microphone: settings.microphone,
        speaker: settings.speaker,
        camera: settings.camera,
        audio_error,
    })
}

/// What the join screen sends.
#[derive(Debug, Deserialize)]
pub struct JoinRequest {
    /// The name others see.
    pub name: String,
    /// The room.
    pub room: String,
    /// The server (`host:port`, or empty to host the call here).
    pub server: String,
}

/// The addresses of a call hosted here.
#[derive(Debug, Serialize)]
pub struct Hosting {
    /// From this machine.
    pub local: String,
    /// From other machines on the network.
    pub shared: Vec<String>,
    /// For a door intercom.
    pub intercom: Option<String>,
}

/// A call that started.
#[derive(Debug, Serialize)]
pub struct Joined {
    /// This member's identity fingerprint.
    pub fingerprint: String,
    /// The server joined.
    pub server: String,
    /// Set when the call is hosted here.
    pub hosting: Option<Hosting>,
}

/// Joins (or hosts) a call. Its events arrive on `events` until `left`;
/// its pictures on `frames` ([`frames`]).
///
/// # Errors
/// [`UiError`]: the server cannot be reached, an invalid name or room, the
/// profile in use elsewhere, the call cannot be hosted.
#[tauri::command]
pub async fn join(
    state: State<'_, AppState>,
    request: JoinRequest,
    events: Channel<CallEvent>,
    frames: Channel<InvokeResponseBody>,
) -> Result<Joined, UiError> {
    let mut running = state.call.lock().await;
    if let Some(old) = running.take() {
        // A call that ended by itself: its server goes too.
        end(old).await;
    }
    let name = request.name.trim().to_owned();
    let room = request.room.trim().to_owned();
    let server_text = request.server.trim().to_owned();
    if name.is_empty() {
        return Err(UiError::new(
            "invalid",
            "Your name is empty.",
            "Type the name others will see.",
        ));
    }
    if room.is_empty() {
        return Err(UiError::new(
            "invalid",
            "The room is empty.",
            "Type a room name; everyone in the call uses the same one.",
        ));
    }
    let (server, hosted) = if server_text.is_empty() {
        let hosted = host(state.options.host).await?;
        (hosted.local, Some(hosted))
    } else {
        (resolve(&server_text).await?, None)
    };
    let o = &state.options;
    let settings = state.settings().clone();
    let mut config = CallConfig::new(server, &room, &name);
    config.identity = Identity::File(state.dir.join(satsuma_engine::FILE_NAME));
    config.device = "desktop".to_owned();
    config.audio = match o.tone {
        Some(hz) => AudioInput::Tone(hz),
        None => AudioInput::Device(settings.microphone.clone()),
    };
    config.speaker = if o.no_speaker {
        AudioOutput::None
    } else {
        AudioOutput::Device(settings.speaker.clone())
    };
    config.audio_codec = o.codec;
    config.video = VideoInput::Camera(settings.camera.clone());
    config.pictures = true;
    config.levels = true;
    config.preview = true;
    config.ips = match &hosted {
        Some(h) => h.ice_ips(),
        // The address on the route to the server (loopback for one on
        // this machine).
        None => vec![
            satsuma_engine::host::local_ip_towards(server).unwrap_or(IpAddr::from([127, 0, 0, 1])),
        ],
    };
    let mut notes = Vec::new();
    let joined = match Call::join(config.clone()).await {
        Err(CallError::Device(e)) => {
            // No sound server or no such device: join anyway, silent and
            // deaf, and say so (the pickers can fix it during the call).
            notes.push(format!(
                "audio devices: {e}; joined without microphone and speaker"
            ));
            config.audio = AudioInput::Silence;
            config.speaker = AudioOutput::None;
            Call::join(config).await
        }
        other => other,
    };
    let (call, rx) = match joined {
        Ok(j) => j,
        Err(e) => {
            if let Some(h) = hosted {
                h.stop().await;
            }
            return Err(UiError::of_call(e, &server.to_string()));
        }
    };
    if let Some(warning) = state.update(|s| {
        s.name.clone_from(&name);
        s.server.clone_from(&server_text);
        s.remember(&room, &server_text);
    }) {
        notes.push(format!("settings not saved: {warning}"));
    }
    for message in notes {
        let _ = events.send(CallEvent::Error {
            message,
            code: None,
        });
    }
    state.credit.reset();
    let forward = tokio::spawn(forward(rx, events, frames, Arc::clone(&state.credit)));
    let hosting = hosted.as_ref().map(|h| Hosting {
        local: h.local.to_string(),
        shared: h.shared.iter().map(ToString::to_string).collect(),
        intercom: h.intercom().map(|a| a.to_string()),
    });
    let fingerprint = call.fingerprint().to_owned();
    *running = Some(Running {
        call,
        hosted,
        forward,
    });
    Ok(Joined {
        fingerprint,
        server: server.to_string(),
        hosting,
    })
}

/// Starts the SFU here; on a taken port, on any free one.
async fn host(bind: SocketAddr) -> Result<Hosted, UiError> {
    match Hosted::start(bind).await {
        Ok(h) => Ok(h),
        Err(first) => Hosted::start(SocketAddr::new(bind.ip(), 0))
            .await
            .map_err(|e| {
                UiError::new(
                    "cannot_host",
                    format!("The call cannot be hosted on this computer: {first}; {e}."),
                    "Join a server instead, or check what else listens on the port.",
                )
            }),
    }
}

/// `host:port` or `host` (port 8480) to an address.
async fn resolve(text: &str) -> Result<SocketAddr, UiError> {
    let with_port = if text.parse::<SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        text.to_owned()
    } else {
        format!("{text}:{DEFAULT_PORT}")
    };
    let bad = |why: String| {
        UiError::new(
            "bad_server",
            format!("“{text}” is not a server address ({why})."),
            format!(
                "Type host:port, such as 192.168.1.20:{DEFAULT_PORT}, or leave it empty to host the call here."
            ),
        )
    };
    let found = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(with_port))
        .await
        .map_err(|_| bad("the name did not resolve within 5 s".to_owned()))?
        .map_err(|e| bad(e.to_string()))?;
    let mut addrs: Vec<SocketAddr> = found.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .first()
        .copied()
        .ok_or_else(|| bad("no address".to_owned()))
}

/// Moves the call's events to the UI: pictures as binary messages (while
/// the window keeps up), everything else as JSON.
async fn forward(
    mut rx: mpsc::Receiver<CallEvent>,
    events: Channel<CallEvent>,
    frames: Channel<InvokeResponseBody>,
    credit: Arc<Credit>,
) {
    while let Some(event) = rx.recv().await {
        match event {
            CallEvent::Picture { conn, picture, .. } => {
                send_picture(&frames, &credit, conn, &picture)
            }
            CallEvent::Preview { picture } => {
                send_picture(&frames, &credit, frames::SELF_VIEW, &picture)
            }
            other => {
                let left = matches!(other, CallEvent::Left);
                if events.send(other).is_err() || left {
                    break;
                }
            }
        }
    }
}

/// Sends one picture to the window, if it is keeping up.
fn send_picture(
    frames: &Channel<InvokeResponseBody>,
    credit: &Credit,
    conn: u64,
    picture: &satsuma_engine::media::video::I420,
) {
    if credit.take(conn)
        && frames
            .send(InvokeResponseBody::Raw(frames::encode(conn, picture)))
            .is_err()
    {
        credit.drawn(conn);
    }
}

/// Leaves the call: waits (up to 5 s) for the engine to say it left, then
/// stops the SFU if it was hosted here.
async fn end(running: Running) {
    let _ = running.call.leave().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), running.forward).await;
    if let Some(h) = running.hosted {
        h.stop().await;
    }
}

/// Leaves the call.
///
/// # Errors
/// [`UiError`] `not_in_call`.
#[tauri::command]
pub async fn leave(state: State<'_, AppState>) -> Result<(), UiError> {
    let running = state
        .call
        .lock()
        .await
        .take()
        .ok_or_else(UiError::not_in_call)?;
    end(running).await;
    Ok(())
}

/// The call running now, if any.
async fn current_call(state: &AppState) -> Option<Call> {
    state.call.lock().await.as_ref().map(|r| r.call.clone())
}

async fn with_call<F, Fut>(state: &AppState, f: F) -> Result<(), UiError>
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Result<(), CallError>>,
{
    let call = current_call(state).await.ok_or_else(UiError::not_in_call)?;
    f(call).await.map_err(|_| UiError::ended())
}

/// Mutes or unmutes the microphone (silence is sent while muted).
///
/// # Errors
/// [`UiError`] when not in a call.
#[tauri::command]
pub async fn set_muted(state: State<'_, AppState>, muted: bool) -> Result<(), UiError> {
    with_call(&state, |c| async move { c.set_muted(muted).await }).await
}

/// Turns the camera on or off.
///
/// # Errors
/// [`UiError`] when not in a call.
#[tauri::command]
pub async fn set_camera(state: State<'_, AppState>, on: bool) -> Result<(), UiError> {
    with_call(&state, |c| async move { c.set_camera(on).await }).await
}

/// Picks a device (`microphone`, `speaker` or `camera`; no name: the
/// default one): remembered, and switched to at once in a call.
///
/// # Errors
/// [`UiError`] `invalid` for another kind; a failure to open the device
/// arrives as an `error` event of the call.
#[tauri::command]
pub async fn pick_device(
    state: State<'_, AppState>,
    kind: String,
    name: Option<String>,
) -> Result<(), UiError> {
    let warning = match kind.as_str() {
        "microphone" => state.update(|s| s.microphone.clone_from(&name)),
        "speaker" => state.update(|s| s.speaker.clone_from(&name)),
        "camera" => state.update(|s| s.camera.clone_from(&name)),
        _ => {
            return Err(UiError::new(
                "invalid",
                format!("no such device kind: {kind}"),
                "",
            ));
        }
    };
    if let Some(c) = current_call(&state).await {
        match kind.as_str() {
            "microphone" => c.set_microphone(AudioInput::Device(name)).await,
            "speaker" => c.set_speaker(AudioOutput::Device(name)).await,
            _ => c.set_video_input(VideoInput::Camera(name)).await,
        }
        .map_err(|_| UiError::ended())?;
    }
    match warning {
        Some(w) => Err(UiError::new(
            "not_saved",
            format!("The choice is not saved: {w}"),
            "",
        )),
        None => Ok(()),
    }
}

/// Marks the member at `leaf` as verified (fingerprints compared): saved
/// in the trust record, confirmed by a `verified` event.
///
/// # Errors
/// [`UiError`] when not in a call.
#[tauri::command]
pub async fn verify(state: State<'_, AppState>, leaf: u32) -> Result<(), UiError> {
    with_call(&state, |c| async move { c.mark_verified(leaf).await }).await
}

/// The window drew a picture of `source` (or threw it away): its
/// connection id, in decimal (a JavaScript number cannot hold every u64).
///
/// # Errors
/// [`UiError`] when `source` is not a number.
#[tauri::command]
pub fn drawn(state: State<'_, AppState>, source: &str) -> Result<(), UiError> {
    let source = source.parse::<u64>().map_err(|e| {
        UiError::new(
            "bad_source",
            format!("“{source}” is not a picture's source ({e})."),
            "This is a fault in the app's window; reload it.",
        )
    })?;
    state.credit.drawn(source);
    Ok(())
}

/// The window is closing: leave the call and stop a hosted SFU.
pub fn shutdown(handle: &tauri::AppHandle) {
    let state = handle.state::<AppState>();
    tauri::async_runtime::block_on(async {
        if let Some(running) = state.call.lock().await.take() {
            end(running).await;
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_server_without_a_port_gets_the_default_one() {
        assert_eq!(
            resolve("127.0.0.1").await.unwrap(),
            "127.0.0.1:8480".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1:9000").await.unwrap(),
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(resolve("localhost:9000").await.unwrap().port(), 9000);
    }

    #[tokio::test]
    async fn a_bad_server_says_what_to_type() {
        for text in ["not a host", "1.2.3.4:99999", "::::"] {
            let e = resolve(text).await.unwrap_err();
            assert_eq!(e.kind, "bad_server", "{text}");
            assert!(e.hint.contains("host:port"), "{e:?}");
        }
    }
}
