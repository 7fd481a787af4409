//! GB/T 38540 / GM/T 0031 seals and signatures: parsing and verification never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use seald::formats::ses;
    if let Ok(obj) = ses::SesObject::parse(data) {
        let opts = ses::VerifyOptions::default();
        let _ = match obj {
            ses::SesObject::Seal(s) => ses::verify_seal(&s, &opts),
            ses::SesObject::Signature(s) => ses::verify_signature(&s, &opts),
        };
    }
});
