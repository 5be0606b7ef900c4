//! `cargo xtask bench`: every benchmark table of the README, measured in one
//! run with the settings the README states, and written, with the date, the
//! commit and the machine, into `bench/RESULTS.md` and the README.
//!
//! Each table sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
//! in both files; a run replaces what is between the markers of the tables
//! it measured and nothing else. `cargo xtask bench sframe mls` measures
//! only those; no name measures them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::{Result, root, run};

/// One table: its name (the marker), what produces it.
struct Table {
    name: &'static str,
    about: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "sframe",
        about: "SFrame against raw AES-GCM and the sframe crate (criterion)",
    },
    Table {
        name: "mls",
        about: "MLS on three stacks (criterion, CPU time)",
    },
    Table {
        name: "mls-ab",
        about: "the MLS provider ratio, interleaved, over several runs",
    },
    Table {
        name: "load",
        about: "the SFU under load on the intercom link",
    },
    Table {
        name: "soak",
        about: "the SFU under a connection soak",
    },
    Table {
        name: "webrtc",
        about: "the SFU under load with desktop members on WebRTC",
    },
    Table {
        name: "engine",
        about: "the desktop engine: CPU per participant of a 4-person call, against bare codecs",
    },
];

/// The engine table's call: participants, seconds, picture.
const ENGINE_PEERS: usize = 4;
const ENGINE_SECONDS: &str = "20";
const ENGINE_VIDEO: &[&str] = &["--size", "640x360", "--fps", "30", "--bitrate", "800"];

/// Rooms per step of the load tables.
const LOAD_ROOMS: &str = "1,4,16,32,48,64,96,128";
const WEBRTC_ROOMS: &str = "1,4,16,32,48,64";
/// Criterion settings of the SFrame table.
const SFRAME_ARGS: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];
/// Runs of the interleaved MLS comparison, and its group sizes (N = 1024
/// takes 2.5 minutes a run; `SATSUMA_BENCH_SIZES` in bench/examples/ab.rs).
const AB_RUNS: usize = 3;
const AB_SIZES: &str = "2,16,128";

pub fn bench(names: &[String]) -> Result {
    for name in names {
        if !TABLES.iter().any(|t| t.name == name) {
            let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            return Err(format!(
                "no benchmark table {name:?}; the tables: {}",
                known.join(", ")
            ));
        }
    }
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let scratch = root().join("target").join("bench-tables");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let machine = machine();
    let commit = commit();
    let mut measured = Vec::new();
    for table in TABLES.iter().filter(|t| wanted(t.name)) {
        println!("\n=== bench: {}", table.about);
        let (command, body) = match table.name {
            "sframe" => sframe()?,
            "mls" => mls()?,
            "mls-ab" => mls_ab(&scratch)?,
            "load" => load(
                &scratch,
                "load",
                &["--rooms", LOAD_ROOMS, "--members", "4", "--no-stop"],
            )?,
            "soak" => load(&scratch, "soak", &["--soak", "90"])?,
            "engine" => engine()?,
            "webrtc" => load(
                &scratch,
                "webrtc",
                &[
                    "--transport",
                    "webrtc",
                    "--rooms",
                    WEBRTC_ROOMS,
                    "--members",
                    "3",
                    "--no-stop",
                    // The bare UDP relay's steps first, in the same run.
                    "--baseline",
                    // The generator's WebRTC stack on its own core.
                    "--pin",
                ],
            )?,
            _ => continue,
        };
        let block = format!(
            "{body}\n_{}, {machine}, commit {commit}: `{command}`._\n",
            today()
        );
        measured.push((table.name, block));
    }
    for file in ["bench/RESULTS.md", "README.md"] {
        let path = root().join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
        let mut out = text.clone();
        for (name, block) in &measured {
            out = replace_between(&out, name, block).map_err(|e| format!("{file}: {e}"))?;
        }
        if out != text {
            std::fs::write(&path, out).map_err(|e| format!("{file}: {e}"))?;
            println!("updated {file}");
        }
    }
    Ok(())
}

/// `text` with what lies between the markers of `name` replaced by `block`.
fn replace_between(text: &str, name: &str, block: &str) -> Result<String> {
    let open = format!("<!-- bench:{name} -->\n");
    let close = format!("<!-- /bench:{name} -->");
    let start = text
        .find(&open)
        .ok_or_else(|| format!("no {open:?} marker"))?
        + open.len();
    let end = text[start..]
        .find(&close)
        .ok_or_else(|| format!("no {close:?} marker"))?
        + start;
    Ok(format!("{}{block}{}", &text[..start], &text[end..]))
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn today() -> String {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    if date.is_empty() {
        "date unknown".into()
    } else {
        date
    }
}

fn commit() -> String {
    let commit = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    match (commit.is_empty(), dirty) {
        (true, _) => "unknown".into(),
        (false, true) => format!("{commit} with local changes"),
        (false, false) => commit,
    }
}

/// The CPU, its cores and the memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("an unknown CPU", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| format!(", {} GiB", kib / 1024 / 1024));
    format!("{cores} cores of {cpu}{memory}")
}

/// Runs the load tool with `args` and returns its summary table.
fn load(scratch: &Path, name: &str, args: &[&str]) -> Result<(String, String)> {
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "satsuma-sfu",
            "--bins",
            "-p",
            "satsuma-load",
        ],
    )?;
    let summary = scratch.join(format!("{name}.md"));
    let path = summary.to_string_lossy().into_owned();
    let mut full = vec!["run", "--release", "-p", "satsuma-load", "--"];
    full.extend(args);
    full.extend(["--summary", path.as_str()]);
    run("cargo", &full)?;
    let body = std::fs::read_to_string(&summary).map_err(|e| format!("{path}: {e}"))?;
    Ok((
        format!("cargo run --release -p satsuma-load -- {}", args.join(" ")),
        body,
    ))
}

/// Where cargo puts release builds.
fn release_dir() -> PathBuf {
    crate::target_dir().join("release")
}

/// A number after `"key":` in a JSON line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get(key)?.as_f64()
}

/// A 4-person call of `satsuma-headless` processes (release) through a
/// `satsuma-sfu` process, each sending a tone and the 640×360 30 fps
/// pattern, against the same codec work done bare (examples/bare.rs).
fn engine() -> Result<(String, String)> {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "satsuma-sfu",
            "-p",
            "satsuma-engine",
            "--bins",
        ],
    )?;
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "satsuma-engine",
            "--example",
            "bare",
        ],
    )?;
    let dir = release_dir();
    let mut sfu = Command::new(dir.join("satsuma-sfu"))
        .args(["--http", "127.0.0.1:0", "--intercom", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("satsuma-sfu: {e}"))?;
    let mut line = String::new();
    if let Some(out) = sfu.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .map(str::to_owned)
        .ok_or_else(|| format!("satsuma-sfu did not say its address: {line:?}"))?;
    let mut peers = Vec::new();
    for i in 0..ENGINE_PEERS {
        let tone = (440 + 110 * i).to_string();
        let name = format!("P{i}");
        let mut args = vec![
            "--server",
            &http,
            "--room",
            "bench",
            "--name",
            &name,
            "--beeps",
            &tone,
            "--seconds",
            ENGINE_SECONDS,
        ];
        args.extend(ENGINE_VIDEO);
        let child = Command::new(dir.join("satsuma-headless"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("satsuma-headless: {e}"))?;
        peers.push(child);
    }
    // Someone joins for two seconds, leaves, and comes back, all call
    // long: two epoch changes each time, with media flowing throughout.
    let call: f64 = ENGINE_SECONDS.parse().unwrap_or(20.0);
    let churner = {
        let (dir, http) = (dir.clone(), http.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut visits = 0u32;
            std::thread::sleep(Duration::from_secs(3));
            while start.elapsed().as_secs_f64() < call - 5.0 {
                let ok = Command::new(dir.join("satsuma-headless"))
                    .args(["--server", &http, "--room", "bench", "--name", "Churn"])
                    .args(["--tone", "1800", "--no-video", "--seconds", "2"])
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                visits += u32::from(ok);
                std::thread::sleep(Duration::from_secs(1));
            }
            visits
        })
    };
    let mut cpu = Vec::new();
    // Over every participant's playout of every other: the longest gap,
    // the frames that came too late for their slot, and the frames that
    // arrived but never opened (lost to a key change).
    let (mut longest_gap, mut late, mut unopened, mut arrived) = (0.0f64, 0.0, 0.0, 0.0);
    let (mut decoded, mut failed) = (Vec::new(), 0.0);
    // Beeps sent, by name; beeps heard: (sender's name, when).
    let mut sent: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut heard: Vec<(String, f64)> = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        let out = peer
            .wait_with_output()
            .map_err(|e| format!("satsuma-headless: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let seconds = text
            .lines()
            .find_map(|l| {
                l.contains("\"cpu\"")
                    .then(|| json_number(l, "seconds"))
                    .flatten()
            })
            .ok_or("a headless client printed no CPU time")?;
        cpu.push(seconds);
        for l in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            let at = v["at_us"].as_f64().unwrap_or(0.0);
            match v["event"].as_str() {
                Some("beep_sent") => sent.entry(format!("P{i}")).or_default().push(at),
                Some("beep_heard") => {
                    if let Some(name) = v["name"].as_str() {
                        heard.push((name.to_owned(), at));
                    }
                }
                _ => {}
            }
        }
        let media = text
            .lines()
            .rev()
            .find(|l| l.contains("\"media\""))
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .ok_or("a headless client printed no media report")?;
        let received: Vec<serde_json::Value> = media["received"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with('P')))
            .collect();
        if received.len() + 1 != ENGINE_PEERS {
            return Err(format!(
                "a client heard {} of {} others",
                received.len(),
                ENGINE_PEERS - 1
            ));
        }
        for r in &received {
            decoded.push(r["video"]["decoded"].as_f64().unwrap_or(0.0));
            failed += r["audio"]["failed"].as_f64().unwrap_or(0.0)
                + r["video"]["failed"].as_f64().unwrap_or(0.0);
            let audio = &r["audio"];
            longest_gap = longest_gap.max(audio["longest_gap_ms"].as_f64().unwrap_or(0.0));
            late += audio["playout"]["late"].as_f64().unwrap_or(0.0);
            arrived += audio["packets"].as_f64().unwrap_or(0.0);
            unopened +=
                audio["packets"].as_f64().unwrap_or(0.0) - audio["opened"].as_f64().unwrap_or(0.0);
        }
    }
    let visits = churner.join().map_err(|_| "the churning client panicked")?;
    let _ = sfu.kill();
    let _ = sfu.wait();
    let peers_arg = ENGINE_PEERS.to_string();
    let bare = Command::new(dir.join("examples").join("bare"))
        .args(["--seconds", ENGINE_SECONDS, "--peers", &peers_arg])
        .output()
        .map_err(|e| format!("examples/bare: {e}"))?;
    let bare_line = String::from_utf8_lossy(&bare.stdout);
    let bare_cpu = json_number(bare_line.trim(), "cpu_seconds")
        .ok_or_else(|| format!("examples/bare printed {bare_line:?}"))?;
    let mean = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
    let (low, high) = cpu
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &c| (l.min(c), h.max(c)));
    let frames = decoded.iter().copied().fold(f64::MAX, f64::min);
    // Each beep heard against the last beep its sender started before it
    // (beeps are a second apart, the latency far less).
    let mut latency: Vec<f64> = heard
        .iter()
        .filter_map(|(name, at)| {
            let start = sent
                .get(name)?
                .iter()
                .copied()
                .filter(|s| s <= at)
                .fold(f64::MIN, f64::max);
            (start > f64::MIN).then(|| (at - start) / 1000.0)
        })
        .collect();
    latency.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        // The nearest rank: an index into a short vector.
        let rank = (latency.len().saturating_sub(1) as f64 * q).round();
        latency
            .iter()
            .enumerate()
            .find(|&(i, _)| i as f64 >= rank)
            .map_or(f64::NAN, |(_, &v)| v)
    };
    let body = format!(
        "| {ENGINE_PEERS}-person call, 640×360 30 fps VP8 + Opus, {call:.0} s | CPU per participant (% of one core) |\n\
         |---|---:|\n\
         | satsuma-headless (engine: codecs, SFrame, MLS, WebRTC, jitter buffer), mean (min–max) | {:.1} ({:.1}–{:.1}) |\n\
         | the same codec work bare (examples/bare: draw + encode 1, decode {} streams) | {:.1} |\n\
         | engine / bare | {:.2} |\n\n\
         | mouth to ear on loopback (capture to playout; no device buffers) | p50 | p95 | max | beeps |\n\
         |---|---:|---:|---:|---:|\n\
         | satsuma-headless, 4-person call | {:.1} ms | {:.1} ms | {:.1} ms | {} |\n\n\
         | through {} epoch changes (a fifth member joins for 2 s and leaves, {visits} times) | |\n\
         |---|---:|\n\
         | longest audio gap any participant played, any sender | {longest_gap:.0} ms |\n\
         | audio frames that arrived too late for their slot | {late:.0} of {arrived:.0} |\n\
         | audio frames that arrived and never opened (lost to a key change) | {unopened:.0} |\n\n\
         Every participant decoded at least {frames:.0} pictures from each other; frames that failed to open: {failed:.0}. \
         The engine's figure includes joining (MLS, ICE) and the time before media flows.\n",
        mean / call * 100.0,
        low / call * 100.0,
        high / call * 100.0,
        ENGINE_PEERS - 1,
        bare_cpu / call * 100.0,
        mean / bare_cpu.max(1e-9),
        quantile(0.5),
        quantile(0.95),
        latency.last().copied().unwrap_or(f64::NAN),
        latency.len(),
        2 * visits,
    );
    Ok((
        format!(
            "cargo xtask bench engine ({ENGINE_PEERS} satsuma-headless processes {} through satsuma-sfu, release)",
            ENGINE_VIDEO.join(" ")
        ),
        body,
    ))
}

/// Criterion's estimate of every benchmark under target/criterion measured
/// since `since`, in ns, by its full id (`encrypt/160/satsuma`,
/// `join/openmls/16`).
fn criterion_estimates(since: SystemTime) -> Result<BTreeMap<String, f64>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    found.push(path);
                } else {
                    walk(&path, found);
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&root().join("target").join("criterion"), &mut found);
    let mut estimates = BTreeMap::new();
    for dir in found {
        let read = |file: &str| -> Option<serde_json::Value> {
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).ok()?).ok()
        };
        let fresh = std::fs::metadata(dir.join("estimates.json"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        let (true, Some(benchmark), Some(estimate)) =
            (fresh, read("benchmark.json"), read("estimates.json"))
        else {
            continue;
        };
        let Some(id) = benchmark["full_id"].as_str() else {
            continue;
        };
        // What criterion prints: the slope where it fitted one, else the mean.
        let point = |key: &str| estimate[key]["point_estimate"].as_f64();
        if let Some(ns) = point("slope").or_else(|| point("mean")) {
            estimates.insert(id.to_owned(), ns);
        }
    }
    Ok(estimates)
}

/// A time with `digits` significant digits and its unit.
fn time(ns: f64, digits: usize) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let whole = format!("{value:.0}").len();
    let decimals = digits.saturating_sub(whole);
    format!("{value:.decimals$} {unit}")
}

fn get(estimates: &BTreeMap<String, f64>, id: &str) -> Result<f64> {
    estimates
        .get(id)
        .copied()
        .ok_or_else(|| format!("criterion measured no {id:?}"))
}

fn sframe() -> Result<(String, String)> {
    let mut args = vec!["bench", "-p", "satsuma-core", "--bench", "sframe", "--"];
    args.extend(SFRAME_ARGS);
    let since = SystemTime::now();
    run("cargo", &args)?;
    let e = criterion_estimates(since)?;
    let mut body = String::from(
        "| bytes | op | Satsuma | raw AES-GCM | sframe crate | Satsuma / raw | Satsuma / sframe crate |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
    );
    for op in ["encrypt", "decrypt"] {
        for (size, label) in [
            (3, "3 (Opus DTX)"),
            (160, "160 (G.711)"),
            (1_200, "1,200"),
            (60_000, "60,000"),
        ] {
            let ours = get(&e, &format!("{op}/{size}/satsuma"))?;
            let raw = get(&e, &format!("{op}/{size}/aes-gcm-raw"))?;
            let crate_ = get(&e, &format!("{op}/{size}/sframe-crate"))?;
            body.push_str(&format!(
                "| {label} | {op} | {} | {} | {} | {:.2} | {:.2} |\n",
                time(ours, 4),
                time(raw, 4),
                time(crate_, 4),
                ours / raw,
                ours / crate_
            ));
        }
    }
    Ok((
        format!(
            "cargo bench -p satsuma-core --bench sframe -- {}",
            SFRAME_ARGS.join(" ")
        ),
        body,
    ))
}

const MLS_SIZES: [u32; 4] = [2, 16, 128, 1024];

fn mls() -> Result<(String, String)> {
    let since = SystemTime::now();
    run("cargo", &["bench", "-p", "satsuma-bench", "--bench", "mls"])?;
    let e = criterion_estimates(since)?;
    let mut body = String::from(
        "| operation | N | Satsuma | mls-rs + RustCrypto | Satsuma / RustCrypto | OpenMLS |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |label: &str, n: &str, ids: [String; 3]| -> Result {
        let [ours, rust, open] = [&ids[0], &ids[1], &ids[2]].map(|id| get(&e, id));
        let (ours, rust, open) = (ours?, rust?, open?);
        body.push_str(&format!(
            "| {label} | {n} | {} | {} | {:.2} | {} |\n",
            time(ours, 3),
            time(rust, 3),
            ours / rust,
            time(open, 3)
        ));
        Ok(())
    };
    row(
        "create a group",
        "—",
        ["satsuma", "mls-rs-rustcrypto", "openmls"].map(|i| format!("create/{i}")),
    )?;
    for (op, label) in [
        ("add", "add 1 member"),
        ("remove", "remove 1 member"),
        ("process", "process a commit"),
        ("join", "join from a Welcome"),
    ] {
        for n in MLS_SIZES {
            row(
                label,
                &group_size(n),
                ["satsuma", "mls-rs-rustcrypto", "openmls"].map(|i| format!("{op}/{i}/{n}")),
            )?;
        }
    }
    Ok(("cargo bench -p satsuma-bench --bench mls".to_owned(), body))
}

fn group_size(n: u32) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// Runs the interleaved comparison `AB_RUNS` times and gives, per operation
/// and N, the median of the runs' median ratios and their range.
fn mls_ab(scratch: &Path) -> Result<(String, String)> {
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "satsuma-bench",
            "--example",
            "ab",
        ],
    )?;
    let mut ratios: BTreeMap<(usize, String, String), Vec<f64>> = BTreeMap::new();
    for i in 0..AB_RUNS {
        println!(
            "\n$ SATSUMA_BENCH_SIZES={AB_SIZES} cargo run --release -p satsuma-bench --example ab   (run {} of {AB_RUNS})",
            i + 1
        );
        let out = Command::new("cargo")
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "satsuma-bench",
                "--example",
                "ab",
            ])
            .env("SATSUMA_BENCH_SIZES", AB_SIZES)
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot start the ab example: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let _ = std::fs::write(scratch.join(format!("mls-ab-{i}.md")), &text);
        print!("{text}");
        if !out.status.success() {
            return Err(format!("the ab example failed ({})", out.status));
        }
        for (order, line) in text.lines().filter(|l| l.starts_with("| ")).enumerate() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(op), Some(n), Some(ratio)) = (cells.get(1), cells.get(2), cells.get(5))
            else {
                continue;
            };
            let Some(ratio) = ratio
                .split_whitespace()
                .next()
                .and_then(|r| r.parse::<f64>().ok())
            else {
                continue;
            };
            ratios
                .entry((order, (*op).to_owned(), (*n).to_owned()))
                .or_default()
                .push(ratio);
        }
    }
    if ratios.is_empty() {
        return Err("the ab example printed no ratios".into());
    }
    let mut body = String::from(
        "| operation | N | runs | median of the runs' median ratios | range over runs |\n\
         |---|---:|---:|---:|---|\n",
    );
    for ((_, op, n), mut r) in ratios {
        r.sort_by(f64::total_cmp);
        let median = if r.len() % 2 == 1 {
            r[r.len() / 2]
        } else {
            (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
        };
        body.push_str(&format!(
            "| {} | {n} | {} | {median:.2} | {:.2}–{:.2} |\n",
            op.to_lowercase(),
            r.len(),
            r[0],
            r[r.len() - 1]
        ));
    }
    Ok((
        format!(
            "{AB_RUNS} × SATSUMA_BENCH_SIZES={AB_SIZES} cargo run --release -p satsuma-bench --example ab"
        ),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_their_significant_digits() {
        assert_eq!(time(225.34, 4), "225.3 ns");
        assert_eq!(time(24_370.0, 4), "24.37 µs");
        assert_eq!(time(1_018.0, 4), "1.018 µs");
        assert_eq!(time(99_000.0, 3), "99.0 µs");
        assert_eq!(time(2_050_000.0, 3), "2.05 ms");
        assert_eq!(time(89_900_000.0, 3), "89.9 ms");
    }

    #[test]
    fn only_the_marked_block_is_replaced() {
        let text = "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nb\n";
        assert_eq!(
            replace_between(text, "x", "new\n").unwrap(),
            "a\n<!-- bench:x -->\nnew\n<!-- /bench:x -->\nb\n"
        );
        assert!(replace_between(text, "y", "new\n").is_err());
    }
}
