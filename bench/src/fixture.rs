//! Groups of N members to benchmark on, built once per implementation.
//!
//! A group is grown one member at a time: member 0 creates it; for each
//! newcomer, member 0 commits the Add, the newcomer joins from the Welcome
//! and at once commits an update, which member 0 processes. Every member
//! has then committed once, so every parent node of the tree is filled and
//! no leaf is unmerged: the tree of a call that ran a while, where a commit
//! encrypts one path secret per level (log N HPKE seals). Adding N-1
//! members in one commit would leave blank parents and make every later
//! commit encrypt to up to N/2 leaves.
//!
//! Only member 0 (the committer in every benchmark) and the newest member
//! (the receiver of the commit in "process", the farthest leaf from member
//! 0 in the tree) are kept; the other members' states are dropped once they
//! committed.

use crate::{AddOutput, BenchError, Mls};

/// Everything the benchmarks of one group size need, for one implementation.
pub struct Fixture<M: Mls> {
    /// N, the members in the group before the operation.
    pub size: usize,
    /// Member 0, at leaf 0: the member who commits.
    pub committer: M::Saved,
    /// Member N-1, the newest member: the member who processes the commit.
    pub receiver: M::Saved,
    /// A non-member holding the private keys of [`Fixture::key_package`].
    pub joiner: M::Saved,
    /// The joiner's key package.
    pub key_package: Vec<u8>,
    /// The committer's commit adding the joiner, and the Welcome.
    pub add: AddOutput,
    /// The size of each message.
    pub sizes: MessageSizes,
}

/// Bytes on the wire of each message (`MLSMessage` encodings) for one N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSizes {
    /// The joiner's key package.
    pub key_package: usize,
    /// The commit adding one member to N.
    pub add_commit: usize,
    /// The Welcome of that commit, with the ratchet tree of N+1 members.
    pub welcome: usize,
    /// The commit removing member N-1.
    pub remove_commit: usize,
}

impl<M: Mls> core::fmt::Debug for Fixture<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fixture")
            .field("size", &self.size)
            .field("sizes", &self.sizes)
            .finish_non_exhaustive()
    }
}

/// Builds one group on `mls` and snapshots it at each size in `sizes`
/// (ascending, each at least 2), checking on the way that add, remove,
/// process and join do what they claim on each snapshot.
///
/// # Errors
/// [`BenchError::Unexpected`] for a size below 2 or out of order, or when
/// members disagree on the group; any error of the implementation.
pub fn build_groups<M: Mls>(mls: &M, sizes: &[usize]) -> Result<Vec<Fixture<M>>, BenchError> {
    let mut committer = mls.member(b"member 0")?;
    mls.create_group(&mut committer)?;
    let mut newest = None;
    let mut members = 1;
    let mut fixtures = Vec::with_capacity(sizes.len());
    for &size in sizes {
        if size < 2 || size < members {
            return Err(BenchError::Unexpected(
                "group sizes must be at least 2 and ascending",
            ));
        }
        while members < size {
            let mut newcomer = mls.member(format!("member {members}").as_bytes())?;
            let key_package = mls.key_package(&mut newcomer)?;
            let added = mls.add(&mut committer, &key_package)?;
            mls.join(&mut newcomer, &added.welcome)?;
            let update = mls.update(&mut newcomer)?;
            mls.process(&mut committer, &update)?;
            newest = Some(newcomer);
            members += 1;
        }
        let receiver = newest.as_ref().ok_or(BenchError::Unexpected(
            "a group of 2 or more has a newest member",
        ))?;
        expect_in_step(mls, &committer, receiver, size)?;
        fixtures.push(fixture(mls, &committer, receiver, size)?);
    }
    Ok(fixtures)
}

fn fixture<M: Mls>(
    mls: &M,
    committer: &M::Member,
    receiver: &M::Member,
    size: usize,
) -> Result<Fixture<M>, BenchError> {
    let committer = mls.save(committer)?;
    let receiver = mls.save(receiver)?;
    let mut joiner = mls.member(format!("joiner of {size}").as_bytes())?;
    let key_package = mls.key_package(&mut joiner)?;
    let joiner = mls.save(&joiner)?;

    // One run of each benchmarked operation on restored copies, checked,
    // so that the timed runs repeat a step known to succeed.
    let mut adder = mls.restore(&committer)?;
    let add = mls.add(&mut adder, &key_package)?;
    let mut processor = mls.restore(&receiver)?;
    mls.process(&mut processor, &add.commit)?;
    expect_in_step(mls, &adder, &processor, size + 1)?;
    let mut newcomer = mls.restore(&joiner)?;
    mls.join(&mut newcomer, &add.welcome)?;
    expect_in_step(mls, &adder, &newcomer, size + 1)?;
    let mut remover = mls.restore(&committer)?;
    let remove = mls.remove(&mut remover, last_leaf(size)?)?;
    if mls.group_size(&remover) != size - 1 {
        return Err(BenchError::Unexpected(
            "a removal left the group size unchanged",
        ));
    }

    let sizes = MessageSizes {
        key_package: key_package.len(),
        add_commit: add.commit.len(),
        welcome: add.welcome.len(),
        remove_commit: remove.len(),
    };
    Ok(Fixture {
        size,
        committer,
        receiver,
        joiner,
        key_package,
        add,
        sizes,
    })
}

/// The leaf of member N-1: in a group grown one by one and never shrunk,
/// member i sits at leaf i.
///
/// # Errors
/// When N-1 does not fit a leaf index.
pub fn last_leaf(size: usize) -> Result<u32, BenchError> {
    size.checked_sub(1)
        .and_then(|leaf| u32::try_from(leaf).ok())
        .ok_or(BenchError::Unexpected("no leaf index for that group size"))
}

fn expect_in_step<M: Mls>(
    mls: &M,
    a: &M::Member,
    b: &M::Member,
    size: usize,
) -> Result<(), BenchError> {
    if mls.epoch(a).is_none() || mls.epoch(a) != mls.epoch(b) {
        return Err(BenchError::Unexpected(
            "two members are in different epochs",
        ));
    }
    if mls.group_size(a) != size || mls.group_size(b) != size {
        return Err(BenchError::Unexpected(
            "the group has the wrong number of members",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mls_rs_crypto_rustcrypto::RustCryptoProvider;
    use satsuma_core::mls::SatsumaCrypto;

    use super::*;
    use crate::{MlsRs, OpenMls};

    /// What the benchmarks rely on: each snapshot restores into independent
    /// copies, so the same add, process and join can be run again and again.
    fn repeatable<M: Mls>(mls: &M) {
        let fixtures = build_groups(mls, &[2, 3]).unwrap();
        let sizes: Vec<usize> = fixtures.iter().map(|f| f.size).collect();
        assert_eq!(sizes, [2, 3], "{}", mls.name());
        for fixture in &fixtures {
            for _ in 0..2 {
                let mut committer = mls.restore(&fixture.committer).unwrap();
                mls.add(&mut committer, &fixture.key_package).unwrap();
                assert_eq!(mls.group_size(&committer), fixture.size + 1);
                let mut receiver = mls.restore(&fixture.receiver).unwrap();
                mls.process(&mut receiver, &fixture.add.commit).unwrap();
                let mut joiner = mls.restore(&fixture.joiner).unwrap();
                mls.join(&mut joiner, &fixture.add.welcome).unwrap();
                assert_eq!(mls.epoch(&joiner), mls.epoch(&receiver));
            }
        }
        // The Welcome carries the tree, so it grows with the group.
        assert!(fixtures[1].sizes.welcome > fixtures[0].sizes.welcome);
    }

    #[test]
    fn satsuma_fixtures_are_repeatable() {
        repeatable(&MlsRs::new("satsuma", SatsumaCrypto::from_seed([1; 32])));
    }

    #[test]
    fn rustcrypto_fixtures_are_repeatable() {
        repeatable(&MlsRs::new("mls-rs-rustcrypto", RustCryptoProvider::new()));
    }

    #[test]
    fn openmls_fixtures_are_repeatable() {
        repeatable(&OpenMls::new());
    }

    #[test]
    fn sizes_below_two_or_descending_are_refused() {
        let mls = MlsRs::new("satsuma", SatsumaCrypto::from_seed([2; 32]));
        assert!(build_groups(&mls, &[1]).is_err());
        assert!(build_groups(&mls, &[3, 2]).is_err());
    }

    #[test]
    fn the_last_leaf_is_member_n_minus_one() {
        assert_eq!(last_leaf(2).unwrap(), 1);
        assert!(last_leaf(0).is_err());
    }
}
