//! `satsuma-load`: how much intercom media one real `satsuma-sfu` process
//! forwards on this machine, and where it stops keeping up.
//!
//! N rooms of M participants join a real SFU on loopback over the intercom
//! link. In each room one participant is a real
//! [`Client`](satsuma_client::Client) driving an MLS
//! member that can commit; it creates the group and adds the others. The
//! other M-1 are raw TCP participants: they send a real `Join` (a key
//! package from their own MLS session), then only send media and read
//! frames, folding the log's entries only to know their leaf. Once the SFU counts every participant
//! as a member (`satsuma_members`), everyone sends audio (50 packets/s) and,
//! for `--video-share` of them, video (30 frames/s split into packets of at
//! most 1200 bytes).
//!
//! Every payload starts like a protected frame: 18 bytes that hold (VP8's
//! clear-prefix length byte and) an SFrame header whose KID names the
//! sender's leaf, since the SFU refuses media under any other KID; then 16
//! bytes, big-endian: the sender's number (u32), its packet counter (u32)
//! and the send time (u64 nanoseconds since the tool started, on its
//! monotonic clock). Nothing is sealed: the SFU never opens a payload. Receivers subtract that from
//! their own clock: the latency is send-to-receive through the SFU, on the
//! same clock. Loss is counted per receiver: packets the other members of
//! its room stamped inside the measured window, minus those it received.
//!
//! Each step adds rooms to the ones already running (1, 2, 4, ... rooms),
//! waits until they are all members, warms up, then measures for
//! `--seconds`: the SFU's `/metrics` counters and its CPU time and RSS from
//! `/proc`, the generator's own CPU, and the receivers' counts and
//! latencies. It stops at the first step where loss exceeds 1 %, p99
//! exceeds 5 ms or the CPU saturates, and prints a Markdown table.
//!
//! With `--transport webrtc` every participant is a desktop member instead:
//! a real `Client` on the WebSocket plus a real WebRTC peer connection
//! (see `webrtc.rs`), with the same traffic, stamps and report; the steps
//! then also wait until every participant hears every other one before the
//! warm-up. Its default steps are small (1, 2, 4, 8 rooms of 3), because
//! the generator's own WebRTC stack is expensive: watch `gen CPU %`.
//!
//! With `--baseline`, the same steps run first through a bare UDP relay
//! (`relay.rs`, a child process: one thread, `recvmmsg`/`sendmmsg`, no
//! WebRTC) with the same packets, and a last table gives the SFU's packets
//! per core as a share of the relay's: what is left to the kernel and what
//! the SFU's protocol work costs. `--transport relay` runs the relay alone.
//! `--against PATH` (with `--baseline`) runs another SFU binary's steps
//! between the relay's and this SFU's (a commit's with another media
//! plane), and the last table compares all three.
//! `--pin` keeps the SFU (or relay) on CPU 0 and the generator on the last
//! CPU, so a generator that costs more than the SFU cannot take its core.
//!
//! In wire mode the Media header's
//! `timestamp` and `sequence` are constant (the SFU never reads them):
//! frames are encoded once and only the payload's header and stamp are
//! patched.
//!
//! Exit status: 0 when the tool ran, whatever the numbers; 1 when it could
//! not (the SFU did not start, members never settled, nothing was
//! forwarded).

mod bare;
mod mesh;
mod relay;
mod report;
mod rooms;
mod sfu;
mod soak;
mod steps;
mod traffic;
mod webrtc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::steps::run;
use crate::traffic::origin;

/// Load steps against a real `satsuma-sfu` on loopback.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The SFU binary to start. Default: `satsuma-sfu` next to this tool.
    #[arg(long, conflicts_with_all = ["http", "intercom"])]
    sfu: Option<PathBuf>,
    /// HTTP address (for `/metrics`) of an SFU that is already running.
    #[arg(long, requires = "intercom")]
    http: Option<SocketAddr>,
    /// Intercom address of an SFU that is already running.
    #[arg(long, requires = "http")]
    intercom: Option<SocketAddr>,
    /// Process id of the running SFU, for its CPU and RSS.
    #[arg(long, requires = "http")]
    sfu_pid: Option<u32>,
    /// The participants' link: `wire` (the intercom's TCP link) or
    /// `webrtc` (desktop members: WebSocket signalling and a WebRTC peer
    /// connection each).
    #[arg(long, value_enum, default_value_t = Mode::Wire)]
    transport: Mode,
    /// Rooms at each step, in increasing order. Default:
    /// 1,2,4,8,16,32,48,64,96,128,192,256 (wire), 1,2,4,8 (webrtc).
    #[arg(long, value_delimiter = ',')]
    rooms: Vec<usize>,
    /// Skip steps with more rooms than this.
    #[arg(long, default_value_t = 256)]
    max_rooms: usize,
    /// Participants per room (wire: one committer, the rest raw).
    /// Default: 4 (wire), 3 (webrtc).
    #[arg(long)]
    members: Option<usize>,
    /// Seconds measured per step, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Share of participants that also send video (0.0 to 1.0).
    #[arg(long, default_value_t = 1.0)]
    video_share: f64,
    /// Video bit rate per sender, kbit/s (30 frames/s, packets of at most
    /// 1200 bytes: 800 kbit/s is 3 packets per frame).
    #[arg(long, default_value_t = 800)]
    video_kbps: u64,
    /// Audio payload bytes per packet (50 packets/s).
    #[arg(long, default_value_t = 160)]
    audio_bytes: usize,
    /// Seconds to wait for every participant to become a member.
    #[arg(long, default_value_t = 60)]
    settle_timeout: u64,
    /// Rooms joined at once while setting up a step.
    #[arg(long, default_value_t = 8)]
    join_concurrency: usize,
    /// Worker threads of the generator. Default: the machine's cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Two short steps (1 and 2 rooms, 3 s each), for CI: fails only when
    /// the tool itself fails, never on the numbers.
    #[arg(long)]
    quick: bool,
    /// Instead of the steps: one call while an abuser opens and abandons
    /// connections at the SFU's limits for this many seconds; the SFU's
    /// sockets, descriptors and memory and the call's latency before,
    /// during and after.
    #[arg(long)]
    soak: Option<u64>,
    /// Run every step, even past the knee.
    #[arg(long)]
    no_stop: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the README's summary table (Markdown) here; `cargo xtask
    /// bench` puts it in bench/RESULTS.md and the README.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// `RUST_LOG` for a spawned SFU.
    #[arg(long, default_value = "warn")]
    sfu_log: String,
    /// Before the SFU's steps, the same steps on the bare UDP relay
    /// (recvmmsg/sendmmsg, no WebRTC: this machine's limit), and a table
    /// of the SFU's packets per core as a share of the relay's.
    #[arg(long)]
    baseline: bool,
    /// Another SFU binary (a commit's with another media plane) whose
    /// steps run after the relay's and before this SFU's, in the same
    /// run and pinned the same way; the comparison gains its column.
    #[arg(long, requires = "baseline")]
    against: Option<PathBuf>,
    /// Run the SFU (and the relay) on CPU 0 only and the generator on the
    /// last CPU only, so neither takes the other's core.
    #[arg(long)]
    pin: bool,
    /// Be the bare relay: print `relay=ADDR` and forward until killed.
    #[arg(long, hide = true)]
    serve_relay: bool,
}

/// How the synthetic participants reach the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// The intercom link (TCP, `core::wire` frames).
    Wire,
    /// Desktop members: WebSocket signalling, media on WebRTC.
    #[value(name = "webrtc")]
    WebRtc,
    /// The bare UDP relay alone (the baseline of `--baseline`).
    Relay,
}

impl Mode {
    fn default_rooms(self) -> Vec<usize> {
        match self {
            Self::Wire => vec![1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256],
            Self::WebRtc | Self::Relay => vec![1, 2, 4, 8],
        }
    }

    fn default_members(self) -> usize {
        match self {
            Self::Wire => 4,
            Self::WebRtc | Self::Relay => 3,
        }
    }
}

/// Why the tool could not do its job.
#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Failure {
    fn from(text: String) -> Self {
        Self(text)
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

fn fail<T>(text: impl Into<String>) -> Result<T> {
    Err(Failure(text.into()))
}

/// The longest a `--quick` run may take.
const QUICK_LIMIT: Duration = Duration::from_secs(55);

async fn sleep_for(d: Duration) {
    match tokio::time::Instant::now().checked_add(d) {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.serve_relay {
        return match relay::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satsuma-load relay: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let _ = origin();
    if args.pin {
        // Before the runtime starts: its threads inherit the mask.
        let cores = sfu::machine_cores();
        if cores < 2 {
            eprintln!("satsuma-load: --pin needs two cores, this machine has {cores}");
            return ExitCode::FAILURE;
        }
        if let Err(e) = relay::pin_to(cores - 1) {
            eprintln!(
                "satsuma-load: cannot pin the generator to CPU {}: {e}",
                cores - 1
            );
            return ExitCode::FAILURE;
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("satsuma-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A CI smoke run must end well within a minute, whatever goes wrong.
    let limit = if args.quick {
        QUICK_LIMIT
    } else {
        Duration::MAX
    };
    let outcome = runtime.block_on(async move {
        tokio::select! {
            outcome = run(args) => outcome,
            _ = tokio::signal::ctrl_c() => fail("interrupted"),
            () = sleep_for(limit) => fail(format!("--quick took longer than {limit:?}")),
        }
    });
    // The runtime's tasks (and with `run`'s return, the spawned SFU) end here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("satsuma-load: {e}");
            ExitCode::FAILURE
        }
    }
}
