//! GM/T 0010 (GB/T 35275) SignedData with SM2, and its PKCS#7 twin for P-256: produce (attached or
//! detached, with signed attributes contentType, signingTime and messageDigest) and verify
//! (STANDARDS.md §2.4).
//!
//! The signature covers DER(signedAttrs) with the `[0]` tag replaced by SET (0x31), hashed per the
//! key: SM2 with SM3 and the default ID, or ECDSA with SHA-256. Without signed attributes (ofdrw's
//! variant) it covers the content itself. Verification reads the stored bytes only; `openssl cms`
//! cannot check GM/T 0010 (it refuses the content type), so our tests use `openssl pkeyutl` on the
//! signed attributes instead.

use super::oid::*;
use super::ses::{self, children, der_int, der_oid, der_tlv, oid, seq, step, tlv, Report, SesError, VerifyOptions};
use super::x509::Cert;
use crate::crypto::{self, KeyAlg, KeySigner, PublicKey};
use std::time::SystemTime;

fn bad(m: impl Into<String>) -> SesError {
    SesError(m.into())
}

/// UTCTime (`YYMMDDHHMMSSZ`): GeneralizedTime's text without the century.
fn utc_time(t: SystemTime) -> Vec<u8> {
    der_tlv(0x17, &ses::generalized_time_text(t).as_bytes()[2..])
}

fn attribute(oid_text: &str, value: &[u8]) -> Result<Vec<u8>, SesError> {
    Ok(seq(&[&der_oid(oid_text)?, &der_tlv(0x31, value)]))
}

/// DER SET OF: elements sorted by their encoding.
fn set_of(mut items: Vec<Vec<u8>>) -> Vec<u8> {
    items.sort();
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    der_tlv(0x31, &refs.concat())
}

/// The digest of `content` for a signer key.
pub fn content_digest(alg: KeyAlg, content: &[u8]) -> [u8; 32] {
    if alg == KeyAlg::Sm2 {
        crypto::sm3(content)
    } else {
        crypto::sha256(content)
    }
}

/// Builds a SignedData over `content` (attached, or detached when `detached`), signed at `time` by
/// `signer`, the holder of `cert`'s key.
pub fn sign(
    content: &[u8],
    detached: bool,
    time: SystemTime,
    cert: &Cert,
    signer: &dyn KeySigner,
) -> Result<Vec<u8>, SesError> {
    let key = cert.public_key().map_err(|e| bad(e.to_string()))?;
    if signer.verifying_key() != key {
        return Err(bad("the signer's key is not the certificate's key"));
    }
    let (gm, digest_oid, sig_oid) = match key.alg() {
        KeyAlg::Sm2 => (true, SM3, SM2_1),
        KeyAlg::P256 => (false, SHA256, ECDSA_SHA256),
        other => return Err(bad(format!("SignedData with {other} keys is not supported"))),
    };
    let (signed_data_oid, data_oid) = if gm { (GM_SIGNED_DATA, GM_DATA) } else { (PKCS7_SIGNED_DATA, PKCS7_DATA) };
    let digest = content_digest(key.alg(), content);
    let attrs = vec![
        attribute(ATTR_CONTENT_TYPE, &der_oid(data_oid)?)?,
        attribute(ATTR_SIGNING_TIME, &utc_time(time))?,
        attribute(ATTR_MESSAGE_DIGEST, &der_tlv(0x04, &digest))?,
    ];
    let attrs_set = set_of(attrs);
    let signature = signer.try_sign(&attrs_set).map_err(|e| bad(format!("signing: {e}")))?.into_vec();
    let mut signed_attrs = attrs_set.clone();
    signed_attrs[0] = 0xa0;
    let digest_alg = if gm { seq(&[&der_oid(digest_oid)?, &[0x05, 0x00]]) } else { seq(&[&der_oid(digest_oid)?]) };
    let sig_alg = if gm { seq(&[&der_oid(sig_oid)?, &[0x05, 0x00]]) } else { seq(&[&der_oid(sig_oid)?]) };
    let signer_info = seq(&[
        &der_int(1),
        &seq(&[&cert.issuer_der(), &cert.serial_der()]),
        &digest_alg,
        &signed_attrs,
        &sig_alg,
        &der_tlv(0x04, &signature),
    ]);
    let encap = if detached {
        seq(&[&der_oid(data_oid)?])
    } else {
        seq(&[&der_oid(data_oid)?, &der_tlv(0xa0, &der_tlv(0x04, content))])
    };
    let signed_data = seq(&[
        &der_int(1),
        &der_tlv(0x31, &digest_alg),
        &encap,
        &der_tlv(0xa0, cert.der()),
        &der_tlv(0x31, &signer_info),
    ]);
    Ok(seq(&[&der_oid(signed_data_oid)?, &der_tlv(0xa0, &signed_data)]))
}

/// A parsed SignedData: what verification needs, from the stored bytes.
#[derive(Debug, Clone)]
pub struct SignedData {
    /// The embedded content, if attached.
    pub content: Option<Vec<u8>>,
    /// The certificates carried, DER.
    pub certificates: Vec<Vec<u8>>,
    /// The signers.
    pub signers: Vec<SignerInfo>,
}

/// One SignerInfo.
#[derive(Debug, Clone)]
pub struct SignerInfo {
    /// issuer Name DER and serial INTEGER DER.
    pub issuer_serial: (Vec<u8>, Vec<u8>),
    /// The signed attributes re-tagged as SET (what was signed), if present.
    pub signed_attrs: Option<Vec<u8>>,
    /// messageDigest attribute.
    pub message_digest: Option<Vec<u8>>,
    /// signingTime attribute.
    pub signing_time: Option<SystemTime>,
    /// The signature algorithm OID.
    pub sig_alg: String,
    /// The signature as stored.
    pub signature: Vec<u8>,
}

/// Parses a ContentInfo holding a SignedData (GM/T 0010 or PKCS#7 OIDs).
pub fn parse(bytes: &[u8]) -> Result<SignedData, SesError> {
    let (outer, _) = tlv(bytes)?;
    let ci = children(&outer)?;
    let kind = oid(ci.first().ok_or_else(|| bad("empty ContentInfo"))?, "contentType")?;
    if kind != GM_SIGNED_DATA && kind != PKCS7_SIGNED_DATA {
        return Err(bad(format!("content type {kind} is not SignedData")));
    }
    let explicit = children(ci.get(1).ok_or_else(|| bad("no content"))?)?;
    let sd = children(explicit.first().ok_or_else(|| bad("empty [0]"))?)?;
    let encap = children(sd.get(2).ok_or_else(|| bad("no encapContentInfo"))?)?;
    let content = match encap.get(1) {
        Some(e) => {
            let inner = children(e)?;
            let octets = inner.first().ok_or_else(|| bad("empty eContent"))?;
            Some(octets.content.to_vec())
        }
        None => None,
    };
    let mut certificates = Vec::new();
    let mut signer_set = None;
    for el in &sd[3..] {
        match el.tag {
            0xa0 => certificates.extend(children(el)?.iter().map(|c| c.raw.to_vec())),
            0xa1 => {}
            0x31 => signer_set = Some(*el),
            t => return Err(bad(format!("unexpected tag 0x{t:02x} in SignedData"))),
        }
    }
    let mut signers = Vec::new();
    for si in children(&signer_set.ok_or_else(|| bad("no signerInfos"))?)? {
        let f = children(&si)?;
        let ias = children(f.get(1).ok_or_else(|| bad("no sid"))?)?;
        let issuer_serial = (
            ias.first().ok_or_else(|| bad("no issuer"))?.raw.to_vec(),
            ias.get(1).ok_or_else(|| bad("no serial"))?.raw.to_vec(),
        );
        let mut i = 3;
        let (mut signed_attrs, mut message_digest, mut signing_time) = (None, None, None);
        if f.get(3).is_some_and(|t| t.tag == 0xa0) {
            let a = &f[3];
            let mut set = a.raw.to_vec();
            set[0] = 0x31;
            signed_attrs = Some(set);
            for attr in children(a)? {
                let parts = children(&attr)?;
                let id = oid(parts.first().ok_or_else(|| bad("attribute type"))?, "attribute type")?;
                let values = children(parts.get(1).ok_or_else(|| bad("attribute values"))?)?;
                let v = values.first().ok_or_else(|| bad("empty attribute"))?;
                match id.as_str() {
                    ATTR_MESSAGE_DIGEST => message_digest = Some(v.content.to_vec()),
                    ATTR_SIGNING_TIME => {
                        let mut w = Vec::new();
                        signing_time = ses::read_time_pub(v, &mut w).ok();
                    }
                    _ => {}
                }
            }
            i = 4;
        }
        let alg = children(f.get(i).ok_or_else(|| bad("no signature algorithm"))?)?;
        let sig_alg = oid(alg.first().ok_or_else(|| bad("no signature algorithm"))?, "signature algorithm")?;
        let signature = f.get(i + 1).ok_or_else(|| bad("no signature"))?.content.to_vec();
        signers.push(SignerInfo { issuer_serial, signed_attrs, message_digest, signing_time, sig_alg, signature });
    }
    if signers.is_empty() {
        return Err(bad("no signers"));
    }
    Ok(SignedData { content, certificates, signers })
}

fn key_fits(alg: &str, key: &PublicKey) -> bool {
    matches!(
        (alg, key),
        (SM2_1 | SM2_SM3 | SM2, PublicKey::Sm2(_)) | (ECDSA_SHA256 | EC_PUBLIC_KEY, PublicKey::P256(_))
    )
}

/// Verifies a SignedData: each signer's signature, the message digest against the content (attached,
/// or `detached` given here), and the signer certificate at the signing time (or now); trust as in
/// `opts`. Steps: `format`, `signer_signature`, `data_hash`, `signer_certificate`, `trust_chain`,
/// `revocation`.
pub fn verify(bytes: &[u8], detached: Option<&[u8]>, opts: &VerifyOptions<'_>) -> Report {
    let sd = match parse(bytes) {
        Ok(s) => s,
        Err(e) => return ses::unreadable(&e),
    };
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    step(
        &mut steps,
        "format",
        Some(true),
        format!(
            "SignedData with {} signer(s), content {}",
            sd.signers.len(),
            if sd.content.is_some() { "attached" } else { "detached" }
        ),
    );
    let content = sd.content.as_deref().or(detached);
    for (n, si) in sd.signers.iter().enumerate() {
        let cert = sd
            .certificates
            .iter()
            .filter_map(|c| Cert::parse(c).ok())
            .find(|c| c.issuer_der() == si.issuer_serial.0 && c.serial_der() == si.issuer_serial.1);
        let Some(cert) = cert else {
            step(
                &mut steps,
                "signer_signature",
                Some(false),
                format!("signer {n}: its certificate is not in the SignedData"),
            );
            continue;
        };
        let key = match cert.public_key() {
            Ok(k) => k,
            Err(e) => {
                step(&mut steps, "signer_signature", Some(false), format!("signer {n}: {e}"));
                continue;
            }
        };
        let signed: &[u8] = match (&si.signed_attrs, content) {
            (Some(a), _) => a,
            (None, Some(c)) => c,
            (None, None) => {
                step(
                    &mut steps,
                    "signer_signature",
                    None,
                    format!("signer {n}: no signed attributes and no content to check"),
                );
                continue;
            }
        };
        let sig = ses::signature_for_verify(&si.signature, &mut warnings, "signature");
        let ok = key_fits(&si.sig_alg, &key) && crypto::verify_message(&key, signed, &sig).is_ok();
        let over = if si.signed_attrs.is_some() { "the signed attributes" } else { "the content" };
        step(
            &mut steps,
            "signer_signature",
            Some(ok),
            format!(
                "signer {n} ({}): {} over {over}",
                cert.subject_text(),
                if ok { "verifies" } else { "does not verify" }
            ),
        );
        match (&si.message_digest, content) {
            (Some(md), Some(c)) => {
                let d = content_digest(key.alg(), c);
                let ok = md[..] == d[..];
                step(
                    &mut steps,
                    "data_hash",
                    Some(ok),
                    if ok {
                        "messageDigest is the content's digest".to_string()
                    } else {
                        format!("messageDigest {} is not the content's digest {}", hex::encode(md), hex::encode(d))
                    },
                );
            }
            (Some(_), None) => step(&mut steps, "data_hash", None, "detached content not given"),
            (None, _) => step(
                &mut steps,
                "data_hash",
                None,
                "no messageDigest attribute: the signature covers the content itself",
            ),
        }
        let at = si.signing_time.or(opts.at).unwrap_or_else(SystemTime::now);
        let (ok, detail) = ses::cert_validity_at(cert.der(), at);
        step(&mut steps, "signer_certificate", Some(ok), detail);
        ses::trust_steps(&mut steps, &[("signer certificate", cert.der())], at, opts);
    }
    ses::finish(steps, warnings, opts.require_trust)
}
