//! The SFU under test and what the tool reads from it: the spawned (or
//! already running) `satsuma-sfu` process and its addresses, plain HTTP
//! GETs of `/healthz` and `/metrics` and the parsed counters, the
//! SFU-internal forwarding latency from its histogram, and CPU ticks and
//! RSS from `/proc` for the SFU, the generator and the whole machine.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::traffic::STOPPING;
use crate::{Failure, Result, fail};

// ---------------------------------------------------------------- the SFU --

/// The SFU under test: spawned (and killed when dropped) or already running.
#[derive(Debug)]
pub(crate) struct Sfu {
    pub(crate) child: Option<Child>,
    pub(crate) pid: Option<u32>,
    pub(crate) http: SocketAddr,
    pub(crate) intercom: SocketAddr,
    pub(crate) binary: Option<PathBuf>,
    /// The bare relay instead of an SFU: no HTTP, no counters.
    pub(crate) relay: bool,
}

impl Drop for Sfu {
    fn drop(&mut self) {
        // The baseline relay goes before the run does.
        if !self.relay {
            STOPPING.store(true, Relaxed);
        }
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Sfu {
    /// Starts `binary` on loopback, with `env` on top of the load tool's
    /// own settings; with `pin`, on CPU 0 only.
    pub(crate) async fn spawn(
        binary: PathBuf,
        log: &str,
        env: &[(&str, &str)],
        pin: bool,
    ) -> Result<Self> {
        if !binary.is_file() {
            return fail(format!(
                "no SFU binary at {} (build it with `cargo build --release -p satsuma-sfu --bins`, or pass --sfu)",
                binary.display()
            ));
        }
        let mut child = command(&binary, pin)
            .args(["--http", "127.0.0.1:0", "--intercom", "127.0.0.1:0"])
            .env("RUST_LOG", log)
            // Every simulated client comes from 127.0.0.1.
            .env("SATSUMA_SFU_LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "10000")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure(format!("cannot start {}: {e}", binary.display())))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        // The guard kills the child on every path from here.
        let mut sfu = Self {
            child: Some(child),
            pid: Some(pid),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            intercom: SocketAddr::from(([127, 0, 0, 1], 0)),
            binary: Some(binary),
            relay: false,
        };
        let line = first_line(stdout, "SFU").await?;
        let addr = |key: &str| -> Result<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    Failure(format!(
                        "the SFU printed no {key}address: {:?}",
                        line.trim()
                    ))
                })
        };
        sfu.http = addr("http=")?;
        sfu.intercom = addr("intercom=")?;
        Ok(sfu)
    }

    /// Starts the bare relay (this tool with `--serve-relay`); its address
    /// goes in `intercom`. With `pin`, on CPU 0 only.
    pub(crate) async fn spawn_relay(pin: bool) -> Result<Self> {
        let binary =
            std::env::current_exe().map_err(|e| Failure(format!("where is this tool? {e}")))?;
        let mut child = command(&binary, pin)
            .arg("--serve-relay")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure(format!("cannot start the relay: {e}")))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let mut relay = Self {
            child: Some(child),
            pid: Some(pid),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            intercom: SocketAddr::from(([127, 0, 0, 1], 0)),
            binary: Some(binary),
            relay: true,
        };
        let line = first_line(stdout, "relay").await?;
        relay.intercom = line
            .trim()
            .strip_prefix("relay=")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| Failure(format!("the relay printed no address: {:?}", line.trim())))?;
        Ok(relay)
    }

    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            let who = if self.relay { "relay" } else { "SFU" };
            return fail(format!("the {who} exited: {status}"));
        }
        Ok(())
    }

    pub(crate) async fn get(&self, path: &str) -> Result<String> {
        let exchange = async {
            let mut tcp = TcpStream::connect(self.http).await?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: sfu\r\nConnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await?;
            let mut response = String::new();
            tcp.read_to_string(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| Failure(format!("GET {path} from {} took over 5 s", self.http)))?
            .map_err(|e| Failure(format!("GET {path} from {}: {e}", self.http)))?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if !head.starts_with("HTTP/1.1 200") {
            return fail(format!(
                "GET {path}: {}",
                head.lines().next().unwrap_or("no status")
            ));
        }
        Ok(body.to_owned())
    }

    /// The SFU's counters (none from the relay).
    pub(crate) async fn scrape(&self) -> Result<Scrape> {
        if self.relay {
            return Ok(Scrape::default());
        }
        let body = self.get("/metrics").await?;
        let mut values = BTreeMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            if let Some((series, value)) = line.rsplit_once(' ')
                && let Ok(value) = value.parse::<f64>()
            {
                values.insert(series.to_owned(), value);
            }
        }
        Ok(Scrape { values })
    }
}

/// One reading of `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    values: BTreeMap<String, f64>,
}

impl Scrape {
    pub(crate) fn get(&self, series: &str) -> f64 {
        self.values.get(series).copied().unwrap_or(0.0)
    }

    pub(crate) fn media_in(&self) -> f64 {
        self.get("satsuma_received_packets_total{kind=\"audio\"}")
            + self.get("satsuma_received_packets_total{kind=\"video\"}")
    }

    /// Media the SFU handed to subscribers' sockets (it counts all
    /// intercom media under `audio`; video is added in case that changes).
    pub(crate) fn media_out(&self) -> f64 {
        self.get("satsuma_sent_packets_total{kind=\"audio\"}")
            + self.get("satsuma_sent_packets_total{kind=\"video\"}")
    }

    pub(crate) fn drops(&self) -> BTreeMap<String, f64> {
        self.values
            .iter()
            .filter_map(|(k, v)| {
                let reason = k
                    .strip_prefix("satsuma_dropped_total{reason=\"")?
                    .strip_suffix("\"}")?;
                Some((reason.to_owned(), *v))
            })
            .collect()
    }

    fn latency_buckets(&self) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = self
            .values
            .iter()
            .filter_map(|(k, v)| {
                let le = k
                    .strip_prefix("satsuma_forward_latency_seconds_bucket{le=\"")?
                    .strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// The bucket bound (ms) under which 99 % of the window's SFU-internal
/// latencies fall, from two cumulative histograms.
pub(crate) fn sfu_p99_ms(before: &Scrape, after: &Scrape) -> Option<f64> {
    let a = before.latency_buckets();
    let b = after.latency_buckets();
    let deltas: Vec<(f64, f64)> = b
        .iter()
        .map(|(le, v)| {
            (
                *le,
                v - a.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1),
            )
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas
        .iter()
        .find(|(_, c)| *c >= 0.99 * total)
        .map(|(le, _)| le * 1000.0)
}

/// `binary`, on CPU 0 only if `pin` (through `taskset`, which execs it:
/// the pid stays the program's, and every thread it starts inherits the
/// mask).
fn command(binary: &std::path::Path, pin: bool) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["--cpu-list", "0"]).arg(binary);
        c
    } else {
        Command::new(binary)
    }
}

/// The first line a child prints, within 15 s; the rest of its stdout is
/// drained for its lifetime.
async fn first_line(stdout: Option<std::process::ChildStdout>, who: &str) -> Result<String> {
    let Some(stdout) = stdout else {
        return fail(format!("the {who}'s stdout is not a pipe"));
    };
    let reading = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        // Keep the pipe open (and drained) for the child's lifetime.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    });
    match tokio::time::timeout(Duration::from_secs(15), reading).await {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(e)) => fail(format!("reading the {who}'s first line: {e}")),
        Err(_) => fail(format!("the {who} did not print its address within 15 s")),
    }
}

// ---------------------------------------------------------------- /proc --

/// User plus system CPU ticks of a process.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The machine's online cores, whatever this process is pinned to (from
/// /proc/stat; `available_parallelism` honours the affinity mask).
pub(crate) fn machine_cores() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.strip_prefix("cpu")
                        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
                })
                .count()
        })
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Busy CPU ticks of the whole machine, all cores (user, nice, system,
/// irq, softirq, steal; guest time is inside user already).
fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|i| fields.get(*i))
            .sum(),
    )
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) sfu_ticks: Option<u64>,
    pub(crate) gen_ticks: Option<u64>,
    pub(crate) machine_ticks: Option<u64>,
}

pub(crate) fn sample(sfu_pid: Option<u32>) -> Sample {
    Sample {
        at: Instant::now(),
        sfu_ticks: sfu_pid.and_then(|p| cpu_ticks(&p.to_string())),
        gen_ticks: cpu_ticks("self"),
        machine_ticks: machine_ticks(),
    }
}
