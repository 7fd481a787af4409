//! GB/T 38540 / GM/T 0031 seals and signatures made by other producers (../shared/samples, read
//! from $SEALD_SAMPLES): each gives the verdict SOURCES.md records, through the library and through
//! `sealctl ses verify`; OFD packages too. A tamper matrix flips a byte in each signed region and
//! checks that the right step fails. Without the samples these tests fail and say where they looked
//! (`.ci/run` refuses to start without them).

use seald::formats::ses::{self, Report, SesObject, SesSignature, VerifyOptions};
use std::path::PathBuf;
use std::process::Command;

fn samples() -> Option<PathBuf> {
    let dir = std::env::var("SEALD_SAMPLES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into());
    let p = PathBuf::from(&dir);
    if p.is_dir() {
        Some(p)
    } else {
        panic!("samples not found at {dir}: set SEALD_SAMPLES (the GB/T 38540 sample checks cannot run)");
    }
}

fn verify_file(bytes: &[u8], doc: Option<&[u8]>) -> Report {
    let opts = VerifyOptions { document_sm3: doc.map(seald::crypto::sm3), ..Default::default() };
    match SesObject::parse(bytes) {
        Ok(SesObject::Seal(s)) => ses::verify_seal(&s, &opts),
        Ok(SesObject::Signature(s)) => ses::verify_signature(&s, &opts),
        Err(e) => ses::unreadable(&e),
    }
}

fn failed(r: &Report) -> Vec<&'static str> {
    r.steps.iter().filter(|s| s.ok == Some(false)).map(|s| s.step).collect()
}

const VALID: &[&str] = &[
    "suwellsdk_icbc_receipt_20220101",
    "suwellT_ceb_receipt_raw_rs",
    "greenpaper_bker_certlisttype3",
    "gomain_tax_jiangsu_signedFile",
];

fn sealctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealctl")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_sample_gets_the_verdict_its_sources_record_in_the_library_and_in_sealctl() {
    let Some(dir) = samples() else { return };
    let sig = |n: &str| dir.join(format!("signatures/{n}/SignedValue.dat"));
    let xml = |n: &str| dir.join(format!("signatures/{n}/Signature.xml"));
    for name in VALID {
        let r = verify_file(&std::fs::read(sig(name)).unwrap(), Some(&std::fs::read(xml(name)).unwrap()));
        assert!(r.valid, "{name}: {r:#?}");
        assert!(
            r.steps
                .iter()
                .filter(|s| s.step != "timestamp"
                    && s.step != "trust_chain"
                    && s.step != "revocation"
                    && s.step != "registry_state")
                .all(|s| s.ok == Some(true)),
            "{name}: {r:#?}"
        );
        let (code, out) =
            sealctl(&["ses", "verify", sig(name).to_str().unwrap(), "--doc", xml(name).to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((code, v["valid"].as_bool()), (0, Some(true)), "{name}: {out}");
        let (code, _) = sealctl(&["ses", "verify", "--ofd", dir.join(format!("ofd/{name}.ofd")).to_str().unwrap()]);
        assert_eq!(code, 0, "{name}.ofd");
    }
    // Trust: a check that cannot run counts as failed with --require-trust; unknown anchors fail it.
    let (n, x) = (sig(VALID[0]), xml(VALID[0]));
    let (code, out) =
        sealctl(&["ses", "verify", n.to_str().unwrap(), "--doc", x.to_str().unwrap(), "--require-trust", "--json"]);
    assert_eq!(code, 1, "{out}");
    let anchors = std::env::temp_dir().join(format!("seald-anchors-{}", std::process::id()));
    std::fs::create_dir_all(&anchors).unwrap();
    std::fs::write(anchors.join("other.pem"), seald::devpki::DevCa::new("someone else").unwrap().cert_pem()).unwrap();
    let (code, out) =
        sealctl(&["ses", "verify", n.to_str().unwrap(), "--trust-anchors", anchors.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(code, 1);
    assert_eq!(
        v["steps"].as_array().unwrap().iter().find(|s| s["step"] == "trust_chain").unwrap()["ok"],
        false,
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&anchors);

    // Each producer's quirk is reported.
    let warn = |n: &str| verify_file(&std::fs::read(sig(n)).unwrap(), None).warnings.join("\n");
    assert!(warn("suwellT_ceb_receipt_raw_rs").contains("raw r||s"));
    assert!(warn("greenpaper_bker_certlisttype3").contains("certListType is 3"));
    assert!(warn("gomain_tax_jiangsu_signedFile").contains("critical FALSE"));
    assert!(warn("suwellsdk_icbc_receipt_20220101").contains("no 'Z'"));

    // Signed long after its seal and signer certificate expired.
    let late = verify_file(
        &std::fs::read(sig("ofdrw_SESV4SignDoc")).unwrap(),
        Some(&std::fs::read(xml("ofdrw_SESV4SignDoc")).unwrap()),
    );
    assert!(!late.valid);
    let f = failed(&late);
    assert!(f.contains(&"seal_validity") && f.contains(&"signer_certificate"), "{f:?}");
    assert!(!f.contains(&"signer_signature") && !f.contains(&"maker_signature"));
    let (code, out) =
        sealctl(&["ses", "verify", "--ofd", dir.join("ofd/ofdrw_SESV4SignDoc.ofd").to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["valid"].as_bool()), (1, Some(false)));
    assert_eq!(
        v["signatures"][0]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "seal_validity").unwrap()["ok"],
        false
    );

    // ofdrw's zero dataHash: both signatures verify; against a document the data hash fails.
    let zero = std::fs::read(dir.join("signatures/ofdrw_SignedValueV4_zero_datahash.dat")).unwrap();
    let r = verify_file(&zero, Some(b"anything"));
    assert_eq!(failed(&r), vec!["data_hash"], "{r:#?}");

    // Standalone seals: the maker signature verifies for v4 and v1 and fails for Hebei Gede.
    for (file, maker_ok) in [
        ("ofdrw_UserV4_gbt38540.esl", true),
        ("ofdrw_UserV1_gmt0031.esl", true),
        ("hebeigede_SESealData_UNVERIFIED.der", false),
    ] {
        let path = dir.join(format!("seals/{file}"));
        let r = verify_file(&std::fs::read(&path).unwrap(), None);
        let maker = r.steps.iter().find(|s| s.step == "maker_signature").unwrap();
        assert_eq!(maker.ok, Some(maker_ok), "{file}: {r:#?}");
        assert!(!r.valid, "{file} has expired: judged now it is not valid");
        let (code, out) = sealctl(&["ses", "verify", path.to_str().unwrap(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(code, 1, "{file}");
        let step = v["steps"].as_array().unwrap().iter().find(|s| s["step"] == "maker_signature").unwrap().clone();
        assert_eq!(step["ok"], maker_ok, "{file}: {out}");
        if maker_ok {
            // Judged inside its validity, the seal is valid.
            let (code, _) = sealctl(&["ses", "verify", path.to_str().unwrap(), "--at", "2021-01-01T00:00:00Z"]);
            assert_eq!(code, 0, "{file} at 2021-01-01");
        }
    }
    let (code, dump) = sealctl(&["ses", "dump", dir.join("seals/ofdrw_UserV1_gmt0031.esl").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        dump.contains("SESeal (V1") && dump.contains("property.name") && dump.contains("OFDRW测试用印章"),
        "{dump}"
    );
    let (code, _) = sealctl(&["ses", "verify", dir.join("SOURCES.md").to_str().unwrap()]);
    assert_eq!(code, 2, "text is not a seal at all");
    let (code, _) = sealctl(&["ses", "verify", "/nonexistent"]);
    assert_eq!(code, 2);
}

fn position(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("needle in the structure")
}

#[test]
fn a_flipped_byte_in_each_signed_region_fails_the_step_that_covers_it() {
    let Some(dir) = samples() else { return };
    let name = "gomain_tax_jiangsu_signedFile";
    let raw = std::fs::read(dir.join(format!("signatures/{name}/SignedValue.dat"))).unwrap();
    let doc = std::fs::read(dir.join(format!("signatures/{name}/Signature.xml"))).unwrap();
    let parsed = SesSignature::parse(&raw).unwrap();
    let flip = |at: usize| {
        let mut b = raw.clone();
        b[at] ^= 0x01;
        b
    };
    let cases: Vec<(&str, usize, Vec<&str>)> = vec![
        (
            "the seal's name",
            position(&raw, parsed.seal.info.name.as_bytes()),
            vec!["signer_signature", "maker_signature"],
        ),
        (
            "the maker's signature",
            position(&raw, &parsed.seal.signed_value) + 20,
            vec!["signer_signature", "maker_signature"],
        ),
        ("propertyInfo", position(&raw, parsed.property_info.as_bytes()) + 3, vec!["signer_signature"]),
        ("dataHash", position(&raw, &parsed.data_hash) + 5, vec!["data_hash", "signer_signature"]),
        ("the signature", position(&raw, &parsed.signature) + 20, vec!["signer_signature"]),
    ];
    for (what, at, expected) in cases {
        let r = verify_file(&flip(at), Some(&doc));
        assert_eq!(failed(&r), expected, "flipping a byte of {what}: {r:#?}");
        assert!(!r.valid);
    }
    let mut other_doc = doc.clone();
    other_doc[10] ^= 1;
    assert_eq!(failed(&verify_file(&raw, Some(&other_doc))), vec!["data_hash"]);
}

#[test]
fn the_gmt0010_sample_verifies_over_its_embedded_digest() {
    let Some(dir) = samples() else { return };
    let sd_bytes = std::fs::read(dir.join("gmt0010/ofdrw_integrity_extracted/signedvalue.dat")).unwrap();
    let entries = std::fs::read(dir.join("gmt0010/ofdrw_integrity_extracted/OFDEntries.xml")).unwrap();
    let sd = seald::formats::cms::parse(&sd_bytes).unwrap();
    assert_eq!(
        sd.content.as_deref(),
        Some(&seald::crypto::sm3(&entries)[..]),
        "the embedded content is SM3(OFDEntries.xml)"
    );
    assert!(sd.signers[0].signed_attrs.is_none());
    let r = seald::formats::cms::verify(&sd_bytes, None, &VerifyOptions::default());
    assert!(r.steps.iter().any(|s| s.step == "signer_signature" && s.ok == Some(true)), "{r:#?}");
    let mut flipped = sd_bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 1;
    let r = seald::formats::cms::verify(&flipped, None, &VerifyOptions::default());
    assert!(!r.valid && r.steps.iter().any(|s| s.step == "signer_signature" && s.ok == Some(false)), "{r:#?}");
    // Without signed attributes nothing signed names the content type: it must be id-data. GM/T
    // 0010 data (1.2.156.10197.6.1.4.2.1) becomes 1.2.156.10197.6.1.4.2.0.
    let gm_data = [0x06, 0x0a, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x06, 0x01, 0x04, 0x02, 0x01];
    let at = sd_bytes.windows(gm_data.len()).position(|w| w == gm_data).expect("eContentType");
    let mut other_type = sd_bytes.clone();
    other_type[at + gm_data.len() - 1] = 0;
    let r = seald::formats::cms::verify(&other_type, None, &VerifyOptions::default());
    let signer = r.steps.iter().find(|s| s.step == "signer_signature").unwrap();
    assert_eq!(signer.ok, Some(false), "{r:#?}");
    assert!(signer.detail.contains("eContentType 1.2.156.10197.6.1.4.2.0 is not id-data"), "{r:#?}");
}
