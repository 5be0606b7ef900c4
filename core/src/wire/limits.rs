//! Bounds on every variable field, in bytes or elements.

/// A whole encoded message, version byte included.
pub const MESSAGE: usize = 256 * 1024;
/// A room name.
pub const ROOM_NAME: usize = 64;
/// An MLS key package (a suite-1 key package with the longest
/// credential Satsuma makes is under 500 bytes).
pub const KEY_PACKAGE: usize = 2 * 1024;
/// An MLS commit or proposal.
pub const COMMIT: usize = 64 * 1024;
/// An MLS Welcome (it carries the ratchet tree: about 250 bytes a member).
pub const WELCOME: usize = 192 * 1024;
/// An MLS group id.
pub const GROUP_ID: usize = 32;
/// Members of one room: MLS leaves, and adds or removes in one commit.
pub const MEMBERS: usize = 256;
/// Connections waiting to be added at once.
pub const LOBBY: usize = 64;
/// One media frame's SFrame ciphertext.
pub const MEDIA: usize = 64 * 1024;
/// The text of an error.
pub const TEXT: usize = 160;
/// A WebRTC session description (SDP), candidates included.
pub const SDP: usize = 32 * 1024;
