//! A deterministic simulation of one room with real MLS: the delivery
//! service and 50 member slots around real sessions churn through hundreds
//! of joins, leaves and crashes over a seeded network with delay, lost
//! Welcomes and crash detection delays, with the DS's commit deadline on a
//! virtual clock. The engine, and the invariants it checks at every step,
//! are in [`satsuma_tests::churn`].
//!
//! Each test runs until the churn stops and the room converges, then
//! asserts what the people in the call would notice: everyone present is in
//! one group with one safety number and sees exactly who is present, soon
//! after the churn stops, and nobody's call dropped for a fork.
//!
//! A one-line summary per run is always printed; run with `--nocapture`
//! for the detailed statistics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use std::io::Write as _;
use std::time::Duration;

use satsuma_core::committer::Member;
use satsuma_core::mls::Session;
use satsuma_tests::checks::converged;
use satsuma_tests::churn::{Config, Sim, Stats};

fn simulate(cfg: Config) -> Stats {
    let wall = std::time::Instant::now();
    let seed = cfg.seed;
    let mut sim = Sim::new(cfg);
    let converge = sim.run();
    let s = sim.stats();
    let live: Vec<&Member<Session>> = sim.live().collect();
    let live_count = live.len();
    converged(sim.room(), live).expect("checked by run");
    let elapsed = wall.elapsed();
    // Straight to stderr, past libtest's capture: one line per run, always.
    let _ = writeln!(
        std::io::stderr(),
        "committer_sim seed {seed}: converged {:.2} s (simulated) after churn stopped at {:.1} s; \
         {} churn events, {} commits, {} stalls, {} rejoins, max epoch {}, {} in the group at most, {} live; wall {:.1} s",
        converge.as_secs_f64(),
        Duration::from_micros(sim.now().as_micros())
            .saturating_sub(converge)
            .as_secs_f64(),
        s.churn(),
        s.commits,
        s.stalls,
        s.rejoins.values().sum::<u32>(),
        s.max_epoch,
        s.max_in_group,
        live_count,
        elapsed.as_secs_f64(),
    );
    eprintln!("  {s:#?}");
    eprintln!("  epochs seen by members: {}", sim.ledger().epochs());

    // What the people in the call notice: everyone present is in one group
    // with one safety number and sees exactly who is present (checked by
    // `converged`), soon after the churn stops.
    assert!(
        converge <= cfg.convergence_bound(),
        "seed {seed}: converged only after {converge:?}, bound {:?}",
        cfg.convergence_bound()
    );
    assert!(live_count > 0, "seed {seed}: somebody is left in the call");
    assert_eq!(
        s.max_in_group, cfg.slots,
        "seed {seed}: every slot was in the group at once"
    );
    // The run exercised what it claims to.
    assert!(
        s.churn() >= cfg.churn_events,
        "seed {seed}: churn {}",
        s.churn()
    );
    assert!(
        s.joins + s.restarts >= 150 && s.leaves + s.crashes >= 100,
        "{s:?}"
    );
    assert!(
        s.lost_welcomes > 0 && s.rejoins.contains_key("LostWelcome"),
        "{s:?}"
    );
    assert!(
        s.committer_crashes > 0 && s.false_disconnects > 0 && s.evictions > 0,
        "{s:?}"
    );
    assert!(s.commits >= 100, "{s:?}");
    // A member never sees an entry out of order, a log entry the fold
    // refuses or bytes that do not decode: the network here is honest.
    for kind in ["Wire", "Log", "Sequence"] {
        assert!(
            !s.member_errors.contains_key(kind),
            "seed {seed}: members saw {kind} errors: {:?}",
            s.member_errors
        );
    }
    sim.into_stats()
}

/// Nobody's MLS state forked: honest members on an honest network rejoin
/// only for a lost Welcome or a refused key package, never because a
/// commit the log accepted failed for them (their call would drop).
fn assert_no_forks(seed: u64, s: &Stats) {
    let forks: Vec<_> = s
        .rejoins
        .iter()
        .filter(|(reason, _)| !matches!(reason.as_str(), "LostWelcome" | "Refused"))
        .collect();
    assert!(
        forks.is_empty(),
        "seed {seed}: members forked and rejoined: {forks:?}"
    );
    assert_eq!(
        s.stuck, 0,
        "seed {seed}: a committer could not build a commit"
    );
}

#[test]
fn fifty_members_churn_and_converge_seed_1() {
    let stats = simulate(Config::new(1));
    assert_no_forks(1, &stats);
}

#[test]
fn fifty_members_churn_and_converge_seed_2() {
    let stats = simulate(Config::new(0x5a75_0b0b));
    assert_no_forks(0x5a75_0b0b, &stats);
}

/// Self-updates fall due during the churn: proposals from members that then
/// leave or crash, commits that carry them.
fn with_self_updates() -> Config {
    Config {
        self_update: Some(Duration::from_secs(20)),
        ..Config::new(0xdead_beef_cafe)
    }
}

#[test]
fn fifty_members_churn_with_self_updates_converge_without_forks() {
    let stats = simulate(with_self_updates());
    assert!(stats.proposals >= 20, "{stats:?}");
    assert_no_forks(with_self_updates().seed, &stats);
}
