//! OFD packages (ZIP): verification never panics and stays within its limits.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| seald_fuzz::ofd(data));
