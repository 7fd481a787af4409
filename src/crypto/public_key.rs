//! Public keys as the appliance handles them: read from a token's attributes or from a
//! SubjectPublicKeyInfo, written back as SPKI DER/PEM, and used to verify a signature over a prehash.

use super::{der_to_raw, CryptoError};
use serde::{Deserialize, Serialize};
use signature::hazmat::PrehashVerifier;
use spki::{DecodePublicKey, EncodePublicKey};

/// The key algorithms a seal or appliance key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlg {
    /// SM2 on sm2p256v1, signatures per GB/T 32918.2 with SM3.
    Sm2,
    /// ECDSA on NIST P-256 with SHA-256.
    P256,
    /// RSA-2048, PKCS#1 v1.5 with SHA-256.
    Rsa2048,
    /// RSA-3072, PKCS#1 v1.5 with SHA-256.
    Rsa3072,
}

impl KeyAlg {
    /// The name used in CLIs, config and JSON.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Sm2 => "sm2",
            KeyAlg::P256 => "p256",
            KeyAlg::Rsa2048 => "rsa2048",
            KeyAlg::Rsa3072 => "rsa3072",
        }
    }

    /// The signature algorithm's usual name.
    pub fn signature_name(self) -> &'static str {
        match self {
            KeyAlg::Sm2 => "SM2-with-SM3",
            KeyAlg::P256 => "ECDSA-P256-SHA256",
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 => "RSA-PKCS1v15-SHA256",
        }
    }
}

impl std::str::FromStr for KeyAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sm2" => Ok(KeyAlg::Sm2),
            "p256" | "p-256" | "ecdsa-p256" => Ok(KeyAlg::P256),
            "rsa2048" | "rsa-2048" => Ok(KeyAlg::Rsa2048),
            "rsa3072" | "rsa-3072" => Ok(KeyAlg::Rsa3072),
            other => Err(format!("unknown key algorithm '{other}' (sm2, p256, rsa2048, rsa3072)")),
        }
    }
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A public key of one of the supported algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// SM2 point.
    Sm2(::sm2::PublicKey),
    /// P-256 point.
    P256(p256::PublicKey),
    /// RSA modulus and exponent.
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Reads an uncompressed SEC1 point for an EC algorithm.
    pub fn from_ec_point(alg: KeyAlg, sec1: &[u8]) -> Result<Self, CryptoError> {
        let bad = |e: &dyn std::fmt::Display| CryptoError::MalformedPublicKey(format!("{alg} point: {e}"));
        match alg {
            KeyAlg::Sm2 => ::sm2::PublicKey::from_sec1_bytes(sec1).map(PublicKey::Sm2).map_err(|e| bad(&e)),
            KeyAlg::P256 => p256::PublicKey::from_sec1_bytes(sec1).map(PublicKey::P256).map_err(|e| bad(&e)),
            _ => Err(CryptoError::MalformedPublicKey(format!("{alg} is not an EC algorithm"))),
        }
    }

    /// Builds an RSA key from big-endian modulus and public exponent.
    pub fn from_rsa_parts(modulus: &[u8], exponent: &[u8]) -> Result<Self, CryptoError> {
        let n = rsa::BigUint::from_bytes_be(modulus);
        let e = rsa::BigUint::from_bytes_be(exponent);
        rsa::RsaPublicKey::new(n, e)
            .map(PublicKey::Rsa)
            .map_err(|e| CryptoError::MalformedPublicKey(format!("RSA: {e}")))
    }

    /// Parses a SubjectPublicKeyInfo (DER). SM2 keys are id-ecPublicKey with the sm2p256v1 curve.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        if let Ok(k) = ::sm2::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Sm2(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Rsa(k));
        }
        Err(CryptoError::MalformedPublicKey("not an SM2, P-256 or RSA SubjectPublicKeyInfo".into()))
    }

    /// Parses a PEM `PUBLIC KEY`.
    pub fn from_spki_pem(pem: &str) -> Result<Self, CryptoError> {
        let (label, der) =
            der::pem::decode_vec(pem.as_bytes()).map_err(|e| CryptoError::MalformedPublicKey(format!("PEM: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(CryptoError::MalformedPublicKey(format!("PEM label is {label}, not PUBLIC KEY")));
        }
        Self::from_spki_der(&der)
    }

    /// The algorithm of this key.
    pub fn alg(&self) -> KeyAlg {
        match self {
            PublicKey::Sm2(_) => KeyAlg::Sm2,
            PublicKey::P256(_) => KeyAlg::P256,
            PublicKey::Rsa(k) => {
                if rsa::traits::PublicKeyParts::size(k) > 256 {
                    KeyAlg::Rsa3072
                } else {
                    KeyAlg::Rsa2048
                }
            }
        }
    }

    /// SubjectPublicKeyInfo, DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::Sm2(k) => k.to_public_key_der(),
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        // Encoding a key we already hold as a valid point or modulus cannot fail.
        doc.map(|d| d.into_vec()).unwrap_or_default()
    }

    /// SubjectPublicKeyInfo, PEM.
    pub fn to_spki_pem(&self) -> String {
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &self.to_spki_der()).unwrap_or_default()
    }

    /// SHA-256 fingerprint of the SPKI DER, lowercase hex: a stable name for a key.
    pub fn fingerprint(&self) -> String {
        hex::encode(super::sha256(&self.to_spki_der()))
    }

    /// Field length for raw `r||s` halves (EC keys only).
    pub fn field_len(&self) -> Option<usize> {
        match self {
            PublicKey::Sm2(_) | PublicKey::P256(_) => Some(32),
            PublicKey::Rsa(_) => None,
        }
    }

    /// Verifies `sig` over `prehash`: for SM2 the prehash is e = SM3(Z||M) and `sig` raw r||s or DER;
    /// for P-256 a SHA-256 digest and raw or DER; for RSA a SHA-256 digest and the PKCS#1 v1.5 block.
    pub fn verify_prehashed(&self, prehash: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if prehash.len() != 32 {
            return Err(CryptoError::BadLength { what: "digest", expected: 32, got: prehash.len() });
        }
        let raw_ec = |sig: &[u8]| -> Result<Vec<u8>, CryptoError> {
            if sig.len() == 64 {
                Ok(sig.to_vec())
            } else {
                der_to_raw(sig, 32)
            }
        };
        match self {
            PublicKey::Sm2(k) => super::sm2::verify_e(k, prehash, &raw_ec(sig)?),
            PublicKey::P256(k) => {
                let s = p256::ecdsa::Signature::from_slice(&raw_ec(sig)?)
                    .map_err(|_| CryptoError::MalformedSignature("P-256 r||s out of range"))?;
                p256::ecdsa::VerifyingKey::from(k).verify_prehash(prehash, &s).map_err(|_| CryptoError::BadSignature)
            }
            PublicKey::Rsa(k) => {
                k.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), prehash, sig).map_err(|_| CryptoError::BadSignature)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm2_spki_of_the_annex_a_key_round_trips() {
        // spki_der of GB/T 32918.5 Annex A's public key, as OpenSSL writes it.
        let spki = hex::decode(
            "3059301306072A8648CE3D020106082A811CCF5501822D0342000409F9DF311E5421A150DD7D161E4BC5C6\
             72179FAD1833FC076BB08FF356F35020CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6\
             072DA9AD13",
        )
        .unwrap();
        let k = PublicKey::from_spki_der(&spki).unwrap();
        assert_eq!(k.alg(), KeyAlg::Sm2);
        assert_eq!(k.to_spki_der(), spki);
        assert_eq!(PublicKey::from_spki_pem(&k.to_spki_pem()).unwrap(), k);
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(PublicKey::from_spki_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(PublicKey::from_ec_point(KeyAlg::P256, &[4u8; 65]).is_err());
    }
}
