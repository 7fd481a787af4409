//! GM/T 0010 SignedData: parsing and verification never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::cms(data));
