//! The results: one [`Row`] of numbers per step, the goal they are judged
//! against, and how they are printed, as a Markdown table on stdout and,
//! with `--json`, as a JSON document with the run's context.

use std::fmt::Write as _;

/// Twice LiveKit's published ~75k forwarded packets/s per core.
pub(crate) const GOAL_PER_CORE: f64 = 150_000.0;
pub(crate) const GOAL_P99_MS: f64 = 5.0;

// ---------------------------------------------------------------- results --

/// One step's numbers.
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub(crate) rooms: usize,
    pub(crate) participants: usize,
    pub(crate) offered_pps: f64,
    pub(crate) sfu_in_pps: f64,
    pub(crate) sfu_out_pps: f64,
    pub(crate) received_pps: f64,
    pub(crate) per_core: Option<f64>,
    pub(crate) sfu_cpu_pct: Option<f64>,
    pub(crate) gen_cpu_pct: Option<f64>,
    /// Everything else on the machine (other processes, the kernel's
    /// softirq work not charged to either), in % of one core.
    pub(crate) other_cpu_pct: Option<f64>,
    pub(crate) sfu_rss_mib: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) sfu_p99_ms: Option<f64>,
    pub(crate) loss_pct: f64,
    pub(crate) worst_loss_pct: f64,
    pub(crate) drops: u64,
    pub(crate) drop_detail: String,
    pub(crate) skipped: u64,
    pub(crate) knee: Option<String>,
}

pub(crate) fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

/// `n` with thousands separators: 201489 → "201,489".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The README's table (`--summary`): the columns a reader compares, with
/// units in the cells.
pub(crate) fn summary(rows: &[Row], members: usize) -> String {
    let unit = |v: Option<f64>, digits: usize, unit: &str| {
        v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$} {unit}"))
    };
    let mut out = String::from(
        "| rooms × members | forwarded pkt/s | forwarded per SFU core | SFU CPU | generator CPU | other | SFU RSS | p50 | p99 | loss |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} × {members} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} % |",
            r.rooms,
            thousands(crate::steps::whole(r.sfu_out_pps)),
            r.per_core
                .map_or_else(|| "n/a".to_owned(), |c| thousands(crate::steps::whole(c))),
            unit(r.sfu_cpu_pct, 0, "%"),
            unit(r.gen_cpu_pct, 0, "%"),
            unit(r.other_cpu_pct, 0, "%"),
            unit(r.sfu_rss_mib, 1, "MiB"),
            unit(r.p50_ms, 2, "ms"),
            unit(r.p99_ms, 2, "ms"),
            r.loss_pct,
        );
    }
    out
}

pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| rooms | partic. | offered pkt/s | SFU in pkt/s | SFU out pkt/s | rcvd pkt/s | out pkt/s per SFU core | SFU CPU % | gen CPU % | other CPU % | SFU RSS MiB | p50 ms | p99 ms | max ms | SFU-internal p99 ≤ ms | loss % (worst rx) | drops | verdict |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} ({:.2}) | {} | {} |",
            r.rooms,
            r.participants,
            r.offered_pps,
            r.sfu_in_pps,
            r.sfu_out_pps,
            r.received_pps,
            opt(r.per_core, 0),
            opt(r.sfu_cpu_pct, 0),
            opt(r.gen_cpu_pct, 0),
            opt(r.other_cpu_pct, 0),
            opt(r.sfu_rss_mib, 1),
            opt(r.p50_ms, 3),
            opt(r.p99_ms, 3),
            opt(r.max_ms, 3),
            match r.sfu_p99_ms {
                Some(v) if v.is_infinite() => "> 100".to_owned(),
                v => opt(v, 3),
            },
            r.loss_pct,
            r.worst_loss_pct,
            if r.drops == 0 {
                "0".to_owned()
            } else {
                format!("{} ({})", r.drops, r.drop_detail)
            },
            r.knee.as_deref().unwrap_or("ok"),
        );
    }
    out
}

fn json_num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "null".to_owned(), |v| format!("{v}"))
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn to_json(context: &[(&str, String)], rows: &[Row], knee: Option<&str>) -> String {
    let mut out = String::from("{\n  \"context\": {");
    for (i, (k, v)) in context.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n    {}: {}",
            if i == 0 { "" } else { "," },
            json_str(k),
            json_str(v)
        );
    }
    let _ = write!(
        out,
        "\n  }},\n  \"goal\": {{\"forwarded_per_core\": {GOAL_PER_CORE}, \"p99_ms\": {GOAL_P99_MS}}},\n  \"knee\": {},\n  \"steps\": [",
        knee.map_or_else(|| "null".to_owned(), json_str)
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n    {{\"rooms\": {}, \"participants\": {}, \"offered_pps\": {}, \"sfu_in_pps\": {}, \"sfu_out_pps\": {}, \
             \"received_pps\": {}, \"out_pps_per_sfu_core\": {}, \"sfu_cpu_pct\": {}, \"generator_cpu_pct\": {}, \
             \"other_cpu_pct\": {}, \"sfu_rss_mib\": {}, \"p50_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}, \"sfu_internal_p99_le_ms\": {}, \
             \"loss_pct\": {}, \"worst_receiver_loss_pct\": {}, \"drops\": {}, \"drop_detail\": {}, \
             \"generator_skipped\": {}, \"knee\": {}}}",
            if i == 0 { "" } else { "," },
            r.rooms,
            r.participants,
            json_num(Some(r.offered_pps)),
            json_num(Some(r.sfu_in_pps)),
            json_num(Some(r.sfu_out_pps)),
            json_num(Some(r.received_pps)),
            json_num(r.per_core),
            json_num(r.sfu_cpu_pct),
            json_num(r.gen_cpu_pct),
            json_num(r.other_cpu_pct),
            json_num(r.sfu_rss_mib),
            json_num(r.p50_ms),
            json_num(r.p99_ms),
            json_num(r.max_ms),
            json_num(r.sfu_p99_ms),
            json_num(Some(r.loss_pct)),
            json_num(Some(r.worst_loss_pct)),
            r.drops,
            json_str(&r.drop_detail),
            r.skipped,
            r.knee
                .as_deref()
                .map_or_else(|| "null".to_owned(), json_str),
        );
    }
    out.push_str("\n  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(201_489), "201,489");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
