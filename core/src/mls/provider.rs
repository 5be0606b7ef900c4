//! Satsuma's crypto provider for mls-rs: MLS cipher suite 0x0001,
//! `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`.
//!
//! HPKE (RFC 9180) is `hpke-rs` over its RustCrypto backend; hashing, HMAC,
//! HKDF and AES-GCM are RustCrypto's; Ed25519 is `ed25519-dalek`.
//!
//! Randomness is passed in. [`SatsumaCrypto::from_seed`] takes 32 bytes
//! from the platform (the OS on a desktop, the hardware RNG on a board) and
//! keeps a ChaCha20 CSPRNG; every HPKE operation that needs fresh randomness
//! gets a generator seeded from it. Nothing here reads `getrandom`; on targets
//! without an OS the workspace configures getrandom's always-failing backend
//! so that a hidden use would be an error, never a weak key.

#[cfg(feature = "std")]
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::{Hkdf, HkdfExtract};
use hmac::{Hmac, Mac};
use hpke_rs::{Hpke, HpkePublicKey as RawHpkePublicKey, Mode};
use hpke_rs_crypto::types::{AeadAlgorithm, KdfAlgorithm, KemAlgorithm};
use hpke_rs_crypto::{HpkeCrypto, error::Error as HpkeCryptoError};
use hpke_rs_rust_crypto::HpkeRustCrypto;
use mls_rs_core::crypto::{
    CipherSuite, CipherSuiteProvider, CryptoProvider, HpkeCiphertext, HpkeContextR, HpkeContextS,
    HpkePsk, HpkePublicKey, HpkeSecretKey, SignaturePublicKey, SignatureSecretKey,
};
use mls_rs_core::error::IntoAnyError;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};
use sha2::{Digest, Sha256};
use spin::Mutex;
use zeroize::Zeroizing;

/// The one MLS cipher suite Satsuma speaks.
pub const SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

const KEM: KemAlgorithm = KemAlgorithm::DhKem25519;
const KDF: KdfAlgorithm = KdfAlgorithm::HkdfSha256;
const AEAD: AeadAlgorithm = AeadAlgorithm::Aes128Gcm;
const AEAD_KEY_LEN: usize = 16;
const AEAD_NONCE_LEN: usize = 12;
const AEAD_TAG_LEN: usize = 16;
const HASH_LEN: usize = 32;
const X25519_LEN: usize = 32;
const ED25519_SEED_LEN: usize = 32;

/// Why a cryptographic operation failed. mls-rs turns it into its own
/// error; the variants say which input was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// An AEAD or HMAC key, nonce or output length is not the suite's.
    Length,
    /// AEAD authentication failed: wrong key, nonce, AAD or a forged tag.
    Authentication,
    /// An HPKE operation failed (bad key, tag mismatch or sequence overflow).
    Hpke,
    /// An X25519 public key is not 32 bytes.
    KemPublicKey,
    /// A signature secret or public key is malformed.
    SignatureKey,
    /// A signature is malformed or does not verify.
    Signature,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "key, nonce or output length does not fit the cipher suite",
            Self::Authentication => "AEAD authentication failed",
            Self::Hpke => "HPKE operation failed",
            Self::KemPublicKey => "HPKE public key is not an X25519 key",
            Self::SignatureKey => "Ed25519 key is malformed",
            Self::Signature => "Ed25519 signature does not verify",
        })
    }
}

impl core::error::Error for CryptoError {}

impl IntoAnyError for CryptoError {
    #[cfg(feature = "std")]
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(Box::new(self))
    }
}

/// The crypto provider: cheap to clone, every clone shares one CSPRNG.
#[derive(Clone)]
pub struct SatsumaCrypto {
    rng: Arc<Mutex<ChaCha20Rng>>,
}

impl fmt::Debug for SatsumaCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SatsumaCrypto").finish_non_exhaustive()
    }
}

impl SatsumaCrypto {
    /// A provider whose randomness comes from `seed`: 32 bytes the platform
    /// drew from its entropy source. Two providers from one seed make the
    /// same keys, which tests use and production must never do.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        Self {
            rng: Arc::new(Mutex::new(ChaCha20Rng::from_seed(*seed))),
        }
    }

    /// Mixes more entropy into the generator (a board's RNG feeding it
    /// later, say). The new state depends on the old one and on `entropy`.
    pub fn reseed(&self, entropy: &[u8]) {
        let mut rng = self.rng.lock();
        let mut old = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *old);
        let mut hash = Sha256::new();
        hash.update(*old);
        hash.update(entropy);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(hash.finalize().into());
        *rng = ChaCha20Rng::from_seed(*seed);
    }

    /// Fills `out` from the provider's generator.
    pub fn fill_random(&self, out: &mut [u8]) {
        self.fill(out);
    }

    fn fill(&self, out: &mut [u8]) {
        self.rng.lock().fill_bytes(out);
    }

    fn child_rng(&self) -> ChaCha20Rng {
        let mut seed = Zeroizing::new([0u8; 32]);
        self.fill(&mut *seed);
        ChaCha20Rng::from_seed(*seed)
    }

    fn hpke(&self, mode: Mode) -> Hpke<Backend> {
        Hpke::new_with_rng(mode, KEM, KDF, AEAD, self.child_rng())
    }
}

impl CryptoProvider for SatsumaCrypto {
    type CipherSuiteProvider = Self;

    fn supported_cipher_suites(&self) -> Vec<CipherSuite> {
        vec![SUITE]
    }

    fn cipher_suite_provider(&self, cipher_suite: CipherSuite) -> Option<Self> {
        (cipher_suite == SUITE).then(|| self.clone())
    }
}

/// hpke-rs's RustCrypto backend with Satsuma's generator in place of the
/// one it would seed from the OS. Every primitive is RustCrypto's, through
/// `HpkeRustCrypto`; only key generation draws from our CSPRNG.
#[derive(Debug)]
struct Backend;

impl HpkeCrypto for Backend {
    type HpkePrng = ChaCha20Rng;

    fn name() -> alloc::string::String {
        HpkeRustCrypto::name()
    }

    fn supports_kdf(alg: KdfAlgorithm) -> Result<(), HpkeCryptoError> {
        HpkeRustCrypto::supports_kdf(alg)
    }

    fn supports_kem(alg: KemAlgorithm) -> Result<(), HpkeCryptoError> {
        if alg == KEM {
            Ok(())
        } else {
            Err(HpkeCryptoError::UnknownKemAlgorithm)
        }
    }

    fn supports_aead(alg: AeadAlgorithm) -> Result<(), HpkeCryptoError> {
        HpkeRustCrypto::supports_aead(alg)
    }

    fn kdf_extract(
        alg: hpke_rs_crypto::types::TwoStageKdfAlgorithm,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kdf_extract(alg, salt, ikm)
    }

    fn kdf_expand(
        alg: hpke_rs_crypto::types::TwoStageKdfAlgorithm,
        prk: &[u8],
        info: &[u8],
        output_size: usize,
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kdf_expand(alg, prk, info, output_size)
    }

    fn kdf_derive(
        alg: hpke_rs_crypto::types::SingleStageKdfAlgorithm,
        ikm: &[u8],
        output_size: usize,
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kdf_derive(alg, ikm, output_size)
    }

    fn dh(alg: KemAlgorithm, pk: &[u8], sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        Self::supports_kem(alg)?;
        HpkeRustCrypto::dh(alg, pk, sk)
    }

    fn secret_to_public(alg: KemAlgorithm, sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        Self::supports_kem(alg)?;
        HpkeRustCrypto::secret_to_public(alg, sk)
    }

    fn kem_key_gen(
        alg: KemAlgorithm,
        prng: &mut Self::HpkePrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Self::supports_kem(alg)?;
        let mut sk = vec![0u8; X25519_LEN];
        prng.fill_bytes(&mut sk);
        let pk = HpkeRustCrypto::secret_to_public(alg, &sk)?;
        Ok((pk, sk))
    }

    fn kem_key_gen_derand(
        _alg: KemAlgorithm,
        _seed: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn kem_encaps(
        _alg: KemAlgorithm,
        _pk_r: &[u8],
        _prng: &mut Self::HpkePrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        // DH-KEMs are run by hpke-rs itself over `dh`.
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn kem_encaps_derand(
        _alg: KemAlgorithm,
        _pk_r: &[u8],
        _randomness: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn kem_decaps(
        _alg: KemAlgorithm,
        _ct: &[u8],
        _sk_r: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn dh_validate_sk(alg: KemAlgorithm, sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        Self::supports_kem(alg)?;
        HpkeRustCrypto::dh_validate_sk(alg, sk)
    }

    fn aead_seal(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::aead_seal(alg, key, nonce, aad, msg)
    }

    fn aead_open(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::aead_open(alg, key, nonce, aad, msg)
    }
}

/// The sender half of an HPKE context.
pub struct SenderContext(hpke_rs::Context<Backend>);
/// The receiver half of an HPKE context.
pub struct ReceiverContext(hpke_rs::Context<Backend>);

impl fmt::Debug for SenderContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SenderContext")
    }
}

impl fmt::Debug for ReceiverContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReceiverContext")
    }
}

impl HpkeContextS for SenderContext {
    type Error = CryptoError;

    fn seal(&mut self, aad: Option<&[u8]>, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0
            .seal(aad.unwrap_or_default(), data)
            .map_err(|_| CryptoError::Hpke)
    }

    fn export(&self, context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.0
            .export(context, len)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Hpke)
    }
}

impl HpkeContextR for ReceiverContext {
    type Error = CryptoError;

    fn open(
        &mut self,
        aad: Option<&[u8]>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.0
            .open(aad.unwrap_or_default(), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Hpke)
    }

    fn export(&self, context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.0
            .export(context, len)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Hpke)
    }
}

fn signing_key(secret: &SignatureSecretKey) -> Result<SigningKey, CryptoError> {
    // The seed alone (RFC 8032's private key, as the MLS test vectors carry
    // it), or seed ‖ public key as some providers store it.
    let bytes = secret.as_bytes();
    let seed: [u8; ED25519_SEED_LEN] = bytes
        .get(..ED25519_SEED_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::SignatureKey)?;
    let key = SigningKey::from_bytes(&seed);
    match bytes.len() {
        ED25519_SEED_LEN => Ok(key),
        64 if bytes.get(ED25519_SEED_LEN..) == Some(key.verifying_key().as_bytes()) => Ok(key),
        _ => Err(CryptoError::SignatureKey),
    }
}

fn aead(key: &[u8], nonce: &[u8]) -> Result<(Aes128Gcm, Nonce<U12>), CryptoError> {
    if key.len() != AEAD_KEY_LEN || nonce.len() != AEAD_NONCE_LEN {
        return Err(CryptoError::Length);
    }
    let cipher = Aes128Gcm::new_from_slice(key).map_err(|_| CryptoError::Length)?;
    let nonce: [u8; AEAD_NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Length)?;
    Ok((cipher, Nonce::from(nonce)))
}

fn hpke_public(key: &HpkePublicKey) -> RawHpkePublicKey {
    RawHpkePublicKey::new(key.as_ref().to_vec())
}

/// RFC 9180's label prefix.
const HPKE_VERSION: &[u8] = b"HPKE-v1";
/// The KEM's `suite_id`: "KEM" ‖ I2OSP(kem_id 0x0020, 2).
const KEM_SUITE_ID: &[u8] = b"KEM\x00\x20";

/// DeriveKeyPair of DHKEM(X25519, HKDF-SHA256) (RFC 9180, 7.1.3):
/// `sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", 32)`,
/// and its public key. Here rather than through hpke-rs, whose
/// DeriveKeyPair also carries the post-quantum KEMs' SHAKE256: 4 KB of
/// flash a microcontroller would never run.
fn derive_x25519(ikm: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    let mut extract = HkdfExtract::<Sha256>::new(Some(&[]));
    for part in [HPKE_VERSION, KEM_SUITE_ID, b"dkp_prk", ikm] {
        extract.input_ikm(part);
    }
    let (_, dkp_prk) = extract.finalize();
    let len = u16::try_from(X25519_LEN).map_err(|_| CryptoError::Length)?;
    let mut secret = Zeroizing::new(vec![0u8; X25519_LEN]);
    dkp_prk
        .expand_multi_info(
            &[&len.to_be_bytes(), HPKE_VERSION, KEM_SUITE_ID, b"sk"],
            &mut secret,
        )
        .map_err(|_| CryptoError::Length)?;
    let public = HpkeRustCrypto::secret_to_public(KEM, &secret).map_err(|_| CryptoError::Hpke)?;
    Ok((secret, public))
}

/// DHKEM(X25519, HKDF-SHA256)'s `Decap` (RFC 9180 §4.1) with the
/// recipient's public key as mls-rs hands it over. hpke-rs would recompute
/// it from the secret key, an X25519 base-point multiplication on every
/// Welcome and commit received: a quarter of the provider's share of
/// processing a commit. A wrong `public` only gives a key that fails
/// authentication.
fn decap(
    enc: &[u8],
    secret: &HpkeSecretKey,
    public: &HpkePublicKey,
) -> Result<Zeroizing<[u8; HASH_LEN]>, CryptoError> {
    if public.len() != X25519_LEN {
        return Err(CryptoError::KemPublicKey);
    }
    // Refuses an all-zero result (a small-order `enc`).
    let dh = Zeroizing::new(
        HpkeRustCrypto::dh(KEM, enc, secret.as_ref()).map_err(|_| CryptoError::Hpke)?,
    );
    // eae_prk = LabeledExtract("", "eae_prk", dh)
    let mut extract = HkdfExtract::<Sha256>::new(Some(&[]));
    for part in [HPKE_VERSION, KEM_SUITE_ID, b"eae_prk", &dh] {
        extract.input_ikm(part);
    }
    let (_, eae_prk) = extract.finalize();
    // shared_secret = LabeledExpand(eae_prk, "shared_secret", enc ‖ pkR, Nsecret)
    let len = u16::try_from(HASH_LEN).map_err(|_| CryptoError::Length)?;
    let mut shared = Zeroizing::new([0u8; HASH_LEN]);
    eae_prk
        .expand_multi_info(
            &[
                &len.to_be_bytes(),
                HPKE_VERSION,
                KEM_SUITE_ID,
                b"shared_secret",
                enc,
                public.as_ref(),
            ],
            &mut *shared,
        )
        .map_err(|_| CryptoError::Length)?;
    Ok(shared)
}

fn psk_mode(psk: &Option<HpkePsk<'_>>) -> Mode {
    if psk.is_some() { Mode::Psk } else { Mode::Base }
}

impl SatsumaCrypto {
    fn seal_with(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
        psk: Option<HpkePsk<'_>>,
    ) -> Result<HpkeCiphertext, CryptoError> {
        let mut hpke = self.hpke(psk_mode(&psk));
        let (kem_output, ciphertext) = hpke
            .seal(
                &hpke_public(remote_key),
                info,
                aad.unwrap_or_default(),
                pt,
                psk.as_ref().map(|p| p.value),
                psk.as_ref().map(|p| p.id),
                None,
            )
            .map_err(|_| CryptoError::Hpke)?;
        Ok(HpkeCiphertext {
            kem_output,
            ciphertext,
        })
    }

    fn receiver(
        &self,
        kem_output: &[u8],
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        psk: Option<&HpkePsk<'_>>,
    ) -> Result<hpke_rs::Context<Backend>, CryptoError> {
        let shared = decap(kem_output, local_secret, local_public)?;
        let mode = if psk.is_some() { Mode::Psk } else { Mode::Base };
        self.hpke(mode)
            .key_schedule(
                &*shared,
                info,
                psk.map_or(&[][..], |p| p.value),
                psk.map_or(&[][..], |p| p.id),
            )
            .map_err(|_| CryptoError::Hpke)
    }

    fn open_with(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        psk: Option<HpkePsk<'_>>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.receiver(
            &ciphertext.kem_output,
            local_secret,
            local_public,
            info,
            psk.as_ref(),
        )?
        .open(aad.unwrap_or_default(), &ciphertext.ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Hpke)
    }
}

impl CipherSuiteProvider for SatsumaCrypto {
    type Error = CryptoError;
    type HpkeContextS = SenderContext;
    type HpkeContextR = ReceiverContext;

    fn cipher_suite(&self) -> CipherSuite {
        SUITE
    }

    fn hash(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(Sha256::digest(data).to_vec())
    }

    fn mac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| CryptoError::Length)?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn aead_seal(
        &self,
        key: &[u8],
        data: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (cipher, nonce) = aead(key, nonce)?;
        let mut out = Vec::with_capacity(data.len() + AEAD_TAG_LEN);
        out.extend_from_slice(data);
        let tag = cipher
            .encrypt_inout_detached(&nonce, aad.unwrap_or_default(), out.as_mut_slice().into())
            .map_err(|_| CryptoError::Length)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn aead_open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (cipher, nonce) = aead(key, nonce)?;
        let split = ciphertext
            .len()
            .checked_sub(AEAD_TAG_LEN)
            .ok_or(CryptoError::Authentication)?;
        let (body, tag) = ciphertext.split_at(split);
        let tag = <&Tag>::try_from(tag).map_err(|_| CryptoError::Authentication)?;
        let mut out = Zeroizing::new(body.to_vec());
        cipher
            .decrypt_inout_detached(
                &nonce,
                aad.unwrap_or_default(),
                out.as_mut_slice().into(),
                tag,
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(out)
    }

    fn aead_key_size(&self) -> usize {
        AEAD_KEY_LEN
    }

    fn aead_nonce_size(&self) -> usize {
        AEAD_NONCE_LEN
    }

    fn kdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
        Ok(Zeroizing::new(prk.to_vec()))
    }

    fn kdf_expand(
        &self,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let hkdf = Hkdf::<Sha256>::from_prk(prk).map_err(|_| CryptoError::Length)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        hkdf.expand(info, &mut out)
            .map_err(|_| CryptoError::Length)?;
        Ok(out)
    }

    fn kdf_extract_size(&self) -> usize {
        HASH_LEN
    }

    fn hpke_seal(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        self.seal_with(remote_key, info, aad, pt, None)
    }

    fn hpke_seal_psk(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
        psk: HpkePsk<'_>,
    ) -> Result<HpkeCiphertext, CryptoError> {
        self.seal_with(remote_key, info, aad, pt, Some(psk))
    }

    fn hpke_open(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open_with(ciphertext, local_secret, local_public, info, aad, None)
    }

    fn hpke_open_psk(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        psk: HpkePsk<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open_with(ciphertext, local_secret, local_public, info, aad, Some(psk))
    }

    fn hpke_setup_s(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
    ) -> Result<(Vec<u8>, SenderContext), CryptoError> {
        let mut hpke = self.hpke(Mode::Base);
        let (kem_output, context) = hpke
            .setup_sender(&hpke_public(remote_key), info, None, None, None)
            .map_err(|_| CryptoError::Hpke)?;
        Ok((kem_output, SenderContext(context)))
    }

    fn hpke_setup_r(
        &self,
        kem_output: &[u8],
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
    ) -> Result<ReceiverContext, CryptoError> {
        self.receiver(kem_output, local_secret, local_public, info, None)
            .map(ReceiverContext)
    }

    fn kem_derive(&self, ikm: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), CryptoError> {
        let (secret, public) = derive_x25519(ikm)?;
        Ok((
            HpkeSecretKey::from(secret.to_vec()),
            HpkePublicKey::from(public),
        ))
    }

    fn kem_generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), CryptoError> {
        let mut ikm = Zeroizing::new([0u8; X25519_LEN]);
        self.fill(&mut *ikm);
        self.kem_derive(&*ikm)
    }

    fn kem_public_key_validate(&self, key: &HpkePublicKey) -> Result<(), CryptoError> {
        if key.len() == X25519_LEN {
            Ok(())
        } else {
            Err(CryptoError::KemPublicKey)
        }
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        self.fill(out);
        Ok(())
    }

    fn signature_key_generate(
        &self,
    ) -> Result<(SignatureSecretKey, SignaturePublicKey), CryptoError> {
        let mut seed = Zeroizing::new([0u8; ED25519_SEED_LEN]);
        self.fill(&mut *seed);
        let key = SigningKey::from_bytes(&seed);
        Ok((
            SignatureSecretKey::new_slice(&*seed),
            SignaturePublicKey::new_slice(key.verifying_key().as_bytes()),
        ))
    }

    fn signature_key_derive_public(
        &self,
        secret_key: &SignatureSecretKey,
    ) -> Result<SignaturePublicKey, CryptoError> {
        let key = signing_key(secret_key)?;
        Ok(SignaturePublicKey::new_slice(
            key.verifying_key().as_bytes(),
        ))
    }

    fn sign(&self, secret_key: &SignatureSecretKey, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = signing_key(secret_key)?;
        Ok(key.sign(data).to_bytes().to_vec())
    }

    fn verify(
        &self,
        public_key: &SignaturePublicKey,
        signature: &[u8],
        data: &[u8],
    ) -> Result<(), CryptoError> {
        let key_bytes: &[u8; 32] = public_key
            .as_bytes()
            .try_into()
            .map_err(|_| CryptoError::SignatureKey)?;
        let key = VerifyingKey::from_bytes(key_bytes).map_err(|_| CryptoError::SignatureKey)?;
        // A small-order key could "sign" many messages at once; refuse it
        // here (a few doublings) instead of `verify_strict`, which also
        // decompresses every signature's R and made verification 15% slower
        // than other providers'. `verify` itself refuses non-canonical S.
        if key.is_weak() {
            return Err(CryptoError::SignatureKey);
        }
        let signature = Signature::from_slice(signature).map_err(|_| CryptoError::Signature)?;
        key.verify(data, &signature)
            .map_err(|_| CryptoError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9180, A.1.1 (DHKEM(X25519, HKDF-SHA256)): the ephemeral key
    /// pair derived from `ikmE`.
    #[test]
    fn derive_key_pair_matches_rfc_9180() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let ikm = hex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234");
        let (secret, public) = derive_x25519(&ikm).unwrap();
        assert_eq!(
            secret.as_slice(),
            hex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
        );
        assert_eq!(
            public,
            hex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
        );
    }

    #[test]
    fn derive_key_pair_is_hpke_rs_s() {
        let crypto = SatsumaCrypto::from_seed([5; 32]);
        for ikm in [
            &[0u8; 32][..],
            &[7; 32],
            b"a longer input keying material than 32 bytes",
        ] {
            let ours = crypto.kem_derive(ikm).unwrap();
            let theirs = crypto
                .hpke(Mode::Base)
                .derive_key_pair(ikm)
                .unwrap()
                .into_keys();
            assert_eq!(ours.0.as_ref(), theirs.0.as_slice());
            assert_eq!(ours.1.as_ref(), theirs.1.as_slice());
        }
    }

    #[test]
    fn small_order_signature_keys_are_refused() {
        let crypto = SatsumaCrypto::from_seed([3; 32]);
        // The identity point: every "signature" with R = identity and S = 0
        // would verify under it with the cofactorless equation.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut signature = [0u8; 64];
        signature[0] = 1;
        assert_eq!(
            crypto.verify(
                &SignaturePublicKey::new_slice(&identity),
                &signature,
                b"any"
            ),
            Err(CryptoError::SignatureKey)
        );
    }

    /// Every point of small order on the curve (the eight encodings of
    /// libsodium's block list), not only the identity.
    #[test]
    fn every_small_order_signature_key_is_refused() {
        const SMALL_ORDER: [&str; 8] = [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        ];
        let crypto = SatsumaCrypto::from_seed([3; 32]);
        for hex in SMALL_ORDER {
            let key: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            assert_eq!(
                crypto.verify(&SignaturePublicKey::new_slice(&key), &[0u8; 64], b"any"),
                Err(CryptoError::SignatureKey),
                "{hex}"
            );
        }
        // A real key's bad signature is a signature error, not a key error.
        let (_, public) = crypto.signature_key_generate().unwrap();
        assert_eq!(
            crypto.verify(&public, &[0u8; 64], b"any"),
            Err(CryptoError::Signature)
        );
    }

    #[test]
    fn hpke_opens_only_with_the_matching_public_key() {
        let crypto = SatsumaCrypto::from_seed([4; 32]);
        let (secret, public) = crypto.kem_generate().unwrap();
        let sealed = crypto
            .hpke_seal(&public, b"info", Some(b"aad"), b"secret")
            .unwrap();
        let opened = crypto
            .hpke_open(&sealed, &secret, &public, b"info", Some(b"aad"))
            .unwrap();
        assert_eq!(opened.as_slice(), b"secret");
        let (_, other) = crypto.kem_generate().unwrap();
        assert_eq!(
            crypto.hpke_open(&sealed, &secret, &other, b"info", Some(b"aad")),
            Err(CryptoError::Hpke)
        );
    }
}
