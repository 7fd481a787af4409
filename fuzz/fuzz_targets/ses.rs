//! GB/T 38540 / GM/T 0031 seals and signatures: parsing and verification never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::ses(data));
