//! The MLS crypto provider, seeded by the operating system.

use satsuma_core::mls::SatsumaCrypto;
use zeroize::Zeroizing;

use crate::Error;

/// A [`SatsumaCrypto`] whose generator starts from 32 bytes of the OS
/// entropy source (`getrandom`: `getrandom(2)` on Linux,
/// `ProcessPrng` on Windows, `getentropy` on macOS).
///
/// Create one per process and clone it; never seed two from the same bytes.
///
/// # Errors
/// [`Error::Entropy`] when the OS source fails.
pub fn os_seeded_crypto() -> Result<SatsumaCrypto, Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *seed).map_err(Error::Entropy)?;
    Ok(SatsumaCrypto::from_seed(*seed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use satsuma_core::mls::{MemberInfo, MemoryStore, Session, SessionConfig};

    use super::*;

    #[test]
    fn two_seeds_make_two_identities() {
        let identity = || {
            Session::create(
                os_seeded_crypto().unwrap(),
                MemberInfo::new("Ada", "laptop").unwrap(),
                SessionConfig::default(),
                MemoryStore::new(),
            )
            .unwrap()
            .fingerprint()
        };
        assert_ne!(identity(), identity());
    }
}
