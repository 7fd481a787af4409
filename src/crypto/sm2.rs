//! SM2 on the host: the user hash Z, the signed value e, and verification (GB/T 32918.2 §5.5, §6.1,
//! §7.1). Z binds the signer's ID and public key into what is signed; tokens whose profile says
//! `z = "host"` expect us to compute `e = SM3(Z || M)` and hand them the 32 bytes.

use super::CryptoError;
use ::sm2::elliptic_curve::ops::Reduce;
use ::sm2::elliptic_curve::sec1::ToEncodedPoint;
use signature::hazmat::PrehashVerifier;
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
pub fn z(public_key: &::sm2::PublicKey, user_id: &[u8]) -> Result<[u8; 32], CryptoError> {
    let bits = user_id.len().checked_mul(8).filter(|b| *b <= 0xFFFF);
    let Some(entl) = bits else {
        return Err(CryptoError::UserIdTooLong(user_id.len()));
    };
    let point = public_key.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(CryptoError::MalformedPublicKey("SM2 point at infinity".into()));
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
pub fn e(public_key: &::sm2::PublicKey, user_id: &[u8], message: &[u8]) -> Result<[u8; 32], CryptoError> {
    let z = z(public_key, user_id)?;
    let mut h = sm3::Sm3::new();
    h.update(z);
    h.update(message);
    Ok(h.finalize().into())
}

/// Verifies a raw `r||s` SM2 signature over a host-computed e.
pub fn verify_e(public_key: &::sm2::PublicKey, e: &[u8], raw_sig: &[u8]) -> Result<(), CryptoError> {
    if e.len() != 32 {
        return Err(CryptoError::BadLength { what: "SM2 e", expected: 32, got: e.len() });
    }
    let sig = ::sm2::dsa::Signature::from_slice(raw_sig)
        .map_err(|_| CryptoError::MalformedSignature("SM2 r||s must be 64 bytes with r, s in [1, n-1]"))?;
    // GB/T 32918.2 §7.1: t = r + s ≠ 0, (x1, y1) = s·G + t·P, valid iff (e + x1) mod n = r, that is
    // x1 mod n = r - e. The tables of `ecmul` answer that; RustCrypto does in their rare exception.
    let (r, s) = (*sig.r(), *sig.s());
    let t = r + s;
    if bool::from(t.is_zero()) {
        return Err(CryptoError::BadSignature);
    }
    let e_scalar = <::sm2::Scalar as Reduce<::sm2::U256>>::reduce_bytes(&::sm2::FieldBytes::from(
        <[u8; 32]>::try_from(e).map_err(|_| CryptoError::BadSignature)?,
    ));
    match super::ecmul::lincomb_x_is::<::sm2::Sm2>(&s, public_key.as_affine(), &t, &(r - e_scalar)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CryptoError::BadSignature),
        Err(super::ecmul::Exceptional) => {
            // The distid given here only feeds Z inside the crate, which verify_prehash does not use.
            let vk = ::sm2::dsa::VerifyingKey::new("1234567812345678", *public_key)
                .map_err(|_| CryptoError::MalformedPublicKey("SM2 key rejected".into()))?;
            vk.verify_prehash(e, &sig).map_err(|_| CryptoError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    //! GB/T 32918.5-2017 Annex A: the signing example on sm2p256v1 with the default ID. The numbers
    //! are the standard's published example.
    use super::*;
    use signature::hazmat::PrehashSigner;
    use signature::Verifier;

    const D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const XA: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
    const YA: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
    const Z: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
    const E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
    const R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
    const S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

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
    fn annex_a_signature_verifies_and_a_changed_one_does_not() {
        let pk = annex_key();
        let e = hex::decode(E).unwrap();
        let raw = hex::decode(format!("{R}{S}")).unwrap();
        verify_e(&pk, &e, &raw).unwrap();
        let mut bad = raw.clone();
        bad[40] ^= 1;
        assert_eq!(verify_e(&pk, &e, &bad), Err(CryptoError::BadSignature));
        let mut other_e = e.clone();
        other_e[0] ^= 1;
        assert_eq!(verify_e(&pk, &other_e, &raw), Err(CryptoError::BadSignature));
    }

    #[test]
    fn the_private_key_of_annex_a_gives_its_public_key_and_our_e_matches_the_crate() {
        // dG = P, and a signature over our e verifies with the crate's own Z computation.
        let sk = ::sm2::dsa::SigningKey::from_slice("1234567812345678", &hex::decode(D).unwrap()).unwrap();
        assert_eq!(sk.verifying_key().as_affine(), annex_key().as_affine());
        let e = e(&annex_key(), DEFAULT_USER_ID, b"message digest").unwrap();
        let sig: ::sm2::dsa::Signature = sk.sign_prehash(&e).unwrap();
        sk.verifying_key().verify(b"message digest", &sig).unwrap();
        verify_e(&annex_key(), &e, &sig.to_bytes()).unwrap();
    }

    #[test]
    fn a_non_default_id_changes_z() {
        let pk = annex_key();
        assert_ne!(z(&pk, b"ALICE123@YAHOO.COM").unwrap(), z(&pk, DEFAULT_USER_ID).unwrap());
        assert!(z(&pk, &vec![0u8; 8192]).is_err());
    }
}
