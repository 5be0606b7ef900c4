//! Why an MLS operation was refused.

use core::fmt;

use mls_rs::error::MlsError;

/// Why a [`Session`](super::Session) refused an input or an operation.
///
/// Every message from the network that a session cannot use lands here with
/// the session unchanged: no input makes it panic or leaves it half-updated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionError {
    /// The bytes are not a well-formed MLS message of the kind expected.
    Malformed,
    /// A signature does not verify.
    BadSignature,
    /// A message for another epoch than the group's current one.
    WrongEpoch,
    /// A message for another group.
    WrongGroup,
    /// The sender is not a member of the group (or not allowed to send it).
    NotMember,
    /// A membership tag, confirmation tag or tree hash does not match: the
    /// message was altered or the sender's view of the group differs.
    Integrity,
    /// A key package or credential is not acceptable (wrong suite, bad
    /// credential, reused keys, unsupported capabilities).
    BadKeyPackage,
    /// A key package (or a leaf added from one) is not valid at the time
    /// the driver gave with [`Session::set_time`](super::Session::set_time):
    /// expired, or not valid yet.
    Expired,
    /// A key package that was added to this group before: the delivery
    /// service replays it (its owner used it up when she joined).
    KeyPackageReused,
    /// The Welcome was not for any key package this member published, or
    /// could not be decrypted.
    NotWelcomed,
    /// A commit or proposal asks for something the group cannot do (remove
    /// a member that is not there, add a member twice, ...).
    InvalidChange,
    /// The operation needs a group and this session has none.
    NoGroup,
    /// The session already is in a group.
    AlreadyInGroup,
    /// A commit is pending; apply or discard it first.
    CommitPending,
    /// A proposal other than a member's update of its own leaf: Satsuma's
    /// committers never commit it (membership changes come from the log).
    UnwantedProposal,
    /// No commit is pending.
    NoPendingCommit,
    /// A message this member sent itself came back; the delivery service's
    /// echo is handled with [`Session::apply_pending_commit`](super::Session::apply_pending_commit).
    OwnMessage,
    /// A credential field is too long or not UTF-8.
    Credential,
    /// The persistent store failed.
    Store(super::StoreError),
    /// The stored state is unreadable or from an incompatible version.
    CorruptState,
    /// Installing the epoch's SFrame key failed.
    Frame(crate::Error),
    /// The cryptographic provider failed.
    Crypto,
    /// Any other refusal by the MLS library.
    Protocol,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed MLS message"),
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::WrongEpoch => f.write_str("message is for another epoch"),
            Self::WrongGroup => f.write_str("message is for another group"),
            Self::NotMember => f.write_str("sender is not a member of the group"),
            Self::Integrity => {
                f.write_str("membership tag, confirmation tag or tree hash mismatch")
            }
            Self::BadKeyPackage => f.write_str("key package or credential not acceptable"),
            Self::Expired => f.write_str("key package expired or not valid yet"),
            Self::KeyPackageReused => f.write_str("key package was added to this group before"),
            Self::NotWelcomed => {
                f.write_str("Welcome is not for any of this member's key packages")
            }
            Self::InvalidChange => f.write_str("commit or proposal is not valid for this group"),
            Self::NoGroup => f.write_str("not in a group"),
            Self::AlreadyInGroup => f.write_str("already in a group"),
            Self::CommitPending => f.write_str("a commit is pending"),
            Self::UnwantedProposal => {
                f.write_str("a proposal other than an update of the sender's own leaf")
            }
            Self::NoPendingCommit => f.write_str("no commit is pending"),
            Self::OwnMessage => f.write_str("message was sent by this member"),
            Self::Credential => f.write_str("credential field too long or not UTF-8"),
            Self::Store(e) => write!(f, "store: {e}"),
            Self::CorruptState => f.write_str("stored state is unreadable"),
            Self::Frame(e) => write!(f, "SFrame key: {e}"),
            Self::Crypto => f.write_str("cryptographic operation failed"),
            Self::Protocol => f.write_str("MLS refused the operation"),
        }
    }
}

impl core::error::Error for SessionError {}

impl From<crate::Error> for SessionError {
    fn from(e: crate::Error) -> Self {
        Self::Frame(e)
    }
}

impl From<super::StoreError> for SessionError {
    fn from(e: super::StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<MlsError> for SessionError {
    fn from(e: MlsError) -> Self {
        use MlsError as M;
        match e {
            M::SerializationError(_)
            | M::UnexpectedMessageType
            | M::UnsupportedProtocolVersion(_)
            | M::ProtocolVersionMismatch
            | M::UnexpectedEmptyTree
            | M::UnexpectedTrailingBlanks
            | M::ExpectedNode
            | M::UnexpectedEmptyNode
            | M::InvalidNodeIndex(_)
            | M::InvalidTreeIndex
            | M::WrongPathLen
            | M::LeafNodeNoChildren
            | M::LeafNodeNoParent
            | M::ExtensionError(_) => Self::Malformed,
            M::InvalidSignature => Self::BadSignature,
            M::InvalidEpoch | M::EpochNotFound => Self::WrongEpoch,
            M::GroupIdMismatch => Self::WrongGroup,
            M::InvalidSender
            | M::MemberNotFound
            | M::LeafNotFound(_)
            | M::MembershipTagForNonMember
            | M::ExternalSenderCannotCommit
            | M::OnlyMembersCanCommitProposalsByRef
            | M::InvalidProposalTypeForSender => Self::NotMember,
            M::InvalidConfirmationTag
            | M::InvalidMembershipTag
            | M::TreeHashMismatch
            | M::ParentHashMismatch
            | M::UnmergedLeavesMismatch
            | M::PubKeyMismatch
            | M::InvalidTreeKemPrivateKey => Self::Integrity,
            M::IdentityProviderError(_)
            | M::CipherSuiteMismatch
            | M::UnsupportedCipherSuite(_)
            | M::InvalidInitKey
            | M::InitLeafKeyEquality
            | M::SameHpkeKey(_)
            | M::DuplicateLeafData(_)
            | M::InvalidLeafNodeSource
            | M::ExtensionNotInCapabilities(_)
            | M::RequiredExtensionNotFound(_)
            | M::RequiredProposalNotFound(_)
            | M::RequiredCredentialNotFound(_)
            | M::InUseCredentialTypeUnsupportedByNewLeaf
            | M::CredentialTypeOfNewLeafIsUnsupported
            | M::DefaultValueListed
            | M::InvalidSuccessor
            | M::DifferentIdentityInUpdate(_) => Self::BadKeyPackage,
            M::WelcomeKeyPackageNotFound | M::InvalidWelcomeMessage | M::InvalidGroupInfo => {
                Self::NotWelcomed
            }
            M::RemovingNonExistingMember
            | M::UpdatingNonExistingMember
            | M::MoreThanOneProposalForLeaf(_)
            | M::CommitterSelfRemoval
            | M::CommitMissingPath
            | M::InvalidCommitSelfUpdate
            | M::ProposalNotFound
            | M::CommitRequired
            | M::InvalidLeafConsumption => Self::InvalidChange,
            M::InvalidLifetime { .. } => Self::Expired,
            M::ExistingPendingCommit => Self::CommitPending,
            M::PendingCommitNotFound => Self::NoPendingCommit,
            M::CantProcessMessageFromSelf => Self::OwnMessage,
            M::CryptoProviderError(_) => Self::Crypto,
            M::GroupStorageError(_) | M::KeyPackageRepoError(_) => Self::CorruptState,
            _ => Self::Protocol,
        }
    }
}
