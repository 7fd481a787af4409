//! What seald and its test token, softtoken, both need, and nothing else: the PKCS#11 token
//! profiles (vendor mechanism codes, signature format, where Z is computed), SM2's user hash Z and
//! signed value e (GB/T 32918.2), SM3 and SHA-256, and the raw `r||s` / DER signature encodings.
//!
//! It holds no key, signs nothing and verifies nothing: verification stays in seald's `crypto`
//! (with its precomputed tables), and signing in the token.

#![deny(missing_docs)]

pub mod encoding;
pub mod profile;
pub mod sm2;

pub use encoding::{der_to_raw, raw_to_der};

use sha2::Digest as _;

/// What went wrong. Messages describe the input, never key material.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GmError {
    /// A signature is not a well-formed encoding.
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    /// A public key could not be used.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(String),
    /// The SM2 user ID is longer than ENTL can express (8191 bytes).
    #[error("SM2 user ID too long ({0} bytes; at most 8191)")]
    UserIdTooLong(usize),
}

/// SM3 digest (GB/T 32905).
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
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
