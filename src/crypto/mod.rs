//! Host-side cryptography that never holds a private key.
//!
//! Everything the appliance checks on its own CPU lives here: SM3, the SM2 user hash Z and the
//! signed value e (GB/T 32918.2 §6.1), signature verification for SM2, ECDSA P-256 and RSA, and the
//! conversion between raw `r||s` and DER signatures. It deliberately contains no signing code: private
//! keys live in the token, and the `token` module is the only place that asks for a signature.
//! Field and curve arithmetic come from the RustCrypto crates. The one thing added to them is
//! `ecmul`: precomputed tables that make verification several times faster (public values only).

pub mod ecmul;
mod public_key;
mod signer;
pub mod sm2;

pub use public_key::{KeyAlg, PublicKey};
pub use seald_gm::{der_to_raw, raw_to_der, sha256, sm3};
pub use signer::{DerSignature, KeySigner};

/// What went wrong on the host side. Messages describe the input, never key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A signature is not a well-formed encoding for its algorithm.
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    /// A public key could not be read.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(String),
    /// The signature is well formed but does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A digest or e has the wrong length for the algorithm.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// What was measured.
        what: &'static str,
        /// The length the algorithm needs.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The SM2 user ID is longer than ENTL can express (8191 bytes).
    #[error("SM2 user ID too long ({0} bytes; at most 8191)")]
    UserIdTooLong(usize),
}

impl From<seald_gm::GmError> for CryptoError {
    fn from(e: seald_gm::GmError) -> Self {
        match e {
            seald_gm::GmError::MalformedSignature(m) => CryptoError::MalformedSignature(m),
            seald_gm::GmError::MalformedPublicKey(m) => CryptoError::MalformedPublicKey(m),
            seald_gm::GmError::UserIdTooLong(n) => CryptoError::UserIdTooLong(n),
        }
    }
}

/// Verifies a signature over a whole message, as the token layer signs `SignInput::Message`: SM2
/// with e = SM3(Z||M) for the default ID, otherwise SHA-256(M). For records that seald itself signs
/// (audit checkpoints, manifests).
pub fn verify_message(key: &PublicKey, message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let prehash = match key {
        PublicKey::Sm2(pk) => sm2::e(pk, sm2::DEFAULT_USER_ID, message)?,
        _ => sha256(message),
    };
    key.verify_prehashed(&prehash, sig)
}
