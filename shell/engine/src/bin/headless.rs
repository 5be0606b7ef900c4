//! `satsuma-headless`: a member of a call with no window.
//!
//! It joins a room on an SFU (or hosts one in its own process, `--host`)
//! with a synthetic tone, a WAV file or a microphone, and the moving test
//! pattern or a camera, and prints one JSON object per line on stdout:
//! `hosting`, `joined`, `epoch` (with the safety number and the members),
//! `introduced` (with the trust signal), `verified`, `devices`, `link`,
//! `media` (per member: frames received, opened, failed, the tone heard,
//! the test pattern's frame number seen), `levels` (with `--levels`),
//! `error`, `left`, and last `cpu` (the process's CPU seconds).
//!
//! Lines on stdin steer it: `mute`, `unmute`, `camera off`, `camera on`,
//! `mic NAME`, `speaker NAME`, `speaker off`, `verify LEAF`, `drop` (lose
//! the link, as a network failure would), `leave`.
//!
//! ```text
//! satsuma-headless --server 127.0.0.1:8080 --room kitchen --name Bob --tone 660
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use satsuma_core::media::Codec;
use satsuma_engine::events::CallEvent;
use satsuma_engine::{
    AudioInput, AudioOutput, Call, CallConfig, Identity, VideoFormat, VideoInput,
};
use tokio::io::AsyncBufReadExt as _;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A headless member of a Satsuma call, printing JSON events"
)]
struct Args {
    /// The SFU's HTTP address.
    #[arg(long, required_unless_present_any = ["list_devices", "host"])]
    server: Option<SocketAddr>,
    /// Host the call here, with no server set up: start the SFU in this
    /// process on ADDR (`0.0.0.0:8480` to be reachable on the network)
    /// and join it; prints `hosting` with the addresses to share.
    #[arg(long, value_name = "ADDR", conflicts_with = "server")]
    host: Option<SocketAddr>,
    /// Print the microphones and speakers (JSON) and exit.
    #[arg(long)]
    list_devices: bool,
    /// Capture from this microphone (`default`, or a name from
    /// --list-devices) instead of a tone.
    #[arg(long, conflicts_with_all = ["wav", "silent", "beeps"])]
    mic: Option<String>,
    /// Play what is heard on this speaker (`default`, or a name from
    /// --list-devices).
    #[arg(long)]
    speaker: Option<String>,
    /// The room.
    #[arg(long, default_value = "satsuma")]
    room: String,
    /// The name others see.
    #[arg(long, default_value = "headless")]
    name: String,
    /// This device's name.
    #[arg(long, default_value = "headless")]
    device: String,
    /// Send a tone at this frequency (Hz).
    #[arg(long, default_value_t = 440.0, conflicts_with_all = ["wav", "silent", "beeps"])]
    tone: f32,
    /// Send this tone as a 200 ms beep every second, quiet in between;
    /// prints `beep_sent` as each starts and `beep_heard` as each
    /// member's starts playing here (mouth-to-ear latency).
    #[arg(long, conflicts_with_all = ["wav", "silent"])]
    beeps: Option<f32>,
    /// Send this WAV file, looped.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Send silence.
    #[arg(long)]
    silent: bool,
    /// Send no audio at all (a listener).
    #[arg(long, conflicts_with_all = ["wav", "silent", "beeps", "mic"])]
    no_audio: bool,
    /// The audio codec: opus, pcmu, pcma or g722. While an intercom is in
    /// the call, opus and pcma go as g722 (what intercoms decode).
    #[arg(long, default_value = "opus", value_parser = codec)]
    codec: Codec,
    /// Send no video.
    #[arg(long, conflicts_with = "camera")]
    no_video: bool,
    /// Send this camera's pictures (`default`, or a device from
    /// --list-devices) instead of the test pattern; without a camera, the
    /// pattern is sent and an error says why.
    #[arg(long)]
    camera: Option<String>,
    /// The test pattern's size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = size)]
    size: (u32, u32),
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 800)]
    bitrate: u32,
    /// Keep the identity and trust record in this file (else a new
    /// identity for this run).
    #[arg(long, conflicts_with = "profile")]
    identity: Option<PathBuf>,
    /// Keep the identity and trust record in the OS data directory under
    /// this profile name (`~/.local/share/satsuma/NAME/` on Linux).
    #[arg(long)]
    profile: Option<String>,
    /// Leave after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Print `levels` (each member's loudness, speaking or not) every
    /// 100 ms.
    #[arg(long)]
    levels: bool,
    /// Milliseconds between `media` reports.
    #[arg(long, default_value_t = 1000)]
    stats_ms: u64,
    /// Leave the room's commits to the other members (as an intercom
    /// does); this one commits only when no member that can is left.
    #[arg(long)]
    no_commit: bool,
}

/// `default` is the system's default device.
fn device_name(name: &str) -> Option<String> {
    (name != "default").then(|| name.to_owned())
}

fn codec(s: &str) -> Result<Codec, String> {
    Codec::audio_from_name(s).ok_or_else(|| "one of opus, pcmu, pcma, g722".into())
}

fn size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or("WIDTHxHEIGHT, for example 640x360")?;
    let parse = |v: &str| v.parse::<u32>().map_err(|e| format!("{v}: {e}"));
    let (w, h) = (parse(w)?, parse(h)?);
    if w < 64 || h < 64 || w > 1920 || h > 1080 || w % 2 == 1 || h % 2 == 1 {
        return Err("even sizes from 64x64 to 1920x1080".into());
    }
    Ok((w, h))
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("satsuma-headless: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // The stdin reader blocks in a read that only ends with the input:
    // do not wait for it once the call is over.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| format!("warn,{}", satsuma_engine::host::QUIET_LOGS).into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let started = cpu_time::ProcessTime::now();
    let args = Args::parse();
    if args.list_devices {
        return match satsuma_engine::devices::list() {
            Ok(devices) => {
                let mut listed = serde_json::json!(devices);
                listed["cameras"] = serde_json::json!(satsuma_engine::camera::list());
                println!("{listed}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("satsuma-headless: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut out = std::io::stdout().lock();
    let mut ips = None;
    let (server, hosted) = match (args.server, args.host) {
        (Some(server), _) => (server, None),
        (None, Some(bind)) => match satsuma_engine::host::Hosted::start(bind).await {
            Ok(hosted) => {
                let line = serde_json::json!({
                    "event": "hosting",
                    "local": hosted.local.to_string(),
                    "shared": hosted.shared.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "intercom": hosted.intercom().map(|a| a.to_string()),
                });
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                ips = Some(hosted.ice_ips());
                (hosted.local, Some(hosted))
            }
            Err(e) => {
                eprintln!("satsuma-headless: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => {
            eprintln!("satsuma-headless: --server or --host is required");
            return ExitCode::FAILURE;
        }
    };
    let mut config = CallConfig::new(server, &args.room, &args.name);
    if let Some(ips) = ips {
        config.ips = ips;
    }
    config.device = args.device;
    config.audio = match (args.mic, args.wav, args.silent, args.beeps) {
        _ if args.no_audio => AudioInput::None,
        (Some(name), _, _, _) => AudioInput::Device(device_name(&name)),
        (None, Some(path), _, _) => AudioInput::Wav(path),
        (None, None, true, _) => AudioInput::Silence,
        (None, None, false, Some(hz)) => AudioInput::Beeps(hz),
        (None, None, false, None) => AudioInput::Tone(args.tone),
    };
    config.speaker = args.speaker.map_or(AudioOutput::None, |name| {
        AudioOutput::Device(device_name(&name))
    });
    config.audio_codec = args.codec;
    config.can_commit = !args.no_commit;
    config.video = match (args.no_video, args.camera) {
        (true, _) => VideoInput::None,
        (false, Some(name)) => VideoInput::Camera(device_name(&name)),
        (false, None) => VideoInput::Pattern,
    };
    config.video_format = VideoFormat {
        width: args.size.0,
        height: args.size.1,
        fps: args.fps.clamp(1, 60),
        bitrate_kbps: args.bitrate.clamp(50, 20_000),
    };
    config.identity = match (args.identity, args.profile) {
        (Some(path), _) => Identity::File(path),
        (None, Some(name)) => Identity::Profile(name),
        (None, None) => Identity::Ephemeral,
    };
    config.stats_every = Duration::from_millis(args.stats_ms.max(50));
    config.levels = args.levels;
    let (call, mut events) = match Call::join(config).await {
        Ok(joined) => joined,
        Err(e) => {
            eprintln!("satsuma-headless: cannot join: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut leaving = false;
    let deadline = async {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if matches!(event, CallEvent::Picture { .. }) {
                    continue;
                }
                let left = matches!(event, CallEvent::Left);
                if let Ok(line) = serde_json::to_string(&event) {
                    // A closed stdout (the reader went away) ends nothing.
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
                if left {
                    break;
                }
            }
            line = stdin.next_line(), if stdin_open => {
                let result = match line.ok().flatten().as_deref().map(str::trim) {
                    None => { stdin_open = false; Ok(()) }
                    Some("mute") => call.set_muted(true).await,
                    Some("unmute") => call.set_muted(false).await,
                    Some("camera off") => call.set_camera(false).await,
                    Some("camera on") => call.set_camera(true).await,
                    Some("drop") => call.drop_link().await,
                    Some("leave") => call.leave().await,
                    Some("speaker off") => call.set_speaker(AudioOutput::None).await,
                    Some(line) if line.starts_with("verify ") => {
                        match line["verify ".len()..].trim().parse::<u32>() {
                            Ok(leaf) => call.mark_verified(leaf).await,
                            Err(_) => {
                                eprintln!("satsuma-headless: verify LEAF (a member's leaf number)");
                                Ok(())
                            }
                        }
                    }
                    Some(line) if line.starts_with("mic ") => {
                        let name = line["mic ".len()..].trim();
                        call.set_microphone(AudioInput::Device(device_name(name))).await
                    }
                    Some(line) if line.starts_with("speaker ") => {
                        let name = line["speaker ".len()..].trim();
                        call.set_speaker(AudioOutput::Device(device_name(name))).await
                    }
                    Some(other) => {
                        eprintln!("satsuma-headless: unknown command {other:?} (mute, unmute, camera off, camera on, mic NAME, speaker NAME, speaker off, verify LEAF, drop, leave)");
                        Ok(())
                    }
                };
                if result.is_err() {
                    break;
                }
            }
            () = &mut deadline, if !leaving => {
                leaving = true;
                if call.leave().await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(hosted) = hosted {
        hosted.stop().await;
    }
    // The process's CPU time over the whole call, for the engine's
    // benchmark (`cargo xtask bench engine`).
    let cpu = started.elapsed().as_secs_f64();
    let _ = writeln!(out, "{{\"event\":\"cpu\",\"seconds\":{cpu:.3}}}");
    let _ = out.flush();
    ExitCode::SUCCESS
}
