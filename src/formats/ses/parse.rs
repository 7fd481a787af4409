//! Tolerant parsing over the stored TLVs: every field is read by hand from the bytes as stored,
//! each deviation of a real producer becomes a warning, and the stored bytes of each signed part
//! are kept so that signatures are checked over them.

use super::*;

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

pub(super) fn expect<'a>(t: &Tlv<'a>, tag: u8, what: &str) -> Result<&'a [u8], SesError> {
    if t.tag != tag {
        return Err(bad(format!("{what}: tag 0x{:02x}, expected 0x{tag:02x}", t.tag)));
    }
    Ok(t.content)
}

pub(super) fn get<'a, 'b>(v: &'b [Tlv<'a>], i: usize, what: &str) -> Result<&'b Tlv<'a>, SesError> {
    v.get(i).ok_or_else(|| bad(format!("{what} is missing")))
}

pub(super) fn string(t: &Tlv<'_>, tags: &[u8], what: &str) -> Result<String, SesError> {
    if !tags.contains(&t.tag) {
        return Err(bad(format!("{what}: tag 0x{:02x} is not a string", t.tag)));
    }
    Ok(String::from_utf8_lossy(t.content).into_owned())
}

pub(super) fn integer(t: &Tlv<'_>, what: &str) -> Result<i64, SesError> {
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

/// A BIT STRING's bytes. Every BIT STRING here (signatures, digests, time-stamps) holds whole bytes:
/// a non-zero unused-bits count is a warning and the bytes are used as stored (STANDARDS.md §1.6
/// deviations are judged when the signature is read); more than 7 is refused.
pub(super) fn bits(t: &Tlv<'_>, what: &str, warnings: &mut Vec<String>) -> Result<Vec<u8>, SesError> {
    let c = expect(t, 0x03, what)?;
    let (&unused, rest) = c.split_first().ok_or_else(|| bad(format!("{what}: empty BIT STRING")))?;
    if unused > 7 {
        return Err(bad(format!("{what}: {unused} unused bits")));
    }
    if unused != 0 {
        warnings.push(format!(
            "{what}: the BIT STRING declares {unused} unused bits, but holds whole bytes; its bytes are used as stored [bit_string_unused_bits]"
        ));
    }
    Ok(rest.to_vec())
}

pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// GeneralizedTime (or, in v1, UTCTime), with the tolerances of STANDARDS.md §1.6.
pub(super) fn read_time(t: &Tlv<'_>, what: &str, warnings: &mut Vec<String>) -> Result<SesTime, SesError> {
    // Digits, '.', 'Z', '+', '-' only: the slicing below counts bytes.
    if !t.content.is_ascii() {
        return Err(bad(format!("{what}: time is not ASCII text")));
    }
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
                warnings.push(format!(
                    "{what}: UTCTime text '{text}' inside a GeneralizedTime [utctime_in_generalizedtime]"
                ));
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
        warnings.push(format!("{what}: time '{text}' has no 'Z'; read as Beijing time (UTC+8) [time_without_z]"));
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

/// As [`read_time_pub`], keeping up to three digits of a fraction of a second (time-stamps,
/// seal-status answers).
pub(crate) fn read_time_ms(t: &Tlv<'_>) -> Result<SystemTime, SesError> {
    let whole = read_time_pub(t, &mut Vec::new())?;
    let text = std::str::from_utf8(t.content).unwrap_or("");
    let ms = match text.split_once('.') {
        Some((_, frac)) => {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).take(3).collect();
            format!("{digits:0<3}").parse::<u64>().unwrap_or(0)
        }
        None => 0,
    };
    Ok(whole + Duration::from_millis(ms))
}

pub(super) fn seal_info(t: &Tlv<'_>, v1: bool, w: &mut Vec<String>) -> Result<SesSealInfo, SesError> {
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
        w.push("property name is padded with NUL characters [seal_name_nul_padded]".into());
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
                "certListType is {other} (the standard allows 1 or 2); its list holds certificates, read as 1 [cert_list_type_nonstandard]"
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
                w.push("extDatas encodes critical FALSE explicitly (not DER); verified over the stored bytes [explicit_default_critical]".into());
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

impl SesSeal {
    /// Parses a seal, detecting its version.
    pub fn parse(bytes: &[u8]) -> Result<Self, SesError> {
        let (outer, rest) = tlv(bytes)?;
        let mut warnings = Vec::new();
        if !rest.is_empty() {
            warnings.push(format!("{} bytes after the seal are ignored [trailing_bytes]", rest.len()));
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
                    signed_value: bits(get(&sign, 2, "signData")?, "signData", &mut warnings)?,
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
                    signed_value: bits(get(&el, 3, "signedValue")?, "signedValue", &mut warnings)?,
                    signed_bytes: info_tlv.raw.to_vec(),
                    info,
                    warnings,
                })
            }
            n => Err(bad(format!("SESeal has {n} elements (v1 has 2, v4 has 4)"))),
        }
    }
}

impl SesSignature {
    /// Parses a signature, detecting its version.
    pub fn parse(bytes: &[u8]) -> Result<Self, SesError> {
        let (outer, rest) = tlv(bytes)?;
        let mut warnings = Vec::new();
        if !rest.is_empty() {
            warnings.push(format!("{} bytes after the signature are ignored [trailing_bytes]", rest.len()));
        }
        let _ = expect(&outer, 0x30, "SES_Signature")?;
        let el = children(&outer)?;
        let tbs_tlv = get(&el, 0, "toSign")?;
        let tbs = children(tbs_tlv)?;
        let tbs_version = integer(get(&tbs, 0, "TBS_Sign version")?, "TBS_Sign version")?;
        let seal = SesSeal::from_tlv(get(&tbs, 1, "eseal")?, Vec::new())?;
        warnings.extend(seal.warnings.iter().map(|w| format!("seal: {w}")));
        let data_hash = bits(get(&tbs, 3, "dataHash")?, "dataHash", &mut warnings)?;
        let property_info = string(get(&tbs, 4, "propertyInfo")?, &[0x16, 0x13, 0x0c], "propertyInfo")?;
        match el.len() {
            2 => {
                let time_tlv = get(&tbs, 2, "timeInfo")?;
                let time_info = match time_tlv.tag {
                    0x03 => {
                        let b = bits(time_tlv, "timeInfo", &mut warnings)?;
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
                    signature: bits(get(&el, 1, "signature")?, "signature", &mut warnings)?,
                    timestamp: None,
                    seal,
                    warnings,
                })
            }
            4 | 5 => {
                if tbs_version != seal.info.version {
                    warnings.push(format!(
                        "TBS_Sign version {tbs_version} differs from the seal's header version {} [tbs_version_mismatch]",
                        seal.info.version
                    ));
                }
                let time_info = Some(read_time(get(&tbs, 2, "timeInfo")?, "timeInfo", &mut warnings)?);
                let timestamp = match el.get(4) {
                    Some(t) if t.tag == 0xa0 => {
                        Some(bits(get(&children(t)?, 0, "timeStamp")?, "timeStamp", &mut warnings)?)
                    }
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
                    signature: bits(get(&el, 3, "signature")?, "signature", &mut warnings)?,
                    timestamp,
                    seal,
                    warnings,
                })
            }
            n => Err(bad(format!("SES_Signature has {n} elements (v1 has 2, v4 has 4 or 5)"))),
        }
    }
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
        warnings.push(format!("{what} is raw r||s (64 bytes), not DER [raw_rs_signature]"));
        return stored.to_vec();
    }
    if stored.len() >= 2 && stored[0] == 0x30 && stored[1] < 0x80 {
        let declared = stored[1] as usize + 2;
        if declared > stored.len() && declared - stored.len() <= 4 {
            warnings.push(format!(
                "{what}: trailing zero bytes were stripped; restored before verifying [signature_zeros_stripped]"
            ));
            let mut fixed = stored.to_vec();
            fixed.resize(declared, 0);
            return fixed;
        }
    }
    stored.to_vec()
}
