//! Key templates, generation, lookup by CKA_ID, public-key export and the sign call itself, for one
//! session. The pool (`pool.rs`) decides which session; this file decides what to ask it.

use super::profile::{EcPointFormat, Profile, SignatureFormat, ZPlace};
use super::{KeyAttributes, KeyId, KeyInfo, SignInput, TokenError};
use crate::crypto::{self, KeyAlg, PublicKey};
use cryptoki::mechanism::vendor_defined::{VendorDefinedMechanism, CKM_VENDOR_DEFINED};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// DER of OID 1.2.840.10045.3.1.7 (prime256v1).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of OID 1.2.156.10197.1.301 (sm2p256v1).
const SM2_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: &[u8] =
    &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// A mechanism by its code: vendor codes as vendor-defined, standard ones by name.
pub(super) fn mechanism(code: u64) -> Result<Mechanism<'static>, TokenError> {
    if code >= CKM_VENDOR_DEFINED {
        let t = MechanismType::new_vendor_defined(code)
            .map_err(|_| TokenError::Unsupported(format!("mechanism {code:#x}")))?;
        return Ok(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(t, None)));
    }
    Ok(match code {
        0x0000 => Mechanism::RsaPkcsKeyPairGen,
        0x0001 => Mechanism::RsaPkcs,
        0x1040 => Mechanism::EccKeyPairGen,
        0x1041 => Mechanism::Ecdsa,
        other => return Err(TokenError::Unsupported(format!("standard mechanism {other:#x} in a profile"))),
    })
}

/// A key-type attribute value by its code.
fn key_type(code: u64) -> Result<KeyType, TokenError> {
    KeyType::try_from(code).map_err(|_| TokenError::Unsupported(format!("key type {code:#x}")))
}

/// Maps a cryptoki failure to the op name; the pool classifies it before this is used.
pub(super) fn p11(op: &'static str) -> impl Fn(cryptoki::error::Error) -> TokenError {
    move |e| TokenError::Pkcs11 { op, rv: e.to_string() }
}

/// Generates a key pair of `alg` with the given CKA_ID and label, inside the token.
pub(super) fn generate(
    session: &Session,
    profile: &Profile,
    alg: KeyAlg,
    id: &KeyId,
    label: &str,
) -> Result<(), cryptoki::error::Error> {
    let common = |private: bool| {
        let mut t =
            vec![Attribute::Token(true), Attribute::Id(id.0.clone()), Attribute::Label(label.as_bytes().to_vec())];
        if private {
            t.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                // Signing keys sign and do nothing else.
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
        } else {
            t.extend([Attribute::Private(false), Attribute::Verify(true)]);
        }
        t
    };
    let (mut public, mut private) = (common(false), common(true));
    let mechanism = match alg {
        KeyAlg::Sm2 => {
            let sm2 = profile.sm2.as_ref().ok_or(cryptoki::error::Error::NotSupported)?;
            let kt = key_type(sm2.key_type).map_err(|_| cryptoki::error::Error::InvalidValue)?;
            public.push(Attribute::KeyType(kt));
            private.push(Attribute::KeyType(kt));
            if sm2.ec_params {
                public.push(Attribute::EcParams(SM2_PARAMS.to_vec()));
            }
            sm2.keygen
        }
        KeyAlg::P256 => {
            let ec = profile.ecdsa.as_ref().ok_or(cryptoki::error::Error::NotSupported)?;
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            ec.keygen
        }
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 => {
            let rsa = profile.rsa.as_ref().ok_or(cryptoki::error::Error::NotSupported)?;
            let bits: u64 = if alg == KeyAlg::Rsa2048 { 2048 } else { 3072 };
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            rsa.keygen
        }
    };
    let mechanism = self::mechanism(mechanism).map_err(|_| cryptoki::error::Error::NotSupported)?;
    let _handles = session.generate_key_pair(&mechanism, &public, &private)?;
    Ok(())
}

/// The object of `class` with this CKA_ID, if any.
pub(super) fn find(
    session: &Session,
    class: ObjectClass,
    id: &KeyId,
) -> Result<Option<ObjectHandle>, cryptoki::error::Error> {
    let found = session.find_objects(&[Attribute::Class(class), Attribute::Id(id.0.clone())])?;
    Ok(found.first().copied())
}

/// Reads the public key object with this CKA_ID and works out the algorithm from the profile.
pub(super) fn read_public(
    session: &Session,
    profile: &Profile,
    id: &KeyId,
) -> Result<Result<KeyInfo, TokenError>, cryptoki::error::Error> {
    let Some(handle) = find(session, ObjectClass::PUBLIC_KEY, id)? else {
        return Ok(Err(TokenError::KeyNotFound(id.clone())));
    };
    let attrs = session.get_attributes(
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::Label,
            AttributeType::EcParams,
            AttributeType::EcPoint,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
        ],
    )?;
    let (mut kt, mut label, mut params, mut point, mut n, mut e) = (None, String::new(), None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => kt = Some(u64::from(t)),
            Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    Ok((|| {
        let kt = kt.ok_or_else(|| TokenError::Unsupported(format!("key {id} has no CKA_KEY_TYPE")))?;
        let sm2_type = profile.sm2.as_ref().map(|s| s.key_type);
        let alg = if Some(kt) == sm2_type
            || (kt == u64::from(KeyType::EC) && params.as_deref() == Some(SM2_PARAMS) && sm2_type.is_some())
        {
            KeyAlg::Sm2
        } else if kt == u64::from(KeyType::EC) {
            if params.as_deref() != Some(P256_PARAMS) {
                return Err(TokenError::Unsupported(format!("key {id}: EC curve other than P-256")));
            }
            KeyAlg::P256
        } else if kt == u64::from(KeyType::RSA) {
            let (Some(n), Some(e)) = (n, e) else {
                return Err(TokenError::Unsupported(format!("key {id}: RSA without modulus")));
            };
            let key = PublicKey::from_rsa_parts(&n, &e)?;
            return Ok(KeyInfo { id: id.clone(), label, alg: key.alg(), public_key: key });
        } else {
            return Err(TokenError::Unsupported(format!("key {id}: key type {kt:#x}")));
        };
        let point = point.ok_or_else(|| TokenError::Unsupported(format!("key {id} has no CKA_EC_POINT")))?;
        let sec1 = ec_point(&point, profile.quirks.ec_point)
            .ok_or_else(|| TokenError::Unsupported(format!("key {id}: unreadable CKA_EC_POINT")))?;
        let key = PublicKey::from_ec_point(alg, sec1)?;
        Ok(KeyInfo { id: id.clone(), label, alg, public_key: key })
    })())
}

/// The uncompressed point inside CKA_EC_POINT: DER OCTET STRING per the standard, or bare where a
/// token deviates. The profile says which to expect first; the other is accepted too.
fn ec_point(value: &[u8], expected: EcPointFormat) -> Option<&[u8]> {
    let der = value.strip_prefix(&[0x04, 0x41][..]).filter(|rest| rest.len() == 65 && rest[0] == 0x04);
    let raw = Some(value).filter(|v| v.len() == 65 && v[0] == 0x04);
    match expected {
        EcPointFormat::Der => der.or(raw),
        EcPointFormat::Raw => raw.or(der),
    }
}

/// CKA_IDs of every private key.
pub(super) fn list_ids(session: &Session) -> Result<Vec<KeyId>, cryptoki::error::Error> {
    let handles = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
    let mut ids = Vec::new();
    for h in handles {
        for a in session.get_attributes(h, &[AttributeType::Id])? {
            if let Attribute::Id(id) = a {
                ids.push(KeyId(id));
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The security attributes of a private key.
pub(super) fn attributes(session: &Session, handle: ObjectHandle) -> Result<KeyAttributes, cryptoki::error::Error> {
    let mut out = KeyAttributes {
        token: false,
        private: false,
        sensitive: false,
        extractable: true,
        always_sensitive: false,
        never_extractable: false,
    };
    let wanted = [
        AttributeType::Token,
        AttributeType::Private,
        AttributeType::Sensitive,
        AttributeType::Extractable,
        AttributeType::AlwaysSensitive,
        AttributeType::NeverExtractable,
    ];
    for a in session.get_attributes(handle, &wanted)? {
        match a {
            Attribute::Token(v) => out.token = v,
            Attribute::Private(v) => out.private = v,
            Attribute::Sensitive(v) => out.sensitive = v,
            Attribute::Extractable(v) => out.extractable = v,
            Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
            Attribute::NeverExtractable(v) => out.never_extractable = v,
            _ => {}
        }
    }
    Ok(out)
}

/// What the token is asked to sign, with which mechanism, and how its output comes back.
pub(super) struct SignPlan {
    pub mechanism: u64,
    pub data: Vec<u8>,
    pub prehash: [u8; 32],
    pub format: Option<SignatureFormat>,
}

/// Chooses mechanism and data for `input` under the profile. Pure: no token calls.
pub(super) fn plan(profile: &Profile, key: &KeyInfo, input: SignInput<'_>) -> Result<SignPlan, TokenError> {
    let prehashed = |d: &[u8], what: &'static str| -> Result<[u8; 32], TokenError> {
        d.try_into().map_err(|_| TokenError::BadInput(format!("{what} must be 32 bytes, got {}", d.len())))
    };
    let unsupported = |what: &str| TokenError::Unsupported(format!("profile '{}' has no {what}", profile.name));
    match (key.alg, &key.public_key) {
        (KeyAlg::Sm2, PublicKey::Sm2(pk)) => {
            let sm2 = profile.sm2.as_ref().ok_or_else(|| unsupported("SM2"))?;
            match input {
                SignInput::Message { data, user_id } => {
                    let uid = user_id.unwrap_or(crypto::sm2::DEFAULT_USER_ID);
                    let e = crypto::sm2::e(pk, uid, data)?;
                    match (sm2.z, sm2.sign_sm3) {
                        (ZPlace::Token, Some(m)) if uid == crypto::sm2::DEFAULT_USER_ID => {
                            Ok(SignPlan { mechanism: m, data: data.to_vec(), prehash: e, format: Some(sm2.signature) })
                        }
                        _ => Ok(SignPlan {
                            mechanism: sm2.sign_e,
                            data: e.to_vec(),
                            prehash: e,
                            format: Some(sm2.signature),
                        }),
                    }
                }
                SignInput::Prehashed(e) => {
                    let e = prehashed(e, "SM2 e")?;
                    Ok(SignPlan { mechanism: sm2.sign_e, data: e.to_vec(), prehash: e, format: Some(sm2.signature) })
                }
            }
        }
        (KeyAlg::P256, _) => {
            let ec = profile.ecdsa.as_ref().ok_or_else(|| unsupported("ECDSA"))?;
            let d = match input {
                SignInput::Message { data, .. } => crypto::sha256(data),
                SignInput::Prehashed(d) => prehashed(d, "SHA-256 digest")?,
            };
            Ok(SignPlan { mechanism: ec.sign, data: d.to_vec(), prehash: d, format: Some(ec.signature) })
        }
        (KeyAlg::Rsa2048 | KeyAlg::Rsa3072, _) => {
            let rsa = profile.rsa.as_ref().ok_or_else(|| unsupported("RSA"))?;
            let d = match input {
                SignInput::Message { data, .. } => crypto::sha256(data),
                SignInput::Prehashed(d) => prehashed(d, "SHA-256 digest")?,
            };
            let mut block = SHA256_DIGEST_INFO.to_vec();
            block.extend_from_slice(&d);
            Ok(SignPlan { mechanism: rsa.sign, data: block, prehash: d, format: None })
        }
        _ => Err(TokenError::Unsupported(format!("key {} has an inconsistent public key", key.id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_reads_both_forms() {
        let mut raw = vec![0x04];
        raw.extend([7u8; 64]);
        let mut der = vec![0x04, 0x41];
        der.extend(&raw);
        assert_eq!(ec_point(&der, EcPointFormat::Der), Some(&raw[..]));
        assert_eq!(ec_point(&raw, EcPointFormat::Der), Some(&raw[..]));
        assert_eq!(ec_point(&der, EcPointFormat::Raw), Some(&raw[..]));
        assert_eq!(ec_point(&raw[..10], EcPointFormat::Raw), None);
    }

    #[test]
    fn sm2_plans_follow_the_profile() {
        let sec1 = hex::decode(
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
        )
        .unwrap();
        let key = KeyInfo {
            id: KeyId(vec![1]),
            label: "k".into(),
            alg: KeyAlg::Sm2,
            public_key: PublicKey::from_ec_point(KeyAlg::Sm2, &sec1).unwrap(),
        };
        let sansec = Profile::builtin("sansec").unwrap();
        let p = plan(&sansec, &key, SignInput::Message { data: b"message digest", user_id: None }).unwrap();
        assert_eq!(p.mechanism, 0x8000_8104);
        assert_eq!(hex::encode_upper(&p.data), "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640");
        assert!(plan(&sansec, &key, SignInput::Prehashed(&[0u8; 31])).is_err());
        let softhsm = Profile::builtin("softhsm2").unwrap();
        assert!(matches!(plan(&softhsm, &key, SignInput::Prehashed(&[0u8; 32])), Err(TokenError::Unsupported(_))));
        // A token that computes Z itself gets M, but only for the default ID.
        let mut token_z = Profile::builtin("softtoken").unwrap();
        token_z.sm2.as_mut().unwrap().z = ZPlace::Token;
        let p = plan(&token_z, &key, SignInput::Message { data: b"message digest", user_id: None }).unwrap();
        assert_eq!((p.mechanism, p.data.as_slice()), (0x8000_5303, &b"message digest"[..]));
        let p = plan(&token_z, &key, SignInput::Message { data: b"m", user_id: Some(b"ALICE") }).unwrap();
        assert_eq!(p.mechanism, 0x8000_5302);
    }
}
