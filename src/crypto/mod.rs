//! Host-side cryptography that never holds a private key.
//!
//! Everything the appliance checks on its own CPU lives here: SM3, the SM2 user hash Z and the
//! signed value e (GB/T 32918.2 §6.1), signature verification for SM2, ECDSA P-256 and RSA, and the
//! conversion between raw `r||s` and DER signatures. It deliberately contains no signing code: private
//! keys live in the token, and the `token` module is the only place that asks for a signature.
//! Field and curve arithmetic come from the RustCrypto crates. The one thing added to them is
//! `ecmul`: precomputed tables that make verification several times faster (public values only).

pub mod ecmul;
mod encoding;
mod public_key;
mod signer;
pub mod sm2;

pub use encoding::{der_to_raw, raw_to_der};
pub use public_key::{KeyAlg, PublicKey};
pub use signer::{signer_error_source, DerSignature, KeySigner};

use sha2::Digest as _;

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

/// SM3 digest (GB/T 32905).
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
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

/// SHA-256 digest.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_matches_the_standard_examples() {
        // GB/T 32905-2016 examples 1 and 2.
        assert_eq!(hex::encode(sm3(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        assert_eq!(
            hex::encode(sm3(&b"abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }
}
