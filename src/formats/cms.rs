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

pub(crate) fn attribute(oid_text: &str, value: &[u8]) -> Result<Vec<u8>, SesError> {
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
    let data_oid = if key.alg() == KeyAlg::Sm2 { GM_DATA } else { PKCS7_DATA };
    let attrs = vec![
        attribute(ATTR_CONTENT_TYPE, &der_oid(data_oid)?)?,
        attribute(ATTR_SIGNING_TIME, &utc_time(time))?,
        attribute(ATTR_MESSAGE_DIGEST, &der_tlv(0x04, &content_digest(key.alg(), content)))?,
    ];
    build(content, detached, attrs, cert, signer)
}

/// A SignedData over `content` whose signer signs the signed attributes `attrs` (each a DER
/// Attribute): GM/T 0010 OIDs for SM2, PKCS#7 for P-256, the content id-data.
fn build(
    content: &[u8],
    detached: bool,
    attrs: Vec<Vec<u8>>,
    cert: &Cert,
    signer: &dyn KeySigner,
) -> Result<Vec<u8>, SesError> {
    let gm = cert.public_key().map_err(|e| bad(e.to_string()))?.alg() == KeyAlg::Sm2;
    let (outer, data) = if gm { (GM_SIGNED_DATA, GM_DATA) } else { (PKCS7_SIGNED_DATA, PKCS7_DATA) };
    let what = Encapsulated { content, content_type: data, outer, detached, with_cert: true };
    build_signed(&what, attrs, cert, signer)
}

/// What a SignedData carries, and how it is labelled.
pub(crate) struct Encapsulated<'a> {
    /// The content.
    pub content: &'a [u8],
    /// `eContentType` (id-data, id-ct-TSTInfo, ...).
    pub content_type: &'a str,
    /// The ContentInfo's type: [`GM_SIGNED_DATA`] or [`PKCS7_SIGNED_DATA`].
    pub outer: &'a str,
    /// Leave the content out.
    pub detached: bool,
    /// Carry the signer's certificate.
    pub with_cert: bool,
}

/// A SignedData over `what`, its signer the holder of `cert`'s key signing the signed attributes
/// `attrs` (each a DER Attribute): SM3 and sm2-1 (GM/T 0010) for SM2, SHA-256 and ECDSA for P-256.
/// The version is 1 for id-data content, 3 otherwise (RFC 5652 §5.1).
pub(crate) fn build_signed(
    what: &Encapsulated<'_>,
    attrs: Vec<Vec<u8>>,
    cert: &Cert,
    signer: &dyn KeySigner,
) -> Result<Vec<u8>, SesError> {
    let Encapsulated { content, content_type, outer, detached, with_cert } = *what;
    let key = cert.public_key().map_err(|e| bad(e.to_string()))?;
    if signer.verifying_key() != key {
        return Err(bad("the signer's key is not the certificate's key"));
    }
    let (gm, digest_oid, sig_oid) = match key.alg() {
        KeyAlg::Sm2 => (true, SM3, SM2_1),
        KeyAlg::P256 => (false, SHA256, ECDSA_SHA256),
        other => return Err(bad(format!("SignedData with {other} keys is not supported"))),
    };
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
        seq(&[&der_oid(content_type)?])
    } else {
        seq(&[&der_oid(content_type)?, &der_tlv(0xa0, &der_tlv(0x04, content))])
    };
    let certs = if with_cert { der_tlv(0xa0, cert.der()) } else { Vec::new() };
    let version = if is_data(content_type) { 1 } else { 3 };
    let signed_data =
        seq(&[&der_int(version), &der_tlv(0x31, &digest_alg), &encap, &certs, &der_tlv(0x31, &signer_info)]);
    Ok(seq(&[&der_oid(outer)?, &der_tlv(0xa0, &signed_data)]))
}

/// `bytes` (a SignedData) with `token` added to its first signer as the unsigned attribute
/// `id-aa-timeStampToken` (RFC 3161 appendix A): a time-stamp over that signer's signature value.
/// Every other byte is kept, so every signature still verifies.
pub fn with_time_stamp(bytes: &[u8], token: &[u8]) -> Result<Vec<u8>, SesError> {
    let (outer, _) = tlv(bytes)?;
    let ci = children(&outer)?;
    let (Some(kind), Some(explicit)) = (ci.first(), ci.get(1)) else { return Err(bad("not a ContentInfo")) };
    let sd = children(children(explicit)?.first().ok_or_else(|| bad("empty [0]"))?)?;
    let set = sd.last().filter(|t| t.tag == 0x31).ok_or_else(|| bad("no signerInfos"))?;
    let signers = children(set)?;
    let first = signers.first().ok_or_else(|| bad("no signers"))?;
    let fields = children(first)?;
    if fields.iter().any(|f| f.tag == 0xa1) {
        return Err(bad("the signer has unsigned attributes already"));
    }
    let unsigned = der_tlv(0xa1, &attribute(ATTR_TIME_STAMP_TOKEN, token)?);
    let mut signer: Vec<&[u8]> = fields.iter().map(|f| f.raw).collect();
    signer.push(&unsigned);
    let signer = seq(&signer);
    let mut set_content = signer;
    for other in &signers[1..] {
        set_content.extend_from_slice(other.raw);
    }
    let new_set = der_tlv(0x31, &set_content);
    let mut parts: Vec<&[u8]> = sd[..sd.len() - 1].iter().map(|t| t.raw).collect();
    parts.push(&new_set);
    Ok(seq(&[kind.raw, &der_tlv(0xa0, &seq(&parts))]))
}

/// A parsed SignedData: what verification needs, from the stored bytes.
#[derive(Debug, Clone)]
pub struct SignedData {
    /// `encapContentInfo.eContentType`.
    pub content_type: String,
    /// `digestAlgorithms`: the digests the signers use.
    pub digest_algorithms: Vec<String>,
    /// The embedded content, if attached.
    pub content: Option<Vec<u8>>,
    /// The certificates carried, DER.
    pub certificates: Vec<Vec<u8>>,
    /// The signers.
    pub signers: Vec<SignerInfo>,
    /// Deviations that select nothing that is verified (versions, parameters, OID families).
    pub warnings: Vec<String>,
}

impl SignedData {
    /// The certificate of `si` among those carried: the one with its issuer and serial.
    pub fn signer_cert(&self, si: &SignerInfo) -> Option<Cert> {
        self.certificates
            .iter()
            .filter_map(|c| Cert::parse(c).ok())
            .find(|c| c.issuer_der() == si.issuer_serial.0 && c.serial_der() == si.issuer_serial.1)
    }
}

/// One SignerInfo.
#[derive(Debug, Clone)]
pub struct SignerInfo {
    /// issuer Name DER and serial INTEGER DER.
    pub issuer_serial: (Vec<u8>, Vec<u8>),
    /// The digest algorithm OID.
    pub digest_alg: String,
    /// The signed attributes re-tagged as SET (what was signed), if present.
    pub signed_attrs: Option<Vec<u8>>,
    /// contentType attribute.
    pub content_type: Option<String>,
    /// messageDigest attribute.
    pub message_digest: Option<Vec<u8>>,
    /// signingTime attribute.
    pub signing_time: Option<SystemTime>,
    /// The ESS signingCertificate attribute's value, DER, and whether it is the v2 one (RFC 5035)
    /// rather than v1 (RFC 2634, SHA-1): what a time-stamp token names as its TSA certificate.
    pub signing_certificate: Option<(bool, Vec<u8>)>,
    /// What makes the signed attributes ambiguous: a contentType or messageDigest attribute repeated,
    /// without exactly one value, or of the wrong type (RFC 5652 §11). Each fails the signer.
    pub attribute_faults: Vec<String>,
    /// The signature algorithm OID.
    pub sig_alg: String,
    /// The signature as stored.
    pub signature: Vec<u8>,
    /// A time-stamp token over the signature (unsigned attribute `id-aa-timeStampToken`), DER.
    pub time_stamp: Option<Vec<u8>>,
}

/// An AlgorithmIdentifier's OID; parameters other than absent or NULL are a warning.
fn algorithm(t: &ses::Tlv<'_>, what: &str, warnings: &mut Vec<String>) -> Result<String, SesError> {
    let parts = children(t)?;
    let id = oid(parts.first().ok_or_else(|| bad(format!("{what}: no algorithm")))?, what)?;
    match parts.get(1) {
        None => {}
        Some(p) if p.tag == 0x05 && p.content.is_empty() => {}
        Some(p) => warnings.push(format!(
            "{what} {id} has parameters (tag 0x{:02x}); they are not used [algorithm_parameters]",
            p.tag
        )),
    }
    Ok(id)
}

fn is_data(oid: &str) -> bool {
    oid == GM_DATA || oid == PKCS7_DATA
}

/// Parses a ContentInfo holding a SignedData (GM/T 0010 or PKCS#7 OIDs).
pub fn parse(bytes: &[u8]) -> Result<SignedData, SesError> {
    let (outer, _) = tlv(bytes)?;
    let ci = children(&outer)?;
    let kind = oid(ci.first().ok_or_else(|| bad("empty ContentInfo"))?, "contentType")?;
    if kind != GM_SIGNED_DATA && kind != PKCS7_SIGNED_DATA {
        return Err(bad(format!("content type {kind} is not SignedData")));
    }
    let mut warnings = Vec::new();
    let explicit = children(ci.get(1).ok_or_else(|| bad("no content"))?)?;
    let sd = children(explicit.first().ok_or_else(|| bad("empty [0]"))?)?;
    let version = sd.first().ok_or_else(|| bad("no SignedData version"))?;
    // 1 for id-data content, 3 for any other (RFC 5652 §5.1: time-stamp tokens).
    if version.tag != 0x02 || (version.content != [1] && version.content != [3]) {
        warnings.push(format!("SignedData version is {}, not 1 [signed_data_version]", hex::encode(version.content)));
    }
    let mut digest_algorithms = Vec::new();
    for a in children(sd.get(1).ok_or_else(|| bad("no digestAlgorithms"))?)? {
        digest_algorithms.push(algorithm(&a, "SignedData digestAlgorithm", &mut warnings)?);
    }
    let encap = children(sd.get(2).ok_or_else(|| bad("no encapContentInfo"))?)?;
    let content_type = oid(encap.first().ok_or_else(|| bad("no eContentType"))?, "eContentType")?;
    if is_data(&content_type) && (kind == GM_SIGNED_DATA) != (content_type == GM_DATA) {
        warnings.push(format!(
            "eContentType {content_type} and content type {kind} are of different families [content_type_family]"
        ));
    }
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
    for (n, si) in children(&signer_set.ok_or_else(|| bad("no signerInfos"))?)?.iter().enumerate() {
        let f = children(si)?;
        if f.first().is_none_or(|v| v.tag != 0x02 || v.content != [1]) {
            warnings.push(format!("signer {n}: SignerInfo version is not 1 [signer_info_version]"));
        }
        let ias = children(f.get(1).ok_or_else(|| bad("no sid"))?)?;
        let issuer_serial = (
            ias.first().ok_or_else(|| bad("no issuer"))?.raw.to_vec(),
            ias.get(1).ok_or_else(|| bad("no serial"))?.raw.to_vec(),
        );
        let digest_alg = algorithm(
            f.get(2).ok_or_else(|| bad("no digest algorithm"))?,
            "SignerInfo digestAlgorithm",
            &mut warnings,
        )?;
        let mut i = 3;
        let (mut signed_attrs, mut content_type, mut message_digest, mut signing_time) = (None, None, None, None);
        let mut signing_certificate = None;
        let mut attribute_faults = Vec::new();
        if f.get(3).is_some_and(|t| t.tag == 0xa0) {
            let a = &f[3];
            let mut set = a.raw.to_vec();
            set[0] = 0x31;
            signed_attrs = Some(set);
            let (mut content_types, mut digests) = (0, 0);
            for attr in children(a)? {
                let parts = children(&attr)?;
                let id = oid(parts.first().ok_or_else(|| bad("attribute type"))?, "attribute type")?;
                let values = children(parts.get(1).ok_or_else(|| bad("attribute values"))?)?;
                let v = values.first().ok_or_else(|| bad("empty attribute"))?;
                let name = match id.as_str() {
                    ATTR_CONTENT_TYPE => {
                        content_types += 1;
                        match oid(v, "contentType attribute") {
                            Ok(o) => content_type = Some(o),
                            Err(e) => attribute_faults.push(e.to_string()),
                        }
                        "contentType"
                    }
                    ATTR_MESSAGE_DIGEST => {
                        digests += 1;
                        if v.tag != 0x04 {
                            attribute_faults.push(format!("messageDigest has tag 0x{:02x}, not OCTET STRING", v.tag));
                        }
                        message_digest = Some(v.content.to_vec());
                        "messageDigest"
                    }
                    ATTR_SIGNING_TIME => {
                        let mut w = Vec::new();
                        signing_time = ses::read_time_pub(v, &mut w).ok();
                        continue;
                    }
                    ATTR_SIGNING_CERTIFICATE_V2 | ATTR_SIGNING_CERTIFICATE => {
                        signing_certificate = Some((id == ATTR_SIGNING_CERTIFICATE_V2, v.raw.to_vec()));
                        continue;
                    }
                    _ => continue,
                };
                if values.len() != 1 {
                    attribute_faults.push(format!("the {name} attribute holds {} values", values.len()));
                }
            }
            for (name, count) in [("contentType", content_types), ("messageDigest", digests)] {
                if count > 1 {
                    attribute_faults.push(format!("the {name} attribute appears {count} times"));
                }
            }
            i = 4;
        }
        let alg = f.get(i).ok_or_else(|| bad("no signature algorithm"))?;
        let sig_alg = algorithm(alg, "signatureAlgorithm", &mut warnings)?;
        let signature = f.get(i + 1).ok_or_else(|| bad("no signature"))?.content.to_vec();
        // unsignedAttrs [1]: a time-stamp token over the signature (RFC 3161 appendix A), if any.
        let mut time_stamp = None;
        if let Some(u) = f.get(i + 2).filter(|t| t.tag == 0xa1) {
            for attr in children(u)? {
                let parts = children(&attr)?;
                let id = oid(parts.first().ok_or_else(|| bad("attribute type"))?, "attribute type")?;
                if id == ATTR_TIME_STAMP_TOKEN {
                    let values = children(parts.get(1).ok_or_else(|| bad("attribute values"))?)?;
                    time_stamp = values.first().map(|v| v.raw.to_vec());
                }
            }
        }
        signers.push(SignerInfo {
            issuer_serial,
            digest_alg,
            signed_attrs,
            content_type,
            message_digest,
            signing_time,
            signing_certificate,
            attribute_faults,
            sig_alg,
            signature,
            time_stamp,
        });
    }
    if signers.is_empty() {
        return Err(bad("no signers"));
    }
    Ok(SignedData { content_type, digest_algorithms, content, certificates, signers, warnings })
}

/// Why the fields that select what is verified do not fit `key` (GM/T 0010 §6, RFC 5652 §5.3):
/// the digest must be the one the key signs with (SM3 for SM2, SHA-256 for P-256) and be listed in
/// `digestAlgorithms`; the signature algorithm a known one of the key's; the content type id-data,
/// or, with signed attributes, the one their contentType names; and signed attributes must hold
/// exactly one contentType and one messageDigest. Accepted variants are pushed to `warnings`.
fn field_faults(sd: &SignedData, si: &SignerInfo, key: &PublicKey, warnings: &mut Vec<String>) -> Vec<String> {
    let mut faults = Vec::new();
    let alg = key.alg();
    match digest_oid(alg) {
        Some(d) if si.digest_alg == d => {}
        Some(d) => {
            faults.push(format!("digestAlgorithm {} is not {d}, the digest a {alg} key signs with", si.digest_alg))
        }
        None => faults.push(format!("SignedData with {alg} keys is not supported")),
    }
    if !sd.digest_algorithms.contains(&si.digest_alg) {
        faults.push(format!("digestAlgorithm {} is not listed in SignedData digestAlgorithms", si.digest_alg));
    }
    let sig = si.sig_alg.as_str();
    let known = [SM2_1, SM2_SM3, ECDSA_SHA256, RSA_SHA256, SM2, EC_PUBLIC_KEY];
    if sig == signature_oid(alg) || (alg == KeyAlg::Sm2 && sig == SM2_1) {
        // GM/T 0010 names sm2-1; certificates and SES name SM2-with-SM3.
    } else if (alg == KeyAlg::Sm2 && sig == SM2) || (alg == KeyAlg::P256 && sig == EC_PUBLIC_KEY) {
        warnings.push(format!("signatureAlgorithm {sig} names the {alg} key algorithm, not a signature algorithm [signature_alg_is_key_alg]"));
    } else if known.contains(&sig) {
        faults.push(format!("signatureAlgorithm {sig} does not fit the signer's {alg} key"));
    } else {
        faults.push(format!("signatureAlgorithm {sig} is not a known signature algorithm"));
    }
    let ct = &sd.content_type;
    match (&si.signed_attrs, &si.content_type) {
        (None, _) if !is_data(ct) => {
            faults.push(format!("eContentType {ct} is not id-data, and no signed attribute names it"))
        }
        (None, _) => {}
        (Some(_), None) => faults.push("the signed attributes hold no contentType".to_string()),
        (Some(_), Some(attr)) if attr != ct => {
            faults.push(format!("eContentType {ct} is not the contentType attribute {attr}"))
        }
        (Some(_), Some(_)) if !is_data(ct) => warnings.push(format!(
            "eContentType {ct} is not id-data; its content was checked as octets [econtent_type_not_data]"
        )),
        (Some(_), Some(_)) => {}
    }
    if si.signed_attrs.is_some() && si.message_digest.is_none() {
        faults.push("the signed attributes hold no messageDigest: the content is not protected".to_string());
    }
    faults.extend(si.attribute_faults.iter().cloned());
    faults
}

/// Verifies a SignedData: each signer's fields that select what is verified (digest, signature
/// algorithm, content type, signed attributes; any that does not fit fails `signer_signature` and is
/// named), its signature, the message digest against the content (attached, or `detached` given
/// here), and the signer certificate at the signing time (or now); trust as in `opts`. Steps:
/// `format`, `signer_signature`, `data_hash`, `signer_certificate`, `trust_chain`, `revocation`.
pub fn verify(bytes: &[u8], detached: Option<&[u8]>, opts: &VerifyOptions<'_>) -> Report {
    match parse(bytes) {
        Ok(sd) => verify_parsed(&sd, detached, opts),
        Err(e) => ses::unreadable(&e),
    }
}

/// As [`verify`], for a SignedData already parsed.
pub fn verify_parsed(sd: &SignedData, detached: Option<&[u8]>, opts: &VerifyOptions<'_>) -> Report {
    let mut steps = Vec::new();
    let mut warnings = sd.warnings.clone();
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
    // A document given beside attached content must be that content: the verdict is about the
    // document the caller holds, not only about what the SignedData carries.
    if let (Some(inside), Some(given)) = (sd.content.as_deref(), detached) {
        if inside != given {
            step(&mut steps, "data_hash", Some(false), "the document given is not the content the SignedData carries");
        }
    }
    for (n, si) in sd.signers.iter().enumerate() {
        let Some(cert) = sd.signer_cert(si) else {
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
        let faults = field_faults(sd, si, &key, &mut warnings);
        let sig = ses::signature_for_verify(&si.signature, &mut warnings, "signature");
        let over = if si.signed_attrs.is_some() { "the signed attributes" } else { "the content" };
        let (ok, detail) = if !faults.is_empty() {
            (false, faults.join("; "))
        } else if crypto::verify_message(&key, signed, &sig).is_ok() {
            (true, format!("verifies over {over}"))
        } else {
            (false, format!("does not verify over {over}"))
        };
        step(&mut steps, "signer_signature", Some(ok), format!("signer {n} ({}): {detail}", cert.subject_text()));
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
            (None, _) if si.signed_attrs.is_some() => step(
                &mut steps,
                "data_hash",
                Some(false),
                "the signed attributes hold no messageDigest: nothing binds the content",
            ),
            (None, _) => step(
                &mut steps,
                "data_hash",
                None,
                "no messageDigest attribute: the signature covers the content itself",
            ),
        }
        // A time-stamp over the signature, where one is (not inside a token itself): when it holds,
        // the certificate is judged at its time.
        let stamp = match &si.time_stamp {
            Some(t) if sd.content_type != CT_TST_INFO => {
                let check = super::tsp::verify_token(t, &si.signature, opts);
                step(&mut steps, "timestamp", Some(check.ok), format!("signer {n}: {}", check.detail));
                check.ok.then_some(check.time).flatten()
            }
            _ => None,
        };
        let at = stamp.or(si.signing_time).or(opts.at).unwrap_or_else(SystemTime::now);
        let (ok, detail) = ses::cert_validity_at(cert.der(), at);
        step(&mut steps, "signer_certificate", Some(ok), detail);
        let carried: Vec<Cert> = sd.certificates.iter().filter_map(|c| Cert::parse(c).ok()).collect();
        ses::trust_steps(&mut steps, &[("signer certificate", cert.der())], &carried, at, opts);
    }
    ses::finish(steps, warnings, opts.require_trust)
}

#[cfg(test)]
mod tests {
    //! SignedData made by `sign`, then changed in each field that selects what is verified: each
    //! change fails the signer with a message that names the field.
    use super::*;
    use crate::formats::x509::{issue, CertTemplate};
    use signature::hazmat::PrehashSigner as _;
    use std::time::Duration;

    /// A software key standing in for the token.
    enum SoftKey {
        Sm2(::sm2::dsa::SigningKey, PublicKey),
        P256(p256::ecdsa::SigningKey, PublicKey),
    }

    impl SoftKey {
        fn new(alg: KeyAlg) -> Self {
            match alg {
                KeyAlg::Sm2 => {
                    let k = ::sm2::dsa::SigningKey::from_slice("1234567812345678", &[5; 32]).unwrap();
                    let pk = PublicKey::Sm2(::sm2::PublicKey::from_affine(*k.verifying_key().as_affine()).unwrap());
                    SoftKey::Sm2(k, pk)
                }
                _ => {
                    let k = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
                    let pk = PublicKey::P256(p256::PublicKey::from(k.verifying_key()));
                    SoftKey::P256(k, pk)
                }
            }
        }
    }

    impl signature::Signer<crypto::DerSignature> for SoftKey {
        fn try_sign(&self, message: &[u8]) -> Result<crypto::DerSignature, signature::Error> {
            let raw = match self {
                SoftKey::Sm2(k, PublicKey::Sm2(pk)) => {
                    let e = crypto::sm2::e(pk, crypto::sm2::DEFAULT_USER_ID, message)
                        .map_err(signature::Error::from_source)?;
                    let s: ::sm2::dsa::Signature = k.sign_prehash(&e)?;
                    s.to_bytes().to_vec()
                }
                SoftKey::P256(k, _) => {
                    let s: p256::ecdsa::Signature = k.sign_prehash(&crypto::sha256(message))?;
                    s.to_bytes().to_vec()
                }
                SoftKey::Sm2(..) => return Err(signature::Error::new()),
            };
            Ok(crypto::DerSignature::new(crypto::raw_to_der(&raw).map_err(signature::Error::from_source)?))
        }
    }

    impl signature::Keypair for SoftKey {
        type VerifyingKey = PublicKey;
        fn verifying_key(&self) -> PublicKey {
            match self {
                SoftKey::Sm2(_, pk) | SoftKey::P256(_, pk) => pk.clone(),
            }
        }
    }

    const CONTENT: &[u8] = b"the contract, page 1";

    fn signer(alg: KeyAlg) -> (Cert, SoftKey) {
        let key = SoftKey::new(alg);
        let now = SystemTime::now();
        let t = CertTemplate {
            subject: vec![("CN", format!("{alg} signer"))],
            public_key: &signature::Keypair::verifying_key(&key),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(86400),
            ca: false,
            purpose: None,
        };
        (issue(&t, None, &key).unwrap(), key)
    }

    fn signed(alg: KeyAlg) -> Vec<u8> {
        let (cert, key) = signer(alg);
        sign(CONTENT, false, SystemTime::now(), &cert, &key).unwrap()
    }

    fn step_of(r: &Report, name: &str) -> (Option<bool>, String) {
        let s = r.steps.iter().find(|s| s.step == name).unwrap_or_else(|| panic!("no {name} step: {r:#?}"));
        (s.ok, s.detail.clone())
    }

    fn der_of(oid_text: &str) -> Vec<u8> {
        der_oid(oid_text).unwrap()
    }

    /// `der` with the `nth` occurrence of `from` replaced by `to` (of the same length).
    fn replaced(der: &[u8], from: &[u8], to: &[u8], nth: usize) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = der
            .windows(from.len())
            .enumerate()
            .filter(|(_, w)| *w == from)
            .map(|(i, _)| i)
            .nth(nth)
            .unwrap_or_else(|| panic!("occurrence {nth} not found"));
        let mut out = der.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    /// `oid` with its last arc changed by one.
    fn flipped(oid_text: &str) -> Vec<u8> {
        let mut d = der_of(oid_text);
        *d.last_mut().unwrap() ^= 1;
        d
    }

    /// Asserts that `der` fails the signer with a detail containing `why`.
    fn fails_signer(der: &[u8], why: &str) {
        let r = verify(der, None, &VerifyOptions::default());
        let (ok, detail) = step_of(&r, "signer_signature");
        assert_eq!(ok, Some(false), "{r:#?}");
        assert!(detail.contains(why), "expected '{why}' in: {detail}");
        assert!(!r.valid);
    }

    #[test]
    fn our_own_signed_data_verifies_without_warnings() {
        for alg in [KeyAlg::Sm2, KeyAlg::P256] {
            let r = verify(&signed(alg), None, &VerifyOptions::default());
            assert_eq!(step_of(&r, "signer_signature").0, Some(true), "{r:#?}");
            assert_eq!(step_of(&r, "data_hash").0, Some(true), "{r:#?}");
            assert!(r.warnings.is_empty(), "{alg}: {:?}", r.warnings);
        }
    }

    #[test]
    fn a_changed_signer_digest_algorithm_fails_the_signer() {
        for (alg, digest) in [(KeyAlg::Sm2, SM3), (KeyAlg::P256, SHA256)] {
            // The second occurrence is the SignerInfo's; the first is SignedData.digestAlgorithms.
            let der = replaced(&signed(alg), &der_of(digest), &flipped(digest), 1);
            fails_signer(&der, &format!("is not {digest}, the digest a {alg} key signs with"));
        }
    }

    #[test]
    fn a_digest_algorithm_missing_from_signed_data_digest_algorithms_fails_the_signer() {
        for (alg, digest) in [(KeyAlg::Sm2, SM3), (KeyAlg::P256, SHA256)] {
            let der = replaced(&signed(alg), &der_of(digest), &flipped(digest), 0);
            fails_signer(&der, &format!("digestAlgorithm {digest} is not listed in SignedData digestAlgorithms"));
        }
    }

    #[test]
    fn an_unknown_or_unfitting_signature_algorithm_fails_the_signer() {
        let der = signed(KeyAlg::Sm2);
        fails_signer(&replaced(&der, &der_of(SM2_1), &flipped(SM2_1), 0), "is not a known signature algorithm");
        // P-256: its ECDSA-with-SHA256 (the last occurrence; the certificate has two) becomes SM2-with-SM3.
        let der = signed(KeyAlg::P256);
        let n = der.windows(10).filter(|w| *w == der_of(ECDSA_SHA256)).count();
        let swapped = replaced(&der, &der_of(ECDSA_SHA256), &der_of(SM2_SM3), n - 1);
        fails_signer(&swapped, &format!("signatureAlgorithm {SM2_SM3} does not fit the signer's p256 key"));
    }

    #[test]
    fn an_econtent_type_other_than_the_signed_content_type_fails_the_signer() {
        for (alg, data) in [(KeyAlg::Sm2, GM_DATA), (KeyAlg::P256, PKCS7_DATA)] {
            // The first occurrence is eContentType; the second, the signed contentType attribute.
            let der = replaced(&signed(alg), &der_of(data), &flipped(data), 0);
            fails_signer(&der, &format!("is not the contentType attribute {data}"));
        }
    }

    fn signed_with(attrs: Vec<Vec<u8>>) -> Vec<u8> {
        let (cert, key) = signer(KeyAlg::Sm2);
        build(CONTENT, false, attrs, &cert, &key).unwrap()
    }

    #[test]
    fn signed_attributes_must_name_the_content_type_and_digest_once() {
        let ct = attribute(ATTR_CONTENT_TYPE, &der_of(GM_DATA)).unwrap();
        let md = |c: &[u8]| attribute(ATTR_MESSAGE_DIGEST, &der_tlv(0x04, &crypto::sm3(c))).unwrap();
        let der = signed_with(vec![ct.clone()]);
        fails_signer(&der, "the signed attributes hold no messageDigest");
        let r = verify(&der, None, &VerifyOptions::default());
        assert_eq!(step_of(&r, "data_hash").0, Some(false), "{r:#?}");
        fails_signer(&signed_with(vec![md(CONTENT)]), "the signed attributes hold no contentType");
        fails_signer(
            &signed_with(vec![ct.clone(), md(CONTENT), md(b"another document")]),
            "the messageDigest attribute appears 2 times",
        );
        let two_values = seq(&[
            &der_of(ATTR_MESSAGE_DIGEST),
            &set_of(vec![der_tlv(0x04, &crypto::sm3(CONTENT)), der_tlv(0x04, &[0; 32])]),
        ]);
        fails_signer(&signed_with(vec![ct, two_values]), "the messageDigest attribute holds 2 values");
    }
}
