//! The one signer abstraction that formats build with: RustCrypto's `signature` traits over a DER
//! signature.
//!
//! A certificate, a CSR, a CMS SignedData, a backup manifest and an audit checkpoint are built by
//! code that never sees a private key: it takes a [`KeySigner`], which is any
//! `signature::Signer<DerSignature> + signature::Keypair<VerifyingKey = PublicKey>`. The appliance's
//! signers are token keys (`token::TokenKey`); tests may use software keys. What the signature covers
//! follows the key's algorithm: SM2 with SM3 and the default ID, ECDSA P-256 with SHA-256, or RSA
//! PKCS#1 v1.5 with SHA-256 (the token layer's `SignInput::Message`).

use super::PublicKey;

/// A DER signature: SM2's or ECDSA's `Ecdsa-Sig-Value`, or RSA's PKCS#1 v1.5 block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerSignature(Vec<u8>);

impl DerSignature {
    /// Wraps DER bytes.
    pub fn new(der: Vec<u8>) -> Self {
        DerSignature(der)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl TryFrom<&[u8]> for DerSignature {
    type Error = signature::Error;
    fn try_from(b: &[u8]) -> Result<Self, signature::Error> {
        Ok(DerSignature(b.to_vec()))
    }
}

impl From<DerSignature> for Vec<u8> {
    fn from(s: DerSignature) -> Vec<u8> {
        s.0
    }
}

impl signature::SignatureEncoding for DerSignature {
    type Repr = Vec<u8>;
}

/// A key that signs messages and names its public half: what every builder in `formats` and the
/// journal's checkpoints take.
pub trait KeySigner:
    signature::Signer<DerSignature> + signature::Keypair<VerifyingKey = PublicKey> + Send + Sync
{
}

impl<T> KeySigner for T where
    T: signature::Signer<DerSignature> + signature::Keypair<VerifyingKey = PublicKey> + Send + Sync
{
}
