//! Satsuma's MLS benchmarks: the same group operations on three MLS stacks,
//! so `benches/mls.rs` can time them side by side in one run.
//!
//! - [`MlsRs`]`<`[`SatsumaCrypto`](satsuma_core::mls::SatsumaCrypto)`>`
//!   ("satsuma"): mls-rs on Satsuma's provider.
//! - [`MlsRs`]`<`[`RustCryptoProvider`](mls_rs_crypto_rustcrypto::RustCryptoProvider)`>`
//!   ("mls-rs-rustcrypto"): the same mls-rs code on the provider the mls-rs
//!   project ships, so the difference is the provider alone.
//! - [`OpenMls`] ("openmls"): OpenMLS on `openmls_rust_crypto`.
//!
//! All three run cipher suite 0x0001
//! (`MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`) with basic credentials,
//! handshake messages as `PublicMessage`, a path in every commit, and the
//! ratchet tree in the Welcome's GroupInfo (the `ratchet_tree` extension).
//! Every operation takes and returns wire bytes (`MLSMessage`s), so parsing
//! and encoding are part of what is measured.
//!
//! Times are measured with [`BenchClock`]: the process's CPU time unless
//! `SATSUMA_BENCH_CLOCK=wall`.
//!
//! This crate is not a test of correctness; it checks only that each
//! operation did what it claims (member counts, epochs), so a benchmark
//! cannot silently time a failure.
//!
//! ```no_run
//! use satsuma_bench::{Mls, MlsRs, build_groups};
//! use satsuma_core::mls::SatsumaCrypto;
//!
//! let mls = MlsRs::new("satsuma", SatsumaCrypto::from_seed([7; 32]));
//! for fixture in build_groups(&mls, &[2, 16])? {
//!     println!("N = {}: commit {} bytes", fixture.size, fixture.sizes.add_commit);
//! }
//! # Ok::<(), satsuma_bench::BenchError>(())
//! ```
//!
//! Panic policy: none of the library's functions panic; failures come back
//! as [`BenchError`]. The benchmark binary aborts on them.

mod clock;
mod error;
mod fixture;
mod mls_rs;
mod openmls;

pub use clock::{BenchClock, CLOCK_VARIABLE, ClockStart};
pub use error::BenchError;
pub use fixture::{Fixture, MessageSizes, build_groups, last_leaf};
pub use mls_rs::MlsRs;
pub use openmls::OpenMls;

/// What a commit that adds members produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOutput {
    /// The commit, an `MLSMessage`, for the group's members.
    pub commit: Vec<u8>,
    /// The Welcome, an `MLSMessage`, for the new member.
    pub welcome: Vec<u8>,
}

/// One MLS implementation, as the benchmarks drive it.
///
/// A member is a client with its signing identity and, once it created or
/// joined a group, its group state. Every operation is the full step a
/// member takes: bytes in, state changed (the commit merged), bytes out.
pub trait Mls {
    /// A member: identity, storage and group state.
    type Member;
    /// A copy of a member that [`Mls::restore`] turns into an equal, independent
    /// member; saving and restoring are benchmark setup, never timed.
    type Saved;

    /// The name the benchmarks and tables print.
    fn name(&self) -> &'static str;

    /// A new member with a fresh Ed25519 signing key and a basic credential
    /// carrying `identity`; not in a group yet.
    ///
    /// # Errors
    /// When the implementation fails to generate keys.
    fn member(&self, identity: &[u8]) -> Result<Self::Member, BenchError>;

    /// A copy of `member` to restore from.
    ///
    /// # Errors
    /// When the implementation fails to export its state.
    fn save(&self, member: &Self::Member) -> Result<Self::Saved, BenchError>;

    /// A member equal to the one `saved` was taken from, sharing no mutable
    /// state with it or with other restored copies, except for key packages:
    /// the restored member holds again every key package private key the
    /// saved one held.
    ///
    /// # Errors
    /// When the implementation fails to load the state.
    fn restore(&self, saved: &Self::Saved) -> Result<Self::Member, BenchError>;

    /// Starts a group with `member` alone in it.
    ///
    /// # Errors
    /// When `member` is in a group already or the implementation fails.
    fn create_group(&self, member: &mut Self::Member) -> Result<(), BenchError>;

    /// A fresh key package, as an `MLSMessage`; `member` keeps its private keys.
    ///
    /// # Errors
    /// When the implementation fails.
    fn key_package(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError>;

    /// Commits the addition of the member whose key package is given and
    /// merges the commit.
    ///
    /// # Errors
    /// When `member` has no group, the key package is invalid or the
    /// implementation fails.
    fn add(&self, member: &mut Self::Member, key_package: &[u8]) -> Result<AddOutput, BenchError>;

    /// Commits the removal of the member at leaf `leaf` and merges the commit.
    ///
    /// # Errors
    /// When `member` has no group, `leaf` is empty or the implementation fails.
    fn remove(&self, member: &mut Self::Member, leaf: u32) -> Result<Vec<u8>, BenchError>;

    /// Commits no proposals, only a fresh path (new leaf and path keys),
    /// and merges the commit.
    ///
    /// # Errors
    /// When `member` has no group or the implementation fails.
    fn update(&self, member: &mut Self::Member) -> Result<Vec<u8>, BenchError>;

    /// Processes another member's commit and merges it.
    ///
    /// # Errors
    /// When `member` has no group, the message is not a valid commit for
    /// its epoch or the implementation fails.
    fn process(&self, member: &mut Self::Member, commit: &[u8]) -> Result<(), BenchError>;

    /// Joins the group from a Welcome addressed to one of `member`'s key
    /// packages; the Welcome carries the ratchet tree.
    ///
    /// # Errors
    /// When `member` is in a group already, the Welcome is not for it or
    /// the implementation fails.
    fn join(&self, member: &mut Self::Member, welcome: &[u8]) -> Result<(), BenchError>;

    /// The number of members in `member`'s group, 0 outside a group.
    fn group_size(&self, member: &Self::Member) -> usize;

    /// The epoch of `member`'s group, `None` outside a group.
    fn epoch(&self, member: &Self::Member) -> Option<u64>;
}
