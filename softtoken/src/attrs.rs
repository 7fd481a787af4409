//! Attribute values as PKCS#11 stores them: CK_BBOOL is one byte, CK_ULONG native-endian, the rest
//! byte strings. Objects are maps from attribute type to these bytes, so C_FindObjects matches by
//! comparing bytes, as the standard says.

use cryptoki_sys::*;
use std::collections::BTreeMap;

/// An object's attributes.
pub type Attrs = BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>;

/// CK_BBOOL bytes.
pub fn b(v: bool) -> Vec<u8> {
    vec![v as u8]
}

/// CK_ULONG bytes.
pub fn ul(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A CK_BBOOL attribute.
pub fn get_bool(a: &Attrs, t: CK_ATTRIBUTE_TYPE) -> Option<bool> {
    a.get(&t).and_then(|v| v.first().copied()).map(|v| v != 0)
}

/// A CK_ULONG attribute.
pub fn get_ulong(a: &Attrs, t: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
    a.get(&t).and_then(|v| v.as_slice().try_into().ok()).map(CK_ULONG::from_ne_bytes)
}

/// Reads a caller's template. A NULL pValue with a non-zero length is an argument error.
///
/// # Safety
/// `p` must point to `n` readable CK_ATTRIBUTEs whose pValue/ulValueLen describe readable memory.
pub unsafe fn read_template(p: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, CK_RV> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() || n > 4096 {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let attrs = std::slice::from_raw_parts(p, n as usize);
    attrs
        .iter()
        .map(|a| {
            let len = a.ulValueLen as usize;
            if len == 0 {
                return Ok((a.type_, Vec::new()));
            }
            if a.pValue.is_null() || len > 1 << 20 {
                return Err(CKR_ARGUMENTS_BAD);
            }
            Ok((a.type_, std::slice::from_raw_parts(a.pValue as *const u8, len).to_vec()))
        })
        .collect()
}

/// Checks that a boolean or ulong in a template has the right size.
pub fn check_sizes(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<(), CK_RV> {
    const BOOLS: &[CK_ATTRIBUTE_TYPE] = &[
        CKA_TOKEN,
        CKA_PRIVATE,
        CKA_MODIFIABLE,
        CKA_SENSITIVE,
        CKA_EXTRACTABLE,
        CKA_SIGN,
        CKA_VERIFY,
        CKA_DECRYPT,
        CKA_ENCRYPT,
        CKA_WRAP,
        CKA_UNWRAP,
        CKA_DERIVE,
        CKA_SIGN_RECOVER,
        CKA_VERIFY_RECOVER,
    ];
    const ULONGS: &[CK_ATTRIBUTE_TYPE] = &[CKA_CLASS, CKA_KEY_TYPE];
    for (t, v) in template {
        if (BOOLS.contains(t) && v.len() != 1) || (ULONGS.contains(t) && v.len() != std::mem::size_of::<CK_ULONG>()) {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
    }
    Ok(())
}
