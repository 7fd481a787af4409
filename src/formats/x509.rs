//! X.509 certificates and CRLs for verification: signatures checked over the exact TBS bytes as
//! received (never a re-encoding), validity at a given time, a chain to configured trust anchors, and
//! revocation by CRLs those anchors signed. SM2-with-SM3 (GM/T 0015, default ID), ECDSA P-256 with
//! SHA-256 and RSA PKCS#1 v1.5 with SHA-256.
//!
//! Chains have any depth up to [`MAX_CHAIN`]: a path is built from the certificate to a trust anchor
//! through the store's intermediates (a configured bundle) and the certificates a document carries
//! (an SES seal's certList, a SignedData's certificates); every certificate on the path must be
//! valid at the time judged, every issuer a CA, and none revoked on a CRL its issuer signed.

use super::oid::*;
use crate::crypto::{self, DerSignature, KeySigner, PublicKey};
use der::{Decode, Encode, Reader};
use std::time::SystemTime;

/// A certificate or CRL could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct X509Error(pub String);

/// The TLV bytes of the first element inside the outer SEQUENCE: the signed part, as received.
fn first_inner_tlv(der: &[u8]) -> Result<&[u8], X509Error> {
    let bad = |e: der::Error| X509Error(format!("not DER: {e}"));
    let mut r = der::SliceReader::new(der).map_err(bad)?;
    let _outer = der::Header::decode(&mut r).map_err(bad)?;
    let start: usize = r.position().try_into().map_err(bad)?;
    let inner = der::Header::decode(&mut r).map_err(bad)?;
    let len: usize = (inner.encoded_len().map_err(bad)? + inner.length).map_err(bad)?.try_into().map_err(bad)?;
    der.get(start..start + len).ok_or_else(|| X509Error("truncated".into()))
}

fn verify_signed(tbs: &[u8], alg: &str, sig: &[u8], issuer: &PublicKey) -> bool {
    let fits = matches!(
        (alg, issuer),
        (ECDSA_SHA256, PublicKey::P256(_)) | (SM2_SM3, PublicKey::Sm2(_)) | (RSA_SHA256, PublicKey::Rsa(_))
    );
    fits && crypto::verify_message(issuer, tbs, sig).is_ok()
}

/// A parsed certificate with its original bytes.
#[derive(Debug, Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: x509_cert::Certificate,
}

impl Cert {
    /// From DER, or from PEM (the first certificate).
    pub fn parse(bytes: &[u8]) -> Result<Self, X509Error> {
        let der = if bytes.starts_with(b"-----") {
            let (label, der) = der::pem::decode_vec(bytes).map_err(|e| X509Error(format!("PEM: {e}")))?;
            if label != "CERTIFICATE" {
                return Err(X509Error(format!("PEM label is {label}, not CERTIFICATE")));
            }
            der
        } else {
            bytes.to_vec()
        };
        let cert = x509_cert::Certificate::from_der(&der).map_err(|e| X509Error(format!("certificate: {e}")))?;
        Ok(Cert { der, cert })
    }

    /// Every certificate in a PEM bundle.
    pub fn parse_bundle(pem: &[u8]) -> Result<Vec<Self>, X509Error> {
        let text = std::str::from_utf8(pem).map_err(|_| X509Error("bundle is not text".into()))?;
        let mut out = Vec::new();
        for block in text.split("-----END CERTIFICATE-----").filter(|b| b.contains("-----BEGIN CERTIFICATE-----")) {
            let start = block.find("-----BEGIN CERTIFICATE-----").unwrap_or(0);
            out.push(Self::parse(format!("{}-----END CERTIFICATE-----\n", &block[start..]).as_bytes())?);
        }
        Ok(out)
    }

    /// The subject's public key.
    pub fn public_key(&self) -> Result<PublicKey, X509Error> {
        let spki = self.cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| X509Error(e.to_string()))?;
        PublicKey::from_spki_der(&spki).map_err(|e| X509Error(e.to_string()))
    }

    /// (not before, not after).
    pub fn validity(&self) -> (SystemTime, SystemTime) {
        let v = &self.cert.tbs_certificate.validity;
        (v.not_before.to_system_time(), v.not_after.to_system_time())
    }

    /// Whether `issuer` signed this certificate (over the TBS bytes as received).
    pub fn signed_by(&self, issuer: &PublicKey) -> bool {
        let Ok(tbs) = first_inner_tlv(&self.der) else { return false };
        let Some(sig) = self.cert.signature.as_bytes() else { return false };
        verify_signed(tbs, &self.cert.signature_algorithm.oid.to_string(), sig, issuer)
    }

    /// The issuer Name, DER.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.issuer.to_der().unwrap_or_default()
    }

    /// The subject Name, DER.
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.subject.to_der().unwrap_or_default()
    }
}

/// A parsed CRL with its original bytes.
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
    crl: x509_cert::crl::CertificateList,
}

impl Crl {
    /// From DER or PEM.
    pub fn parse(bytes: &[u8]) -> Result<Self, X509Error> {
        let der = if bytes.starts_with(b"-----") {
            der::pem::decode_vec(bytes).map_err(|e| X509Error(format!("PEM: {e}")))?.1
        } else {
            bytes.to_vec()
        };
        let crl = x509_cert::crl::CertificateList::from_der(&der).map_err(|e| X509Error(format!("CRL: {e}")))?;
        Ok(Crl { der, crl })
    }

    fn signed_by(&self, issuer: &PublicKey) -> bool {
        let Ok(tbs) = first_inner_tlv(&self.der) else { return false };
        let Some(sig) = self.crl.signature.as_bytes() else { return false };
        verify_signed(tbs, &self.crl.signature_algorithm.oid.to_string(), sig, issuer)
    }

    fn lists(&self, cert: &Cert) -> bool {
        let serial = &cert.cert.tbs_certificate.serial_number;
        self.crl.tbs_cert_list.revoked_certificates.iter().flatten().any(|r| r.serial_number == *serial)
    }
}

/// Trust anchors and the CRLs that apply to what they issued.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Cert>,
    intermediates: Vec<Cert>,
    crls: Vec<Crl>,
}

/// The most certificates between a certificate and its trust anchor.
pub const MAX_CHAIN: usize = 8;

/// The most certificates a document may bring to a path (more are not considered): each one can
/// cost a signature check per level.
pub const MAX_CARRIED: usize = 16;

impl TrustStore {
    /// From anchors and CRLs.
    pub fn new(anchors: Vec<Cert>, crls: Vec<Crl>) -> Self {
        TrustStore { anchors, intermediates: Vec::new(), crls }
    }

    /// This store with intermediate CAs that paths may pass through (not anchors themselves).
    pub fn with_intermediates(mut self, intermediates: Vec<Cert>) -> Self {
        self.intermediates.extend(intermediates);
        self
    }

    /// This store with one more anchor.
    pub fn with_anchor(&self, anchor: Cert) -> Self {
        let mut t = self.clone();
        t.anchors.push(anchor);
        t
    }

    /// Whether any CRL is loaded.
    pub fn has_crls(&self) -> bool {
        !self.crls.is_empty()
    }

    /// Every failed check of `cert` at time `at`, by name: `certificate_expired`,
    /// `certificate_not_yet_valid`, `certificate_untrusted` (no path to an anchor), `issuer_not_a_ca`
    /// (an issuer's key usage excludes keyCertSign), `intermediate_not_valid` (a CA on the path was
    /// not valid at `at`), `certificate_revoked` (the certificate or a CA on its path is on a CRL).
    pub fn check(&self, cert: &Cert, at: SystemTime) -> Vec<&'static str> {
        self.check_with(cert, at, &[])
    }

    /// As [`TrustStore::check`], building the path also through `carried`, the certificates the
    /// document carries (at most [`MAX_CARRIED`] of them are considered). A CA on the path that is
    /// not an anchor must say so in basicConstraints; where several certificates could be the issuer,
    /// one valid at `at` is preferred.
    pub fn check_with(&self, cert: &Cert, at: SystemTime, carried: &[Cert]) -> Vec<&'static str> {
        self.check_path(cert, at, carried).reasons
    }

    /// As [`TrustStore::check_with`], with the CAs on the path that no loaded CRL covers.
    pub fn check_path(&self, cert: &Cert, at: SystemTime, carried: &[Cert]) -> PathCheck {
        let mut reasons = Vec::new();
        let mut gaps = Vec::new();
        let (from, to) = cert.validity();
        if at < from {
            reasons.push("certificate_not_yet_valid");
        }
        if at > to {
            reasons.push("certificate_expired");
        }
        if self.anchors.iter().any(|a| a.der == cert.der) {
            return PathCheck { reasons, revocation_gaps: gaps };
        }
        let valid_at = |c: &Cert| {
            let (from, to) = c.validity();
            at >= from && at <= to
        };
        // Subject first: the signature check (the cost) runs only for certificates that could be it.
        let issues = |issuer: &Cert, c: &Cert| {
            issuer.der != c.der
                && issuer.subject_der() == c.issuer_der()
                && issuer.public_key().is_ok_and(|k| c.signed_by(&k))
        };
        let mut carried_once: Vec<&Cert> = Vec::new();
        for c in carried {
            if carried_once.len() < MAX_CARRIED && !carried_once.iter().any(|o| o.der == c.der) {
                carried_once.push(c);
            }
        }
        let mut current = cert.clone();
        for depth in 0..=MAX_CHAIN {
            let anchor = self.anchors.iter().find(|a| issues(a, &current));
            let issuer = match anchor {
                Some(a) => a,
                None if depth == MAX_CHAIN => {
                    reasons.push("certificate_untrusted");
                    break;
                }
                None => {
                    let mut candidates =
                        self.intermediates.iter().chain(carried_once.iter().copied()).filter(|i| issues(i, &current));
                    let first = candidates.next();
                    let valid = first.filter(|c| valid_at(c)).or_else(|| candidates.find(|c| valid_at(c)));
                    match valid.or(first) {
                        Some(i) => i,
                        None => {
                            reasons.push("certificate_untrusted");
                            break;
                        }
                    }
                }
            };
            let not_ca = match anchor {
                // A configured anchor is trusted as configured, unless its key usage forbids it.
                Some(a) => a.key_usage().is_some_and(|(ca, _)| !ca),
                None => !issuer.is_ca() || issuer.key_usage().is_some_and(|(ca, _)| !ca),
            };
            if not_ca && !reasons.contains(&"issuer_not_a_ca") {
                reasons.push("issuer_not_a_ca");
            }
            // The CRLs this issuer signed (its name, its key), looked up once for both questions.
            let crls = self.crls_of(issuer);
            if crls.iter().any(|c| c.lists(&current)) && !reasons.contains(&"certificate_revoked") {
                reasons.push("certificate_revoked");
            }
            if crls.is_empty() {
                gaps.push(issuer.subject_text());
            }
            if anchor.is_some() {
                break;
            }
            if !valid_at(issuer) && !reasons.contains(&"intermediate_not_valid") {
                reasons.push("intermediate_not_valid");
            }
            current = issuer.clone();
        }
        PathCheck { reasons, revocation_gaps: gaps }
    }

    /// The loaded CRLs that `issuer` signed: its name as their issuer, its key on their signature.
    fn crls_of(&self, issuer: &Cert) -> Vec<&Crl> {
        let Ok(ik) = issuer.public_key() else { return Vec::new() };
        let name = issuer.subject_der();
        self.crls
            .iter()
            .filter(|c| c.crl.tbs_cert_list.issuer.to_der().unwrap_or_default() == name && c.signed_by(&ik))
            .collect()
    }
}

/// A certificate's path to a trust anchor, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCheck {
    /// Every failed check, by name (see [`TrustStore::check`]).
    pub reasons: Vec<&'static str>,
    /// The CAs on the path (subjects) that no loaded CRL covers: for them, revocation is unknown.
    pub revocation_gaps: Vec<String>,
}

/// What a certificate says, before it is signed.
#[derive(Debug, Clone)]
pub struct CertTemplate<'a> {
    /// Subject attributes in order: `CN`, `O`, `OU`, `C` or `serialNumber` with their values.
    pub subject: Vec<(&'a str, String)>,
    /// The subject's public key.
    pub public_key: &'a PublicKey,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// A CA certificate (keyCertSign, cRLSign) rather than an end-entity signing one
    /// (digitalSignature, nonRepudiation).
    pub ca: bool,
    /// An end-entity certificate for one purpose only: this extended key usage, critical
    /// (`timeStamping` for a TSA, RFC 3161 §2.3; `OCSPSigning` for the seal-status responder).
    pub purpose: Option<&'static str>,
}

fn attribute_oid(name: &str) -> Result<(der::asn1::ObjectIdentifier, der::Tag), X509Error> {
    let (oid, tag) = match name {
        "CN" => (AT_COMMON_NAME, der::Tag::Utf8String),
        "O" => (AT_ORGANIZATION, der::Tag::Utf8String),
        "OU" => (AT_ORGANIZATIONAL_UNIT, der::Tag::Utf8String),
        "C" => (AT_COUNTRY, der::Tag::PrintableString),
        "serialNumber" => (AT_SERIAL_NUMBER, der::Tag::PrintableString),
        other => return Err(X509Error(format!("unsupported name attribute {other}"))),
    };
    Ok((der::asn1::ObjectIdentifier::new_unwrap(oid), tag))
}

fn build_name(attrs: &[(&str, String)]) -> Result<x509_cert::name::Name, X509Error> {
    let bad = |e: der::Error| X509Error(format!("name: {e}"));
    let mut rdns = Vec::new();
    for (name, value) in attrs {
        let (oid, tag) = attribute_oid(name)?;
        let value = der::Any::new(tag, value.as_bytes()).map_err(bad)?;
        let atv = x509_cert::attr::AttributeTypeAndValue { oid, value };
        rdns.push(x509_cert::name::RelativeDistinguishedName(der::asn1::SetOfVec::try_from(vec![atv]).map_err(bad)?));
    }
    Ok(x509_cert::name::RdnSequence(rdns))
}

fn signature_algorithm(key: &PublicKey) -> spki::AlgorithmIdentifierOwned {
    let (oid, parameters) = match key {
        PublicKey::Sm2(_) => (SM2_SM3, None),
        PublicKey::P256(_) => (ECDSA_SHA256, None),
        PublicKey::Rsa(_) => (RSA_SHA256, Some(der::Any::null())),
    };
    spki::AlgorithmIdentifierOwned { oid: der::asn1::ObjectIdentifier::new_unwrap(oid), parameters }
}

fn key_identifier(key: &PublicKey) -> Vec<u8> {
    crypto::sha256(&key.to_spki_der())[..20].to_vec()
}

fn extension<T: Encode>(oid: &str, critical: bool, value: &T) -> Result<x509_cert::ext::Extension, X509Error> {
    let bytes = value.to_der().map_err(|e| X509Error(format!("extension {oid}: {e}")))?;
    Ok(x509_cert::ext::Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: der::asn1::OctetString::new(bytes).map_err(|e| X509Error(e.to_string()))?,
    })
}

/// Issues a certificate from `template`, signed by `signer`: by the holder of `issuer` (whose subject
/// becomes the issuer name), or self-signed when `issuer` is `None` (the signer's key must then be the
/// template's). The serial number is 16 random bytes. Output is DER, checked by parsing it back and
/// verifying its signature before it is returned.
pub fn issue(template: &CertTemplate<'_>, issuer: Option<&Cert>, signer: &dyn KeySigner) -> Result<Cert, X509Error> {
    use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
    let bad = |e: der::Error| X509Error(e.to_string());
    let issuer_key = match issuer {
        Some(c) => c.public_key()?,
        None => template.public_key.clone(),
    };
    if signer.verifying_key() != issuer_key {
        return Err(X509Error("the signer's key is not the issuer's key".into()));
    }
    let subject = build_name(&template.subject)?;
    let issuer_name = match issuer {
        Some(c) => c.cert.tbs_certificate.subject.clone(),
        None => subject.clone(),
    };
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(|e| X509Error(format!("no randomness: {e}")))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&template.public_key.to_spki_der()).map_err(bad)?;
    let usage = if template.ca {
        KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature
    } else {
        KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
    };
    let mut extensions = vec![
        extension(EXT_BASIC_CONSTRAINTS, true, &BasicConstraints { ca: template.ca, path_len_constraint: None })?,
        extension(EXT_KEY_USAGE, true, &KeyUsage(usage))?,
        extension(
            EXT_SUBJECT_KEY_ID,
            false,
            &SubjectKeyIdentifier(der::asn1::OctetString::new(key_identifier(template.public_key)).map_err(bad)?),
        )?,
    ];
    if let Some(purpose) = template.purpose {
        let eku = x509_cert::ext::pkix::ExtendedKeyUsage(vec![der::asn1::ObjectIdentifier::new_unwrap(purpose)]);
        extensions.push(extension(EXT_EXTENDED_KEY_USAGE, true, &eku)?);
    }
    extensions.push(extension(
        EXT_AUTHORITY_KEY_ID,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(der::asn1::OctetString::new(key_identifier(&issuer_key)).map_err(bad)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    let tbs = x509_cert::TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: x509_cert::serial_number::SerialNumber::new(&serial).map_err(bad)?,
        signature: signature_algorithm(&issuer_key),
        issuer: issuer_name,
        validity: x509_cert::time::Validity {
            not_before: x509_cert::time::Time::try_from(template.not_before).map_err(bad)?,
            not_after: x509_cert::time::Time::try_from(template.not_after).map_err(bad)?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(bad)?;
    let signature = signer
        .try_sign(&tbs_der)
        .map(DerSignature::into_vec)
        .map_err(|e| X509Error(format!("signing the certificate: {e}")))?;
    let cert = x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signature_algorithm(&issuer_key),
        signature: der::asn1::BitString::from_bytes(&signature).map_err(bad)?,
    };
    let parsed = Cert::parse(&cert.to_der().map_err(bad)?)?;
    if !parsed.signed_by(&issuer_key) {
        return Err(X509Error("the issued certificate's signature does not verify".into()));
    }
    Ok(parsed)
}

impl Cert {
    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, PEM.
    pub fn to_pem(&self) -> String {
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &self.der).unwrap_or_default()
    }

    /// The key-usage extension, if present: (may sign certificates, may sign documents).
    pub fn key_usage(&self) -> Option<(bool, bool)> {
        use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
        let ext =
            self.cert.tbs_certificate.extensions.as_ref()?.iter().find(|e| e.extn_id.to_string() == EXT_KEY_USAGE)?;
        let ku = KeyUsage::from_der(ext.extn_value.as_bytes()).ok()?;
        Some((
            ku.0.contains(KeyUsages::KeyCertSign),
            ku.0.contains(KeyUsages::DigitalSignature) || ku.0.contains(KeyUsages::NonRepudiation),
        ))
    }

    /// The extended key usage extension, if present: its purposes (OIDs) and whether it is critical.
    pub fn extended_key_usage(&self) -> Option<(Vec<String>, bool)> {
        use x509_cert::ext::pkix::ExtendedKeyUsage;
        let ext = self
            .cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id.to_string() == EXT_EXTENDED_KEY_USAGE)?;
        let eku = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).ok()?;
        Some((eku.0.iter().map(|o| o.to_string()).collect(), ext.critical))
    }

    /// Whether basicConstraints says this is a CA (`cA` TRUE). Absent or unreadable: not a CA.
    pub fn is_ca(&self) -> bool {
        use x509_cert::ext::pkix::BasicConstraints;
        let Some(exts) = self.cert.tbs_certificate.extensions.as_ref() else { return false };
        exts.iter()
            .find(|e| e.extn_id.to_string() == EXT_BASIC_CONSTRAINTS)
            .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|bc| bc.ca)
    }

    /// The serial number as a DER INTEGER.
    pub fn serial_der(&self) -> Vec<u8> {
        self.cert.tbs_certificate.serial_number.to_der().unwrap_or_default()
    }

    /// The serial number, lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    /// The subject, RFC 4514 text.
    pub fn subject_text(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// SHA-256 of the DER, lowercase hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(crypto::sha256(&self.der))
    }
}

/// A PKCS#10 certification request for `public_key`, signed by `signer` (which must hold that key:
/// a token key). PEM. Checked by parsing it back before it is returned.
pub fn build_csr(
    subject: &[(&str, String)],
    public_key: &PublicKey,
    signer: &dyn KeySigner,
) -> Result<String, X509Error> {
    let bad = |e: der::Error| X509Error(e.to_string());
    if &signer.verifying_key() != public_key {
        return Err(X509Error("the signer's key is not the request's key".into()));
    }
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: build_name(subject)?,
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(&public_key.to_spki_der()).map_err(bad)?,
        attributes: Default::default(),
    };
    let info_der = info.to_der().map_err(bad)?;
    let signature = signer
        .try_sign(&info_der)
        .map(DerSignature::into_vec)
        .map_err(|e| X509Error(format!("signing the request: {e}")))?;
    let req = x509_cert::request::CertReq {
        info,
        algorithm: signature_algorithm(public_key),
        signature: der::asn1::BitString::from_bytes(&signature).map_err(bad)?,
    };
    let der = req.to_der().map_err(bad)?;
    let parsed = Csr::parse(&der)?;
    if !parsed.signature_ok() {
        return Err(X509Error("the request's signature does not verify".into()));
    }
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der).map_err(|e| X509Error(e.to_string()))
}

/// A parsed PKCS#10 request with its original bytes.
#[derive(Debug, Clone)]
pub struct Csr {
    der: Vec<u8>,
    req: x509_cert::request::CertReq,
}

impl Csr {
    /// From DER or PEM.
    pub fn parse(bytes: &[u8]) -> Result<Self, X509Error> {
        let der = if bytes.starts_with(b"-----") {
            let (label, der) = der::pem::decode_vec(bytes).map_err(|e| X509Error(format!("PEM: {e}")))?;
            if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
                return Err(X509Error(format!("PEM label is {label}, not CERTIFICATE REQUEST")));
            }
            der
        } else {
            bytes.to_vec()
        };
        let req = x509_cert::request::CertReq::from_der(&der).map_err(|e| X509Error(format!("request: {e}")))?;
        Ok(Csr { der, req })
    }

    /// The requested public key.
    pub fn public_key(&self) -> Result<PublicKey, X509Error> {
        let spki = self.req.info.public_key.to_der().map_err(|e| X509Error(e.to_string()))?;
        PublicKey::from_spki_der(&spki).map_err(|e| X509Error(e.to_string()))
    }

    /// Whether the request is signed by its own key (over the stored bytes).
    pub fn signature_ok(&self) -> bool {
        let (Ok(tbs), Ok(key)) = (first_inner_tlv(&self.der), self.public_key()) else { return false };
        let Some(sig) = self.req.signature.as_bytes() else { return false };
        verify_signed(tbs, &self.req.algorithm.oid.to_string(), sig, &key)
    }

    /// The subject's attributes we write into certificates: CN, O, OU, C.
    pub fn subject_attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for rdn in &self.req.info.subject.0 {
            for atv in rdn.0.iter() {
                let name = match atv.oid.to_string().as_str() {
                    AT_COMMON_NAME => "CN",
                    AT_ORGANIZATION => "O",
                    AT_ORGANIZATIONAL_UNIT => "OU",
                    AT_COUNTRY => "C",
                    AT_SERIAL_NUMBER => "serialNumber",
                    _ => continue,
                };
                out.push((name, String::from_utf8_lossy(atv.value.value()).into_owned()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpki::DevCa;
    use std::time::Duration;

    #[test]
    fn chain_validity_and_revocation_each_name_themselves() {
        let ca = DevCa::new("anchor").unwrap();
        let other = DevCa::new("stranger").unwrap();
        let anchor = Cert::parse(ca.cert_pem().as_bytes()).unwrap();
        let good = Cert::parse(ca.client("ok", 1, -1, 30).unwrap().cert_pem.as_bytes()).unwrap();
        let revoked = Cert::parse(ca.client("bad", 2, -1, 30).unwrap().cert_pem.as_bytes()).unwrap();
        let expired = Cert::parse(ca.client("old", 3, -30, -1).unwrap().cert_pem.as_bytes()).unwrap();
        let stranger = Cert::parse(other.client("x", 1, -1, 30).unwrap().cert_pem.as_bytes()).unwrap();
        let crl = Crl::parse(ca.crl(&[2], 1).unwrap().as_bytes()).unwrap();
        let forged_crl = Crl::parse(other.crl(&[1], 1).unwrap().as_bytes()).unwrap();
        let store = TrustStore::new(vec![anchor.clone()], vec![crl, forged_crl]);
        let now = SystemTime::now();
        assert!(store.check(&good, now).is_empty());
        assert_eq!(store.check(&revoked, now), vec!["certificate_revoked"]);
        assert!(store.check_path(&good, now, &[]).revocation_gaps.is_empty(), "the anchor's own CRL covers it");
        assert_eq!(store.check(&expired, now), vec!["certificate_expired"]);
        assert_eq!(store.check(&good, now - Duration::from_secs(3 * 86400)), vec!["certificate_not_yet_valid"]);
        assert_eq!(store.check(&stranger, now), vec!["certificate_untrusted"]);
        assert!(store.check(&anchor, now).is_empty(), "an anchor trusts itself");
        assert!(good.signed_by(&anchor.public_key().unwrap()));
        assert!(!stranger.signed_by(&anchor.public_key().unwrap()));
        assert!(Cert::parse(b"garbage").is_err());
        assert_eq!(Cert::parse_bundle(format!("{}{}", ca.cert_pem(), other.cert_pem()).as_bytes()).unwrap().len(), 2);
    }

    struct SoftSigner(p256::ecdsa::SigningKey, PublicKey);

    impl SoftSigner {
        fn new(seed: u8) -> Self {
            let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let point = k.verifying_key().to_encoded_point(false);
            let public = PublicKey::from_ec_point(crypto::KeyAlg::P256, point.as_bytes()).unwrap();
            SoftSigner(k, public)
        }
    }

    impl signature::Signer<crypto::DerSignature> for SoftSigner {
        fn try_sign(&self, message: &[u8]) -> Result<crypto::DerSignature, signature::Error> {
            let sig: p256::ecdsa::Signature = signature::Signer::sign(&self.0, message);
            Ok(crypto::DerSignature::new(sig.to_der().as_bytes().to_vec()))
        }
    }

    impl signature::Keypair for SoftSigner {
        type VerifyingKey = PublicKey;
        fn verifying_key(&self) -> PublicKey {
            self.1.clone()
        }
    }

    #[test]
    fn an_issuer_whose_key_usage_forbids_certificate_signing_is_no_ca() {
        let now = SystemTime::now();
        let make = |subject: &str, key: &SoftSigner, ca: bool, issuer: Option<(&Cert, &SoftSigner)>| {
            let t = CertTemplate {
                subject: vec![("CN", subject.to_string())],
                public_key: &key.1,
                not_before: now - Duration::from_secs(60),
                not_after: now + Duration::from_secs(86400),
                ca,
                purpose: None,
            };
            match issuer {
                Some((c, k)) => issue(&t, Some(c), k).unwrap(),
                None => issue(&t, None, key).unwrap(),
            }
        };
        let (a, b) = (SoftSigner::new(7), SoftSigner::new(9));
        for (ca, expected) in [(true, vec![]), (false, vec!["issuer_not_a_ca"])] {
            let anchor = make("anchor", &a, ca, None);
            let leaf = make("leaf", &b, false, Some((&anchor, &a)));
            assert!(leaf.signed_by(&a.1));
            assert_eq!(leaf.key_usage(), Some((false, true)));
            assert_eq!(TrustStore::new(vec![anchor], vec![]).check(&leaf, now), expected);
        }
        assert!(
            issue(
                &CertTemplate {
                    subject: vec![("CN", "x".into())],
                    public_key: &b.1,
                    not_before: now,
                    not_after: now,
                    ca: false,
                    purpose: None
                },
                None,
                &a
            )
            .is_err(),
            "a self-signed certificate needs its own key"
        );
    }

    #[test]
    fn paths_pass_through_intermediates_configured_or_carried() {
        // root → OCA → sub-CA → leaf, as real signer certificates hang under a CFCA-style root.
        let now = SystemTime::now();
        let make =
            |subject: &str, key: &SoftSigner, ca: bool, days: (i64, i64), issuer: Option<(&Cert, &SoftSigner)>| {
                let t = CertTemplate {
                    subject: vec![("CN", subject.to_string())],
                    public_key: &key.1,
                    not_before: now - Duration::from_secs(days.0.unsigned_abs() * 86400),
                    not_after: match days.1 {
                        d if d >= 0 => now + Duration::from_secs(d.unsigned_abs() * 86400),
                        d => now - Duration::from_secs(d.unsigned_abs() * 86400),
                    },
                    ca,
                    purpose: None,
                };
                match issuer {
                    Some((c, k)) => issue(&t, Some(c), k).unwrap(),
                    None => issue(&t, None, key).unwrap(),
                }
            };
        let keys: Vec<SoftSigner> = (1..=5).map(SoftSigner::new).collect();
        let root = make("root", &keys[0], true, (10, 3650), None);
        let oca = make("OCA", &keys[1], true, (10, 365), Some((&root, &keys[0])));
        let sub = make("sub-CA", &keys[2], true, (10, 365), Some((&oca, &keys[1])));
        let leaf = make("signer", &keys[3], false, (1, 30), Some((&sub, &keys[2])));
        let anchored = TrustStore::new(vec![root.clone()], vec![]);
        assert_eq!(anchored.check(&leaf, now), ["certificate_untrusted"], "no path without the CAs between");
        assert_eq!(
            anchored.check_with(&leaf, now, std::slice::from_ref(&sub)),
            ["certificate_untrusted"],
            "the OCA is missing"
        );
        assert!(anchored.check_with(&leaf, now, &[sub.clone(), oca.clone()]).is_empty(), "carried by the document");
        let configured = anchored.clone().with_intermediates(vec![oca.clone()]);
        assert!(
            configured.check_with(&leaf, now, std::slice::from_ref(&sub)).is_empty(),
            "configured and carried together"
        );
        // Every CA on the path must be valid then, and a CA.
        let old_sub = make("sub-CA", &keys[2], true, (400, -1), Some((&oca, &keys[1])));
        assert_eq!(configured.check_with(&leaf, now, &[old_sub]), ["intermediate_not_valid"]);
        let not_ca = make("sub-CA", &keys[2], false, (10, 365), Some((&oca, &keys[1])));
        assert_eq!(configured.check_with(&leaf, now, &[not_ca]), ["issuer_not_a_ca"]);
        // No CRL loaded from any CA on the path: revocation unknown for each of them.
        let gaps = configured.check_path(&leaf, now, std::slice::from_ref(&sub)).revocation_gaps;
        assert_eq!(gaps, ["CN=sub-CA", "CN=OCA", "CN=root"]);
        assert!(
            anchored.check_path(&root, now, &[]).revocation_gaps.is_empty(),
            "an anchor itself has no issuer to ask"
        );
        // A loop of certificates that sign each other ends, untrusted.
        let a = make("loop", &keys[4], true, (1, 30), None);
        let looped = make("leaf", &keys[3], false, (1, 30), Some((&a, &keys[4])));
        assert_eq!(anchored.check_with(&looped, now, &[a.clone(), a]), ["certificate_untrusted"]);
    }

    #[test]
    fn sm2_certificates_from_other_producers_verify_against_their_issuer_key() {
        // GB/T 38540 samples hold SM2 certificates; without their issuers, the signature check itself
        // is exercised by the formats issue. Here: an SM2 public key is read from a real certificate.
        let dir = std::env::var("SEALD_SAMPLES")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into());
        assert!(std::path::Path::new(&dir).exists(), "samples not found at {dir}: set SEALD_SAMPLES");
        let der = std::fs::read(format!("{dir}/certs/sta_jiangsu_tax_bureau_signer_cert.der")).unwrap();
        let cert = Cert::parse(&der).unwrap();
        assert_eq!(cert.public_key().unwrap().alg(), crypto::KeyAlg::Sm2);
    }
}
