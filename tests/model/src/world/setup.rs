//! What a [`World`](super::World) is made of and allowed to do.

/// What a [`World`] starts from and may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    /// One entry per member.
    pub members: Vec<MemberSetup>,
    /// How much churn the environment may cause, in total.
    pub budgets: Budgets,
    /// `Stalled` entries allowed in a row (between two commits) while
    /// messages are in flight; once the room is quiet, one more round
    /// through every member is allowed.
    pub max_stalls: u32,
    /// States whose log is longer are not explored further.
    pub max_seq: u64,
    /// A deliberate bug, for showing that the checker finds one.
    pub mutation: Option<Mutation>,
}

/// One member's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberSetup {
    /// Whether it may be the designated committer (a desktop).
    pub can_commit: bool,
    /// How many of its first key packages are malformed.
    pub bad_key_packages: u8,
    /// What the environment may do to it (within [`Config::budgets`]).
    pub churn: Churn,
}

impl MemberSetup {
    /// A desktop member with good key packages that nothing happens to.
    pub const DESKTOP: Self = Self {
        can_commit: true,
        bad_key_packages: 0,
        churn: Churn::NONE,
    };

    /// This setup, with `churn` allowed.
    #[must_use]
    pub const fn with(self, churn: Churn) -> Self {
        Self { churn, ..self }
    }
}

/// The kinds of churn one member may suffer.
///
/// Scenarios give each kind to one member: desktops are interchangeable and
/// every join order is explored, so that member may be the committer or
/// not, first or last, and two kinds given to two members cover the two
/// happening to different members. It also keeps the reduction effective:
/// leaving and updating do not commute with the member's own deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Churn {
    /// [`Action::Leave`](super::Action::Leave).
    pub leave: bool,
    /// [`Action::Crash`](super::Action::Crash).
    pub crash: bool,
    /// [`Action::Disconnect`](super::Action::Disconnect).
    pub disconnect: bool,
    /// [`Action::LoseWelcome`](super::Action::LoseWelcome).
    pub lose_welcome: bool,
    /// [`Action::UpdateDue`](super::Action::UpdateDue).
    pub update: bool,
}

impl Churn {
    /// Nothing.
    pub const NONE: Self = Self {
        leave: false,
        crash: false,
        disconnect: false,
        lose_welcome: false,
        update: false,
    };
    /// Everything.
    pub const ALL: Self = Self {
        leave: true,
        crash: true,
        disconnect: true,
        lose_welcome: true,
        update: true,
    };
    /// Only leaving.
    pub const LEAVE: Self = Self {
        leave: true,
        ..Self::NONE
    };
    /// Only crashing.
    pub const CRASH: Self = Self {
        crash: true,
        ..Self::NONE
    };
    /// Only a false disconnect.
    pub const DISCONNECT: Self = Self {
        disconnect: true,
        ..Self::NONE
    };
    /// Only losing a Welcome.
    pub const LOSE_WELCOME: Self = Self {
        lose_welcome: true,
        ..Self::NONE
    };
    /// Only falling due for an update.
    pub const UPDATE: Self = Self {
        update: true,
        ..Self::NONE
    };

    /// Both.
    #[must_use]
    pub const fn and(self, other: Self) -> Self {
        Self {
            leave: self.leave || other.leave,
            crash: self.crash || other.crash,
            disconnect: self.disconnect || other.disconnect,
            lose_welcome: self.lose_welcome || other.lose_welcome,
            update: self.update || other.update,
        }
    }
}

/// How many times each kind of churn may happen in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Budgets {
    /// `Member::join` calls (first joins and rejoins).
    pub joins: u8,
    /// Graceful leaves.
    pub leaves: u8,
    /// Crashes (the process dies; it may restart and join again).
    pub crashes: u8,
    /// Welcomes lost on the way from the DS.
    pub lost_welcomes: u8,
    /// Live connections the DS wrongly declares gone.
    pub false_disconnects: u8,
    /// Members whose own leaf falls due for an update.
    pub updates: u8,
}

/// A deliberate bug in the world around the real code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// The DS hands every commit to the room as if the designated committer
    /// had sent it: it accepts commits from members that are not designated.
    SpoofDesignated,
    /// The DS relays a commit's Welcome as soon as the commit arrives,
    /// before it decides whether to accept it (instead of with the
    /// accepting entry).
    EarlyWelcome,
    /// The DS never notices that a crashed member's connection is gone.
    NoDetection,
}
