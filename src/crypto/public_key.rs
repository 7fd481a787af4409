//! Public keys as the appliance handles them: read from a token's attributes or from a
//! SubjectPublicKeyInfo, written back as SPKI DER/PEM, and used to verify a signature over a prehash.

use super::{der_to_raw, CryptoError};
use serde::{Deserialize, Serialize};
use signature::hazmat::PrehashVerifier;
use spki::{DecodePublicKey, EncodePublicKey};

/// The key algorithms a seal or appliance key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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

    /// Precomputes this key's verification table (`ecmul`), for a key that will be verified often:
    /// a token's key. Costs a few milliseconds once; other keys verify correctly without it.
    pub fn prepare(&self) {
        match self {
            PublicKey::Sm2(k) => super::ecmul::prepare::<::sm2::Sm2>(k.as_affine()),
            PublicKey::P256(k) => super::ecmul::prepare::<p256::NistP256>(k.as_affine()),
            PublicKey::Rsa(_) => {}
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
                Ok(der_to_raw(sig, 32)?)
            }
        };
        match self {
            PublicKey::Sm2(k) => super::sm2::verify_e(k, prehash, &raw_ec(sig)?),
            PublicKey::P256(k) => {
                let s = p256::ecdsa::Signature::from_slice(&raw_ec(sig)?)
                    .map_err(|_| CryptoError::MalformedSignature("P-256 r||s out of range"))?;
                verify_p256(k, prehash, &s)
            }
            PublicKey::Rsa(k) => {
                k.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), prehash, sig).map_err(|_| CryptoError::BadSignature)
            }
        }
    }
}

/// ECDSA verification (SEC 1 §4.1.4): with w = s⁻¹, valid iff x(z·w·G + r·w·Q) mod n = r. The tables of
/// `ecmul` answer that; RustCrypto does in their rare exception.
fn verify_p256(key: &p256::PublicKey, prehash: &[u8], sig: &p256::ecdsa::Signature) -> Result<(), CryptoError> {
    use p256::elliptic_curve::ops::Reduce;
    let (r, s) = (*sig.r(), *sig.s());
    let z = <p256::Scalar as Reduce<p256::U256>>::reduce_bytes(&p256::FieldBytes::from(
        <[u8; 32]>::try_from(prehash).map_err(|_| CryptoError::BadSignature)?,
    ));
    // s is public: the variable-time inversion is several times faster than the constant-time one.
    let w: p256::Scalar =
        Option::from(p256::elliptic_curve::ops::Invert::invert_vartime(&s)).ok_or(CryptoError::BadSignature)?;
    match super::ecmul::lincomb_x_is::<p256::NistP256>(&(z * w), key.as_affine(), &(r * w), &r) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CryptoError::BadSignature),
        Err(super::ecmul::Exceptional) => {
            p256::ecdsa::VerifyingKey::from(key).verify_prehash(prehash, sig).map_err(|_| CryptoError::BadSignature)
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

    /// Host verification (the tables of `ecmul`) gives RustCrypto's verdict on good signatures and on
    /// each kind of damage, for keys with a table and without.
    #[test]
    fn verification_agrees_with_rustcrypto() {
        use signature::hazmat::PrehashSigner;
        for seed in 1..=24u8 {
            let sm2_sk = ::sm2::dsa::SigningKey::from_slice("1234567812345678", &[seed; 32]).unwrap();
            let p256_sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let sm2_pk = PublicKey::Sm2(::sm2::PublicKey::from_affine(*sm2_sk.verifying_key().as_affine()).unwrap());
            let p256_pk = PublicKey::P256(p256::PublicKey::from(p256_sk.verifying_key()));
            if seed % 2 == 0 {
                sm2_pk.prepare();
                p256_pk.prepare();
            }
            let e = super::super::sm3(&[seed]);
            let s1: ::sm2::dsa::Signature = sm2_sk.sign_prehash(&e).unwrap();
            let s2: p256::ecdsa::Signature = p256_sk.sign_prehash(&e).unwrap();
            for (pk, sig, rc) in [(&sm2_pk, s1.to_bytes().to_vec(), 0), (&p256_pk, s2.to_bytes().to_vec(), 1)] {
                let rustcrypto = |e: &[u8], sig: &[u8]| -> bool {
                    use signature::hazmat::PrehashVerifier;
                    if rc == 0 {
                        ::sm2::dsa::Signature::from_slice(sig)
                            .map(|s| sm2_sk.verifying_key().verify_prehash(e, &s).is_ok())
                            .unwrap_or(false)
                    } else {
                        p256::ecdsa::Signature::from_slice(sig)
                            .map(|s| p256_sk.verifying_key().verify_prehash(e, &s).is_ok())
                            .unwrap_or(false)
                    }
                };
                assert!(pk.verify_prehashed(&e, &sig).is_ok(), "seed {seed}");
                assert!(rustcrypto(&e, &sig));
                for flip in [0usize, 17, 31, 32, 50, 63] {
                    let mut bad = sig.clone();
                    bad[flip] ^= 1 << (seed % 8);
                    assert_eq!(pk.verify_prehashed(&e, &bad).is_ok(), rustcrypto(&e, &bad), "seed {seed} flip {flip}");
                    assert!(pk.verify_prehashed(&e, &bad).is_err());
                    let mut other = e;
                    other[flip % 32] ^= 0x80;
                    assert!(pk.verify_prehashed(&other, &sig).is_err());
                    assert!(!rustcrypto(&other, &sig));
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
        /// Random keys, digests and signature bytes, some made valid: the tables and RustCrypto agree.
        #[test]
        fn random_inputs_get_rustcrypto_verdicts(
            d in proptest::array::uniform32(1u8..),
            e in proptest::array::uniform32(proptest::num::u8::ANY),
            junk in proptest::collection::vec(proptest::num::u8::ANY, 64),
            valid in proptest::bool::ANY,
            prepared in proptest::bool::ANY,
        ) {
            use signature::hazmat::{PrehashSigner, PrehashVerifier};
            let sm2_sk = ::sm2::dsa::SigningKey::from_slice("1234567812345678", &d).unwrap();
            let pk = PublicKey::Sm2(::sm2::PublicKey::from_affine(*sm2_sk.verifying_key().as_affine()).unwrap());
            let p256_sk = p256::ecdsa::SigningKey::from_slice(&d).unwrap();
            let p256_pk = PublicKey::P256(p256::PublicKey::from(p256_sk.verifying_key()));
            if prepared {
                pk.prepare();
                p256_pk.prepare();
            }
            let (s1, s2) = if valid {
                let a: ::sm2::dsa::Signature = sm2_sk.sign_prehash(&e).unwrap();
                let b: p256::ecdsa::Signature = p256_sk.sign_prehash(&e).unwrap();
                (a.to_bytes().to_vec(), b.to_bytes().to_vec())
            } else {
                (junk.clone(), junk)
            };
            let rc1 = ::sm2::dsa::Signature::from_slice(&s1)
                .map(|s| sm2_sk.verifying_key().verify_prehash(&e, &s).is_ok())
                .unwrap_or(false);
            let rc2 = p256::ecdsa::Signature::from_slice(&s2)
                .map(|s| p256_sk.verifying_key().verify_prehash(&e, &s).is_ok())
                .unwrap_or(false);
            proptest::prop_assert_eq!(pk.verify_prehashed(&e, &s1).is_ok(), rc1);
            proptest::prop_assert_eq!(p256_pk.verify_prehashed(&e, &s2).is_ok(), rc2);
            proptest::prop_assert_eq!(rc1 && rc2, valid);
        }
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(PublicKey::from_spki_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(PublicKey::from_ec_point(KeyAlg::P256, &[4u8; 65]).is_err());
    }
}
