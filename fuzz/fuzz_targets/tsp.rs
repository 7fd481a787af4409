//! RFC 3161 requests, responses and tokens, and seal-status answers: parsing and verification never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::tsp(data));
