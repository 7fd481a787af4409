//! Strict DER output: the `SES_SealInfo`, `SESeal`, `TBS_Sign` and `SES_Signature` that seald makes.

use super::*;

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
    // Arcs beyond 32 bits overflow the parser underneath: refused here first.
    if !oid.split('.').all(|a| a.parse::<u32>().is_ok()) {
        return Err(bad(format!("OID {oid}: an arc is not a number below 2^32")));
    }
    let o = der::asn1::ObjectIdentifier::new(oid).map_err(|e| bad(format!("OID {oid}: {e}")))?;
    Ok(der_tlv(0x06, o.as_bytes()))
}

pub(crate) fn der_ia5(s: &str) -> Result<Vec<u8>, SesError> {
    if !s.is_ascii() {
        return Err(bad(format!("'{s}' is not IA5 (ASCII)")));
    }
    Ok(der_tlv(0x16, s.as_bytes()))
}

/// `YYYYMMDDHHMMSSZ`, the GeneralizedTime text of `t` (the epoch before it).
pub(crate) fn generalized_time_text(t: SystemTime) -> String {
    let t = t.max(UNIX_EPOCH);
    match utc(t) {
        Some(_) => fmt_time(t).replace(['-', 'T', ':'], ""),
        None => "19700101000000Z".to_string(),
    }
}

pub(super) fn der_time(t: SystemTime) -> Vec<u8> {
    der_tlv(0x18, generalized_time_text(t).as_bytes())
}

/// GeneralizedTime to the millisecond, `YYYYMMDDHHMMSS[.fff]Z`, without trailing zeros (RFC 3161
/// §2.4.2; the seal-status answer): DER.
pub(crate) fn der_time_ms(t: SystemTime) -> Vec<u8> {
    let ms = t.duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    let whole = generalized_time_text(t);
    let text = if ms == 0 { whole } else { format!("{}.{}Z", &whole[..14], format!("{ms:03}").trim_end_matches('0')) };
    der_tlv(0x18, text.as_bytes())
}

pub(crate) fn der_bits(bytes: &[u8]) -> Vec<u8> {
    let mut c = vec![0u8];
    c.extend_from_slice(bytes);
    der_tlv(0x03, &c)
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

/// A v4 `SES_Signature` from its signed `TBS_Sign`, the signer certificate, its DER signature and,
/// when given, a time-stamp token over the signature value: `timeStamp [0]` EXPLICIT around the
/// BIT STRING (STANDARDS.md §1.1; the parser accepts both forms).
pub fn build_signature(
    tbs: &[u8],
    signer_cert: &[u8],
    sign_alg: &str,
    signature: &[u8],
    timestamp: Option<&[u8]>,
) -> Result<Vec<u8>, SesError> {
    let stamp = timestamp.map(|t| der_tlv(0xa0, &der_bits(t))).unwrap_or_default();
    Ok(seq(&[tbs, &der_tlv(0x04, signer_cert), &der_oid(sign_alg)?, &der_bits(signature), &stamp]))
}
