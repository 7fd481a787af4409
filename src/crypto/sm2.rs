//! SM2 on the host: verification (GB/T 32918.2 §7.1) from the precomputed tables of `ecmul`. Z and
//! e (§5.5, §6.1) come from `seald_gm::sm2`, which softtoken shares.

pub use seald_gm::sm2::{e, z, CURVE_OID, DEFAULT_USER_ID};

use super::CryptoError;
use ::sm2::elliptic_curve::ops::Reduce;
use signature::hazmat::PrehashVerifier;

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
    const E: &str = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640";
    const R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
    const S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

    fn annex_key() -> ::sm2::PublicKey {
        let sec1 = hex::decode(format!("04{XA}{YA}")).unwrap();
        ::sm2::PublicKey::from_sec1_bytes(&sec1).unwrap()
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
}
