//! Who a member says they are: a display name and a device id, carried in
//! an MLS basic credential, and the identity provider that checks them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mls_rs_core::crypto::SignaturePublicKey;
use mls_rs_core::error::IntoAnyError;
use mls_rs_core::extension::ExtensionList;
use mls_rs_core::identity::{
    BasicCredential, Credential, CredentialType, IdentityProvider, MemberValidationContext,
    SigningIdentity,
};
use mls_rs_core::time::MlsTime;

use super::SessionError;

/// Longest display name, in bytes of UTF-8.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;
/// Longest device id, in bytes of UTF-8.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// Version byte that starts every Satsuma credential.
const CREDENTIAL_VERSION: u8 = 1;

/// What a member's credential says: shown on every other member's screen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberInfo {
    /// The name people see ("Front door", "Ada").
    pub display_name: String,
    /// Which device of that person or place this is; one MLS identity per
    /// device.
    pub device_id: String,
}

impl MemberInfo {
    /// A checked credential.
    ///
    /// # Errors
    /// [`SessionError::Credential`] when a field is empty or too long.
    pub fn new(display_name: &str, device_id: &str) -> Result<Self, SessionError> {
        let info = Self {
            display_name: display_name.into(),
            device_id: device_id.into(),
        };
        info.check()?;
        Ok(info)
    }

    fn check(&self) -> Result<(), SessionError> {
        let name = self.display_name.len();
        let device = self.device_id.len();
        if name == 0 || name > MAX_DISPLAY_NAME_LEN || device == 0 || device > MAX_DEVICE_ID_LEN {
            return Err(SessionError::Credential);
        }
        Ok(())
    }

    /// The basic credential's identifier:
    /// `version(1) ‖ len(device_id)(1) ‖ device_id ‖ display_name`.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, SessionError> {
        self.check()?;
        let device_len =
            u8::try_from(self.device_id.len()).map_err(|_| SessionError::Credential)?;
        let mut out = Vec::with_capacity(2 + self.device_id.len() + self.display_name.len());
        out.push(CREDENTIAL_VERSION);
        out.push(device_len);
        out.extend_from_slice(self.device_id.as_bytes());
        out.extend_from_slice(self.display_name.as_bytes());
        Ok(out)
    }

    /// Parses a credential identifier made by [`MemberInfo::encode`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SessionError> {
        let [version, device_len, rest @ ..] = bytes else {
            return Err(SessionError::Credential);
        };
        if *version != CREDENTIAL_VERSION {
            return Err(SessionError::Credential);
        }
        let (device, name) = rest
            .split_at_checked(usize::from(*device_len))
            .ok_or(SessionError::Credential)?;
        let info = Self {
            display_name: core::str::from_utf8(name)
                .map_err(|_| SessionError::Credential)?
                .into(),
            device_id: core::str::from_utf8(device)
                .map_err(|_| SessionError::Credential)?
                .into(),
        };
        info.check()?;
        Ok(info)
    }

    /// The member behind an MLS signing identity.
    pub(crate) fn from_identity(identity: &SigningIdentity) -> Result<Self, SessionError> {
        match &identity.credential {
            Credential::Basic(basic) => Self::decode(basic.identifier()),
            _ => Err(SessionError::Credential),
        }
    }

    pub(crate) fn signing_identity(
        &self,
        public_key: SignaturePublicKey,
    ) -> Result<SigningIdentity, SessionError> {
        Ok(SigningIdentity::new(
            BasicCredential::new(self.encode()?).into_credential(),
            public_key,
        ))
    }
}

impl fmt::Display for MemberInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.display_name, self.device_id)
    }
}

/// Why the identity provider refused a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialError;

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid Satsuma credential")
    }
}

impl core::error::Error for CredentialError {}

impl IntoAnyError for CredentialError {
    #[cfg(feature = "std")]
    fn into_dyn_error(
        self,
    ) -> Result<alloc::boxed::Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(alloc::boxed::Box::new(self))
    }
}

/// Accepts basic credentials that hold a well-formed [`MemberInfo`]. A
/// member's identity is its device id together with its signature key, so
/// a self-update may not swap either.
///
/// Whether a person is who the credential says is for people to check:
/// the identity fingerprint and the group's safety number exist for that.
#[derive(Debug, Clone, Copy, Default)]
pub struct SatsumaIdentityProvider;

impl IdentityProvider for SatsumaIdentityProvider {
    type Error = CredentialError;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _context: MemberValidationContext<'_>,
    ) -> Result<(), CredentialError> {
        MemberInfo::from_identity(signing_identity)
            .map(drop)
            .map_err(|_| CredentialError)
    }

    fn validate_external_sender(
        &self,
        _signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _extensions: Option<&ExtensionList>,
    ) -> Result<(), CredentialError> {
        // Satsuma groups have no external senders: the delivery service
        // orders messages but never speaks in the group.
        Err(CredentialError)
    }

    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<Vec<u8>, CredentialError> {
        let info = MemberInfo::from_identity(signing_identity).map_err(|_| CredentialError)?;
        let mut out = Vec::new();
        out.extend_from_slice(info.device_id.as_bytes());
        out.push(0);
        out.extend_from_slice(signing_identity.signature_key.as_bytes());
        Ok(out)
    }

    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        extensions: &ExtensionList,
    ) -> Result<bool, CredentialError> {
        Ok(self.identity(predecessor, extensions)? == self.identity(successor, extensions)?)
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        alloc::vec![BasicCredential::credential_type()]
    }
}
