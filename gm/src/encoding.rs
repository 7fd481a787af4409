//! Signature encodings: raw `r||s` (what most SM2 tokens and GB/T 38540 producers emit) and the DER
//! `SEQUENCE { INTEGER r, INTEGER s }` of RFC 3279 / GM/T 0009.

use super::GmError;
use der::asn1::UintRef;
use der::{Decode, Encode, Reader, Sequence};

/// `SEQUENCE { r INTEGER, s INTEGER }`.
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Turns raw `r||s` (two big-endian halves of equal length) into DER.
pub fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>, GmError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 132 {
        return Err(GmError::MalformedSignature("raw r||s must have two equal halves"));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let value = EcdsaSigValue {
        r: UintRef::new(r).map_err(|_| GmError::MalformedSignature("bad r"))?,
        s: UintRef::new(s).map_err(|_| GmError::MalformedSignature("bad s"))?,
    };
    value.to_der().map_err(|_| GmError::MalformedSignature("cannot encode r, s"))
}

/// Turns a DER signature into raw `r||s`, each half left-padded to `field_len` bytes.
pub fn der_to_raw(der_sig: &[u8], field_len: usize) -> Result<Vec<u8>, GmError> {
    let mut reader = der::SliceReader::new(der_sig).map_err(|_| GmError::MalformedSignature("not DER"))?;
    let value = EcdsaSigValue::decode(&mut reader)
        .map_err(|_| GmError::MalformedSignature("not a DER SEQUENCE of two INTEGERs"))?;
    if !reader.is_finished() {
        return Err(GmError::MalformedSignature("trailing bytes after DER signature"));
    }
    let mut out = vec![0u8; field_len * 2];
    for (i, int) in [value.r, value.s].iter().enumerate() {
        let bytes = int.as_bytes();
        if bytes.len() > field_len {
            return Err(GmError::MalformedSignature("integer longer than the field"));
        }
        let end = (i + 1) * field_len;
        out[end - bytes.len()..end].copy_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_short_integers() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s has its high bit set: DER needs a leading zero
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(der_to_raw(&der, 32).unwrap(), raw);
    }

    #[test]
    fn rejects_garbage() {
        assert!(der_to_raw(&[0x30, 0x03, 0x02, 0x01], 32).is_err());
        assert!(der_to_raw(b"", 32).is_err());
        assert!(raw_to_der(&[1, 2, 3]).is_err());
        let mut der = raw_to_der(&[1u8; 64]).unwrap();
        der.push(0);
        assert!(der_to_raw(&der, 32).is_err());
    }
}
