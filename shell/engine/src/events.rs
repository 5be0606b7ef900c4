//! What a call tells the app (and the headless client prints, one JSON
//! object per line).

use std::sync::Arc;

use satsuma_core::mls::{Introduction, RosterEntry, Trust};

use crate::jitter::JitterStats;
use crate::media::video::I420;

/// One member of the group, as the roster shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberView {
    /// Its leaf index (its SFrame sender id).
    pub leaf: u32,
    /// The name it gave.
    pub name: String,
    /// Its device.
    pub device: String,
    /// Its identity key's fingerprint, to compare out of band.
    pub fingerprint: String,
    /// Whether this member marked that fingerprint as compared and
    /// matching ([`crate::Call::mark_verified`]), now or in an earlier
    /// call.
    pub verified: bool,
}

impl MemberView {
    /// A roster entry, with what this member's trust record says of it.
    pub(crate) fn of(e: &RosterEntry, verified: bool) -> Self {
        Self {
            leaf: e.leaf_index,
            name: e.info.display_name.clone(),
            device: e.info.device_id.clone(),
            fingerprint: e.fingerprint.to_string(),
            verified,
        }
    }
}

/// What this member knew of an identity that entered the call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "trust", rename_all = "snake_case")]
pub enum TrustView {
    /// Never seen before: neither the name nor the key.
    FirstSeen,
    /// Seen before with this key.
    Known {
        /// Someone compared fingerprints and said so.
        verified: bool,
    },
    /// WARNING: this name had another key before.
    NewKey {
        /// The key it had.
        previous: String,
        /// Whether that key had been verified.
        was_verified: bool,
    },
}

impl From<&Trust> for TrustView {
    fn from(t: &Trust) -> Self {
        match t {
            Trust::FirstSeen => Self::FirstSeen,
            Trust::Known { verified } => Self::Known {
                verified: *verified,
            },
            Trust::NewKey {
                previous,
                was_verified,
            } => Self::NewKey {
                previous: previous.to_string(),
                was_verified: *was_verified,
            },
        }
    }
}

/// The audio received from one member.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AudioStats {
    /// Packets received.
    pub packets: u64,
    /// Frames that opened (decrypted and authenticated).
    pub opened: u64,
    /// Frames no key of this member opened.
    pub failed: u64,
    /// Frames that could not be decoded after opening.
    pub undecodable: u64,
    /// Playout: frames played, slots concealed, late frames, the longest
    /// gap.
    pub playout: JitterStats,
    /// The longest stretch without a real frame between two played ones,
    /// in milliseconds.
    pub longest_gap_ms: u64,
    /// The dominant frequency of the last 200 ms played, if not silent.
    pub tone_hz: Option<f32>,
    /// The level of the last 200 ms played, in dBFS.
    pub level_dbfs: f32,
}

/// The video received from one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VideoStats {
    /// Packets received.
    pub packets: u64,
    /// Whole frames put together from them.
    pub frames: u64,
    /// Frames lost to missing packets.
    pub lost: u64,
    /// Frames that opened.
    pub opened: u64,
    /// Frames no key of this member opened.
    pub failed: u64,
    /// Pictures decoded.
    pub decoded: u64,
    /// Frames not shown while waiting for a key frame.
    pub skipped: u64,
    /// Frames dropped because the decoder was behind (a slow machine).
    pub dropped: u64,
    /// Key frames asked for (PLI).
    pub key_frames_requested: u64,
    /// The test pattern's frame number in the last picture, if it is one.
    pub last_frame_number: Option<u32>,
    /// The size of the last picture.
    pub width: u32,
    /// The size of the last picture.
    pub height: u32,
}

/// What this member receives from one other member.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RemoteStats {
    /// The SFU's connection id of the sender.
    pub conn: u64,
    /// Its leaf index, once a frame of it opened.
    pub leaf: Option<u32>,
    /// Its name, from the roster.
    pub name: Option<String>,
    /// Its audio.
    pub audio: AudioStats,
    /// Its video.
    pub video: VideoStats,
}

/// How loud one member was over the last [`CallEvent::Levels`] period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberLevel {
    /// The SFU's connection id of the sender.
    pub conn: u64,
    /// Its leaf index, once a frame of it opened.
    pub leaf: Option<u32>,
    /// Its name, from the roster.
    pub name: Option<String>,
    /// The loudest 20 ms played in the period, in dBFS.
    pub dbfs: f32,
    /// Whether that is speech-loud (above [`SPEAKING_DBFS`]).
    pub speaking: bool,
}

/// Louder than this, a member counts as speaking.
pub const SPEAKING_DBFS: f32 = -40.0;

/// What this member sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SentStats {
    /// Audio frames sealed and sent.
    pub audio: u64,
    /// Video frames sealed and sent.
    pub video: u64,
    /// Of those, key frames.
    pub key_frames: u64,
    /// Frames that could not be sealed or sent.
    pub failed: u64,
}

/// The state of the link to the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Lost and taken over by a new link with the same seat.
    Resumed,
    /// Lost; this member joined again from the lobby.
    Rejoined,
    /// Closed for good.
    Closed,
}

/// One thing that happened in the call.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEvent {
    /// This member is in the group.
    Joined {
        /// Its epoch.
        epoch: u64,
        /// This member's own fingerprint.
        fingerprint: String,
    },
    /// The group has a new epoch: new keys, a new safety number.
    Epoch {
        /// The epoch.
        epoch: u64,
        /// The safety number every member sees for it.
        safety_number: String,
        /// Who is in it.
        members: Vec<MemberView>,
    },
    /// An identity entered the call: show [`TrustView::NewKey`] so it
    /// cannot be missed, [`TrustView::FirstSeen`] as unknown.
    Introduced {
        /// Who.
        member: MemberView,
        /// What this member knew of it.
        #[serde(flatten)]
        trust: TrustView,
    },
    /// The link changed.
    Link {
        /// How.
        state: LinkState,
    },
    /// What was sent and received, every stats interval.
    Media {
        /// Sent by this member.
        sent: SentStats,
        /// Received, per sender.
        received: Vec<RemoteStats>,
        /// The microphone's and speaker's underruns, when either is a
        /// device.
        #[serde(skip_serializing_if = "Option::is_none")]
        devices: Option<crate::devices::DeviceStats>,
    },
    /// This member marked another's fingerprint as verified (saved in its
    /// trust record).
    Verified {
        /// The member, as the roster shows it now.
        member: MemberView,
    },
    /// Every 100 ms, when asked for ([`crate::CallConfig::levels`]): how
    /// loud this member's microphone and each other member was (speaking
    /// indicators).
    Levels {
        /// This member's own microphone, as sent (silence when muted).
        own_dbfs: f32,
        /// Each member heard.
        members: Vec<MemberLevel>,
    },
    /// The audio sent changed codec: to one an intercom decodes as one
    /// joins the call (`intercom` true), back to the configured one when
    /// the last intercom left.
    AudioCodec {
        /// `opus`, `pcmu`, `pcma` or `g722`.
        codec: String,
        /// Whether an intercom is in the call.
        intercom: bool,
    },
    /// The audio devices in use changed (at the start of a call that uses
    /// one, or after a switch).
    Devices {
        /// The microphone, when it is a device.
        microphone: Option<String>,
        /// The speaker, when there is one.
        speaker: Option<String>,
    },
    /// A decoded picture from a member (not printed by the headless
    /// client).
    Picture {
        /// The sender's connection.
        conn: u64,
        /// Its leaf.
        leaf: Option<u32>,
        /// The test pattern's number in it, if it is one.
        frame_number: Option<u32>,
        /// The picture.
        #[serde(skip)]
        picture: Arc<I420>,
    },
    /// This member's own picture as it is sent, every other frame, when
    /// asked for ([`crate::CallConfig::preview`]): the self-view (not
    /// printed by the headless client).
    Preview {
        /// The picture.
        #[serde(skip)]
        picture: Arc<I420>,
    },
    /// A beep of this member's `AudioInput::Beeps` was captured, at this
    /// wall-clock time (µs since the Unix epoch).
    BeepSent {
        /// When.
        at_us: u64,
    },
    /// A beep from a member was played out here (decoded, after the
    /// jitter buffer), at this wall-clock time (µs since the Unix epoch):
    /// with the sender's `beep_sent`, mouth to ear.
    BeepHeard {
        /// The sender's connection.
        conn: u64,
        /// Its name, from the roster.
        name: Option<String>,
        /// When.
        at_us: u64,
    },
    /// Something went wrong; the call goes on (unless a
    /// [`LinkState::Closed`] follows).
    Error {
        /// For a person to read.
        message: String,
        /// When the SFU refused something, its reason in snake case
        /// (`room_full`, `key_package_refused`, `overloaded`, ...), for an
        /// app to say what to do.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// This member left the call, or the link closed for good.
    Left,
}

impl CallEvent {
    pub(crate) fn introduced(i: &Introduction) -> Self {
        Self::Introduced {
            member: MemberView {
                leaf: i.leaf,
                name: i.info.display_name.clone(),
                device: i.info.device_id.clone(),
                fingerprint: i.fingerprint.to_string(),
                verified: matches!(i.trust, Trust::Known { verified: true }),
            },
            trust: TrustView::from(&i.trust),
        }
    }
}
