//! The fuzz targets of seald's parsers of untrusted input: what each one feeds to the library. The
//! cargo-fuzz targets (`fuzz_targets/`, nightly) and the stable driver (`src/bin/stable.rs`) share
//! them; the driver also takes its seed inputs from `seeds` and changes them with `mutate`.
//!
//! A target passes when the library returns, whatever it returns: an error or an invalid verdict is
//! the expected answer to damaged input; a panic, or an input that does not come back, is a finding.

pub mod mutate;
pub mod seeds;

use seald::formats::{cms, ofd, ses, x509};

/// The shape of a target's input, which decides the structured mutations that fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// DER (TLVs).
    Der,
    /// A ZIP package.
    Zip,
    /// A selector byte, then an XML document.
    Xml,
}

/// One fuzz target.
pub struct Target {
    /// Its name, as the cargo-fuzz target's.
    pub name: &'static str,
    /// Its input's shape.
    pub shape: Shape,
    /// Feeds one input to the library.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "ses", shape: Shape::Der, run: ses },
    Target { name: "cms", shape: Shape::Der, run: cms },
    Target { name: "x509", shape: Shape::Der, run: x509 },
    Target { name: "tsp", shape: Shape::Der, run: tsp },
    Target { name: "ofd", shape: Shape::Zip, run: ofd },
    Target { name: "xml", shape: Shape::Xml, run: xml },
];

/// GB/T 38540 / GM/T 0031 seals and signatures: parse, then verify what parses.
pub fn ses(data: &[u8]) {
    if let Ok(obj) = ses::SesObject::parse(data) {
        let opts = ses::VerifyOptions::default();
        let _ = match obj {
            ses::SesObject::Seal(s) => ses::verify_seal(&s, &opts),
            ses::SesObject::Signature(s) => ses::verify_signature(&s, &opts),
        };
    }
}

/// GM/T 0010 SignedData: parse, and verify with a detached content.
pub fn cms(data: &[u8]) {
    let _ = cms::parse(data);
    let _ = cms::verify(data, Some(b"content"), &Default::default());
}

/// RFC 3161 requests, responses and tokens (verified over some bytes), and signed seal-status
/// answers (verified against no anchor).
pub fn tsp(data: &[u8]) {
    use seald::formats::{seal_status, tsp};
    let _ = tsp::parse_request(data);
    if let Ok(token) = tsp::parse_response(data) {
        let _ = tsp::verify_token(&token, b"stamped", &Default::default());
    }
    let _ = tsp::verify_token(data, b"stamped", &Default::default());
    let _ = tsp::parse_tst_info(data);
    let _ = seal_status::parse_tbs(data);
    let _ = seal_status::verify(data, &Default::default());
}

/// Certificates, CRLs and PKCS#10 requests, with what is read from them.
pub fn x509(data: &[u8]) {
    use x509::{Cert, Crl, Csr};
    if let Ok(c) = Cert::parse(data) {
        let _ = (c.public_key(), c.key_usage(), c.subject_text(), c.validity(), c.serial_hex());
    }
    let _ = Crl::parse(data);
    if let Ok(r) = Csr::parse(data) {
        let _ = (r.signature_ok(), r.subject_attributes());
    }
}

/// Limits small enough to keep each input quick; the code paths are those of the defaults.
pub const OFD_LIMITS: ofd::Limits = ofd::Limits {
    max_entries: 1_000,
    max_entry_bytes: 4 << 20,
    max_total_inflated: 16 << 20,
    max_references: 10_000,
    max_signatures: 100,
    max_parsed_bytes: 16 << 20,
    max_xml_depth: 256,
};

/// OFD packages: every signature verified; and the package read for sealing, placed (on page 1 or
/// riding, final or not) and written out.
pub fn ofd(data: &[u8]) {
    let _ = ofd::verify_within(data, &Default::default(), &OFD_LIMITS);
    if let Ok(doc) = ofd::Unsealed::open(data, OFD_LIMITS) {
        let placement = ofd::Placement {
            page: 1,
            x_mm: 1.0,
            y_mm: 1.0,
            riding: data.len() % 2 == 0,
            final_seal: data.len() % 3 == 0,
        };
        if let Ok(prepared) = doc.prepare(&placement, b"seal", (10.0, 10.0), std::time::UNIX_EPOCH) {
            let _ = prepared.finish(b"signature");
        }
    }
}

/// The files of the small package `xml` builds: `OFD.xml` names `Signatures.xml`, which lists one
/// seal signature whose `Signature.xml` references a page.
pub const PACKAGE: [(&str, &[u8]); 5] = [
    (
        "OFD.xml",
        br#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot><ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures></ofd:DocBody></ofd:OFD>"#,
    ),
    (
        "Doc_0/Signs/Signatures.xml",
        br#"<ofd:Signatures xmlns:ofd="http://www.ofdspec.org/2016"><ofd:MaxSignId>1</ofd:MaxSignId><ofd:Signature ID="1" Type="Seal" BaseLoc="Sign_0/Signature.xml"/></ofd:Signatures>"#,
    ),
    (
        "Doc_0/Signs/Sign_0/Signature.xml",
        br#"<ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016"><ofd:SignedInfo><ofd:References CheckMethod="1.2.156.10197.1.401"><ofd:Reference FileRef="/Doc_0/Pages/Page_0/Content.xml"><ofd:CheckValue>AAAA</ofd:CheckValue></ofd:Reference></ofd:References></ofd:SignedInfo><ofd:SignedValue>/Doc_0/Signs/Sign_0/SignedValue.dat</ofd:SignedValue></ofd:Signature>"#,
    ),
    ("Doc_0/Pages/Page_0/Content.xml", b"<ofd:Page/>"),
    ("Doc_0/Signs/Sign_0/SignedValue.dat", b"\x30\x03\x02\x01\x04"),
];

/// A stored ZIP of `entries`.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        if w.start_file(*name, opts).and_then(|()| w.write_all(data).map_err(Into::into)).is_err() {
            return Vec::new();
        }
    }
    w.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// The XML files of an OFD package: the first byte picks which of the first three files of
/// [`PACKAGE`] the rest of the input replaces; the package is then verified.
pub fn xml(data: &[u8]) {
    let Some((&which, doc)) = data.split_first() else { return };
    let mut files = PACKAGE;
    files[usize::from(which) % 3].1 = doc;
    ofd(&zip_of(&files));
}
