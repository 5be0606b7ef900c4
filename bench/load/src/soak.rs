//! `--soak`: one call goes on while an abuser opens and abandons
//! connections at the SFU's limits, and the SFU's sockets, descriptors,
//! memory and the call's latency are measured before, during and after.
//!
//! The call is one room of `--members` participants with the usual traffic.
//! The abuser holds up to [`HOLD`] sockets at once, more than the SFU under
//! soak accepts ([`SOAK_ENV`]), in four kinds that an attacker gets for
//! free: an HTTP socket that says nothing, one that sends half a request
//! header, an intercom link that says nothing, and an intercom link that
//! joins a room of its own with a junk key package and then says nothing
//! (so rooms open up to the SFU's limit, and each lone joiner is a
//! designated creator that never creates). Every half second it abandons
//! the oldest quarter and opens new ones. The SFU must close what it
//! cannot use (handshake and idle timeouts, the designated committer's
//! deadline), refuse what is over its limits, and give it all back once
//! the abuser stops; the call in its own room must not notice.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use satsuma_core::wire::{
    Blob, Capabilities, Join, Open, RoomName, ToServer, Transport, encode_framed,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::report::{Row, table};
use crate::rooms::{Room, add_room};
use crate::sfu::Sfu;
use crate::steps::{settle, whole, window};
use crate::traffic::{Shared, now_ns};
use crate::{Args, Result};

/// What the SFU under soak is started with: its own limits, low enough for
/// the abuser to reach (every simulated client comes from 127.0.0.1).
pub(crate) const SOAK_ENV: &[(&str, &str)] = &[
    ("SATSUMA_SFU_LIMITS__MAX_CONNECTIONS", "1000"),
    ("SATSUMA_SFU_LIMITS__MAX_ROOMS", "200"),
];

/// Sockets the abuser holds at most: more than the SFU accepts.
const HOLD: usize = 1200;

/// How long the SFU may take to close what the abuser abandoned: its idle
/// timeout (30 s) and a margin.
const RECLAIM: Duration = Duration::from_secs(35);

#[derive(Debug, Default)]
struct AbuseStats {
    opened: AtomicU64,
    failed: AtomicU64,
    held_max: AtomicU64,
}

/// One phase's numbers.
struct Phase {
    name: &'static str,
    connections: f64,
    rooms: f64,
    fds: Option<usize>,
    row: Row,
    opened: u64,
    failed: u64,
}

fn fds(pid: Option<u32>) -> Option<usize> {
    let pid = pid?;
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

async fn phase(
    name: &'static str,
    args: &Args,
    sfu: &mut Sfu,
    shared: &Shared,
    rooms: &[Room],
    stats: &AbuseStats,
) -> Result<Phase> {
    let (opened, failed) = (stats.opened.load(Relaxed), stats.failed.load(Relaxed));
    let row = window(args, sfu, shared, rooms, 1).await?;
    let scrape = sfu.scrape().await?;
    Ok(Phase {
        name,
        connections: scrape.get("satsuma_connections"),
        rooms: scrape.get("satsuma_rooms"),
        fds: fds(sfu.pid),
        row,
        opened: stats.opened.load(Relaxed) - opened,
        failed: stats.failed.load(Relaxed) - failed,
    })
}

/// Opens one abandoned socket of kind `n % 4`.
async fn open(http: SocketAddr, intercom: SocketAddr, n: u64) -> std::io::Result<TcpStream> {
    match n % 4 {
        0 => TcpStream::connect(http).await,
        1 => {
            let mut s = TcpStream::connect(http).await?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: soak\r\n")
                .await?;
            Ok(s)
        }
        2 => TcpStream::connect(intercom).await,
        _ => {
            let mut s = TcpStream::connect(intercom).await?;
            let room = RoomName::new(&format!("soak-{}", n % 4096))
                .map_err(|e| std::io::Error::other(format!("{e}")))?;
            let join = ToServer::Open(Open::Join(Join {
                room,
                key_package: Blob::copy_from(&[0x5a; 300]).unwrap_or_default(),
                capabilities: Capabilities {
                    can_commit: true,
                    transport: Transport::Wire,
                },
            }));
            let bytes = encode_framed(&join).map_err(|e| std::io::Error::other(format!("{e}")))?;
            s.write_all(&bytes).await?;
            Ok(s)
        }
    }
}

async fn abuse(
    http: SocketAddr,
    intercom: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<AbuseStats>,
) {
    let mut held: VecDeque<TcpStream> = VecDeque::with_capacity(HOLD);
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        while held.len() < HOLD && !stop.load(Relaxed) {
            n += 1;
            match tokio::time::timeout(Duration::from_secs(2), open(http, intercom, n)).await {
                Ok(Ok(s)) => {
                    stats.opened.fetch_add(1, Relaxed);
                    held.push_back(s);
                }
                _ => {
                    stats.failed.fetch_add(1, Relaxed);
                }
            }
        }
        stats.held_max.fetch_max(held.len() as u64, Relaxed);
        for _ in 0..HOLD / 4 {
            held.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

pub(crate) async fn run(
    args: &Args,
    mut sfu: Sfu,
    shared: Arc<Shared>,
    members: usize,
    video: usize,
    abuse_secs: u64,
) -> Result<()> {
    let baseline = sfu.scrape().await?.get("satsuma_members");
    let room = add_room(0, sfu.intercom, members, video, Arc::clone(&shared)).await?;
    settle(
        &mut sfu,
        members + usize::try_from(whole(baseline)).unwrap_or(0),
        Duration::from_secs(args.settle_timeout),
    )
    .await?;
    let _ = room.go.send(Some(now_ns()));
    let rooms = vec![room];
    let stats = Arc::new(AbuseStats::default());
    let mut phases = vec![phase("before", args, &mut sfu, &shared, &rooms, &stats).await?];
    eprintln!("satsuma-load: soak: the abuser starts");

    let stop = Arc::new(AtomicBool::new(false));
    let abuser = tokio::spawn(abuse(
        sfu.http,
        sfu.intercom,
        Arc::clone(&stop),
        Arc::clone(&stats),
    ));
    let measured = args.warmup + args.seconds;
    tokio::time::sleep(Duration::from_secs(abuse_secs.saturating_sub(measured))).await;
    phases.push(phase("during", args, &mut sfu, &shared, &rooms, &stats).await?);
    stop.store(true, Relaxed);
    let _ = abuser.await;
    eprintln!(
        "satsuma-load: soak: the abuser stopped; waiting {RECLAIM:?} for the SFU to close what it left"
    );
    tokio::time::sleep(RECLAIM).await;
    phases.push(phase("after", args, &mut sfu, &shared, &rooms, &stats).await?);
    sfu.check_alive()?;

    println!(
        "\n## Soak: one call of {members} while an abuser holds up to {HOLD} abandoned sockets (limits: {})\n",
        SOAK_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| phase | SFU sockets | SFU fds | SFU RSS MiB | rooms open | abuser connects (errors) | call p50 ms | call p99 ms | call loss % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {} ({}) | {} | {} | {:.2} |",
            p.name,
            p.connections,
            opt(p.fds),
            p.row
                .sfu_rss_mib
                .map_or_else(|| "n/a".into(), |m| format!("{m:.1}")),
            p.rooms,
            p.opened,
            p.failed,
            p.row
                .p50_ms
                .map_or_else(|| "n/a".into(), |v| format!("{v:.3}")),
            p.row
                .p99_ms
                .map_or_else(|| "n/a".into(), |v| format!("{v:.3}")),
            p.row.loss_pct,
        );
    }
    println!(
        "\nThe abuser held at most {} sockets at once. The call's own rows:\n",
        stats.held_max.load(Relaxed)
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2} ms"));
    let mut summary = String::from(
        "| phase | SFU sockets | SFU fds | SFU RSS | rooms open | call p50 | call p99 | call loss |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &phases {
        let _ = writeln!(
            summary,
            "| {} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} % |",
            p.name,
            p.connections,
            opt(p.fds),
            p.row
                .sfu_rss_mib
                .map_or_else(|| "n/a".into(), |m| format!("{m:.1} MiB")),
            p.rooms,
            ms(p.row.p50_ms),
            ms(p.row.p99_ms),
            p.row.loss_pct,
        );
    }
    crate::steps::write_summary(args, &summary)?;
    let rows: Vec<Row> = phases.into_iter().map(|p| p.row).collect();
    println!("{}", table(&rows));
    Ok(())
}
