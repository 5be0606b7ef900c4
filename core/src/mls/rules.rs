//! What a Satsuma committer puts in a commit.
//!
//! Membership changes come from the delivery service's log and the
//! committer adds them by value. The only proposal a member sends by
//! reference is an update of its own leaf (`Member`'s self-update). Any
//! other by-reference proposal (a member proposing to remove someone, to
//! add someone, to change the group's extensions) is left out of every
//! commit this member builds: committed, such a Remove would take a member
//! out behind the log's back, and every member would see its group differ
//! from the log and rejoin. Commits received are not filtered: every
//! member must apply the same rules to stay in one group, and a commit the
//! log accepted is checked against the log instead.

use core::convert::Infallible;

use mls_rs::MlsRules;
use mls_rs::group::proposal::BorrowedProposal;
use mls_rs::group::{GroupContext, Roster};
use mls_rs::mls_rules::{
    CommitDirection, CommitOptions, CommitSource, DefaultMlsRules, EncryptionOptions,
    ProposalBundle, ProposalSource,
};

/// mls-rs's default rules, and a filter on the proposals this member
/// commits.
#[derive(Debug, Clone)]
pub(crate) struct SatsumaRules(pub DefaultMlsRules);

impl MlsRules for SatsumaRules {
    type Error = Infallible;

    fn filter_proposals(
        &self,
        direction: CommitDirection,
        _source: CommitSource,
        _roster: &Roster,
        _context: &GroupContext,
        mut proposals: ProposalBundle,
    ) -> Result<ProposalBundle, Self::Error> {
        if direction == CommitDirection::Send {
            proposals.retain(|p| {
                Ok::<_, Infallible>(
                    !matches!(p.source, ProposalSource::ByReference(_))
                        || matches!(p.proposal, BorrowedProposal::Update(_)),
                )
            })?;
        }
        Ok(proposals)
    }

    fn commit_options(
        &self,
        roster: &Roster,
        context: &GroupContext,
        proposals: &ProposalBundle,
    ) -> Result<CommitOptions, Self::Error> {
        self.0.commit_options(roster, context, proposals)
    }

    fn encryption_options(
        &self,
        roster: &Roster,
        context: &GroupContext,
    ) -> Result<EncryptionOptions, Self::Error> {
        self.0.encryption_options(roster, context)
    }
}
