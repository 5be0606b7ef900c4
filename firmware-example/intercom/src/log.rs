//! The intercom's log, in `defmt` (feature `defmt`): one line per thing a
//! person watching the door would want to know, written once for every
//! board. The lines start with `intercom:`; the test scripts read them.
//!
//! No `Debug` formatting of core's types: each event has a line of its
//! own, and the fingerprints and safety numbers are printed as their
//! groups of digits, which keeps the formatting machinery out of flash.

use defmt::{info, warn};
use satsuma_core::committer::Event;
use satsuma_core::link::LinkEvent;
use satsuma_core::mls::{IdentityFingerprint, Trust};
use satsuma_core::wire::Entry;

use crate::{Intercom, IntercomEvent};

/// What [`event`] logged, for the board to add to or act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// A line, or nothing worth one.
    Line,
    /// The group moved to `epoch`, with `members` in it: a board adds what
    /// it has used so far.
    Epoch {
        /// The epoch.
        epoch: u64,
        /// Members in the group.
        members: usize,
    },
    /// The link must be replaced (the member joins afresh on a new one).
    Reconnect,
}

/// This member's identity fingerprint.
pub fn identity(fingerprint: &IdentityFingerprint) {
    let [f0, f1, f2, f3, f4, f5] = *fingerprint.groups();
    info!(
        "intercom: identity fingerprint {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05}",
        f0, f1, f2, f3, f4, f5
    );
}

/// Logs one of the door's events.
#[inline(never)]
pub fn event(door: &Intercom, event: &IntercomEvent) -> Logged {
    match event {
        IntercomEvent::Link(LinkEvent::Member(
            Event::Joined { epoch } | Event::NewEpoch { epoch },
        )) => {
            let group = door.member().group();
            let members = group.roster().len();
            match group.safety_number() {
                Ok(number) => {
                    let [n0, n1, n2, n3, n4, n5, n6, n7] = *number.groups();
                    info!(
                        "intercom: epoch {=u64} safety number {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} members {=usize}",
                        epoch, n0, n1, n2, n3, n4, n5, n6, n7, members
                    );
                }
                Err(_) => warn!("intercom: epoch {=u64} (no safety number)", epoch),
            }
            return Logged::Epoch {
                epoch: *epoch,
                members,
            };
        }
        IntercomEvent::Link(LinkEvent::Member(Event::Introduced(intro))) => {
            let [f0, f1, f2, f3, f4, f5] = *intro.fingerprint.groups();
            info!(
                "intercom: member leaf {=u32} {=str} ({=str}) fingerprint {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=u32:05} {=str}",
                intro.leaf,
                intro.info.display_name.as_str(),
                intro.info.device_id.as_str(),
                f0,
                f1,
                f2,
                f3,
                f4,
                f5,
                trust(&intro.trust)
            );
        }
        IntercomEvent::Link(LinkEvent::Member(other)) => member(other),
        IntercomEvent::Link(LinkEvent::Clock(time)) => {
            info!(
                "intercom: the SFU's clock: {=u64} s since 1970",
                time.as_secs()
            );
        }
        IntercomEvent::Link(LinkEvent::Connected { resumed }) => {
            info!("intercom: joined (seat resumed: {=bool})", resumed);
        }
        IntercomEvent::Link(LinkEvent::Reconnect) => return Logged::Reconnect,
        // The commits this door made (as the designated committer).
        IntercomEvent::Link(LinkEvent::Log {
            entry: Entry::Committed { conn, commit },
            ..
        }) if door.member().conn() == Some(*conn) => info!(
            "intercom: committed epoch {=u64}: {=usize} added, {=usize} removed",
            commit.epoch.saturating_add(1),
            commit.adds.len(),
            commit.removes.len()
        ),
        // The other entries: the epochs say what they did. Media is heard,
        // not logged; WebRTC signalling never comes on the intercom link.
        IntercomEvent::Link(LinkEvent::Log { .. } | LinkEvent::Media(_) | LinkEvent::Rtc(_)) => {}
        IntercomEvent::Link(LinkEvent::Error(code, _)) => {
            warn!("intercom: the SFU reports an error: {=str}", code.name());
        }
        IntercomEvent::Heard {
            leaf,
            frames,
            wideband,
            other_codec,
            failed,
            crc,
            heard,
        } => info!(
            "intercom: heard leaf {=u64} frames {=u32} failed {=u32} crc {=u32:08x} tone {=u32} Hz peak {=u16} other-codec {=u32} g722 {=u32}",
            leaf, frames, failed, crc, heard.hz, heard.peak, other_codec, wideband
        ),
        IntercomEvent::Played {
            slots,
            dropped,
            heard,
        } => info!(
            "intercom: speaker played {=u32} slots dropped {=u32} tone {=u32} Hz peak {=u16}",
            slots, dropped, heard.hz, heard.peak
        ),
    }
    Logged::Line
}

/// What a member's identity is to this door.
fn trust(trust: &Trust) -> &'static str {
    match trust {
        Trust::Known { verified: true } => "known, verified",
        Trust::Known { verified: false } => "known",
        Trust::FirstSeen => "first seen",
        Trust::NewKey { .. } => "NEW KEY: this name had another key before",
    }
}

/// The member's events with no line of their own above.
fn member(event: &Event) {
    match event {
        Event::MembersChanged { added, removed } => info!(
            "intercom: members changed: {=[?]} added, {=[?]} removed",
            added.as_slice(),
            removed.as_slice()
        ),
        Event::DeliveryServiceMisbehaved(_) => {
            warn!("intercom: the SFU sent what an honest one never sends: set aside");
        }
        Event::Rejoining(_) => info!("intercom: rejoining the group"),
        Event::Evicted => warn!("intercom: the SFU lost this member: joining again"),
        Event::FellBehind { expected, .. } => {
            warn!(
                "intercom: log entry {=u64} never came: joining again",
                *expected
            );
        }
        Event::ServerError(code) => warn!("intercom: the SFU refused: {=str}", code.name()),
        Event::Stuck(_) => {
            warn!("intercom: an MLS operation failed: another member takes the work");
        }
        _ => {}
    }
}
