//! SM2's user hash Z and signed value e (GB/T 32918.2 §5.5, §6.1). Z binds the signer's ID and
//! public key into what is signed; tokens whose profile says `z = "host"` expect the host to compute
//! `e = SM3(Z || M)` and hand them the 32 bytes.

use super::GmError;
use ::sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm3::Digest;

/// The default user ID of GM/T 0009 §10, used by every seal in the field.
pub const DEFAULT_USER_ID: &[u8] = b"1234567812345678";

/// OID 1.2.156.10197.1.301, the recommended curve sm2p256v1.
pub const CURVE_OID: &str = "1.2.156.10197.1.301";

// Curve parameters of sm2p256v1 (GB/T 32918.5 §A): a, b, xG, yG.
const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA).
pub fn z(public_key: &::sm2::PublicKey, user_id: &[u8]) -> Result<[u8; 32], GmError> {
    let bits = user_id.len().checked_mul(8).filter(|b| *b <= 0xFFFF);
    let Some(entl) = bits else {
        return Err(GmError::UserIdTooLong(user_id.len()));
    };
    let point = public_key.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(GmError::MalformedPublicKey("SM2 point at infinity".into()));
    };
    let mut h = sm3::Sm3::new();
    h.update((entl as u16).to_be_bytes());
    h.update(user_id);
    for part in [&A[..], &B, &GX, &GY, x, y] {
        h.update(part);
    }
    Ok(h.finalize().into())
}

/// e = SM3(Z || M): the 32 bytes an SM2 "sign e" mechanism signs.
pub fn e(public_key: &::sm2::PublicKey, user_id: &[u8], message: &[u8]) -> Result<[u8; 32], GmError> {
    let z = z(public_key, user_id)?;
    let mut h = sm3::Sm3::new();
    h.update(z);
    h.update(message);
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    //! GB/T 32918.5-2017 Annex A: the signing example on sm2p256v1 with the default ID.
    use super::*;

    const XA: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
    const YA: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
    const Z: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
    const E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";

    fn annex_key() -> ::sm2::PublicKey {
        let sec1 = hex::decode(format!("04{XA}{YA}")).unwrap();
        ::sm2::PublicKey::from_sec1_bytes(&sec1).unwrap()
    }

    #[test]
    fn annex_a_z_and_e() {
        let pk = annex_key();
        assert_eq!(hex::encode_upper(z(&pk, DEFAULT_USER_ID).unwrap()), Z);
        assert_eq!(hex::encode_upper(e(&pk, DEFAULT_USER_ID, b"message digest").unwrap()), E);
    }

    #[test]
    fn a_non_default_id_changes_z() {
        let pk = annex_key();
        assert_ne!(z(&pk, b"ALICE123@YAHOO.COM").unwrap(), z(&pk, DEFAULT_USER_ID).unwrap());
        assert!(z(&pk, &vec![0u8; 8192]).is_err());
    }
}
