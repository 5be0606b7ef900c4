//! The MLS key schedule of RFC 9605 §5.2: one base key per epoch in, per-sender
//! frame keys and KIDs out.
//!
//! A [`KeyRing`] holds the current epoch, which it sends with, and a bounded
//! number of earlier ones, which it only receives with, each until its grace
//! period ends. Every key zeroizes when it leaves the ring.
//!
//! A frame sealed in an epoch the ring has not reached yet (the next
//! [`FUTURE_EPOCHS`]) fails with [`Error::FutureEpoch`]; [`KeyRing::hold`]
//! keeps it, bounded by [`HoldLimits`], and once its epoch is installed
//! [`KeyRing::take_ready`] hands it back to be opened as usual.
//!
//! Run loop: after [`KeyRing::install_epoch`], drain [`KeyRing::take_ready`]
//! until it returns `None`, and ask [`KeyRing::poll_timeout`] when to call
//! [`KeyRing::handle_timeout`] next; that call erases the epochs whose grace
//! period is over and the held frames whose time ran out.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use zeroize::Zeroizing;

use super::header::Header;
use super::key::FrameKey;
use super::kid::KidLayout;
use super::pending::{FUTURE_EPOCHS, HeldFrame, HoldLimits, HoldStats, Pending};
use super::replay::ReplayWindow;
use super::suite::{CipherSuite, MAX_KEY_LEN, NONCE_LEN};
use super::wiped;
use crate::error::{Error, KidError};
use crate::time::Instant;

/// KID contexts a member may send with (RFC 9605 §5.2 lets a sender run
/// several streams under one index). Frames with a larger context are refused
/// before any key is derived, which bounds the keys a member can make others
/// hold to `MAX_SEND_CONTEXTS` per sender and epoch.
pub const MAX_SEND_CONTEXTS: u64 = 16;

/// `E`, the low epoch bits in every KID ([`KeyRingConfig::epoch_bits`]'s
/// default). It must be the same for every member of a room: a receiver
/// reads every sender's KID with its own `E`, and the delivery service
/// reads them with this one to check each frame's sender.
pub const EPOCH_BITS: u8 = 4;

/// How many earlier epochs a ring keeps for receiving
/// ([`KeyRingConfig::max_previous_epochs`]'s default); the delivery service
/// accepts frames of as many.
pub const PREVIOUS_EPOCHS: usize = 2;

/// How a [`KeyRing`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeyRingConfig {
    /// The SFrame suite for every epoch.
    pub suite: CipherSuite,
    /// `E`: low epoch bits in every KID. At most `1 << E` epochs can be told
    /// apart, so `max_previous_epochs < 1 << E`. Every member of a room
    /// must use the same `E` ([`EPOCH_BITS`], the default).
    pub epoch_bits: u8,
    /// How many earlier epochs stay usable for receiving.
    pub max_previous_epochs: usize,
    /// How long an earlier epoch stays usable after the next one arrives, so
    /// frames sealed just before a key change still open.
    pub grace: Duration,
    /// The KID context this member sends with (0 gives the shortest KID);
    /// below [`MAX_SEND_CONTEXTS`].
    pub send_context: u64,
    /// Keep each sender's AEAD key expanded (about 600 bytes a sender and
    /// epoch) so a frame costs no key set-up: the right choice wherever
    /// memory is not tight. `false` keeps only the 16–32-byte key and salt
    /// and expands the AES key for every frame, which a microcontroller in
    /// a 16-member call needs to stay within 32 KiB of heap.
    pub expanded_receiver_keys: bool,
    /// Frames from an epoch not reached yet that are held for it.
    pub hold: HoldLimits,
}

impl Default for KeyRingConfig {
    fn default() -> Self {
        Self {
            suite: CipherSuite::AesGcm128Sha256,
            epoch_bits: EPOCH_BITS,
            max_previous_epochs: PREVIOUS_EPOCHS,
            grace: Duration::from_secs(3),
            send_context: 0,
            expanded_receiver_keys: true,
            hold: HoldLimits::default(),
        }
    }
}

/// One MLS epoch's secret, as the MLS layer hands it over.
#[derive(Clone, Copy)]
pub struct EpochSecret<'a> {
    /// The MLS epoch number.
    pub epoch: u64,
    /// `MLS-Exporter("SFrame 1.0 Base Key", "", Nk)` of that epoch.
    pub base_key: &'a [u8],
    /// Leaves in the MLS tree in that epoch (bounds every sender index).
    pub group_size: u64,
    /// This member's leaf index in that epoch.
    pub own_index: u64,
}

impl fmt::Debug for EpochSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochSecret")
            .field("epoch", &self.epoch)
            .field("group_size", &self.group_size)
            .field("own_index", &self.own_index)
            .finish_non_exhaustive()
    }
}

/// What [`KeyRing::decrypt`] learned about a frame that opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Opened {
    /// The frame's header.
    pub header: Header,
    /// The MLS epoch it was sealed in.
    pub epoch: u64,
    /// The sender's leaf index.
    pub sender: u64,
    /// Plaintext bytes written.
    pub len: usize,
}

/// Per-epoch SFrame keys for one MLS member.
pub struct KeyRing {
    config: KeyRingConfig,
    /// Oldest first; the last one is current.
    epochs: Vec<EpochKeys>,
    send: Option<SendState>,
    /// Set by `set_send_context(None)`: epochs install for receiving only.
    receive_only: bool,
    /// KID contexts whose send key was derived in the current epoch, one bit
    /// each: a context is never restarted at counter 0 within an epoch.
    used_contexts: u16,
    /// Frames held for an epoch not reached yet.
    pending: Pending,
    /// [`KeyRing::clear`] ran since the last [`KeyRing::hand_over`].
    cleared: bool,
}

struct EpochKeys {
    epoch: u64,
    layout: KidLayout,
    group_size: u64,
    own_index: u64,
    base_key: Zeroizing<[u8; MAX_KEY_LEN]>,
    /// When this epoch stops opening frames; `None` while current.
    expires: Option<Instant>,
    /// Keys and windows of senders heard from, sorted by KID; filled only
    /// with frames that authenticated. A sorted vector, not a B-tree: a
    /// B-tree node reserves eleven slots of a ~600-byte key each, which on a
    /// microcontroller tripled the memory a 16-member call needs.
    receivers: Vec<(u64, Receiver)>,
}

impl Drop for KeyRing {
    fn drop(&mut self) {
        wiped::wipe(&mut self.epochs);
    }
}

impl Drop for EpochKeys {
    fn drop(&mut self) {
        wiped::wipe(&mut self.receivers);
    }
}

struct Receiver {
    key: ReceiverKey,
    window: ReplayWindow,
}

enum ReceiverKey {
    /// Ready to open frames. Boxed, so that a ring of compact keys is not
    /// sized for the expanded ones.
    Expanded(Box<KeptKey>),
    /// `sframe_key` and `sframe_salt` only; the AEAD key is expanded per
    /// frame.
    Compact {
        key: Zeroizing<[u8; MAX_KEY_LEN]>,
        salt: Zeroizing<[u8; NONCE_LEN]>,
    },
}

impl ReceiverKey {
    #[inline]
    fn open(
        &self,
        suite: CipherSuite,
        ctr: u64,
        frame: &[u8],
        header_len: usize,
        metadata: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        match self {
            Self::Expanded(key) => key.0.open_parts(ctr, frame, header_len, metadata, out),
            Self::Compact { key, salt } => {
                FrameKey::from_parts(suite, &key[..suite.key_len()], salt)?
                    .open_parts(ctr, frame, header_len, metadata, out)
            }
        }
    }
}

/// A key the ring keeps: its whole state is wiped when it goes, not only
/// the cipher's own bytes (`FrameKey::scrub`).
struct KeptKey(FrameKey);

impl Drop for KeptKey {
    fn drop(&mut self) {
        self.0.scrub();
    }
}

struct SendState {
    kid: u64,
    key: KeptKey,
    /// `None` once every counter was used.
    next_ctr: Option<u64>,
}

impl KeyRing {
    /// An empty ring: it can neither send nor receive until the first epoch.
    ///
    /// # Errors
    /// [`KidError::Layout`] when `epoch_bits` is 0 or above 16, or
    /// `max_previous_epochs` does not fit in it; [`KidError::Context`] when
    /// `send_context` is not below [`MAX_SEND_CONTEXTS`].
    pub fn new(config: KeyRingConfig) -> Result<Self, Error> {
        let distinct = if config.epoch_bits >= 16 {
            usize::MAX
        } else {
            1usize << config.epoch_bits
        };
        if config.send_context >= MAX_SEND_CONTEXTS {
            return Err(KidError::Context {
                context: config.send_context,
            }
            .into());
        }
        if config.epoch_bits == 0
            || config.epoch_bits > 16
            || config.max_previous_epochs >= distinct
        {
            return Err(KidError::Layout {
                sender_bits: 0,
                epoch_bits: config.epoch_bits,
            }
            .into());
        }
        Ok(Self {
            config,
            epochs: Vec::with_capacity(config.max_previous_epochs + 1),
            send: None,
            receive_only: false,
            used_contexts: 0,
            pending: Pending::default(),
            cleared: false,
        })
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &KeyRingConfig {
        &self.config
    }

    /// The epoch this member sends in, if any.
    #[must_use]
    pub fn current_epoch(&self) -> Option<u64> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// Every epoch that can still open frames, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = u64> + '_ {
        self.epochs.iter().map(|e| e.epoch)
    }

    /// The KID this member sends with now.
    #[must_use]
    pub fn sending_kid(&self) -> Option<u64> {
        self.send.as_ref().map(|s| s.kid)
    }

    /// Makes `secret` the current epoch: frames are sealed with it from now
    /// on, and the previous current epoch keeps opening frames until
    /// `now + grace`. An older epoch with the same low `E` bits, or beyond
    /// `max_previous_epochs`, is erased at once.
    ///
    /// # Errors
    /// [`Error::StaleEpoch`] unless `secret.epoch` is newer than the current
    /// one; [`Error::KeyLength`] unless the base key is `Nk` bytes;
    /// [`Error::Kid`] when the group or index does not fit a KID. On error
    /// the ring is unchanged.
    pub fn install_epoch(&mut self, now: Instant, secret: EpochSecret<'_>) -> Result<(), Error> {
        if let Some(current) = self.current_epoch()
            && secret.epoch <= current
        {
            return Err(Error::StaleEpoch {
                epoch: secret.epoch,
                current,
            });
        }
        let suite = self.config.suite;
        if secret.base_key.len() != suite.key_len() {
            return Err(Error::KeyLength {
                len: secret.base_key.len(),
                expected: suite.key_len(),
            });
        }
        if secret.own_index >= secret.group_size {
            return Err(KidError::SenderIndex {
                index: secret.own_index,
                bits: super::kid::sender_bits_for(secret.group_size),
            }
            .into());
        }
        let layout = KidLayout::for_group(self.config.epoch_bits, secret.group_size)?;
        let kid = layout.encode(self.config.send_context, secret.own_index, secret.epoch)?;
        let send_key = FrameKey::derive(suite, secret.base_key, kid)?;

        // Checks done: from here on the ring changes and cannot fail.
        let grace_end = now.saturating_add(self.config.grace);
        if let Some(previous) = self.epochs.last_mut() {
            previous.expires = Some(grace_end);
        }
        let low = layout.decode(secret.epoch).epoch_low;
        self.epochs
            .retain(|e| e.layout.decode(e.epoch).epoch_low != low);
        while self.epochs.len() > self.config.max_previous_epochs {
            self.epochs.remove(0);
        }
        wiped::wipe_spare(&mut self.epochs);
        wiped::reserve_one(&mut self.epochs);
        let mut base_key = Zeroizing::new([0u8; MAX_KEY_LEN]);
        base_key[..secret.base_key.len()].copy_from_slice(secret.base_key);
        self.epochs.push(EpochKeys {
            epoch: secret.epoch,
            layout,
            group_size: secret.group_size,
            own_index: secret.own_index,
            base_key,
            expires: None,
            receivers: Vec::new(),
        });
        self.used_contexts = if self.receive_only {
            0
        } else {
            1 << self.config.send_context
        };
        self.send = (!self.receive_only).then_some(SendState {
            kid,
            key: KeptKey(send_key),
            next_ctr: Some(0),
        });
        Ok(())
    }

    /// Switches the stream this member sends on: `Some(context)` sends with
    /// that KID context from now on, in the current epoch (a fresh key, its
    /// counter from 0) and in later ones; `None` stops sending until it is
    /// called again with `Some`, while frames keep opening.
    ///
    /// A member that restarts within an epoch moves to an unused context,
    /// so no (key, counter) pair is ever used twice. To send on a given
    /// context in a new epoch, install the epoch first, then switch: the
    /// check is against the contexts used in the current epoch.
    ///
    /// # Errors
    /// [`KidError::Context`] when `context` is not below
    /// [`MAX_SEND_CONTEXTS`], or was already sent with in the current epoch
    /// and is not the one in use; the ring is then unchanged.
    pub fn set_send_context(&mut self, context: Option<u64>) -> Result<(), Error> {
        let Some(context) = context else {
            self.receive_only = true;
            self.send = None;
            return Ok(());
        };
        if context >= MAX_SEND_CONTEXTS {
            return Err(KidError::Context { context }.into());
        }
        if !self.receive_only && self.config.send_context == context {
            return Ok(());
        }
        let bit = 1u16 << context;
        let send = match self.epochs.last() {
            Some(_) if self.used_contexts & bit != 0 => {
                return Err(KidError::Context { context }.into());
            }
            Some(current) => {
                let kid = current
                    .layout
                    .encode(context, current.own_index, current.epoch)?;
                let suite = self.config.suite;
                let key = FrameKey::derive(suite, &current.base_key[..suite.key_len()], kid)?;
                Some(SendState {
                    kid,
                    key: KeptKey(key),
                    next_ctr: Some(0),
                })
            }
            None => None,
        };
        if send.is_some() {
            self.used_contexts |= bit;
        }
        self.config.send_context = context;
        self.receive_only = false;
        self.send = send;
        Ok(())
    }

    /// Erases every key and every held frame: the member left the call.
    pub fn clear(&mut self) {
        wiped::wipe(&mut self.epochs);
        self.send = None;
        self.pending.clear();
        self.cleared = true;
    }

    /// An empty ring configured like this one (suite, KID layout, grace,
    /// hold limits, the context sent on): the ring a media path keeps and
    /// [`KeyRing::hand_over`] fills.
    ///
    /// # Errors
    /// None in practice: this ring's configuration was accepted already.
    pub fn empty_like(&self) -> Result<Self, Error> {
        Self::new(self.config)
    }

    /// Moves the epochs installed here since the last call into `to`, in
    /// order, with the context this ring sends on (or none), and erases
    /// them here; a [`KeyRing::clear`] since the last call empties `to`
    /// first. A driver that keeps its media path's keys apart from the MLS
    /// work (which can take milliseconds) installs epochs into this ring
    /// and hands them over after each step: sealing and opening then never
    /// wait for a commit to be processed, and the keys live in one place,
    /// so no (key, counter) pair can be used by both rings. Held frames
    /// stay where they are.
    ///
    /// # Errors
    /// [`Error::StaleEpoch`] when an epoch here is not newer than `to`'s
    /// current one without a clear between (the same group and epoch
    /// installed twice: `to` keeps its keys and counters rather than
    /// start the epoch's counters again). The epochs here are erased
    /// whatever the outcome.
    pub fn hand_over(&mut self, now: Instant, to: &mut KeyRing) -> Result<(), Error> {
        if core::mem::take(&mut self.cleared) {
            to.clear();
            to.cleared = false;
        }
        let result = self.install_into(now, to);
        wiped::wipe(&mut self.epochs);
        self.send = None;
        result
    }

    fn install_into(&self, now: Instant, to: &mut KeyRing) -> Result<(), Error> {
        if self.epochs.is_empty() {
            return Ok(());
        }
        let sending = (!self.receive_only).then_some(self.config.send_context);
        if sending.is_none() {
            to.set_send_context(None)?;
        }
        let suite = self.config.suite;
        for e in &self.epochs {
            to.install_epoch(
                now,
                EpochSecret {
                    epoch: e.epoch,
                    base_key: &e.base_key[..suite.key_len()],
                    group_size: e.group_size,
                    own_index: e.own_index,
                },
            )?;
        }
        to.set_send_context(sending)
    }

    /// When [`KeyRing::handle_timeout`] next has work: the earliest end of a
    /// grace period or of a held frame's time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self.epochs.iter().filter_map(|e| e.expires).min();
        match (grace, self.pending.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Erases the epochs whose grace period ended at or before `now`, and
    /// drops the held frames whose epoch did not come in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.epochs
            .retain(|e| e.expires.is_none_or(|expires| expires > now));
        wiped::wipe_spare(&mut self.epochs);
        self.pending.expire(now);
    }

    /// Whether `kid` names an epoch this ring has not reached yet: one of
    /// the next [`FUTURE_EPOCHS`] after the current one, and none the ring
    /// holds. Before the first epoch, any KID may be ahead (a joiner hears
    /// the group before its Welcome is processed).
    fn is_future(&self, kid: u64) -> bool {
        let mask = (1u64 << self.config.epoch_bits) - 1;
        let low = kid & mask;
        if self.epochs.iter().any(|e| e.epoch & mask == low) {
            return false;
        }
        let Some(current) = self.current_epoch() else {
            return true;
        };
        (1..=FUTURE_EPOCHS).any(|k| current.wrapping_add(k) & mask == low)
    }

    /// Holds `frame`, which [`KeyRing::decrypt`] refused with
    /// [`Error::FutureEpoch`] for `kid`, until its epoch is installed or the
    /// hold time ([`HoldLimits::duration`]) runs out. `frame` is kept as
    /// given (a media layer keeps its whole protected layout) and `tag`
    /// comes back with it. Within the limits the oldest held frame makes
    /// room. Holding copies the frame: an allocation only around a key
    /// change, never on the steady path.
    ///
    /// # Errors
    /// [`Error::UnknownKid`] when `kid` does not name a future epoch
    /// (nothing is held then).
    pub fn hold(&mut self, now: Instant, kid: u64, tag: u64, frame: &[u8]) -> Result<(), Error> {
        if !self.is_future(kid) {
            return Err(Error::UnknownKid { kid });
        }
        let mask = (1u64 << self.config.epoch_bits) - 1;
        self.pending
            .push(&self.config.hold, now, kid & mask, tag, frame);
        Ok(())
    }

    /// The oldest held frame whose epoch the ring now holds, to be opened
    /// as if it had just arrived. Drain it after every
    /// [`KeyRing::install_epoch`].
    pub fn take_ready(&mut self) -> Option<HeldFrame> {
        let mask = (1u64 << self.config.epoch_bits) - 1;
        let epochs = &self.epochs;
        self.pending
            .take_ready(|low| epochs.iter().any(|e| e.epoch & mask == low))
    }

    /// What happened to held frames so far.
    #[must_use]
    pub fn hold_stats(&self) -> HoldStats {
        self.pending.stats()
    }

    /// Seals `plaintext` with the current epoch's key and the next counter;
    /// writes `header ‖ ciphertext ‖ tag` into `out` and returns its length.
    /// A counter is never used twice, even when sealing fails.
    ///
    /// # Errors
    /// [`Error::NoEpoch`] before the first epoch, [`Error::CounterExhausted`],
    /// and the errors of [`FrameKey::encrypt`].
    pub fn encrypt(
        &mut self,
        metadata: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let send = self
            .send
            .as_mut()
            .ok_or(if self.receive_only && !self.epochs.is_empty() {
                Error::SendingDisabled
            } else {
                Error::NoEpoch
            })?;
        let ctr = send.next_ctr.ok_or(Error::CounterExhausted)?;
        send.next_ctr = ctr.checked_add(1);
        send.key
            .0
            .encrypt(Header::new(send.kid, ctr), metadata, plaintext, out)
    }

    /// Bytes [`KeyRing::encrypt`] will write for `plaintext_len` bytes: an
    /// upper bound, since the header grows with the counter.
    #[must_use]
    pub fn max_ciphertext_len(&self, plaintext_len: usize) -> usize {
        super::header::MAX_HEADER_LEN + plaintext_len + self.config.suite.tag_len()
    }

    /// Opens one SFrame ciphertext from another member, writing its
    /// plaintext into `out`.
    ///
    /// The frame's KID picks the epoch (low `E` bits) and sender; the
    /// sender's replay window refuses a counter seen before and moves only
    /// after the tag verified.
    ///
    /// # Errors
    /// [`Error::Header`]; [`Error::FutureEpoch`] for an epoch not reached
    /// yet (see [`KeyRing::hold`]); [`Error::UnknownKid`] for an epoch no
    /// longer held or a sender outside the group; [`Error::OwnKid`];
    /// [`Error::Replay`]; [`Error::TooShort`]; [`Error::BufferTooSmall`];
    /// [`Error::Authentication`].
    pub fn decrypt(
        &mut self,
        metadata: &[u8],
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<Opened, Error> {
        let (header, header_len) = Header::parse(frame)?;
        let kid = header.kid;
        let suite = self.config.suite;
        let epoch_mask = (1u64 << self.config.epoch_bits) - 1;
        let Some(epoch) = self
            .epochs
            .iter_mut()
            .find(|e| e.epoch & epoch_mask == kid & epoch_mask)
        else {
            // Off the steady path: only a frame no held epoch opens asks
            // whether it is from one ahead.
            return Err(if self.is_future(kid) {
                Error::FutureEpoch { kid }
            } else {
                Error::UnknownKid { kid }
            });
        };
        let parts = epoch.layout.decode(kid);
        if parts.sender >= epoch.group_size || parts.context >= MAX_SEND_CONTEXTS {
            return Err(Error::UnknownKid { kid });
        }
        if parts.sender == epoch.own_index {
            return Err(Error::OwnKid { kid });
        }
        let slot = epoch.receivers.binary_search_by_key(&kid, |(k, _)| *k);
        let len = if let Ok(at) = slot {
            let receiver = &mut epoch.receivers[at].1;
            receiver.window.check(kid, header.ctr)?;
            let len = receiver
                .key
                .open(suite, header.ctr, frame, header_len, metadata, out)?;
            receiver.window.accept(header.ctr);
            len
        } else {
            // First frame of this KID in this epoch: derive its key, and keep
            // it only if the frame authenticates, so forged KIDs cost no memory.
            let (key_bytes, salt) =
                FrameKey::derive_parts(suite, &epoch.base_key[..suite.key_len()], kid)?;
            let key = FrameKey::from_parts(suite, &key_bytes[..suite.key_len()], &salt)?;
            let len = key.open_parts(header.ctr, frame, header_len, metadata, out)?;
            let key = if self.config.expanded_receiver_keys {
                ReceiverKey::Expanded(Box::new(KeptKey(key)))
            } else {
                ReceiverKey::Compact {
                    key: key_bytes,
                    salt,
                }
            };
            let mut window = ReplayWindow::new();
            window.accept(header.ctr);
            let at = slot.unwrap_or_else(|at| at);
            wiped::reserve_one(&mut epoch.receivers);
            epoch.receivers.insert(at, (kid, Receiver { key, window }));
            len
        };
        Ok(Opened {
            header,
            epoch: epoch.epoch,
            sender: parts.sender,
            len,
        })
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("config", &self.config)
            .field(
                "epochs",
                &self.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            )
            .field("sending_kid", &self.sending_kid())
            .finish_non_exhaustive()
    }
}
