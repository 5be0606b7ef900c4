//! The crate's one error type.

use core::fmt;

/// Why a benchmark operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// mls-rs returned an error (it has `Debug` only without its `std` feature).
    MlsRs(mls_rs::error::MlsError),
    /// A crypto provider under mls-rs failed to generate a key.
    Provider(String),
    /// OpenMLS returned an error; its error types are generic over the
    /// storage, so only their text is kept.
    OpenMls {
        /// What was being done.
        operation: &'static str,
        /// OpenMLS's description of the error.
        message: String,
    },
    /// An operation returned without error but did not do what it claims
    /// (a commit without Welcome, a message of the wrong kind, no group).
    Unexpected(&'static str),
}

impl BenchError {
    pub(crate) fn openmls(operation: &'static str, error: impl fmt::Display) -> Self {
        Self::OpenMls {
            operation,
            message: error.to_string(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MlsRs(error) => write!(f, "mls-rs: {error:?}"),
            Self::Provider(message) => write!(f, "crypto provider: {message}"),
            Self::OpenMls { operation, message } => write!(f, "OpenMLS, {operation}: {message}"),
            Self::Unexpected(what) => write!(f, "unexpected: {what}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<mls_rs::error::MlsError> for BenchError {
    fn from(error: mls_rs::error::MlsError) -> Self {
        Self::MlsRs(error)
    }
}
