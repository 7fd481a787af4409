//! Certificates, CRLs and PKCS#10 requests: parsing never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::x509(data));
