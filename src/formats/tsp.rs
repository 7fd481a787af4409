//! RFC 3161 time-stamps, the base of GB/T 20520: requests read, `TSTInfo` and tokens made (a
//! SignedData whose content is the `TSTInfo`, with the TSA certificate's hash in the signed
//! attributes, RFC 5816), responses made and read, and tokens verified wherever they appear.
//!
//! A token from an SM2 key is a PKCS#7 SignedData with the GM/T 0010 algorithm OIDs (SM3, sm2-1),
//! so that `openssl ts -reply -text` reads it; a P-256 token is what `openssl ts -verify` checks.

use super::cms::{self, Encapsulated};
use super::oid::*;
use super::ses::{self, children, der_oid, der_tlv, oid, seq, tlv, SesError, Step, Tlv, VerifyOptions};
use super::x509::Cert;
use crate::crypto::{self, KeyAlg, KeySigner};
use std::time::SystemTime;

/// The largest request read (a request is about 60 bytes, and a few hundred with extensions).
pub const MAX_REQUEST: usize = 16 * 1024;

/// Why a request is refused: RFC 3161 §2.4.2's `PKIFailureInfo`, each its bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// An algorithm seald does not stamp with (SHA-1, or one it does not know).
    BadAlg,
    /// A request it cannot grant as asked (a wrong imprint length, a version other than 1).
    BadRequest,
    /// Not a `TimeStampReq`.
    BadDataFormat,
    /// The clock is not synchronised, or the token is down.
    TimeNotAvailable,
    /// A policy other than seald's.
    UnacceptedPolicy,
    /// Extensions, which seald does not support.
    UnacceptedExtension,
    /// The stamp could not be made or recorded.
    SystemFailure,
}

impl FailInfo {
    /// Its bit in `PKIFailureInfo`.
    pub fn bit(self) -> u8 {
        match self {
            FailInfo::BadAlg => 0,
            FailInfo::BadRequest => 2,
            FailInfo::BadDataFormat => 5,
            FailInfo::TimeNotAvailable => 14,
            FailInfo::UnacceptedPolicy => 15,
            FailInfo::UnacceptedExtension => 16,
            FailInfo::SystemFailure => 25,
        }
    }

    /// Its name in RFC 3161.
    pub fn name(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadDataFormat => "badDataFormat",
            FailInfo::TimeNotAvailable => "timeNotAvailable",
            FailInfo::UnacceptedPolicy => "unacceptedPolicy",
            FailInfo::UnacceptedExtension => "unacceptedExtension",
            FailInfo::SystemFailure => "systemFailure",
        }
    }
}

/// A refusal, answered as a `TimeStampResp` with status `rejection`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", text, fail.name())]
pub struct Rejected {
    /// The failure bit.
    pub fail: FailInfo,
    /// The `statusString`.
    pub text: String,
}

impl Rejected {
    /// A refusal for `fail`.
    pub fn new(fail: FailInfo, text: impl Into<String>) -> Self {
        Rejected { fail, text: text.into() }
    }
}

/// A `TimeStampReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `messageImprint.hashAlgorithm`.
    pub hash_alg: String,
    /// `messageImprint.hashedMessage`.
    pub hashed: Vec<u8>,
    /// `messageImprint` as sent, DER: the token echoes it byte for byte (RFC 3161 §2.4.2).
    pub imprint_der: Option<Vec<u8>>,
    /// `reqPolicy`.
    pub policy: Option<String>,
    /// `nonce`, the INTEGER's DER as sent (echoed as it is).
    pub nonce: Option<Vec<u8>>,
    /// `certReq`: the TSA certificate goes into the token.
    pub cert_req: bool,
}

/// The digest length of a hash algorithm seald reads in imprints; `None` for unknown ones.
pub fn digest_len(alg: &str) -> Option<usize> {
    match alg {
        SM3 | SHA256 => Some(32),
        SHA384 => Some(48),
        SHA512 => Some(64),
        _ => None,
    }
}

/// `data` hashed with `alg` (an imprint's algorithm), `None` for unknown ones.
pub fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    Some(match alg {
        SM3 => crypto::sm3(data).to_vec(),
        SHA256 => crypto::sha256(data).to_vec(),
        SHA384 => sha2::Sha384::digest(data).to_vec(),
        SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// The name of a hash algorithm for people.
pub fn digest_name(alg: &str) -> &str {
    match alg {
        SM3 => "SM3",
        SHA256 => "SHA-256",
        SHA384 => "SHA-384",
        SHA512 => "SHA-512",
        SHA1 => "SHA-1",
        other => other,
    }
}

/// A request that could not be read at all (not DER): a 400, not a `TimeStampResp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not DER: {0}")]
pub struct NotDer(pub String);

/// Reads a `TimeStampReq`. `Err(Ok(NotDer))` when the body is not one DER element; `Err(Err(..))`
/// a refusal to answer as RFC 3161 says.
pub fn parse_request(der: &[u8]) -> Result<Request, Result<NotDer, Rejected>> {
    let format = |m: String| Err(Err(Rejected::new(FailInfo::BadDataFormat, m)));
    if der.len() > MAX_REQUEST {
        return Err(Err(Rejected::new(FailInfo::BadRequest, format!("the request is over {MAX_REQUEST} bytes"))));
    }
    let (outer, rest) = tlv(der).map_err(|e| Ok(NotDer(e.to_string())))?;
    if !rest.is_empty() {
        return Err(Ok(NotDer(format!("{} bytes follow the request", rest.len()))));
    }
    if outer.tag != 0x30 {
        return format(format!("the request is tag 0x{:02x}, not a SEQUENCE", outer.tag));
    }
    let read = || -> Result<Request, Rejected> {
        let f = |e: SesError| Rejected::new(FailInfo::BadDataFormat, e.to_string());
        let el = children(&outer).map_err(f)?;
        let version = el.first().ok_or_else(|| Rejected::new(FailInfo::BadDataFormat, "an empty request"))?;
        if version.tag != 0x02 {
            return Err(Rejected::new(FailInfo::BadDataFormat, "the request has no version"));
        }
        if version.content != [1] {
            return Err(Rejected::new(FailInfo::BadRequest, "only version 1 requests are answered"));
        }
        let imprint = el.get(1).ok_or_else(|| Rejected::new(FailInfo::BadDataFormat, "no messageImprint"))?;
        let parts = children(imprint).map_err(f)?;
        let (Some(alg), Some(hashed), None) = (parts.first(), parts.get(1), parts.get(2)) else {
            return Err(Rejected::new(FailInfo::BadDataFormat, "messageImprint is not {hashAlgorithm, hashedMessage}"));
        };
        let hash_alg = algorithm(alg).map_err(f)?;
        if hashed.tag != 0x04 {
            return Err(Rejected::new(FailInfo::BadDataFormat, "hashedMessage is not an OCTET STRING"));
        }
        match digest_len(&hash_alg) {
            None if hash_alg == SHA1 => {
                return Err(Rejected::new(FailInfo::BadAlg, "SHA-1 imprints are not stamped: use SM3 or SHA-256"))
            }
            None => {
                return Err(Rejected::new(
                    FailInfo::BadAlg,
                    format!("hash algorithm {hash_alg} is not one of SM3, SHA-256, SHA-384, SHA-512"),
                ))
            }
            Some(n) if n != hashed.content.len() => {
                return Err(Rejected::new(
                    FailInfo::BadRequest,
                    format!("a {} imprint is {n} bytes, this one is {}", digest_name(&hash_alg), hashed.content.len()),
                ))
            }
            Some(_) => {}
        }
        let mut req = Request {
            hash_alg,
            hashed: hashed.content.to_vec(),
            imprint_der: Some(imprint.raw.to_vec()),
            policy: None,
            nonce: None,
            cert_req: false,
        };
        let mut last = 1;
        for (i, e) in el.iter().enumerate().skip(2) {
            // The optional fields in their order: reqPolicy, nonce, certReq, [0] extensions.
            let rank = match e.tag {
                0x06 => 2,
                0x02 => 3,
                0x01 => 4,
                0xa0 => 5,
                t => return Err(Rejected::new(FailInfo::BadDataFormat, format!("field {i} has tag 0x{t:02x}"))),
            };
            if rank <= last {
                return Err(Rejected::new(FailInfo::BadDataFormat, format!("field {i} is out of order or repeated")));
            }
            last = rank;
            match rank {
                2 => req.policy = Some(oid(e, "reqPolicy").map_err(f)?),
                3 => {
                    if e.content.is_empty() || e.content.len() > 64 {
                        return Err(Rejected::new(FailInfo::BadRequest, "the nonce is empty or over 64 bytes"));
                    }
                    req.nonce = Some(e.raw.to_vec());
                }
                4 => match e.content {
                    [0xff] => req.cert_req = true,
                    [0x00] => {}
                    _ => return Err(Rejected::new(FailInfo::BadDataFormat, "certReq is not a DER BOOLEAN")),
                },
                _ => {
                    return Err(Rejected::new(
                        FailInfo::UnacceptedExtension,
                        "extensions in requests are not supported",
                    ))
                }
            }
        }
        Ok(req)
    };
    read().map_err(Err)
}

/// An AlgorithmIdentifier's OID (parameters absent or NULL).
fn algorithm(t: &Tlv<'_>) -> Result<String, SesError> {
    let parts = children(t)?;
    let id = oid(parts.first().ok_or_else(|| SesError("an empty AlgorithmIdentifier".into()))?, "algorithm")?;
    match parts.get(1) {
        None => Ok(id),
        Some(p) if p.tag == 0x05 && p.content.is_empty() && parts.len() == 2 => Ok(id),
        Some(_) => Err(SesError(format!("algorithm {id} has parameters"))),
    }
}

/// `TimeStampReq` DER: what `sealctl` and seald's own sealing send (nonce random, certReq true).
pub fn request(hash_alg: &str, hashed: &[u8], nonce: u64) -> Result<Vec<u8>, SesError> {
    let imprint = seq(&[&seq(&[&der_oid(hash_alg)?]), &der_tlv(0x04, hashed)]);
    Ok(seq(&[&ses::der_int(1), &imprint, &unsigned_int(&nonce.to_be_bytes()), &[0x01, 0x01, 0xff]]))
}

/// A DER INTEGER of the unsigned big-endian `bytes`.
fn unsigned_int(bytes: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if b.first().is_none_or(|f| f & 0x80 != 0) {
        b.insert(0, 0);
    }
    der_tlv(0x02, &b)
}

/// What a TSA puts into one token.
pub struct Stamp<'a> {
    /// The request answered.
    pub request: &'a Request,
    /// The policy under which it is issued.
    pub policy: &'a str,
    /// The serial number, unique for this TSA.
    pub serial: u64,
    /// The time.
    pub time: SystemTime,
    /// How far the time may be off, in milliseconds (0: not stated).
    pub accuracy_ms: u64,
    /// The TSA's certificate, whose key signs.
    pub tsa_cert: &'a Cert,
}

/// The `TSTInfo` DER of `s`.
pub fn tst_info(s: &Stamp<'_>) -> Result<Vec<u8>, SesError> {
    let r = s.request;
    let imprint = match &r.imprint_der {
        Some(asked) => asked.clone(),
        None => seq(&[&seq(&[&der_oid(&r.hash_alg)?]), &der_tlv(0x04, &r.hashed)]),
    };
    let mut parts: Vec<Vec<u8>> = vec![
        ses::der_int(1),
        der_oid(s.policy)?,
        imprint,
        unsigned_int(&s.serial.to_be_bytes()),
        ses::der_time_ms(s.time),
    ];
    if s.accuracy_ms > 0 {
        let (secs, millis) = (s.accuracy_ms / 1000, s.accuracy_ms % 1000);
        let mut acc: Vec<Vec<u8>> = Vec::new();
        if secs > 0 {
            acc.push(unsigned_int(&secs.to_be_bytes()));
        }
        if millis > 0 {
            let mut m = unsigned_int(&millis.to_be_bytes());
            m[0] = 0x80;
            acc.push(m);
        }
        let refs: Vec<&[u8]> = acc.iter().map(Vec::as_slice).collect();
        parts.push(seq(&refs));
    }
    if let Some(n) = &r.nonce {
        parts.push(n.clone());
    }
    // tsa [0] GeneralName: the TSA certificate's subject as a directoryName [4].
    parts.push(der_tlv(0xa0, &der_tlv(0xa4, &s.tsa_cert.subject_der())));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(seq(&refs))
}

/// A time-stamp token: `TSTInfo` signed by `signer` (the holder of `tsa_cert`'s key), with the
/// signed attributes contentType, messageDigest and signingCertificateV2 (RFC 5816: SM3 of the
/// certificate for SM2, SHA-256 for P-256, with its issuer and serial).
pub fn token(s: &Stamp<'_>, signer: &dyn KeySigner) -> Result<Vec<u8>, SesError> {
    let info = tst_info(s)?;
    let key = s.tsa_cert.public_key().map_err(|e| SesError(e.to_string()))?;
    let cert_hash = match key.alg() {
        KeyAlg::Sm2 => [seq(&[&der_oid(SM3)?]), der_tlv(0x04, &crypto::sm3(s.tsa_cert.der()))].concat(),
        // SHA-256 is the DEFAULT, so it is left out (DER).
        _ => der_tlv(0x04, &crypto::sha256(s.tsa_cert.der())),
    };
    let issuer_serial = seq(&[&seq(&[&der_tlv(0xa4, &s.tsa_cert.issuer_der())]), &s.tsa_cert.serial_der()]);
    let ess_cert_id = seq(&[&cert_hash, &issuer_serial]);
    let attrs = vec![
        cms::attribute(ATTR_CONTENT_TYPE, &der_oid(CT_TST_INFO)?)?,
        cms::attribute(ATTR_MESSAGE_DIGEST, &der_tlv(0x04, &cms::content_digest(key.alg(), &info)))?,
        cms::attribute(ATTR_SIGNING_CERTIFICATE_V2, &seq(&[&seq(&[&ess_cert_id])]))?,
    ];
    let what = Encapsulated {
        content: &info,
        content_type: CT_TST_INFO,
        outer: PKCS7_SIGNED_DATA,
        detached: false,
        with_cert: s.request.cert_req,
    };
    cms::build_signed(&what, attrs, s.tsa_cert, signer)
}

/// `PKIStatusInfo` with `status` and, for a refusal, its text and failure bit.
fn status_info(status: i64, rejected: Option<&Rejected>) -> Vec<u8> {
    match rejected {
        None => seq(&[&ses::der_int(status)]),
        Some(r) => {
            let bit = r.fail.bit();
            let (len, unused) = (bit as usize / 8 + 1, 7 - bit % 8);
            let mut bits = vec![0u8; len + 1];
            bits[0] = unused;
            bits[len] = 0x80 >> (bit % 8);
            seq(&[&ses::der_int(status), &seq(&[&der_tlv(0x0c, r.text.as_bytes())]), &der_tlv(0x03, &bits)])
        }
    }
}

/// A `TimeStampResp` granting `token`.
pub fn granted(token: &[u8]) -> Vec<u8> {
    seq(&[&status_info(0, None), token])
}

/// A `TimeStampResp` refusing: status `rejection` (2), the text and the failure bit.
pub fn rejection(r: &Rejected) -> Vec<u8> {
    seq(&[&status_info(2, Some(r))])
}

/// Reads a `TimeStampResp`: the token when granted, else what the TSA said.
pub fn parse_response(der: &[u8]) -> Result<Vec<u8>, SesError> {
    let (outer, _) = tlv(der)?;
    let el = children(&outer)?;
    let info = children(el.first().ok_or_else(|| SesError("an empty TimeStampResp".into()))?)?;
    let status = info.first().filter(|s| s.tag == 0x02).ok_or_else(|| SesError("no PKIStatus".into()))?;
    match status.content {
        [0] | [1] => el.get(1).map(|t| t.raw.to_vec()).ok_or_else(|| SesError("granted, but no token".into())),
        s => {
            let text = info
                .get(1)
                .filter(|t| t.tag == 0x30)
                .and_then(|t| children(t).ok())
                .map(|v| {
                    v.iter().map(|s| String::from_utf8_lossy(s.content).into_owned()).collect::<Vec<_>>().join("; ")
                })
                .unwrap_or_default();
            Err(SesError(format!("the TSA answered status {} {text}", s.first().copied().unwrap_or(0))))
        }
    }
}

/// A token's `TSTInfo`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    /// `policy`.
    pub policy: String,
    /// `messageImprint.hashAlgorithm`.
    pub hash_alg: String,
    /// `messageImprint.hashedMessage`.
    pub hashed: Vec<u8>,
    /// `serialNumber`, lowercase hex of its content.
    pub serial: String,
    /// `genTime`, to the millisecond.
    pub time: SystemTime,
    /// `accuracy`, in milliseconds.
    pub accuracy_ms: Option<u64>,
    /// `nonce`'s DER, if any.
    pub nonce: Option<Vec<u8>>,
}

/// A small non-negative INTEGER's value; anything over 2^32 (or negative) reads as `u32::MAX`.
fn small_uint(t: &Tlv<'_>) -> u64 {
    let digits: Vec<u8> = t.content.iter().copied().skip_while(|b| *b == 0).collect();
    if digits.len() > 4 || t.content.first().is_some_and(|b| b & 0x80 != 0) {
        return u64::from(u32::MAX);
    }
    digits.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
}

/// Reads a `TSTInfo`.
pub fn parse_tst_info(der: &[u8]) -> Result<TstInfo, SesError> {
    let bad = |m: &str| SesError(format!("TSTInfo: {m}"));
    let (outer, _) = tlv(der)?;
    let el = children(&outer)?;
    if el.first().is_none_or(|v| v.tag != 0x02 || v.content != [1]) {
        return Err(bad("version is not 1"));
    }
    let policy = oid(el.get(1).ok_or_else(|| bad("no policy"))?, "policy")?;
    let imprint = children(el.get(2).ok_or_else(|| bad("no messageImprint"))?)?;
    let hash_alg = algorithm(imprint.first().ok_or_else(|| bad("no hashAlgorithm"))?)?;
    let hashed = imprint.get(1).filter(|h| h.tag == 0x04).ok_or_else(|| bad("no hashedMessage"))?.content.to_vec();
    let serial = el.get(3).filter(|s| s.tag == 0x02).ok_or_else(|| bad("no serialNumber"))?;
    let time = ses::read_time_ms(el.get(4).ok_or_else(|| bad("no genTime"))?)?;
    let (mut accuracy_ms, mut nonce) = (None, None);
    for e in &el[5..] {
        match e.tag {
            0x30 => {
                let mut ms: u64 = 0;
                for a in children(e)? {
                    ms = ms.saturating_add(match a.tag {
                        0x02 => small_uint(&a).saturating_mul(1000),
                        0x80 => small_uint(&a),
                        0x81 => small_uint(&a) / 1000,
                        _ => 0,
                    });
                }
                accuracy_ms = Some(ms);
            }
            0x02 => nonce = Some(e.raw.to_vec()),
            _ => {}
        }
    }
    Ok(TstInfo { policy, hash_alg, hashed, serial: hex::encode(serial.content), time, accuracy_ms, nonce })
}

/// A token verified over the bytes it stamps.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    /// Whether it holds: imprint, signature, TSA certificate and chain at its time, purpose.
    pub ok: bool,
    /// Its time, when the token could be read.
    pub time: Option<SystemTime>,
    /// What was found, for the report.
    pub detail: String,
    /// The TSA certificate's subject, when found.
    pub tsa: Option<String>,
}

/// Whether the ESS signingCertificate attribute (`v2`: RFC 5035, its hash algorithm SHA-256 by
/// default; v1: RFC 2634, SHA-1) names `cert`: its first certificate's hash, and its issuer and
/// serial when given. RFC 3161 §2.4.1 requires the attribute in every token.
fn ess_names(attr: Option<&(bool, Vec<u8>)>, cert: &Cert) -> Result<(), String> {
    let Some((v2, value)) = attr else {
        return Err("the token has no signingCertificate attribute naming its TSA certificate".into());
    };
    let read = || -> Result<(), SesError> {
        let (outer, _) = tlv(value)?;
        let certs = children(children(&outer)?.first().ok_or_else(|| SesError("no certs".into()))?)?;
        let id = children(certs.first().ok_or_else(|| SesError("no ESSCertID".into()))?)?;
        let (alg, rest) = match (v2, id.first()) {
            (true, Some(a)) if a.tag == 0x30 => (algorithm(a)?, &id[1..]),
            (true, _) => (SHA256.to_string(), &id[..]),
            (false, _) => (SHA1.to_string(), &id[..]),
        };
        let hash = rest.first().filter(|h| h.tag == 0x04).ok_or_else(|| SesError("no certHash".into()))?;
        let ours = if alg == SHA1 {
            use sha1::Digest as _;
            Some(sha1::Sha1::digest(cert.der()).to_vec())
        } else {
            digest(&alg, cert.der())
        };
        if ours.as_deref() != Some(hash.content) {
            return Err(SesError(format!("its {} certHash is not the TSA certificate's", digest_name(&alg))));
        }
        if let Some(issuer_serial) = rest.get(1) {
            let parts = children(issuer_serial)?;
            let serial = parts.get(1).ok_or_else(|| SesError("issuerSerial has no serial".into()))?;
            let names = children(parts.first().ok_or_else(|| SesError("issuerSerial has no issuer".into()))?)?;
            let directory = names.iter().find(|n| n.tag == 0xa4).map(|n| n.content);
            if serial.raw != cert.serial_der().as_slice()
                || directory.is_some_and(|d| d != cert.issuer_der().as_slice())
            {
                return Err(SesError("its issuerSerial is not the TSA certificate's".into()));
            }
        }
        Ok(())
    };
    read().map_err(|e| format!("signingCertificate{}: {e}", if *v2 { "V2" } else { "" }))
}

/// Verifies a time-stamp token over `stamped` (the bytes whose hash its imprint must be): the
/// imprint, the TSA's signature over the signed attributes and the `TSTInfo`, the TSA certificate
/// at the token's time (validity, `timeStamping` as its only purpose), and its path to the anchors
/// of `opts` (required: a token from a TSA nobody trusts proves no time). A revoked TSA certificate
/// fails; one whose revocation is unknown does not.
pub fn verify_token(token: &[u8], stamped: &[u8], opts: &VerifyOptions<'_>) -> TokenCheck {
    let fail = |time, tsa, detail: String| TokenCheck { ok: false, time, detail, tsa };
    let sd = match cms::parse(token) {
        Ok(sd) => sd,
        Err(e) => return fail(None, None, format!("the time-stamp token is not a SignedData: {e}")),
    };
    if sd.content_type != CT_TST_INFO {
        return fail(None, None, format!("the token's content is {}, not a TSTInfo", sd.content_type));
    }
    let info = match sd.content.as_deref().map(parse_tst_info) {
        Some(Ok(i)) => i,
        Some(Err(e)) => return fail(None, None, format!("the token's TSTInfo does not read: {e}")),
        None => return fail(None, None, "the token carries no TSTInfo".to_string()),
    };
    let when = ses::fmt_time(info.time);
    let Some(expected) = digest(&info.hash_alg, stamped) else {
        return fail(Some(info.time), None, format!("imprint algorithm {} is not known", info.hash_alg));
    };
    if expected != info.hashed {
        return fail(
            Some(info.time),
            None,
            format!("its imprint is not {} of the signature value", digest_name(&info.hash_alg)),
        );
    }
    let Some(cert) = sd.signers.first().and_then(|si| sd.signer_cert(si)) else {
        return fail(Some(info.time), None, "the token does not carry its TSA's certificate".to_string());
    };
    let tsa = Some(cert.subject_text());
    if let Err(why) = ess_names(sd.signers[0].signing_certificate.as_ref(), &cert) {
        return fail(Some(info.time), tsa, why);
    }
    let (valid_then, validity) = ses::cert_validity_at(cert.der(), info.time);
    if !valid_then {
        return fail(Some(info.time), tsa, format!("the TSA certificate at the token's time: {validity}"));
    }
    match cert.extended_key_usage() {
        Some((purposes, true)) if purposes == [KP_TIME_STAMPING] => {}
        Some((purposes, _)) if purposes == [KP_TIME_STAMPING] => {
            return fail(Some(info.time), tsa, "the TSA certificate's extended key usage is not critical".into())
        }
        _ => {
            return fail(
                Some(info.time),
                tsa,
                "the TSA certificate is not for time-stamping only (extended key usage timeStamping)".into(),
            )
        }
    }
    let at = VerifyOptions {
        trust: opts.trust,
        have_crls: opts.have_crls,
        require_trust: true,
        at: Some(info.time),
        ..Default::default()
    };
    let report = cms::verify_parsed(&sd, None, &at);
    let failed: Vec<&Step> = report.steps.iter().filter(|s| s.ok == Some(false) && s.step != "trust_chain").collect();
    if !failed.is_empty() {
        let why: Vec<String> = failed.iter().map(|s| format!("{}: {}", s.step, s.detail)).collect();
        return fail(Some(info.time), tsa, why.join("; "));
    }
    if report.steps.iter().any(|s| s.step == "trust_chain" && s.ok != Some(true)) {
        let tsa_name = cert.subject_text();
        return fail(
            Some(info.time),
            tsa,
            format!("the TSA certificate ({tsa_name}) does not chain to a trust anchor"),
        );
    }
    TokenCheck {
        ok: true,
        time: Some(info.time),
        detail: format!(
            "a time-stamp of {when} by {} (serial {}, {} imprint of the signature value){}",
            cert.subject_text(),
            info.serial,
            digest_name(&info.hash_alg),
            info.accuracy_ms.map(|a| format!(", accuracy {a} ms")).unwrap_or_default()
        ),
        tsa,
    }
}

#[cfg(test)]
mod tests {
    //! A whole seal made here with software keys at chosen times: the time-stamp decides the time
    //! a signature is judged at, and a certificate that expired after the stamp still verifies.
    use super::*;
    use crate::crypto::PublicKey;
    use crate::formats::x509::{issue, CertTemplate, TrustStore};
    use std::time::Duration;

    struct Soft(p256::ecdsa::SigningKey, PublicKey);

    impl Soft {
        fn new(seed: u8) -> Self {
            let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
            let point = k.verifying_key().to_encoded_point(false);
            Soft(k.clone(), PublicKey::from_ec_point(KeyAlg::P256, point.as_bytes()).unwrap())
        }
    }

    impl signature::Signer<crypto::DerSignature> for Soft {
        fn try_sign(&self, message: &[u8]) -> Result<crypto::DerSignature, signature::Error> {
            let sig: p256::ecdsa::Signature = signature::Signer::sign(&self.0, message);
            Ok(crypto::DerSignature::new(sig.to_der().as_bytes().to_vec()))
        }
    }

    impl signature::Keypair for Soft {
        type VerifyingKey = PublicKey;
        fn verifying_key(&self) -> PublicKey {
            self.1.clone()
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    struct Pki {
        now: SystemTime,
        ca: Cert,
        maker: (Cert, Soft),
        signer: (Cert, Soft),
        tsa: (Cert, Soft),
    }

    fn cert(
        subject: &str,
        key: &Soft,
        valid: (SystemTime, SystemTime),
        ca: Option<(&Cert, &Soft)>,
        purpose: Option<&'static str>,
    ) -> Cert {
        let t = CertTemplate {
            subject: vec![("CN", subject.to_string())],
            public_key: &key.1,
            not_before: valid.0,
            not_after: valid.1,
            ca: ca.is_none(),
            purpose,
        };
        match ca {
            Some((c, k)) => issue(&t, Some(c), k).unwrap(),
            None => issue(&t, None, key).unwrap(),
        }
    }

    /// A CA; a maker and a TSA valid around now; a signer whose certificate was valid for one day,
    /// ten days ago.
    fn pki() -> Pki {
        let now = SystemTime::now();
        let wide = (now - 30 * DAY, now + 30 * DAY);
        let ca_key = Soft::new(1);
        let ca = cert("CA", &ca_key, wide, None, None);
        let (mk, sk, tk) = (Soft::new(2), Soft::new(3), Soft::new(4));
        let maker = cert("maker", &mk, wide, Some((&ca, &ca_key)), None);
        let signer = cert("signer", &sk, (now - 10 * DAY, now - 9 * DAY), Some((&ca, &ca_key)), None);
        let tsa = cert("TSA", &tk, wide, Some((&ca, &ca_key)), Some(KP_TIME_STAMPING));
        Pki { now, ca, maker: (maker, mk), signer: (signer, sk), tsa: (tsa, tk) }
    }

    /// A v4 `SES_Signature` claiming `time_info`, with a token of `stamp_at` when given.
    fn signature(p: &Pki, time_info: SystemTime, stamp_at: Option<SystemTime>) -> ses::SesSignature {
        let t = ses::SealTemplate {
            vid: "test",
            es_id: "1001",
            seal_type: 1,
            name: "测试章",
            certs: vec![p.signer.0.der()],
            create_date: p.now - 20 * DAY,
            valid_start: p.now - 20 * DAY,
            valid_end: p.now + 20 * DAY,
            picture_type: "PNG",
            picture: b"\x89PNG",
            width_mm: 40,
            height_mm: 40,
        };
        let info = ses::build_seal_info(&t).unwrap();
        let maker_sig = signature::Signer::<crypto::DerSignature>::try_sign(&p.maker.1, &info).unwrap().into_vec();
        let seal = ses::build_seal(&info, p.maker.0.der(), ECDSA_SHA256, &maker_sig).unwrap();
        let tbs = ses::build_tbs_sign(&seal, time_info, &[7; 32], "/Doc_0/Signs/Sign_0/Signature.xml", &[]).unwrap();
        let value = signature::Signer::<crypto::DerSignature>::try_sign(&p.signer.1, &tbs).unwrap().into_vec();
        let token = stamp_at.map(|at| {
            let request = Request {
                hash_alg: SM3.into(),
                hashed: crypto::sm3(&value).to_vec(),
                imprint_der: None,
                policy: None,
                nonce: None,
                cert_req: true,
            };
            let s = Stamp {
                request: &request,
                policy: SEALD_TSA_POLICY,
                serial: 1,
                time: at,
                accuracy_ms: 1000,
                tsa_cert: &p.tsa.0,
            };
            token(&s, &p.tsa.1).unwrap()
        });
        let der = ses::build_signature(&tbs, p.signer.0.der(), ECDSA_SHA256, &value, token.as_deref()).unwrap();
        ses::SesSignature::parse(&der).unwrap()
    }

    fn judged(p: &Pki, sig: &ses::SesSignature) -> ses::Report {
        let trust = TrustStore::new(vec![p.ca.clone()], Vec::new());
        ses::verify_signature(
            sig,
            &VerifyOptions { trust: Some(&trust), document_sm3: Some([7; 32]), ..Default::default() },
        )
    }

    fn step(r: &ses::Report, name: &str) -> (Option<bool>, String) {
        let s = r.steps.iter().find(|s| s.step == name).unwrap();
        (s.ok, s.detail.clone())
    }

    #[test]
    fn a_certificate_that_expired_after_the_stamp_still_verifies_and_the_stamp_decides_the_time() {
        let p = pki();
        let signed = p.now - 9 * DAY - DAY / 2;
        // Stamped 30 s after signing; the signer's certificate ended 9 days ago.
        let r = judged(&p, &signature(&p, signed, Some(signed + Duration::from_secs(30))));
        assert!(r.valid, "{r:#?}");
        assert_eq!(step(&r, "timestamp").0, Some(true));
        assert!(step(&r, "seal_validity").1.contains("by its time-stamp"), "{r:#?}");
        assert_eq!(step(&r, "signer_certificate").0, Some(true));
        // The same without the stamp: judged at timeInfo (inside the certificate's day), and says so.
        let r = judged(&p, &signature(&p, signed, None));
        assert!(r.valid, "{r:#?}");
        assert_eq!(step(&r, "timestamp").0, None);
        assert!(step(&r, "seal_validity").1.contains("by timeInfo"), "{r:#?}");
        // timeInfo claims a time before the certificate began; the stamp (inside its day) decides.
        let early = p.now - 11 * DAY;
        let r = judged(&p, &signature(&p, early, Some(signed)));
        assert!(r.valid, "judged at the stamp: {r:#?}");
        let r = judged(&p, &signature(&p, early, None));
        assert!(!r.valid, "judged at timeInfo, before the certificate: {r:#?}");
        assert_eq!(step(&r, "signer_certificate").0, Some(false));
        // timeInfo later than the stamp: the signer's claim contradicts the TSA.
        let r = judged(&p, &signature(&p, signed, Some(signed - Duration::from_secs(60))));
        assert!(!r.valid);
        assert!(step(&r, "timestamp").1.contains("later than the time-stamp"), "{r:#?}");
        // A stamp from a TSA certificate that is not for time-stamping proves nothing.
        let not_tsa = Pki { tsa: (p.maker.0.clone(), Soft::new(2)), ..pki() };
        let r = judged(&not_tsa, &signature(&not_tsa, signed, Some(signed)));
        assert_eq!(step(&r, "timestamp").0, Some(false), "{r:#?}");
    }

    #[test]
    fn requests_are_read_strictly_and_responses_round_trip() {
        let req = request(SM3, &[1; 32], 42).unwrap();
        let r = parse_request(&req).unwrap();
        assert_eq!((r.hash_alg.as_str(), r.hashed.len(), r.cert_req), (SM3, 32, true));
        assert!(matches!(parse_request(&req[..req.len() - 1]), Err(Ok(_))), "cut short: not DER");
        assert!(matches!(parse_request(&[req.clone(), vec![0]].concat()), Err(Ok(_))), "trailing bytes");
        let big = vec![0u8; MAX_REQUEST + 1];
        assert!(matches!(parse_request(&big), Err(Err(Rejected { fail: FailInfo::BadRequest, .. }))));
        let refused = rejection(&Rejected::new(FailInfo::TimeNotAvailable, "no time"));
        assert!(parse_response(&refused).unwrap_err().0.contains("no time"));
        for bit in [FailInfo::BadAlg, FailInfo::SystemFailure] {
            let der = rejection(&Rejected::new(bit, "x"));
            let (outer, _) = tlv(&der).unwrap();
            assert!(children(&outer).is_ok(), "{bit:?}");
        }
    }
}
