//! GM/T 0010 SignedData: parsing and verification never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = seald::formats::cms::parse(data);
    let _ = seald::formats::cms::verify(data, Some(b"content"), &Default::default());
});
