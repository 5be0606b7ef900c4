//! The exhaustive check: every state a room with up to four members can
//! reach under the scenario's churn, with every interleaving of message
//! deliveries, is checked against S0-S4, and must be able to settle.
//!
//! - **Safety**: `World::check` in every reachable state, and the checks
//!   `World::step` makes on every transition.
//! - **Liveness**: from every reachable state, some converged state is
//!   reachable by system actions alone (deliveries, the DS noticing dead
//!   connections, deadlines), i.e. AG EF converged once churn stops; and
//!   every state where nothing at all can happen is converged.
//!
//! A failure prints the shortest action sequence from the empty room.
//! `cargo test -p satsuma-model --release -- --nocapture --include-ignored`
//! also runs the larger scenarios and prints every table row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

#[path = "checker/explore.rs"]
mod explore;

use explore::{Failure, Report, Search, explore};
use satsuma_model::{Budgets, Churn, Config, MemberSetup, Mutation};

/// Explores `config`, prints a table row, and fails on a violation.
fn run(name: &str, config: Config) -> Report {
    let members = config.members.len();
    let budgets = config.budgets;
    match explore(config, Search::Reduced) {
        Ok(r) => {
            println!(
                "| {name} | {members} | {} | {} | {} | {} | {} | {} | {:.1?} |",
                budget_text(&budgets),
                r.states,
                r.transitions,
                r.max_depth,
                r.converged,
                r.cut,
                r.time
            );
            r
        }
        Err(f) => panic!("{name}: {f:?}"),
    }
}

fn budget_text(b: &Budgets) -> String {
    let parts = [
        ("join", b.joins),
        ("leave", b.leaves),
        ("crash", b.crashes),
        ("lost Welcome", b.lost_welcomes),
        ("false disconnect", b.false_disconnects),
        ("update", b.updates),
    ];
    parts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Desktops with the given churn, and the usual bounds.
fn config(churn: &[Churn], budgets: Budgets) -> Config {
    Config {
        members: churn
            .iter()
            .map(|&c| MemberSetup::DESKTOP.with(c))
            .collect(),
        budgets,
        max_stalls: 1,
        max_seq: 24,
        mutation: None,
    }
}

/// Asserts an exploration did real work and settled everywhere it could
/// look.
fn assert_explored(r: &Report, min_states: usize) {
    assert!(
        r.states >= min_states,
        "only {} states explored (expected at least {min_states})",
        r.states
    );
    assert!(r.transitions > r.states, "fewer transitions than states");
    assert!(r.converged > 0, "no converged state reached");
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn a_two_members_open_the_room_at_once_and_crash_or_lose_a_welcome() {
    let r = run(
        "a",
        config(
            &[Churn::ALL, Churn::ALL],
            Budgets {
                joins: 3,
                crashes: 1,
                lost_welcomes: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 10_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn b_three_members_leave_crash_and_are_disconnected() {
    let r = run(
        "b",
        config(
            &[Churn::DISCONNECT, Churn::CRASH, Churn::LEAVE],
            Budgets {
                joins: 3,
                leaves: 1,
                crashes: 1,
                false_disconnects: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 100_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn c_four_members_and_a_crash_anywhere() {
    let r = run(
        "c",
        config(
            &[Churn::NONE, Churn::NONE, Churn::CRASH, Churn::NONE],
            Budgets {
                joins: 4,
                crashes: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 100_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn d_a_malformed_key_package_is_refused_and_replaced() {
    let mut c = config(
        &[Churn::NONE, Churn::CRASH, Churn::LOSE_WELCOME],
        Budgets {
            joins: 3,
            crashes: 1,
            lost_welcomes: 1,
            ..Budgets::default()
        },
    );
    c.members[2].bad_key_packages = 1;
    let r = run("d", c);
    assert_explored(&r, 10_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn e_self_updates_race_with_joins_and_a_leave() {
    let r = run(
        "e",
        config(
            &[Churn::NONE, Churn::UPDATE, Churn::UPDATE.and(Churn::LEAVE)],
            Budgets {
                joins: 3,
                leaves: 1,
                updates: 2,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 100_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn f_an_intercom_commits_when_the_desktops_are_gone() {
    let mut c = config(
        &[Churn::NONE, Churn::LEAVE, Churn::CRASH],
        Budgets {
            joins: 3,
            leaves: 1,
            crashes: 1,
            ..Budgets::default()
        },
    );
    c.members[0].can_commit = false;
    let r = run("f", c);
    assert_explored(&r, 10_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn g_an_evicted_member_rejoins() {
    let both = Churn::DISCONNECT.and(Churn::LOSE_WELCOME);
    let r = run(
        "g",
        config(
            &[both, both],
            Budgets {
                joins: 3,
                false_disconnects: 1,
                lost_welcomes: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 1_000);
}

/// Scenario b with a rejoin: tens of millions of states, for a release
/// build (`--release -- --ignored`).
#[test]
#[ignore = "minutes in a release build"]
fn deep_b_three_members_every_departure_and_a_rejoin() {
    let r = run(
        "b+",
        config(
            &[Churn::DISCONNECT, Churn::CRASH, Churn::LEAVE],
            Budgets {
                joins: 4,
                leaves: 1,
                crashes: 1,
                false_disconnects: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 1_000_000);
}

/// Scenario c where the crashed member comes back, for a release build.
#[test]
#[ignore = "minutes in a release build"]
fn deep_c_four_members_a_crash_and_a_restart() {
    let r = run(
        "c+",
        config(
            &[Churn::NONE, Churn::NONE, Churn::CRASH, Churn::NONE],
            Budgets {
                joins: 5,
                crashes: 1,
                ..Budgets::default()
            },
        ),
    );
    assert_explored(&r, 1_000_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn explores_nothing_beyond_its_budget() {
    let r = run("empty", config(&[Churn::ALL; 2], Budgets::default()));
    assert_eq!(r.states, 1);
    assert_eq!(r.converged, 1, "an empty room is settled");
}

/// Explores a mutated world and returns what broke.
fn expect_failure(name: &str, config: Config) -> Failure {
    match explore(config, Search::Reduced) {
        Ok(r) => panic!(
            "{name}: no violation in {} states: the checker cannot see this bug",
            r.states
        ),
        Err(f) => {
            println!("{name}: {f:?}");
            *f
        }
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn mutation_early_welcome_forks_a_joiner() {
    let mut c = config(
        &[Churn::LOSE_WELCOME; 3],
        Budgets {
            joins: 3,
            lost_welcomes: 1,
            ..Budgets::default()
        },
    );
    c.mutation = Some(Mutation::EarlyWelcome);
    let failure = expect_failure("early Welcome", c);
    assert!(failure.what.starts_with("S1"), "{}", failure.what);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn mutation_no_detection_blocks_settling() {
    let mut c = config(
        &[Churn::CRASH; 2],
        Budgets {
            joins: 2,
            crashes: 1,
            ..Budgets::default()
        },
    );
    c.mutation = Some(Mutation::NoDetection);
    let failure = expect_failure("no detection", c);
    assert!(failure.what.starts_with("liveness"), "{}", failure.what);
}

/// A DS that attributes a commit to the designated committer, whoever sent
/// it, breaks nothing: the designated member sees a commit that is not the
/// one it holds (or holds none) and rejoins; the sender cannot process its
/// own commit and rejoins.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn a_misattributed_commit_is_survived() {
    let mut c = config(
        &[Churn::NONE; 3],
        Budgets {
            joins: 3,
            ..Budgets::default()
        },
    );
    c.mutation = Some(Mutation::SpoofDesignated);
    let r = run("misattributed", c);
    assert_explored(&r, 10_000);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "exhaustive: 30-50x slower unoptimised; `cargo xtask test` runs it with --release"
)]
fn the_reduction_keeps_every_settled_state() {
    let c = config(
        &[Churn::ALL; 2],
        Budgets {
            joins: 3,
            crashes: 1,
            lost_welcomes: 1,
            ..Budgets::default()
        },
    );
    let full = explore(c.clone(), Search::Full).unwrap_or_else(|f| panic!("{f:?}"));
    let reduced = explore(c, Search::Reduced).unwrap_or_else(|f| panic!("{f:?}"));
    println!(
        "full: {} states, reduced: {} states, {} settled",
        full.states,
        reduced.states,
        full.settled.len()
    );
    assert!(reduced.states < full.states);
    assert_eq!(full.settled, reduced.settled);
}

/// A scenario from the environment, for exploring by hand:
/// `MODEL_SCENARIO=members=3,joins=4,leaves=1,crashes=1,lost=1,disconnects=1,updates=1,seq=40,stalls=1,intercoms=1,bad=1,churn=D/C/LWU,mutation=early,search=full`
/// (every key optional; `churn` lists, per member, L leave, C crash,
/// D disconnect, W lose a Welcome, U update, default all; `mutation` is
/// spoof, early or detect), with `--ignored --nocapture`.
#[test]
#[ignore = "explores the scenario in MODEL_SCENARIO"]
fn custom() {
    let spec = std::env::var("MODEL_SCENARIO").unwrap_or_default();
    let mut members = 2;
    let mut budgets = Budgets::default();
    let (mut seq, mut stalls, mut intercoms, mut bad) = (24, 1, 0, 0);
    let mut churn: Option<Vec<Churn>> = None;
    let mut mutation = None;
    let mut full = false;
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (key, value) = item.split_once('=').expect("key=value");
        if key == "churn" {
            churn = Some(value.split('/').map(churn_of).collect());
            continue;
        }
        if key == "mutation" {
            mutation = Some(match value {
                "spoof" => Mutation::SpoofDesignated,
                "early" => Mutation::EarlyWelcome,
                "detect" => Mutation::NoDetection,
                other => panic!("unknown mutation {other}"),
            });
            continue;
        }
        if key == "search" {
            full = value == "full";
            continue;
        }
        let n: u8 = value.parse().expect("a number");
        match key {
            "members" => members = usize::from(n),
            "joins" => budgets.joins = n,
            "leaves" => budgets.leaves = n,
            "crashes" => budgets.crashes = n,
            "lost" => budgets.lost_welcomes = n,
            "disconnects" => budgets.false_disconnects = n,
            "updates" => budgets.updates = n,
            "seq" => seq = u64::from(n),
            "stalls" => stalls = u32::from(n),
            "intercoms" => intercoms = usize::from(n),
            "bad" => bad = n,
            other => panic!("unknown key {other}"),
        }
    }
    let churn = churn.unwrap_or_else(|| vec![Churn::ALL; members]);
    assert_eq!(churn.len(), members, "one churn entry per member");
    let mut c = config(&churn, budgets);
    c.max_seq = seq;
    c.max_stalls = stalls;
    for m in c.members.iter_mut().take(intercoms) {
        m.can_commit = false;
    }
    if let Some(last) = c.members.last_mut() {
        last.bad_key_packages = bad;
    }
    c.mutation = mutation;
    if full {
        match explore(c, Search::Full) {
            Ok(r) => println!("full search: {} states, {} settled", r.states, r.converged),
            Err(f) => panic!("{f:?}"),
        }
    } else {
        run("custom", c);
    }
}

fn churn_of(letters: &str) -> Churn {
    letters.chars().fold(Churn::NONE, |c, l| {
        c.and(match l {
            'L' => Churn::LEAVE,
            'C' => Churn::CRASH,
            'D' => Churn::DISCONNECT,
            'W' => Churn::LOSE_WELCOME,
            'U' => Churn::UPDATE,
            '.' => Churn::NONE,
            other => panic!("unknown churn {other}"),
        })
    })
}
