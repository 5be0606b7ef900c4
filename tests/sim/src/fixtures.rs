//! Members around real MLS sessions, as every harness with real MLS makes
//! them.

use satsuma_core::committer::{Member, MemberConfig};
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session, SessionConfig};
use satsuma_core::wire::{Capabilities, RoomName, Transport};

/// A desktop client: it may be the designated committer.
pub const DESKTOP: Capabilities = Capabilities {
    can_commit: true,
    transport: Transport::WebRtc,
};

/// An intercom: designated only when no desktop is present.
pub const INTERCOM: Capabilities = Capabilities {
    can_commit: false,
    transport: Transport::Wire,
};

/// A new member's MLS session with its own identity, saving to `store`.
///
/// # Panics
/// On a display name or device id the credential cannot hold.
#[must_use]
#[allow(clippy::panic)] // A test helper: a bad argument is a failed test.
pub fn session(
    seed: [u8; 32],
    name: &str,
    device: &str,
    config: SessionConfig,
    store: MemoryStore,
) -> Session {
    let info = MemberInfo::new(name, device).unwrap_or_else(|e| panic!("credential: {e}"));
    Session::create(SatsumaCrypto::from_seed(seed), info, config, store)
        .unwrap_or_else(|e| panic!("session: {e}"))
}

/// How every test member joins: the same room, desktop or intercom.
///
/// # Panics
/// Never: the room name is a valid literal.
#[must_use]
#[allow(clippy::panic)] // Cannot happen: see above.
pub fn member_config(capabilities: Capabilities) -> MemberConfig {
    MemberConfig {
        room: RoomName::new("sim").unwrap_or_else(|e| panic!("room name: {e}")),
        capabilities,
    }
}

/// A desktop member called `name` with its own identity from `seed`, its
/// device `{name}-laptop`.
#[must_use]
pub fn desktop(name: &str, seed: u8, config: SessionConfig) -> Member<Session> {
    let device = format!("{name}-laptop");
    let s = session([seed; 32], name, &device, config, MemoryStore::default());
    Member::new(s, member_config(DESKTOP))
}
