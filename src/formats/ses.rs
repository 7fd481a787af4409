//! GB/T 38540-2020 (v4) and GM/T 0031-2014 (v1) electronic seals (`SESeal`) and seal signatures
//! (`SES_Signature`): tolerant parsing that keeps the stored bytes, the standard's verification
//! procedures (GB/T 38540 §6.3 for a seal, §7.3 for a signature) step by step, and strict DER output.
//!
//! Parsing walks the TLVs by hand rather than through `der`'s derive: real producers emit things a
//! strict DER decoder refuses (explicitly encoded DEFAULT values, GeneralizedTime without `Z`,
//! `certListType = 3`, raw r‖s inside the BIT STRING, signature BIT STRINGs with trailing zero bits
//! stripped; see ../shared/STANDARDS.md §1.6). Each tolerated deviation becomes a warning. Every
//! signature is checked over the bytes as stored, never over a re-encoding. Output (`build`) is
//! strict DER through `der`.
//!
//! Version detection follows STANDARDS.md §1.3: an `SESeal` with 2 elements is v1; with 4 it is v4
//! when the header version is 4. An `SES_Signature` with 2 elements is v1, with 4 or 5 it is v4.
//! Header version 5 (ofdrw's "v5") is refused as non-standard.

use crate::crypto::{self, PublicKey};
use crate::formats::x509::Cert;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SM2 signature with SM3.
pub use super::oid::SM2_SM3 as OID_SM2_SM3;

/// A structure could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SesError(pub String);

fn bad(m: impl Into<String>) -> SesError {
    SesError(m.into())
}

/// One TLV as stored: its tag byte, all its bytes, and its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) raw: &'a [u8],
    pub(crate) content: &'a [u8],
}

/// Reads one TLV (single-byte tags, definite lengths up to 4 length bytes).
pub(crate) fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), SesError> {
    let tag = *input.first().ok_or_else(|| bad("unexpected end of data"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad(format!("multi-byte tag 0x{tag:02x} is not used by these structures")));
    }
    let first = *input.get(1).ok_or_else(|| bad("missing length"))?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(bad("indefinite or oversized length"));
        }
        let bytes = input.get(2..2 + n).ok_or_else(|| bad("truncated length"))?;
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), 2 + n)
    };
    let end = header.checked_add(len).ok_or_else(|| bad("length overflow"))?;
    let raw = input.get(..end).ok_or_else(|| bad(format!("element with tag 0x{tag:02x} is cut short")))?;
    Ok((Tlv { tag, raw, content: &raw[header..] }, &input[end..]))
}

/// The elements inside a constructed TLV.
pub(crate) fn children<'a>(t: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, SesError> {
    if t.tag & 0x20 == 0 {
        return Err(bad(format!("tag 0x{:02x} is not constructed", t.tag)));
    }
    let mut out = Vec::new();
    let mut rest = t.content;
    while !rest.is_empty() {
        let (c, r) = tlv(rest)?;
        out.push(c);
        rest = r;
    }
    Ok(out)
}

fn expect<'a>(t: &Tlv<'a>, tag: u8, what: &str) -> Result<&'a [u8], SesError> {
    if t.tag != tag {
        return Err(bad(format!("{what}: tag 0x{:02x}, expected 0x{tag:02x}", t.tag)));
    }
    Ok(t.content)
}

fn get<'a, 'b>(v: &'b [Tlv<'a>], i: usize, what: &str) -> Result<&'b Tlv<'a>, SesError> {
    v.get(i).ok_or_else(|| bad(format!("{what} is missing")))
}

fn string(t: &Tlv<'_>, tags: &[u8], what: &str) -> Result<String, SesError> {
    if !tags.contains(&t.tag) {
        return Err(bad(format!("{what}: tag 0x{:02x} is not a string", t.tag)));
    }
    Ok(String::from_utf8_lossy(t.content).into_owned())
}

fn integer(t: &Tlv<'_>, what: &str) -> Result<i64, SesError> {
    let c = expect(t, 0x02, what)?;
    if c.is_empty() || c.len() > 8 {
        return Err(bad(format!("{what}: integer of {} bytes", c.len())));
    }
    let mut v: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    for b in c {
        v = (v << 8) | i64::from(*b);
    }
    Ok(v)
}

pub(crate) fn oid(t: &Tlv<'_>, what: &str) -> Result<String, SesError> {
    let c = expect(t, 0x06, what)?;
    der::asn1::ObjectIdentifier::from_bytes(c).map(|o| o.to_string()).map_err(|e| bad(format!("{what}: {e}")))
}

/// A BIT STRING's bytes (the unused-bits count must be 0; STANDARDS.md §1.6 deviations are judged
/// when the signature is read).
fn bits(t: &Tlv<'_>, what: &str) -> Result<Vec<u8>, SesError> {
    let c = expect(t, 0x03, what)?;
    let (&unused, rest) = c.split_first().ok_or_else(|| bad(format!("{what}: empty BIT STRING")))?;
    if unused > 7 {
        return Err(bad(format!("{what}: {unused} unused bits")));
    }
    Ok(rest.to_vec())
}

/// A time read from a seal or signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SesTime {
    /// The instant.
    pub at: SystemTime,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// GeneralizedTime (or, in v1, UTCTime), with the tolerances of STANDARDS.md §1.6.
fn read_time(t: &Tlv<'_>, what: &str, warnings: &mut Vec<String>) -> Result<SesTime, SesError> {
    let text = std::str::from_utf8(t.content).map_err(|_| bad(format!("{what}: time is not text")))?;
    let (digits, zulu) = match text.strip_suffix('Z') {
        Some(d) => (d, true),
        None => (text, false),
    };
    let digits = digits.split('.').next().unwrap_or(digits);
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad(format!("{what}: '{text}' is not a time")));
    let full = match (t.tag, digits.len()) {
        (0x18, 14) => digits.to_string(),
        (0x17, 12) | (0x18, 12) => {
            if t.tag == 0x18 {
                warnings.push(format!("{what}: UTCTime text '{text}' inside a GeneralizedTime"));
            }
            let yy = num(&digits[..2])?;
            format!("{}{digits}", if yy >= 50 { 19 } else { 20 })
        }
        (0x17 | 0x18, _) => return Err(bad(format!("{what}: '{text}' is not a time"))),
        (tag, _) => return Err(bad(format!("{what}: tag 0x{tag:02x} is not a time"))),
    };
    let (y, mo, d, h, mi, s) = (
        num(&full[0..4])?,
        num(&full[4..6])?,
        num(&full[6..8])?,
        num(&full[8..10])?,
        num(&full[10..12])?,
        num(&full[12..14])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad(format!("{what}: '{text}' is not a valid time")));
    }
    let mut secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    if !zulu {
        // STANDARDS.md §1.6: producers that omit `Z` write Beijing time.
        warnings.push(format!("{what}: time '{text}' has no 'Z'; read as Beijing time (UTC+8)"));
        secs -= 8 * 3600;
    }
    let at = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Ok(SesTime { at })
}

/// A time TLV (UTCTime or GeneralizedTime) as an instant, with the same tolerances.
pub(crate) fn read_time_pub(t: &Tlv<'_>, warnings: &mut Vec<String>) -> Result<SystemTime, SesError> {
    read_time(t, "time", warnings).map(|t| t.at)
}

/// Which standard a structure follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SesVersion {
    /// GM/T 0031-2014.
    V1,
    /// GB/T 38540-2020.
    V4,
}

/// `SES_CertList`: the signer certificates, or their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertList {
    /// DER certificates (certListType 1, or v1).
    Certs(Vec<Vec<u8>>),
    /// (digest algorithm name, digest) (certListType 2).
    Digests(Vec<(String, Vec<u8>)>),
}

/// `SES_ESPictrueInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// `PNG`, `GIF`, `JPG`, `SVG`, `BMP`, `ofd` ...
    pub kind: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Width, mm.
    pub width: i64,
    /// Height, mm.
    pub height: i64,
}

/// `SES_SealInfo` (GB/T 38540 §6.1.2; GM/T 0031 §6.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesSealInfo {
    /// Header ID ("ES").
    pub header_id: String,
    /// Header version.
    pub version: i64,
    /// Vendor id.
    pub vid: String,
    /// esID.
    pub es_id: String,
    /// Seal type.
    pub seal_type: i64,
    /// Name.
    pub name: String,
    /// certListType (v4).
    pub cert_list_type: Option<i64>,
    /// The signer certificates.
    pub cert_list: CertList,
    /// createDate.
    pub create_date: SesTime,
    /// validStart.
    pub valid_start: SesTime,
    /// validEnd.
    pub valid_end: SesTime,
    /// The picture.
    pub picture: Picture,
    /// extDatas present.
    pub has_ext_datas: bool,
}

/// `SESeal` (GB/T 38540 §6.1.1; GM/T 0031 §6.1.1), with its stored bytes.
#[derive(Debug, Clone)]
pub struct SesSeal {
    /// v1 or v4.
    pub version: SesVersion,
    /// The whole structure as stored.
    pub raw: Vec<u8>,
    /// The seal information.
    pub info: SesSealInfo,
    /// The maker certificate, DER.
    pub maker_cert: Vec<u8>,
    /// signAlgID.
    pub sign_alg: String,
    /// The maker's signature as stored.
    pub signed_value: Vec<u8>,
    /// The bytes the maker signed: v4 the stored `SES_SealInfo` TLV; v1 SEQUENCE{SealInfo, cert, alg}
    /// built from the stored TLVs.
    pub signed_bytes: Vec<u8>,
    /// Tolerated deviations.
    pub warnings: Vec<String>,
}

fn seal_info(t: &Tlv<'_>, v1: bool, w: &mut Vec<String>) -> Result<SesSealInfo, SesError> {
    let el = children(t)?;
    let header = children(get(&el, 0, "header")?)?;
    let header_id = string(get(&header, 0, "header ID")?, &[0x16, 0x13, 0x0c], "header ID")?;
    if header_id != "ES" {
        return Err(bad(format!("header ID is '{header_id}', not 'ES'")));
    }
    let version = integer(get(&header, 1, "header version")?, "header version")?;
    let vid = string(get(&header, 2, "header Vid")?, &[0x16, 0x13, 0x0c], "header Vid")?;
    let es_id = string(get(&el, 1, "esID")?, &[0x16, 0x13, 0x0c], "esID")?;
    let prop = children(get(&el, 2, "property")?)?;
    let seal_type = integer(get(&prop, 0, "property type")?, "property type")?;
    let raw_name = string(get(&prop, 1, "property name")?, &[0x0c, 0x16, 0x13, 0x1e], "property name")?;
    let name = raw_name.trim_end_matches('\0').to_string();
    if name.len() != raw_name.len() {
        w.push("property name is padded with NUL characters".into());
    }
    let (cert_list_type, list_index) =
        if v1 { (None, 2) } else { (Some(integer(get(&prop, 2, "certListType")?, "certListType")?), 3) };
    let list = get(&prop, list_index, "certList")?;
    let items = children(list)?;
    let all_octets = items.iter().all(|i| i.tag == 0x04);
    let cert_list = match cert_list_type {
        None | Some(1) if all_octets => CertList::Certs(items.iter().map(|i| i.content.to_vec()).collect()),
        Some(2) => {
            let mut d = Vec::new();
            for i in &items {
                let obj = children(i)?;
                let kind = string(get(&obj, 0, "digest type")?, &[0x13, 0x16, 0x0c], "digest type")?;
                d.push((kind, expect(get(&obj, 1, "digest value")?, 0x04, "digest value")?.to_vec()));
            }
            CertList::Digests(d)
        }
        Some(other) if all_octets => {
            w.push(format!(
                "certListType is {other} (the standard allows 1 or 2); its list holds certificates, read as 1"
            ));
            CertList::Certs(items.iter().map(|i| i.content.to_vec()).collect())
        }
        other => return Err(bad(format!("certList does not fit certListType {other:?}"))),
    };
    let create_date = read_time(get(&prop, list_index + 1, "createDate")?, "createDate", w)?;
    let valid_start = read_time(get(&prop, list_index + 2, "validStart")?, "validStart", w)?;
    let valid_end = read_time(get(&prop, list_index + 3, "validEnd")?, "validEnd", w)?;
    let pic = children(get(&el, 3, "picture")?)?;
    let picture = Picture {
        kind: string(get(&pic, 0, "picture type")?, &[0x16, 0x13, 0x0c], "picture type")?,
        data: expect(get(&pic, 1, "picture data")?, 0x04, "picture data")?.to_vec(),
        width: integer(get(&pic, 2, "picture width")?, "picture width")?,
        height: integer(get(&pic, 3, "picture height")?, "picture height")?,
    };
    let has_ext_datas = el.len() > 4;
    if let Some(ext) = el.get(4) {
        for e in children(ext)? {
            let parts = children(&e)?;
            if parts.get(1).is_some_and(|b| b.tag == 0x01 && b.content == [0]) {
                w.push("extDatas encodes critical FALSE explicitly (not DER); verified over the stored bytes".into());
            }
        }
    }
    Ok(SesSealInfo {
        header_id,
        version,
        vid,
        es_id,
        seal_type,
        name,
        cert_list_type,
        cert_list,
        create_date,
        valid_start,
        valid_end,
        picture,
        has_ext_datas,
    })
}

pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

impl SesSeal {
    /// Parses a seal, detecting its version.
    pub fn parse(bytes: &[u8]) -> Result<Self, SesError> {
        let (outer, rest) = tlv(bytes)?;
        let mut warnings = Vec::new();
        if !rest.is_empty() {
            warnings.push(format!("{} bytes after the seal are ignored", rest.len()));
        }
        Self::from_tlv(&outer, warnings)
    }

    fn from_tlv(outer: &Tlv<'_>, mut warnings: Vec<String>) -> Result<Self, SesError> {
        let _ = expect(outer, 0x30, "SESeal")?;
        let el = children(outer)?;
        match el.len() {
            2 => {
                let info_tlv = get(&el, 0, "eSealInfo")?;
                let info = seal_info(info_tlv, true, &mut warnings)?;
                let sign = children(get(&el, 1, "signInfo")?)?;
                let cert = get(&sign, 0, "signInfo cert")?;
                let alg = get(&sign, 1, "signInfo signatureAlgorithm")?;
                Ok(SesSeal {
                    version: SesVersion::V1,
                    raw: outer.raw.to_vec(),
                    maker_cert: expect(cert, 0x04, "maker cert")?.to_vec(),
                    sign_alg: oid(alg, "signatureAlgorithm")?,
                    signed_value: bits(get(&sign, 2, "signData")?, "signData")?,
                    signed_bytes: seq(&[info_tlv.raw, cert.raw, alg.raw]),
                    info,
                    warnings,
                })
            }
            4 | 5 => {
                let info_tlv = get(&el, 0, "eSealInfo")?;
                let info = seal_info(info_tlv, false, &mut warnings)?;
                match info.version {
                    4 => {}
                    5 => return Err(bad("header version 5 (ofdrw's \"v5\") is not a published standard")),
                    v => return Err(bad(format!("a 4-element SESeal with header version {v}"))),
                }
                if el.len() == 5 {
                    return Err(bad("a fifth element in SESeal is not in GB/T 38540"));
                }
                Ok(SesSeal {
                    version: SesVersion::V4,
                    raw: outer.raw.to_vec(),
                    maker_cert: expect(get(&el, 1, "cert")?, 0x04, "maker cert")?.to_vec(),
                    sign_alg: oid(get(&el, 2, "signAlgID")?, "signAlgID")?,
                    signed_value: bits(get(&el, 3, "signedValue")?, "signedValue")?,
                    signed_bytes: info_tlv.raw.to_vec(),
                    info,
                    warnings,
                })
            }
            n => Err(bad(format!("SESeal has {n} elements (v1 has 2, v4 has 4)"))),
        }
    }
}

/// `SES_Signature` (GB/T 38540 §7.1; GM/T 0031 §6.2.1), with its stored bytes.
#[derive(Debug, Clone)]
pub struct SesSignature {
    /// v1 or v4.
    pub version: SesVersion,
    /// The whole structure as stored.
    pub raw: Vec<u8>,
    /// `TBS_Sign` as stored: what the signer signed.
    pub tbs: Vec<u8>,
    /// The seal inside.
    pub seal: SesSeal,
    /// timeInfo (v4), or the v1 time when it is a plain time.
    pub time_info: Option<SesTime>,
    /// dataHash.
    pub data_hash: Vec<u8>,
    /// propertyInfo.
    pub property_info: String,
    /// The signer certificate, DER.
    pub signer_cert: Vec<u8>,
    /// signatureAlgID.
    pub sign_alg: String,
    /// The signature as stored.
    pub signature: Vec<u8>,
    /// The time-stamp token, if any.
    pub timestamp: Option<Vec<u8>>,
    /// Tolerated deviations (including the seal's).
    pub warnings: Vec<String>,
}

impl SesSignature {
    /// Parses a signature, detecting its version.
    pub fn parse(bytes: &[u8]) -> Result<Self, SesError> {
        let (outer, rest) = tlv(bytes)?;
        let mut warnings = Vec::new();
        if !rest.is_empty() {
            warnings.push(format!("{} bytes after the signature are ignored", rest.len()));
        }
        let _ = expect(&outer, 0x30, "SES_Signature")?;
        let el = children(&outer)?;
        let tbs_tlv = get(&el, 0, "toSign")?;
        let tbs = children(tbs_tlv)?;
        let tbs_version = integer(get(&tbs, 0, "TBS_Sign version")?, "TBS_Sign version")?;
        let seal = SesSeal::from_tlv(get(&tbs, 1, "eseal")?, Vec::new())?;
        warnings.extend(seal.warnings.iter().map(|w| format!("seal: {w}")));
        let data_hash = bits(get(&tbs, 3, "dataHash")?, "dataHash")?;
        let property_info = string(get(&tbs, 4, "propertyInfo")?, &[0x16, 0x13, 0x0c], "propertyInfo")?;
        match el.len() {
            2 => {
                let time_tlv = get(&tbs, 2, "timeInfo")?;
                let time_info = match time_tlv.tag {
                    0x03 => {
                        let b = bits(time_tlv, "timeInfo")?;
                        let mut w = Vec::new();
                        let t = tlv(&b).ok().and_then(|(inner, _)| read_time(&inner, "timeInfo", &mut w).ok());
                        warnings.extend(w);
                        t
                    }
                    _ => Some(read_time(time_tlv, "timeInfo", &mut warnings)?),
                };
                Ok(SesSignature {
                    version: SesVersion::V1,
                    raw: outer.raw.to_vec(),
                    tbs: tbs_tlv.raw.to_vec(),
                    time_info,
                    data_hash,
                    property_info,
                    signer_cert: expect(get(&tbs, 5, "cert")?, 0x04, "signer cert")?.to_vec(),
                    sign_alg: oid(get(&tbs, 6, "signatureAlgorithm")?, "signatureAlgorithm")?,
                    signature: bits(get(&el, 1, "signature")?, "signature")?,
                    timestamp: None,
                    seal,
                    warnings,
                })
            }
            4 | 5 => {
                if tbs_version != seal.info.version {
                    warnings.push(format!(
                        "TBS_Sign version {tbs_version} differs from the seal's header version {}",
                        seal.info.version
                    ));
                }
                let time_info = Some(read_time(get(&tbs, 2, "timeInfo")?, "timeInfo", &mut warnings)?);
                let timestamp = match el.get(4) {
                    Some(t) if t.tag == 0xa0 => Some(bits(get(&children(t)?, 0, "timeStamp")?, "timeStamp")?),
                    Some(t) if t.tag == 0x80 => Some(t.content.get(1..).unwrap_or_default().to_vec()),
                    Some(t) => return Err(bad(format!("timeStamp has tag 0x{:02x}", t.tag))),
                    None => None,
                };
                Ok(SesSignature {
                    version: SesVersion::V4,
                    raw: outer.raw.to_vec(),
                    tbs: tbs_tlv.raw.to_vec(),
                    time_info,
                    data_hash,
                    property_info,
                    signer_cert: expect(get(&el, 1, "cert")?, 0x04, "signer cert")?.to_vec(),
                    sign_alg: oid(get(&el, 2, "signatureAlgID")?, "signatureAlgID")?,
                    signature: bits(get(&el, 3, "signature")?, "signature")?,
                    timestamp,
                    seal,
                    warnings,
                })
            }
            n => Err(bad(format!("SES_Signature has {n} elements (v1 has 2, v4 has 4 or 5)"))),
        }
    }
}

/// Either structure, told apart by shape (a signature's first element holds a version INTEGER).
#[derive(Debug, Clone)]
pub enum SesObject {
    /// A seal.
    Seal(Box<SesSeal>),
    /// A signature.
    Signature(Box<SesSignature>),
}

impl SesObject {
    /// Parses a seal or a signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, SesError> {
        let (outer, _) = tlv(bytes)?;
        let el = children(&outer)?;
        let first = children(get(&el, 0, "first element")?)?;
        if first.first().is_some_and(|t| t.tag == 0x02) {
            SesSignature::parse(bytes).map(|s| SesObject::Signature(Box::new(s)))
        } else {
            SesSeal::parse(bytes).map(|s| SesObject::Seal(Box::new(s)))
        }
    }
}

/// A signature value as it should be verified: DER, from the stored bytes, tolerating raw r‖s and
/// stripped trailing zero bits (STANDARDS.md §1.6).
pub(crate) fn signature_for_verify(stored: &[u8], warnings: &mut Vec<String>, what: &str) -> Vec<u8> {
    if stored.len() == 64 && stored[0] != 0x30 {
        warnings.push(format!("{what} is raw r||s (64 bytes), not DER"));
        return stored.to_vec();
    }
    if stored.len() >= 2 && stored[0] == 0x30 && stored[1] < 0x80 {
        let declared = stored[1] as usize + 2;
        if declared > stored.len() && declared - stored.len() <= 4 {
            warnings.push(format!("{what}: trailing zero bytes were stripped; restored before verifying"));
            let mut fixed = stored.to_vec();
            fixed.resize(declared, 0);
            return fixed;
        }
    }
    stored.to_vec()
}

/// One step of a verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// Fixed name: `format`, `signer_signature`, `signer_in_cert_list`, `maker_signature`,
    /// `maker_certificate`, `seal_validity`, `signer_certificate`, `data_hash`, `timestamp`,
    /// `trust_chain`, `revocation`, `registry_state`.
    pub step: &'static str,
    /// Passed, failed, or could not run (`None`).
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
}

/// A verification's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Every check that ran passed (and, with `require_trust`, every check ran).
    pub valid: bool,
    /// Every step, in the standard's order.
    pub steps: Vec<Step>,
    /// Tolerated deviations.
    pub warnings: Vec<String>,
}

/// What a verification may use beyond the structure.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Trust anchors (and CRLs) for the maker and signer certificates.
    pub trust: Option<&'a crate::formats::x509::TrustStore>,
    /// Whether CRLs were given (the revocation step runs only then).
    pub have_crls: bool,
    /// A check that could not run counts as failed.
    pub require_trust: bool,
    /// The time to judge a seal alone at (default: now).
    pub at: Option<SystemTime>,
    /// SM3 of the protected bytes, when known.
    pub document_sm3: Option<[u8; 32]>,
    /// The registry's verdict for seals made here: `Some((ok, detail))`.
    pub registry_state: Option<(bool, String)>,
}

pub(crate) fn step(steps: &mut Vec<Step>, name: &'static str, ok: Option<bool>, detail: impl Into<String>) {
    steps.push(Step { step: name, ok, detail: detail.into() });
}

/// `t` as a UTC calendar time (times before 1970 included); `None` beyond what `time` represents.
pub(crate) fn utc(t: SystemTime) -> Option<::time::OffsetDateTime> {
    let secs =
        t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_else(|e| -(e.duration().as_secs() as i64));
    ::time::OffsetDateTime::from_unix_timestamp(secs).ok()
}

pub(crate) fn fmt_time(t: SystemTime) -> String {
    match utc(t) {
        Some(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => t.duration_since(UNIX_EPOCH).map(|d| d.as_secs().to_string()).unwrap_or_default(),
    }
}

fn verify_with_cert(cert_der: &[u8], alg: &str, message: &[u8], sig: &[u8]) -> Result<(), String> {
    let cert = Cert::parse(cert_der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let key = cert.public_key().map_err(|e| format!("certificate key: {e}"))?;
    let fits = matches!((alg, &key), (OID_SM2_SM3, PublicKey::Sm2(_)) | (super::oid::ECDSA_SHA256, PublicKey::P256(_)));
    if !fits {
        return Err(format!("algorithm {alg} does not fit the certificate's {} key", key.alg()));
    }
    crypto::verify_message(&key, message, sig).map_err(|_| "the signature does not verify".to_string())
}

pub(crate) fn cert_validity_at(cert_der: &[u8], at: SystemTime) -> (bool, String) {
    match Cert::parse(cert_der) {
        Err(e) => (false, format!("certificate does not parse: {e}")),
        Ok(c) => {
            let (from, to) = c.validity();
            let signs = c.key_usage().is_none_or(|(_, sign)| sign);
            let ok = at >= from && at <= to && signs;
            let usage = if signs { "" } else { "; its key usage allows neither digitalSignature nor nonRepudiation" };
            (
                ok,
                format!(
                    "{} valid {} to {}; judged at {}{usage}",
                    c.subject_text(),
                    fmt_time(from),
                    fmt_time(to),
                    fmt_time(at)
                ),
            )
        }
    }
}

/// The trust steps for certificates, at `at`.
pub(crate) fn trust_steps(steps: &mut Vec<Step>, certs: &[(&str, &[u8])], at: SystemTime, opts: &VerifyOptions<'_>) {
    match opts.trust {
        None => step(steps, "trust_chain", None, "no trust anchors given"),
        Some(store) => {
            let mut bad = Vec::new();
            for (who, der) in certs {
                match Cert::parse(der) {
                    Ok(c)
                        if !store
                            .check(&c, at)
                            .iter()
                            .any(|r| matches!(*r, "certificate_untrusted" | "issuer_not_a_ca")) => {}
                    _ => bad.push(*who),
                }
            }
            let detail = if bad.is_empty() {
                "chains to a trust anchor".to_string()
            } else {
                format!("untrusted: {}", bad.join(", "))
            };
            step(steps, "trust_chain", Some(bad.is_empty()), detail);
        }
    }
    match (opts.trust, opts.have_crls) {
        (Some(store), true) => {
            let revoked: Vec<&str> = certs
                .iter()
                .filter(|(_, der)| Cert::parse(der).is_ok_and(|c| store.check(&c, at).contains(&"certificate_revoked")))
                .map(|(w, _)| *w)
                .collect();
            let detail = if revoked.is_empty() {
                "not on the CRLs".to_string()
            } else {
                format!("revoked: {}", revoked.join(", "))
            };
            step(steps, "revocation", Some(revoked.is_empty()), detail);
        }
        _ => step(steps, "revocation", None, "no CRL given"),
    }
}

pub(crate) fn finish(steps: Vec<Step>, warnings: Vec<String>, require_trust: bool) -> Report {
    let valid = steps.iter().all(|s| s.ok != Some(false))
        && (!require_trust || steps.iter().all(|s| s.ok.is_some() || !matches!(s.step, "trust_chain" | "revocation")));
    Report { valid, steps, warnings }
}

/// GB/T 38540 §6.3 for a seal alone, judged at `opts.at` (default now).
pub fn verify_seal(seal: &SesSeal, opts: &VerifyOptions<'_>) -> Report {
    let mut warnings = seal.warnings.clone();
    let mut steps = Vec::new();
    let at = opts.at.unwrap_or_else(SystemTime::now);
    step(
        &mut steps,
        "format",
        Some(true),
        format!("{:?} seal '{}' (esID {}), vid {}", seal.version, seal.info.name, seal.info.es_id, seal.info.vid),
    );
    maker_steps(&mut steps, seal, at, &mut warnings);
    let (from, to) = (seal.info.valid_start.at, seal.info.valid_end.at);
    step(
        &mut steps,
        "seal_validity",
        Some(at >= from && at <= to),
        format!("valid {} to {}; judged at {}", fmt_time(from), fmt_time(to), fmt_time(at)),
    );
    trust_steps(&mut steps, &[("maker certificate", &seal.maker_cert)], at, opts);
    registry_step(&mut steps, opts);
    finish(steps, warnings, opts.require_trust)
}

fn maker_steps(steps: &mut Vec<Step>, seal: &SesSeal, at: SystemTime, warnings: &mut Vec<String>) {
    let sig = signature_for_verify(&seal.signed_value, warnings, "maker signature");
    let what = match seal.version {
        SesVersion::V4 => "over the stored SES_SealInfo",
        SesVersion::V1 => "over SEQUENCE{SES_SealInfo, cert, signatureAlgorithm}",
    };
    match verify_with_cert(&seal.maker_cert, &seal.sign_alg, &seal.signed_bytes, &sig) {
        Ok(()) => step(steps, "maker_signature", Some(true), format!("verifies {what}")),
        Err(e) => step(steps, "maker_signature", Some(false), format!("{e} ({what})")),
    }
    let (ok, detail) = cert_validity_at(&seal.maker_cert, at);
    step(steps, "maker_certificate", Some(ok), detail);
}

fn registry_step(steps: &mut Vec<Step>, opts: &VerifyOptions<'_>) {
    match &opts.registry_state {
        Some((ok, detail)) => step(steps, "registry_state", Some(*ok), detail.clone()),
        None => step(steps, "registry_state", None, "not a seal made here"),
    }
}

/// GB/T 38540 §7.3 for a signature: the seal and the signer certificate judged at `timeInfo`.
pub fn verify_signature(sig: &SesSignature, opts: &VerifyOptions<'_>) -> Report {
    let mut warnings = sig.warnings.clone();
    let mut steps = Vec::new();
    let seal = &sig.seal;
    step(
        &mut steps,
        "format",
        Some(true),
        format!(
            "{:?} signature with seal '{}' (esID {}), propertyInfo {}",
            sig.version, seal.info.name, seal.info.es_id, sig.property_info
        ),
    );
    let value = signature_for_verify(&sig.signature, &mut warnings, "signature");
    match verify_with_cert(&sig.signer_cert, &sig.sign_alg, &sig.tbs, &value) {
        Ok(()) => step(&mut steps, "signer_signature", Some(true), "verifies over the stored TBS_Sign"),
        Err(e) => step(&mut steps, "signer_signature", Some(false), e),
    }
    let listed = match &seal.info.cert_list {
        CertList::Certs(certs) => {
            (certs.contains(&sig.signer_cert), "the signer certificate is in the seal's certList")
        }
        CertList::Digests(d) => {
            let sm3 = crypto::sm3(&sig.signer_cert);
            let sha256 = crypto::sha256(&sig.signer_cert);
            (
                d.iter().any(|(_, v)| v[..] == sm3[..] || v[..] == sha256[..]),
                "the signer certificate's digest is in the seal's certList",
            )
        }
    };
    step(
        &mut steps,
        "signer_in_cert_list",
        Some(listed.0),
        if listed.0 {
            listed.1.to_string()
        } else {
            "the signer certificate is not in the seal's certList".to_string()
        },
    );
    let at = sig.time_info.map(|t| t.at);
    maker_steps(&mut steps, seal, at.unwrap_or_else(SystemTime::now), &mut warnings);
    match at {
        Some(at) => {
            let (from, to) = (seal.info.valid_start.at, seal.info.valid_end.at);
            step(
                &mut steps,
                "seal_validity",
                Some(at >= from && at <= to),
                format!("valid {} to {}; signed at {}", fmt_time(from), fmt_time(to), fmt_time(at)),
            );
            let (ok, detail) = cert_validity_at(&sig.signer_cert, at);
            step(&mut steps, "signer_certificate", Some(ok), detail);
        }
        None => {
            step(&mut steps, "seal_validity", None, "timeInfo is a time-stamp that was not read");
            step(&mut steps, "signer_certificate", None, "timeInfo is a time-stamp that was not read");
        }
    }
    match opts.document_sm3 {
        Some(d) => {
            let ok = sig.data_hash == d;
            step(
                &mut steps,
                "data_hash",
                Some(ok),
                if ok {
                    "dataHash is SM3 of the document".to_string()
                } else {
                    format!("dataHash {} is not SM3 of the document {}", hex::encode(&sig.data_hash), hex::encode(d))
                },
            );
        }
        None => {
            step(&mut steps, "data_hash", None, format!("no document given; dataHash {}", hex::encode(&sig.data_hash)))
        }
    }
    match &sig.timestamp {
        None => step(&mut steps, "timestamp", None, "no time-stamp"),
        Some(t) => step(
            &mut steps,
            "timestamp",
            None,
            format!("a {}-byte time-stamp token is present; GB/T 20520 tokens are not verified yet", t.len()),
        ),
    }
    let at = at.unwrap_or_else(SystemTime::now);
    trust_steps(
        &mut steps,
        &[("maker certificate", &seal.maker_cert), ("signer certificate", &sig.signer_cert)],
        at,
        opts,
    );
    registry_step(&mut steps, opts);
    finish(steps, warnings, opts.require_trust)
}

/// A report for input that is not a seal or signature at all.
pub fn unreadable(e: &SesError) -> Report {
    Report {
        valid: false,
        steps: vec![Step { step: "format", ok: Some(false), detail: e.to_string() }],
        warnings: Vec::new(),
    }
}

/// Strict DER output: a primitive or constructed TLV.
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = seq(&[content]);
    out[0] = tag;
    out
}

pub(crate) fn der_int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    der_tlv(0x02, &bytes[start..])
}

pub(crate) fn der_oid(oid: &str) -> Result<Vec<u8>, SesError> {
    let o = der::asn1::ObjectIdentifier::new(oid).map_err(|e| bad(format!("OID {oid}: {e}")))?;
    Ok(der_tlv(0x06, o.as_bytes()))
}

fn der_ia5(s: &str) -> Result<Vec<u8>, SesError> {
    if !s.is_ascii() {
        return Err(bad(format!("'{s}' is not IA5 (ASCII)")));
    }
    Ok(der_tlv(0x16, s.as_bytes()))
}

fn der_time(t: SystemTime) -> Vec<u8> {
    let text = match utc(t.max(UNIX_EPOCH)) {
        Some(d) => format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => "19700101000000Z".to_string(),
    };
    der_tlv(0x18, text.as_bytes())
}

fn der_bits(bytes: &[u8]) -> Vec<u8> {
    let mut c = vec![0u8];
    c.extend_from_slice(bytes);
    der_tlv(0x03, &c)
}

/// What a new v4 seal says (GB/T 38540 §6.1).
#[derive(Debug, Clone)]
pub struct SealTemplate<'a> {
    /// Vendor id (`seald`).
    pub vid: &'a str,
    /// esID (ASCII).
    pub es_id: &'a str,
    /// Seal type (business-defined in v4; seald writes 1 for unit seals, 2 for personal ones).
    pub seal_type: i64,
    /// Name, as on file with the police.
    pub name: &'a str,
    /// The signer certificates (DER): certListType 1.
    pub certs: Vec<&'a [u8]>,
    /// createDate.
    pub create_date: SystemTime,
    /// validStart.
    pub valid_start: SystemTime,
    /// validEnd.
    pub valid_end: SystemTime,
    /// Picture type (`PNG`, `GIF`, `JPG`, `SVG`).
    pub picture_type: &'a str,
    /// Picture bytes.
    pub picture: &'a [u8],
    /// Width, mm.
    pub width_mm: i64,
    /// Height, mm.
    pub height_mm: i64,
}

/// The DER of a v4 `SES_SealInfo`: what the maker signs.
pub fn build_seal_info(t: &SealTemplate<'_>) -> Result<Vec<u8>, SesError> {
    let header = seq(&[&der_ia5("ES")?, &der_int(4), &der_ia5(t.vid)?]);
    let certs: Vec<Vec<u8>> = t.certs.iter().map(|c| der_tlv(0x04, c)).collect();
    let cert_refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    let property = seq(&[
        &der_int(t.seal_type),
        &der_tlv(0x0c, t.name.as_bytes()),
        &der_int(1),
        &seq(&cert_refs),
        &der_time(t.create_date),
        &der_time(t.valid_start),
        &der_time(t.valid_end),
    ]);
    let picture =
        seq(&[&der_ia5(t.picture_type)?, &der_tlv(0x04, t.picture), &der_int(t.width_mm), &der_int(t.height_mm)]);
    Ok(seq(&[&header, &der_ia5(t.es_id)?, &property, &picture]))
}

/// A v4 `SESeal` from its signed `SES_SealInfo`, the maker certificate and the maker's DER signature.
pub fn build_seal(seal_info: &[u8], maker_cert: &[u8], sign_alg: &str, signature: &[u8]) -> Result<Vec<u8>, SesError> {
    Ok(seq(&[seal_info, &der_tlv(0x04, maker_cert), &der_oid(sign_alg)?, &der_bits(signature)]))
}

/// One `ExtData` (GB/T 38540 §6.1): an OID, its criticality, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtData {
    /// extnID.
    pub id: String,
    /// critical (DEFAULT FALSE: omitted when false, as DER wants).
    pub critical: bool,
    /// extnValue.
    pub value: Vec<u8>,
}

impl ExtData {
    fn to_der(&self) -> Result<Vec<u8>, SesError> {
        let oid = der_oid(&self.id)?;
        let value = der_tlv(0x04, &self.value);
        Ok(if self.critical { seq(&[&oid, &[0x01, 0x01, 0xff], &value]) } else { seq(&[&oid, &value]) })
    }
}

/// The DER of a v4 `TBS_Sign` (GB/T 38540 §7.1): what the signer signs. `seal` is the SESeal as stored.
pub fn build_tbs_sign(
    seal: &[u8],
    time_info: SystemTime,
    data_hash: &[u8],
    property_info: &str,
    ext_datas: &[ExtData],
) -> Result<Vec<u8>, SesError> {
    let base = [der_int(4), seal.to_vec(), der_time(time_info), der_bits(data_hash), der_ia5(property_info)?];
    let mut parts: Vec<&[u8]> = base.iter().map(Vec::as_slice).collect();
    let ext;
    if !ext_datas.is_empty() {
        // EXPLICIT [0], as ofdrw writes it (STANDARDS.md §1.1; the parser accepts both forms).
        let items = ext_datas.iter().map(ExtData::to_der).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        ext = der_tlv(0xa0, &seq(&refs));
        parts.push(&ext);
    }
    Ok(seq(&parts))
}

/// A v4 `SES_Signature` from its signed `TBS_Sign`, the signer certificate and its DER signature.
pub fn build_signature(tbs: &[u8], signer_cert: &[u8], sign_alg: &str, signature: &[u8]) -> Result<Vec<u8>, SesError> {
    Ok(seq(&[tbs, &der_tlv(0x04, signer_cert), &der_oid(sign_alg)?, &der_bits(signature)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_tolerate_what_producers_write() {
        let mut w = Vec::new();
        let t = |tag: u8, s: &str, w: &mut Vec<String>| {
            let mut v = vec![tag, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            let (x, _) = tlv(&v).unwrap();
            read_time(&x, "t", w).map(|t| t.at.duration_since(UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(t(0x18, "20200422020900Z", &mut w), Ok(1_587_521_340));
        assert!(w.is_empty());
        assert_eq!(t(0x18, "20200422100900", &mut w), Ok(1_587_521_340), "no Z: Beijing time");
        assert_eq!(t(0x18, "200422020900Z", &mut w), Ok(1_587_521_340));
        assert_eq!(t(0x17, "200422020900Z", &mut w), Ok(1_587_521_340));
        assert_eq!(w.len(), 2);
        assert!(t(0x18, "2020", &mut w).is_err() && t(0x18, "20201322020900Z", &mut w).is_err());
    }

    #[test]
    fn the_parsers_never_panic_on_cut_or_flipped_input() {
        let dir = std::env::var("SEALD_SAMPLES")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into());
        let Ok(bytes) = std::fs::read(format!("{dir}/seals/ofdrw_UserV4_gbt38540.esl")) else {
            eprintln!("SAMPLES NOT FOUND at {dir} (set SEALD_SAMPLES): the cut-and-flip parser check DID NOT RUN");
            return;
        };
        for cut in (0..bytes.len()).step_by(97) {
            let _ = SesObject::parse(&bytes[..cut]);
        }
        let mut x = 0x9e37_79b9u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut b = bytes.clone();
            let i = (x as usize) % b.len();
            b[i] ^= (x >> 24) as u8 | 1;
            let _ = SesObject::parse(&b);
        }
    }
}
