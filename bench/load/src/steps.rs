//! The run: checks the arguments, starts (or finds) the SFU, then for each
//! step adds rooms, waits until the SFU counts every member, opens the
//! measured window, samples the SFU and `/proc` at its edges, and turns the
//! participants' counts into a [`Row`] with [`measure`], stopping at the
//! knee; then prints the table, the verdict and the notes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use satsuma_core::media::Codec;
use tokio::sync::Semaphore;

use crate::report::{GOAL_P99_MS, GOAL_PER_CORE, Row, ms, summary, table, to_json};
use crate::rooms::{Room, add_room};
use crate::sfu::{Sample, Scrape, Sfu, clock_ticks, machine_cores, rss_kib, sample, sfu_p99_ms};
use crate::traffic::{
    Histogram, Received, STAMP_LEN, Shared, Template, Trouble, VIDEO_MTU, Window, at_ns,
    check_parser, now_ns,
};
use crate::{Args, Failure, Mode, Result, bare, fail, webrtc};

/// Time for packets still in flight when a window closes.
const GRACE: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- the run --

/// Waits until the SFU counts `want` members.
pub(crate) async fn settle(sfu: &mut Sfu, want: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        sfu.check_alive()?;
        let scrape = sfu.scrape().await?;
        let members = scrape.get("satsuma_members");
        if members >= want as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return fail(format!(
                "members never settled: the SFU counts {members} of {want} after {timeout:?} \
                 (rooms open: {}, connections: {})",
                scrape.get("satsuma_rooms"),
                scrape.get("satsuma_connections")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the README's table where `--summary` says.
pub(crate) fn write_summary(args: &Args, table: &str) -> Result<()> {
    match &args.summary {
        Some(path) => std::fs::write(path, table)
            .or_else(|e| fail(format!("cannot write {}: {e}", path.display()))),
        None => Ok(()),
    }
}

/// `x` rounded to a whole non-negative number.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn whole(x: f64) -> u64 {
    // Clamped first; `as` saturates anyway.
    x.round().clamp(0.0, u64::MAX as f64) as u64
}

/// Rounds `share * members` (share within 0..=1) to a participant count.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn video_senders(share: f64, members: usize) -> usize {
    // Clamped to 0..=members first, so the cast cannot truncate.
    (share.clamp(0.0, 1.0) * members as f64)
        .round()
        .clamp(0.0, members as f64) as usize
}

fn context(
    args: &Args,
    members: usize,
    sfu: &Sfu,
    threads: usize,
    shared: &Shared,
) -> Vec<(&'static str, String)> {
    let cores = machine_cores();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
    // A running SFU's binary, where /proc tells.
    let binary = sfu.binary.clone().or_else(|| {
        sfu.pid
            .and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
    });
    let profile = match &binary {
        Some(b) if b.components().any(|c| c.as_os_str() == "release") => {
            format!("release ({})", b.display())
        }
        Some(b) if b.components().any(|c| c.as_os_str() == "debug") => {
            format!("DEBUG ({}): numbers are meaningless", b.display())
        }
        Some(b) => format!("unknown ({})", b.display()),
        None => "unknown (already running; pass --sfu-pid)".into(),
    };
    let tool = if cfg!(debug_assertions) {
        "debug: the generator is slow, build with --release"
    } else {
        "release"
    };
    let video_pps = shared.video_packets * 30;
    let (transport, audio) = match args.transport {
        Mode::Wire => (
            "wire: intercom TCP link, one committer Client and raw participants per room",
            "Pcmu",
        ),
        Mode::WebRtc => (
            "webrtc: desktop members, each a Client on the WebSocket and a WebRTC peer connection in the generator",
            "Opus track",
        ),
        Mode::Relay => (
            "relay: the bare UDP relay (recvmmsg/sendmmsg, one thread), no WebRTC; each participant one UDP socket",
            "payload as on WebRTC, padded by an RTP header and SRTP tag",
        ),
    };
    vec![
        ("cores", cores.to_string()),
        ("cpu", cpu),
        ("kernel", kernel),
        ("sfu_build", profile),
        (
            "sfu_pid",
            sfu.pid.map_or_else(|| "unknown".into(), |p| p.to_string()),
        ),
        ("generator_build", tool.into()),
        ("generator_threads", threads.to_string()),
        ("transport", transport.into()),
        ("members_per_room", members.to_string()),
        (
            "traffic",
            format!(
                "audio 50 pkt/s x {} B ({audio}); video for {} of {} per room: 30 frames/s x {} packets of {} B (Vp8, {} kbit/s) = {} pkt/s",
                shared.audio.payload.len(),
                video_senders(args.video_share, members),
                members,
                shared.video_packets,
                shared.video.payload.len(),
                args.video_kbps,
                video_pps
            ),
        ),
        (
            "window",
            format!(
                "{} s warm-up, {} s measured per step",
                args.warmup, args.seconds
            ),
        ),
    ]
}

pub(crate) async fn run(mut args: Args) -> Result<()> {
    if args.quick {
        args.rooms = vec![1, 2];
        args.seconds = 3;
        args.warmup = args.warmup.min(2);
        args.settle_timeout = args.settle_timeout.min(20);
    }
    if args.rooms.is_empty() {
        args.rooms = args.transport.default_rooms();
    }
    let members = args
        .members
        .unwrap_or_else(|| args.transport.default_members());
    if members < 2 {
        return fail("--members must be at least 2 (a committer and one more)");
    }
    if args.seconds == 0 {
        return fail("--seconds must be at least 1");
    }
    let steps: Vec<usize> = args
        .rooms
        .iter()
        .copied()
        .filter(|r| *r >= 1 && *r <= args.max_rooms)
        .collect();
    if steps.is_empty() || steps.windows(2).any(|w| w[1] <= w[0]) {
        return fail("--rooms must be increasing room counts within --max-rooms");
    }

    let media_tag = check_parser()?;
    let frame_bytes = usize::try_from(args.video_kbps * 1000 / 8 / 30)
        .unwrap_or(VIDEO_MTU)
        .max(STAMP_LEN);
    let video_packets = frame_bytes.div_ceil(VIDEO_MTU);
    let shared = Arc::new(Shared {
        window: Window::new(),
        trouble: Trouble::default(),
        media_tag,
        audio: Template::new(Codec::Pcmu, args.audio_bytes)?,
        video: Template::new(Codec::Vp8, frame_bytes.div_ceil(video_packets))?,
        video_packets: video_packets as u64,
    });

    let mut sfu = match (args.http, args.intercom, args.transport) {
        (_, _, Mode::Relay) => Sfu::spawn_relay(args.pin).await?,
        (Some(http), Some(intercom), _) => Sfu {
            child: None,
            pid: args.sfu_pid,
            http,
            intercom,
            binary: None,
            relay: false,
        },
        _ => {
            let binary = match &args.sfu {
                Some(b) => b.clone(),
                None => std::env::current_exe()
                    .map_err(|e| Failure(format!("where is this tool? {e}")))?
                    .with_file_name("satsuma-sfu"),
            };
            let env = if args.soak.is_some() {
                crate::soak::SOAK_ENV
            } else {
                &[]
            };
            Sfu::spawn(binary, &args.sfu_log, env, args.pin).await?
        }
    };
    if !sfu.relay {
        let health = sfu.get("/healthz").await?;
        if health.trim() != "ok" {
            return fail(format!("the SFU is not healthy: {health:?}"));
        }
    }
    let cores = machine_cores();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let context = context(&args, members, &sfu, threads, &shared);
    println!("# satsuma-load\n");
    for (k, v) in &context {
        println!("- {k}: {v}");
    }
    if args.pin {
        println!(
            "- note: pinned: the SFU (and the relay) on CPU 0 only, the generator on CPU {} only.\n",
            cores - 1
        );
    } else {
        println!(
            "- note: the generator (this process) shares the machine's {cores} cores with the SFU; \
             its CPU is the `gen CPU %` column. Latency is send -> receive through the SFU on loopback, \
             on the tool's clock, so it includes the generator's own scheduling delay.\n"
        );
    }
    if args.transport == Mode::WebRtc {
        println!(
            "- note: webrtc mode: the generator runs one WebRTC peer connection (ICE, DTLS, SRTP, \
             webrtc-rs interceptors) per participant, so it often saturates before the SFU; \
             a knee with a high `gen CPU %` is the generator's, not the SFU's.\n"
        );
    }
    if !args.quick && sfu.pid.is_none() {
        eprintln!("satsuma-load: no --sfu-pid: SFU CPU and RSS will be n/a");
    }

    let video = video_senders(args.video_share, members);
    if let Some(abuse) = args.soak {
        if args.transport != Mode::Wire {
            return fail("--soak runs its call on the intercom link (--transport wire)");
        }
        return crate::soak::run(&args, sfu, shared, members, video, abuse).await;
    }
    let ladder = Ladder {
        args: &args,
        shared: &shared,
        steps: &steps,
        members,
        video,
    };
    // The baseline first: its participants stop at once, and the SFU sits
    // idle meanwhile.
    let baseline = if args.baseline && args.transport != Mode::Relay {
        eprintln!("satsuma-load: the bare relay first");
        let relay = Sfu::spawn_relay(args.pin).await?;
        let title = "The bare UDP relay (recvmmsg/sendmmsg, no WebRTC)";
        Some(climb_aside(&ladder, Mode::Relay, relay, title).await?)
    } else {
        None
    };
    // The other SFU next, the same way.
    let against = match &args.against {
        Some(binary) => {
            eprintln!("satsuma-load: {} next", binary.display());
            let other = Sfu::spawn(binary.clone(), &args.sfu_log, &[], args.pin).await?;
            let title = format!("The other SFU ({})", binary.display());
            Some(climb_aside(&ladder, args.transport, other, &title).await?)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let Climbed { rows, knee, .. } = climb(&ladder, args.transport, &mut sfu, &stop).await?;

    if baseline.is_some() {
        println!("## The SFU\n");
    }
    println!("{}", table(&rows));
    let mut readme = summary(&rows, members);
    if let (Some(base), Some(other)) = (&baseline, &against) {
        println!(
            "## This SFU against the other and the bare relay\n\n{}",
            versus(base, Some(other), &rows, members)
        );
    }
    if let Some(base) = &baseline {
        let versus = versus(base, None, &rows, members);
        println!("## The SFU against the bare relay\n\n{versus}");
        readme = format!(
            "{readme}\nAgainst the bare UDP relay, the same steps in the same run:\n\n{versus}"
        );
    }
    let best = rows
        .iter()
        .filter(|r| r.p99_ms.is_some_and(|p| p < GOAL_P99_MS) && r.loss_pct <= 1.0)
        .filter_map(|r| r.per_core.map(|c| (c, r.rooms)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if args.transport == Mode::WebRtc {
        let verdict = match best {
            Some((c, r)) if c >= GOAL_PER_CORE => format!(
                "**met**: {} forwarded packets/s per SFU core at {r} rooms",
                crate::report::thousands(whole(c))
            ),
            Some((c, r)) => format!(
                "**not met**: at best {} forwarded packets/s per SFU core, at {r} rooms",
                crate::report::thousands(whole(c))
            ),
            None => "**not met**: no step stayed within the latency and loss bounds".into(),
        };
        readme = format!(
            "{readme}\nGoal (≥ {} forwarded packets/s per SFU core with p99 < {GOAL_P99_MS} ms and \
             loss ≤ 1 %): {verdict}.\n",
            crate::report::thousands(whole(GOAL_PER_CORE))
        );
    }
    write_summary(&args, &readme)?;
    println!(
        "Goal: >= {GOAL_PER_CORE:.0} forwarded packets/s per SFU core with p99 < {GOAL_P99_MS} ms. \
         (`out pkt/s per SFU core` = the SFU's forwarded-packet counter delta / the SFU's CPU seconds in the window.)"
    );
    match best {
        Some((c, r)) => println!(
            "Best within p99 < {GOAL_P99_MS} ms and loss <= 1 %: {c:.0} pkt/s per SFU core at {r} rooms ({}).",
            if c >= GOAL_PER_CORE {
                "goal met"
            } else {
                "below the goal"
            }
        ),
        None => println!("No step stayed within p99 < {GOAL_P99_MS} ms and loss <= 1 %."),
    }
    println!(
        "(Per-core figures at light load include fixed per-wakeup costs that batching amortises \
         under load; compare at the heaviest step that meets the latency goal.)"
    );
    match &knee {
        Some(k) => println!("Knee: {k}."),
        None => println!(
            "Knee: not reached (last step {} rooms).",
            steps.last().copied().unwrap_or(0)
        ),
    }
    let skipped: u64 = rows.iter().map(|r| r.skipped).sum();
    if skipped > 0 {
        println!(
            "Note: the generator fell behind and skipped {skipped} packets: it, not the SFU, may be the limit."
        );
    }
    let trouble = shared.trouble.count.load(Relaxed);
    if trouble > 0 {
        println!("Note: {trouble} participant problems (first ones on stderr).");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, to_json(&context, &rows, knee.as_deref()))
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    if rows
        .iter()
        .all(|r| r.sfu_out_pps <= 0.0 && r.received_pps <= 0.0)
    {
        return fail("the SFU forwarded no packets");
    }
    Ok(())
}

/// What [`climb`] leaves: a row per step, the knee, the rooms still
/// running.
struct Climbed {
    rows: Vec<Row>,
    knee: Option<String>,
    rooms: Vec<Room>,
}

/// What every climb shares: the arguments, the traffic, the steps, and
/// the participants per room (and how many of them send video).
struct Ladder<'a> {
    args: &'a Args,
    shared: &'a Arc<Shared>,
    steps: &'a [usize],
    members: usize,
    video: usize,
}

/// The steps against a server measured beside this SFU (the relay, or
/// another SFU binary): climbs, stops and lets its participants and the
/// server go, prints its table under `title`, returns its rows.
async fn climb_aside(
    ladder: &Ladder<'_>,
    mode: Mode,
    mut server: Sfu,
    title: &str,
) -> Result<Vec<Row>> {
    let stop = Arc::new(AtomicBool::new(false));
    let climbed = climb(ladder, mode, &mut server, &stop).await?;
    stop.store(true, Relaxed);
    drop(server);
    drop(climbed.rooms);
    tokio::time::sleep(GRACE).await;
    println!("## {title}\n");
    println!("{}", table(&climbed.rows));
    Ok(climbed.rows)
}

/// The steps against `sfu` (the SFU, or the relay when `mode` is
/// [`Mode::Relay`]): adds rooms, waits until they are members (and, on
/// WebRTC, hear each other), measures a window, stops at the knee unless
/// `--no-stop`.
async fn climb(
    ladder: &Ladder<'_>,
    mode: Mode,
    sfu: &mut Sfu,
    stop: &Arc<AtomicBool>,
) -> Result<Climbed> {
    let &Ladder {
        args,
        shared,
        steps,
        members,
        video,
    } = ladder;
    let mut rooms: Vec<Room> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut knee: Option<String> = None;
    let baseline = sfu.scrape().await?.get("satsuma_members");
    for &n in steps {
        // Add the rooms this step needs.
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(args.join_concurrency.max(1)));
        let mut joining = tokio::task::JoinSet::new();
        for index in rooms.len()..n {
            let (gate, shared, intercom, http, stop) = (
                Arc::clone(&gate),
                Arc::clone(shared),
                sfu.intercom,
                sfu.http,
                Arc::clone(stop),
            );
            joining.spawn(async move {
                let _permit = gate
                    .acquire_owned()
                    .await
                    .map_err(|_| Failure("semaphore closed".into()))?;
                match mode {
                    Mode::Wire => add_room(index, intercom, members, video, shared).await,
                    Mode::WebRtc => webrtc::add_room(index, http, members, video, shared).await,
                    Mode::Relay => {
                        bare::add_room(index, intercom, members, video, shared, stop).await
                    }
                }
                .map(|room| (index, room))
            });
        }
        let mut added = Vec::new();
        while let Some(joined) = joining.join_next().await {
            added.push(joined.map_err(|e| Failure(format!("a joining task failed: {e}")))??);
        }
        added.sort_by_key(|(index, _)| *index);
        let want = n * members;
        if mode == Mode::Relay {
            // Hellos every 100 ms: by now the relay knows every address.
            tokio::time::sleep(GRACE).await;
        } else {
            settle(
                sfu,
                want + usize::try_from(whole(baseline)).unwrap_or(0),
                Duration::from_secs(args.settle_timeout),
            )
            .await?;
        }
        if mode == Mode::WebRtc {
            webrtc::negotiated(
                added.iter().map(|(_, room)| room),
                Duration::from_secs(args.settle_timeout),
            )
            .await?;
        }
        eprintln!(
            "satsuma-load: {n} rooms, {want} members after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let go = now_ns();
        for (_, room) in added {
            let _ = room.go.send(Some(go));
            rooms.push(room);
        }

        let row = window(args, sfu, shared, &rooms, n).await?;
        eprintln!(
            "satsuma-load: {}",
            table(std::slice::from_ref(&row))
                .lines()
                .last()
                .unwrap_or("")
        );
        let stop = row.knee.clone();
        rows.push(row);
        if let Some(why) = stop
            && knee.is_none()
        {
            knee = Some(format!("{n} rooms: {why}"));
            if !args.no_stop {
                break;
            }
        }
    }
    Ok(Climbed { rows, knee, rooms })
}

/// This SFU's packets per core step by step, against the bare relay's
/// and, when given, another SFU's.
fn versus(relay: &[Row], other: Option<&[Row]>, sfu: &[Row], members: usize) -> String {
    use std::fmt::Write as _;
    let cell =
        |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| crate::report::thousands(whole(v)));
    let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2} ms"));
    let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.0} %", 100.0 * a / b),
        _ => "n/a".into(),
    };
    let mut out = String::from(if other.is_some() {
        "| rooms × members | bare relay pkt/s per core | other SFU | this SFU | this / other | this / relay | other p99 | this p99 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "| rooms × members | bare relay pkt/s per core | SFU pkt/s per core | SFU / relay | relay p99 | SFU p99 |\n\
         |---:|---:|---:|---:|---:|---:|\n"
    });
    for s in sfu {
        let r = relay.iter().find(|r| r.rooms == s.rooms);
        let (r_core, r_p99) = (r.and_then(|r| r.per_core), r.and_then(|r| r.p99_ms));
        let _ = match other {
            Some(other) => {
                let o = other.iter().find(|o| o.rooms == s.rooms);
                let o_core = o.and_then(|o| o.per_core);
                writeln!(
                    out,
                    "| {} × {members} | {} | {} | {} | {} | {} | {} | {} |",
                    s.rooms,
                    cell(r_core),
                    cell(o_core),
                    cell(s.per_core),
                    share(s.per_core, o_core),
                    share(s.per_core, r_core),
                    ms(o.and_then(|o| o.p99_ms)),
                    ms(s.p99_ms),
                )
            }
            None => writeln!(
                out,
                "| {} × {members} | {} | {} | {} | {} | {} |",
                s.rooms,
                cell(r_core),
                cell(s.per_core),
                share(s.per_core, r_core),
                ms(r_p99),
                ms(s.p99_ms),
            ),
        };
    }
    out
}

/// One measured window over the running `rooms` (`n` of them): warm-up,
/// the SFU and `/proc` sampled at its edges, the participants' counts.
pub(crate) async fn window(
    args: &Args,
    sfu: &mut Sfu,
    shared: &Shared,
    rooms: &[Room],
    n: usize,
) -> Result<Row> {
    let tick = clock_ticks();
    let cores = machine_cores();
    // Open the window, reset the counters it fills.
    let start = now_ns() + args.warmup * 1_000_000_000;
    let end = start + args.seconds * 1_000_000_000;
    shared.window.set(start, end);
    for p in rooms.iter().flat_map(|r| &r.participants) {
        p.sent.in_window.store(0, Relaxed);
        p.sent.skipped.store(0, Relaxed);
        *p.received.lock().unwrap_or_else(PoisonError::into_inner) = Received::new();
    }
    tokio::time::sleep_until(at_ns(start)).await;
    let (before, a) = (sfu.scrape().await?, sample(sfu.pid));
    tokio::time::sleep_until(at_ns(end)).await;
    let (after, b) = (sfu.scrape().await?, sample(sfu.pid));
    let rss = sfu.pid.and_then(|p| rss_kib(&p.to_string()));
    tokio::time::sleep(GRACE).await;
    sfu.check_alive()?;
    Ok(measure(
        n,
        sfu.relay,
        rooms,
        (&before, &a),
        (&after, &b),
        rss,
        tick,
        cores,
        args.seconds,
    ))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    rooms_n: usize,
    relay: bool,
    rooms: &[Room],
    (before, a): (&Scrape, &Sample),
    (after, b): (&Scrape, &Sample),
    rss: Option<u64>,
    tick: f64,
    cores: usize,
    seconds: u64,
) -> Row {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let window = seconds as f64;
    let mut latency = Histogram::new();
    let (mut expected, mut received, mut offered, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let mut worst: f64 = 0.0;
    for room in rooms {
        let sent: Vec<u64> = room
            .participants
            .iter()
            .map(|p| p.sent.in_window.load(Relaxed))
            .collect();
        let room_sent: u64 = sent.iter().sum();
        offered += room_sent;
        for (p, own) in room.participants.iter().zip(&sent) {
            skipped += p.sent.skipped.load(Relaxed);
            let stats = p.received.lock().unwrap_or_else(PoisonError::into_inner);
            let want = room_sent - own;
            expected += want;
            received += stats.packets;
            if want > 0 {
                worst = worst.max(100.0 * want.saturating_sub(stats.packets) as f64 / want as f64);
            }
            latency.merge(&stats.latency);
        }
    }
    let sfu_cpu = match (a.sfu_ticks, b.sfu_ticks) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / tick),
        _ => None,
    };
    let gen_cpu = match (a.gen_ticks, b.gen_ticks) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / tick),
        _ => None,
    };
    let machine_cpu = match (a.machine_ticks, b.machine_ticks) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / tick),
        _ => None,
    };
    let other_cpu =
        machine_cpu.map(|m| (m - sfu_cpu.unwrap_or(0.0) - gen_cpu.unwrap_or(0.0)).max(0.0));
    // The relay counts nothing: what it forwarded is what arrived (its
    // losses, if any, make it look slower, never faster).
    let out = if relay {
        received as f64 * wall / window
    } else {
        after.media_out() - before.media_out()
    };
    let before_drops = before.drops();
    let drops: BTreeMap<String, f64> = after
        .drops()
        .into_iter()
        .map(|(k, v)| {
            let d = v - before_drops.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let drop_total: f64 = drops.values().sum();
    let mut row = Row {
        rooms: rooms_n,
        participants: rooms.iter().map(|r| r.participants.len()).sum(),
        offered_pps: offered as f64 / window,
        sfu_in_pps: if relay {
            offered as f64 / window
        } else {
            (after.media_in() - before.media_in()) / wall
        },
        sfu_out_pps: out / wall,
        received_pps: received as f64 / window,
        per_core: sfu_cpu.filter(|c| *c > 0.0).map(|c| out / c),
        sfu_cpu_pct: sfu_cpu.map(|c| 100.0 * c / wall),
        gen_cpu_pct: gen_cpu.map(|c| 100.0 * c / wall),
        other_cpu_pct: other_cpu.map(|c| 100.0 * c / wall),
        sfu_rss_mib: rss.map(|k| k as f64 / 1024.0),
        p50_ms: latency.quantile(0.50).map(ms),
        p99_ms: latency.quantile(0.99).map(ms),
        max_ms: (latency.count() > 0).then(|| ms(latency.max)),
        sfu_p99_ms: sfu_p99_ms(before, after),
        loss_pct: if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(received) as f64 / expected as f64
        },
        worst_loss_pct: worst,
        drops: whole(drop_total),
        drop_detail: drops
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        skipped,
        knee: None,
    };
    let all = 100.0 * cores as f64;
    let mut why = Vec::new();
    if row.loss_pct > 1.0 {
        why.push(format!("loss {:.2} % > 1 %", row.loss_pct));
    }
    if row.p99_ms.is_some_and(|p| p > GOAL_P99_MS) {
        why.push(format!(
            "p99 {:.2} ms > {GOAL_P99_MS} ms",
            row.p99_ms.unwrap_or(0.0)
        ));
    }
    if row.sfu_cpu_pct.is_some_and(|c| c >= 0.9 * all) {
        why.push("SFU CPU saturated".into());
    } else if let (Some(s), Some(g)) = (row.sfu_cpu_pct, row.gen_cpu_pct)
        && s + g + row.other_cpu_pct.unwrap_or(0.0) >= 0.95 * all
    {
        why.push(format!(
            "machine CPU saturated (SFU {s:.0} % + generator {g:.0} % + other {:.0} % of {all:.0} %)",
            row.other_cpu_pct.unwrap_or(0.0)
        ));
    }
    if expected == 0 {
        why.push("nothing was sent".into());
    }
    if !why.is_empty()
        && let Some(other) = row.other_cpu_pct.filter(|o| *o >= 25.0)
    {
        why.push(format!(
            "other processes used {other:.0} % of a core meanwhile"
        ));
    }
    row.knee = (!why.is_empty()).then(|| why.join("; "));
    row
}
