//! What a run of the simulation is told ([`Config`]) and what it reports
//! ([`Stats`]).

use std::collections::BTreeMap;
use std::time::Duration;

/// How one run behaves.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Every random choice follows from it.
    pub seed: u64,
    /// Member slots; the last `intercoms` of them cannot commit.
    pub slots: usize,
    /// Slots that cannot commit.
    pub intercoms: usize,
    /// Churn events (joins, restarts, leaves, crashes, false disconnects)
    /// before the churn stops, at least.
    pub churn_events: u32,
    /// Churn events per wave; a quiet period follows each wave.
    pub per_wave: u32,
    /// How long a wave lasts.
    pub wave: Duration,
    /// The quiet after each wave.
    pub quiet: Duration,
    /// One-way network delay, in ms.
    pub delay_ms: (u64, u64),
    /// How long the DS takes to notice a dead connection, in ms.
    pub detect_ms: (u64, u64),
    /// How long a crashed client stays down, in ms.
    pub restart_ms: (u64, u64),
    /// Welcomes lost, per mille.
    pub lost_welcome: u64,
    /// Crashes that also lose what the client had in flight, per mille.
    pub lose_in_flight: u64,
    /// Departures aimed at the designated committer, per mille.
    pub target_committer: u64,
    /// The DS's commit deadline.
    pub commit_deadline: Duration,
    /// Members propose (or commit) an update of their own leaf this often.
    pub self_update: Option<Duration>,
}

impl Config {
    /// The standard run for `seed`: 50 slots, 4 of them intercoms; a first
    /// wave in which all 50 join, then at least 320 churn events in all,
    /// in waves of 55; no self-updates.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            slots: 50,
            intercoms: 4,
            churn_events: 320,
            per_wave: 55,
            wave: Duration::from_secs(12),
            quiet: Duration::from_secs(6),
            delay_ms: (1, 50),
            detect_ms: (500, 3000),
            restart_ms: (200, 6000),
            lost_welcome: 100,
            lose_in_flight: 500,
            target_committer: 300,
            commit_deadline: Duration::from_secs(2),
            self_update: None,
        }
    }

    /// The longest the room may take to converge once the churn stops: the
    /// DS must first notice every crash, then every present member may have
    /// its turn at the deadline; ten extra rounds of the deadline cover lost
    /// Welcomes and members wrongly declared gone.
    #[must_use]
    pub fn convergence_bound(&self) -> Duration {
        Duration::from_millis(self.detect_ms.1)
            + self.commit_deadline * 10
            + Duration::from_millis(self.restart_ms.1)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Events the simulation processed.
    pub events: u64,
    /// Slots that started (again) on the churn's word.
    pub joins: u32,
    /// Crashed clients that started again.
    pub restarts: u32,
    /// Restarts around the identity resumed from the store.
    pub resumed: u32,
    /// Graceful leaves.
    pub leaves: u32,
    /// Crashes.
    pub crashes: u32,
    /// Crashes of the designated committer, aimed at it.
    pub committer_crashes: u32,
    /// Live connections the DS declared gone.
    pub false_disconnects: u32,
    /// `Committed` entries.
    pub commits: u32,
    /// `Created` entries.
    pub created: u32,
    /// `Stalled` entries.
    pub stalls: u32,
    /// `Stalled` entries after the churn stopped.
    pub stalls_after_churn: u32,
    /// `Refused` entries.
    pub refused: u32,
    /// The most times one connection's key packages were refused: a
    /// restarted client whose old connection the DS has not dropped yet
    /// shares its identity and is refused until it is.
    pub most_refusals_of_one: u32,
    /// `Event::Rejoining`, by reason.
    pub rejoins: BTreeMap<String, u32>,
    /// `Event::Evicted`.
    pub evictions: u32,
    /// Welcomes the DS sent.
    pub welcomes: u32,
    /// Welcomes the network lost.
    pub lost_welcomes: u32,
    /// Connections added while their client was dead (the DS had not
    /// noticed yet).
    pub adds_of_dead: u32,
    /// `Event::Stuck`.
    pub stuck: u32,
    /// `Proposed` entries.
    pub proposals: u32,
    /// Member timers that, once handled, were due again at once.
    pub timer_spins: u64,
    /// The highest epoch the log reached.
    pub max_epoch: u64,
    /// Inputs the DS refused, by kind.
    pub ds_errors: BTreeMap<String, u32>,
    /// Messages members refused, by kind.
    pub member_errors: BTreeMap<String, u32>,
    /// The most slots online at once.
    pub max_live: usize,
    /// The most members in the group at once (sampled at churn events).
    pub max_in_group: usize,
    /// Commits by how many adds and removes they carry.
    pub commit_sizes: BTreeMap<usize, u32>,
}

impl Stats {
    /// Churn events so far: joins, restarts, leaves, crashes and false
    /// disconnects.
    #[must_use]
    pub fn churn(&self) -> u32 {
        self.joins + self.restarts + self.leaves + self.crashes + self.false_disconnects
    }
}
