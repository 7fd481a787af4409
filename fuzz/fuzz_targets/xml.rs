//! The XML files of an OFD package: verification never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::xml(data));
