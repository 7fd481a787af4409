//! Certificates, CRLs and PKCS#10 requests: parsing never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use seald::formats::x509::{Cert, Crl, Csr};
    if let Ok(c) = Cert::parse(data) {
        let _ = (c.public_key(), c.key_usage(), c.subject_text());
    }
    let _ = Crl::parse(data);
    if let Ok(r) = Csr::parse(data) {
        let _ = (r.signature_ok(), r.subject_attributes());
    }
});
