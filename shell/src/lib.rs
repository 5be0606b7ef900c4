//! Satsuma's desktop app: a Tauri 2 window around [`satsuma_engine`].
//!
//! The Rust side is the engine; the UI (TypeScript in `ui/`, compiled into
//! `dist/` by the build script) shows what the engine reports and sends
//! what the person clicks. It decides nothing about the protocol.
//!
//! - A call's events reach the UI as JSON on one Tauri channel
//!   ([`satsuma_engine::events::CallEvent`], as `satsuma-headless` prints
//!   them), its decoded pictures as raw I420 on another ([`frames`]),
//!   drawn by WebGL2.
//! - With the server left empty the app hosts the call: `satsuma-sfu` runs
//!   in this process ([`satsuma_engine::host::Hosted`]) and the UI shows
//!   the address others use.
//! - The identity and trust record (the engine's `member.state`) and the
//!   app's settings and recent rooms ([`settings`]) live in the profile's
//!   directory in the OS data directory.

#![warn(missing_docs)]

mod commands;
pub mod frames;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

/// How the app was started.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "Satsuma: end-to-end encrypted group calls")]
pub struct Options {
    /// The profile: its own identity, trust record and settings.
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Keep the profile in this directory instead of the OS data
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where a call hosted here listens (another free port when this one
    /// is taken).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8480")]
    pub host: SocketAddr,
    /// Send a tone at this frequency (Hz) instead of the microphone (for
    /// a machine without one, and for tests).
    #[arg(long, value_name = "HZ")]
    pub tone: Option<f32>,
    /// Play nothing (no speaker is opened).
    #[arg(long)]
    pub no_speaker: bool,
    /// The name on the join screen.
    #[arg(long)]
    pub name: Option<String>,
    /// The room on the join screen.
    #[arg(long)]
    pub room: Option<String>,
    /// The server on the join screen (empty: host the call here).
    #[arg(long)]
    pub server: Option<String>,
    /// Join at once with the join screen's name, room and server.
    #[arg(long)]
    pub join: bool,
    /// The audio codec sent: opus, pcmu, pcma or g722. While a door
    /// intercom is in the call, opus and pcma go as g722, which it decodes.
    #[arg(long, default_value = "opus", value_parser = audio_codec)]
    pub codec: satsuma_core::media::Codec,
}

fn audio_codec(s: &str) -> Result<satsuma_core::media::Codec, String> {
    satsuma_core::media::Codec::audio_from_name(s)
        .ok_or_else(|| "one of opus, pcmu, pcma, g722".into())
}

/// Runs the app until its window closes.
///
/// # Errors
/// When the profile directory cannot be found or the window cannot open.
pub fn run(options: Options) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,{}", satsuma_engine::host::QUIET_LOGS))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => settings::profile_dir(&options.profile)?,
    };
    let state = commands::AppState::new(options, dir);
    tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::startup,
            commands::devices,
            commands::join,
            commands::leave,
            commands::set_muted,
            commands::set_camera,
            commands::pick_device,
            commands::verify,
            commands::drawn,
        ])
        .build(tauri::generate_context!())
        .map_err(|e| format!("cannot open the window: {e}"))?
        .run(|handle, event| {
            if let tauri::RunEvent::Exit = event {
                commands::shutdown(handle);
            }
        });
    Ok(())
}
