//! Every DER parser (GB/T 38540 seals and signatures, GM/T 0010 SignedData, certificates, CRLs and
//! requests) returns an error, never a panic, on any input: random bytes, and structures that are
//! valid but for a cut, a flipped bit or a changed length. (The fuzz targets in fuzz/ go further.)

use proptest::prelude::*;
use seald::formats::{cms, ses, x509};
use std::time::SystemTime;

fn all_parsers(data: &[u8]) {
    if let Ok(obj) = ses::SesObject::parse(data) {
        let opts = ses::VerifyOptions::default();
        let _ = match obj {
            ses::SesObject::Seal(s) => ses::verify_seal(&s, &opts),
            ses::SesObject::Signature(s) => ses::verify_signature(&s, &opts),
        };
    }
    let _ = cms::verify(data, Some(b"x"), &ses::VerifyOptions::default());
    if let Ok(c) = x509::Cert::parse(data) {
        let _ = (c.public_key(), c.key_usage());
    }
    let _ = x509::Crl::parse(data);
    if let Ok(r) = x509::Csr::parse(data) {
        let _ = r.signature_ok();
    }
}

/// A well-formed v4 SES_Signature (its signatures are not valid; the structure is).
fn a_signature() -> Vec<u8> {
    let cert = seald::devpki::DevCa::new("fixture").unwrap().cert_pem();
    let cert = x509::Cert::parse(cert.as_bytes()).unwrap();
    let now = SystemTime::now();
    let t = ses::SealTemplate {
        vid: "seald",
        es_id: "1234",
        seal_type: 1,
        name: "测试章",
        certs: vec![cert.der()],
        create_date: now,
        valid_start: now,
        valid_end: now,
        picture_type: "PNG",
        picture: b"\x89PNG",
        width_mm: 40,
        height_mm: 40,
    };
    let info = ses::build_seal_info(&t).unwrap();
    let seal = ses::build_seal(&info, cert.der(), ses::OID_SM2_SM3, &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
        .unwrap();
    let ext = [ses::ExtData { id: "1.2.156.10197.6.7.2.2.1".into(), critical: true, value: b"ext".to_vec() }];
    let tbs = ses::build_tbs_sign(&seal, now, &[0u8; 32], "/Doc_0/Signs/Sign_0/Signature.xml", &ext).unwrap();
    ses::build_signature(&tbs, cert.der(), ses::OID_SM2_SM3, &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01], None)
        .unwrap()
}

#[test]
fn our_own_output_parses_back_without_warnings() {
    let sig = ses::SesSignature::parse(&a_signature()).unwrap();
    assert!(sig.warnings.is_empty(), "{:?}", sig.warnings);
    assert_eq!(
        (sig.seal.info.name.as_str(), sig.property_info.as_str()),
        ("测试章", "/Doc_0/Signs/Sign_0/Signature.xml")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&data);
        let mut framed = vec![0x30, 0x82, (data.len() >> 8) as u8, data.len() as u8];
        framed.extend_from_slice(&data);
        all_parsers(&framed);
    }

    #[test]
    fn damaged_structures_never_panic(cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let good = a_signature();
        let mut flipped = good.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        all_parsers(&flipped);
        all_parsers(&good[..cut.index(good.len())]);
    }
}
