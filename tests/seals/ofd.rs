//! OFD documents sealed and verified through the registry's services: every sample keeps its
//! recorded verdict, every sample sealed again keeps every earlier signature, riding seals slice the
//! image over every page, a final seal closes the document, one changed byte in any kind of package
//! file is named in the report, and bad packages are refused before anything is signed or journalled.

use super::*;
use seald::formats::ofd::{Limits, Placement};
use seald::formats::x509::TrustStore;
use seald::seal::OfdVerdict;
use seald::signing::OfdRequest;
use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};

use crate::common::{carried_certificates, samples_dir, OFD_SAMPLES as SAMPLES};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(format!("ofd/{name}.ofd"))).unwrap()
}

/// Every entry of a package: name → bytes, in order.
fn entries(pkg: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b).unwrap();
            (f.name().to_string(), b)
        })
        .collect()
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in entries {
        if name.ends_with('/') {
            w.add_directory(name.as_str(), opts).unwrap();
        } else {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// The samples carry no issuer certificates: trust is given by pinning the certificates the package
/// itself carries, so that every other check decides.
fn pinned(pkg: &[u8]) -> TrustStore {
    TrustStore::new(carried_certificates(pkg), Vec::new())
}

fn verify(w: &World, pkg: &[u8]) -> OfdVerdict {
    w.registry.verification().verify_ofd(pkg, &pinned(pkg), &Limits::DEFAULT).unwrap()
}

fn at(page: u32, x: f64, y: f64) -> Placement {
    Placement { page, x_mm: x, y_mm: y, riding: false, final_seal: false }
}

fn seal_ofd(w: &World, seal: &str, doc: &[u8], placement: Placement) -> Result<seald::signing::SealedOfd, SignError> {
    let req =
        OfdRequest { document: doc, placement, name: Some("电子回单 2026-001"), ticket: None, timestamp: false };
    w.signing.seal_ofd(&w.app_a, seal, req)
}

/// Each step's outcome, by name.
fn outcomes(v: &OfdVerdict, i: usize) -> Vec<(&'static str, Option<bool>)> {
    v.signatures[i].judged.steps.iter().map(|s| (s.step, s.ok)).collect()
}

fn failed(v: &OfdVerdict, i: usize) -> Vec<&'static str> {
    v.signatures[i].judged.steps.iter().filter(|s| s.ok == Some(false)).map(|s| s.step).collect()
}

#[test]
fn every_sample_keeps_its_recorded_verdict() {
    let w = world();
    for (name, expected) in SAMPLES {
        let v = verify(&w, &sample(name));
        assert_eq!(v.verdict, *expected, "{name}: {v:#?}");
        assert!(v.signatures.iter().all(|s| s.references.iter().all(|r| r.ok)), "{name}: {v:#?}");
        if *expected == "invalid" {
            assert_eq!(failed(&v, 0), ["maker_certificate", "signer_certificate", "seal_validity"], "{name}: {v:#?}");
        }
        // The order of GB/T 38540 §7.3: what was signed first, validity last.
        let steps: Vec<&str> = v.signatures[0].judged.steps.iter().map(|s| s.step).collect();
        assert_eq!(&steps[..4], ["format", "references", "data_hash", "signer_signature"], "{name}");
        assert_eq!(steps.last(), Some(&"registry_state"), "{name}");
    }
}

#[test]
fn every_sample_sealed_again_keeps_every_earlier_signature() {
    let w = world();
    let seal = w.usable(Policy::default());
    for (name, _) in SAMPLES {
        let doc = sample(name);
        let before = verify(&w, &doc);
        let sealed = seal_ofd(&w, &seal, &doc, at(1, 10.0, 10.0)).unwrap();
        let after = verify(&w, &sealed.document);
        assert_eq!(after.signatures.len(), before.signatures.len() + 1, "{name}");
        for i in 0..before.signatures.len() {
            assert_eq!(outcomes(&after, i), outcomes(&before, i), "{name}: signature {i} changed: {after:#?}");
        }
        let new = after.signatures.last().unwrap();
        assert_eq!(new.judged.verdict, "valid", "{name}: {new:#?}");
        assert_eq!(new.id, sealed.signature_id);
        assert!(!new.is_final);
        let registry = new.judged.steps.iter().find(|s| s.step == "registry_state").unwrap();
        assert_eq!(registry.ok, Some(true), "{name}: {registry:?}");
        // Its references: every file but the signature list and its own two.
        let files: BTreeSet<String> = entries(&sealed.document)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !n.ends_with('/'))
            .filter(|n| !n.ends_with("Signs/Signatures.xml"))
            .filter(|n| format!("/{n}") != new.base_loc && !new.base_loc.ends_with(n.as_str()))
            .filter(|n| !n.ends_with(&sealed.property_info.replace("Signature.xml", "SignedValue.dat")[1..]))
            .collect();
        let referenced: BTreeSet<String> = new.references.iter().map(|r| r.file.clone()).collect();
        assert_eq!(referenced, files, "{name}");
        assert!(referenced.iter().any(|f| f.ends_with("Seal.esl")), "{name}: Seal.esl is protected");
        // Every file that was there keeps its bytes, but the signature list.
        let old: Vec<(String, Vec<u8>)> = entries(&doc);
        let new_entries = entries(&sealed.document);
        for (n, b) in &old {
            if !n.ends_with("Signatures.xml") {
                let (_, nb) = new_entries.iter().find(|(m, _)| m == n).unwrap();
                assert_eq!(nb, b, "{name}: {n} changed");
            }
        }
        // The usage record names the document.
        let rec = w
            .journal
            .query(&Query {
                action: Some("seal.use".into()),
                object: Some(format!("seal:{seal}")),
                ..Default::default()
            })
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(rec.seq, sealed.audit_seq);
        assert_eq!(rec.details["input"], "ofd");
        assert_eq!(rec.details["document_name"], "电子回单 2026-001");
        assert_eq!(rec.details["document_sm3"], hex::encode(seald::crypto::sm3(&doc)));
        assert_eq!(rec.details["digest"], hex::encode(seald::crypto::sm3(&doc)));
        assert_eq!(rec.details["pages"].as_array().map(Vec::len), Some(1));
    }
}

/// A document of `pages` pages of `w`×`h` mm, with no signature.
fn blank_document(pages: usize, w: u32, h: u32) -> Vec<u8> {
    let ofd = r#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.2" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>0123456789abcdef0123456789abcdef</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#;
    let list: String =
        (0..pages).map(|i| format!(r#"<ofd:Page ID="{}" BaseLoc="Pages/Page_{i}/Content.xml"/>"#, 10 + i)).collect();
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"><ofd:CommonData><ofd:MaxUnitID>100</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 {w} {h}</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages>{list}</ofd:Pages></ofd:Document>"#
    );
    let mut e =
        vec![("OFD.xml".to_string(), ofd.as_bytes().to_vec()), ("Doc_0/Document.xml".into(), document.into_bytes())];
    for i in 0..pages {
        e.push((
            format!("Doc_0/Pages/Page_{i}/Content.xml"),
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016"><ofd:Content><ofd:Layer ID="{}"/></ofd:Content></ofd:Page>"#, 50 + i).into_bytes(),
        ));
    }
    zip_of(&e)
}

/// The `StampAnnot`s of the signature at `base_loc`: (PageRef, Boundary, Clip).
fn stamps(pkg: &[u8], base_loc: &str) -> Vec<(String, Vec<f64>, Option<Vec<f64>>)> {
    let xml = entries(pkg).into_iter().find(|(n, _)| format!("/{n}") == base_loc || n == base_loc).unwrap().1;
    let xml = String::from_utf8(xml).unwrap();
    let attr = |el: &str, name: &str| {
        let k = format!(" {name}=\"");
        el.find(&k).map(|i| el[i + k.len()..].split('"').next().unwrap().to_string())
    };
    let nums = |s: String| s.split_whitespace().map(|n| n.parse::<f64>().unwrap()).collect::<Vec<_>>();
    xml.split("<ofd:StampAnnot")
        .skip(1)
        .map(|el| {
            let el = el.split("/>").next().unwrap();
            (attr(el, "PageRef").unwrap(), nums(attr(el, "Boundary").unwrap()), attr(el, "Clip").map(nums))
        })
        .collect()
}

#[test]
fn a_new_document_is_sealed_and_sealed_again() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = blank_document(2, 210, 297);
    let first = seal_ofd(&w, &seal, &doc, at(2, 150.0, 240.0)).unwrap();
    // OFD.xml now names a new signature list.
    let ofd_xml = entries(&first.document).into_iter().find(|(n, _)| n == "OFD.xml").unwrap().1;
    assert!(String::from_utf8(ofd_xml)
        .unwrap()
        .contains("<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>"));
    assert_eq!(
        stamps(&first.document, &first.property_info),
        [("11".to_string(), vec![150.0, 240.0, 40.0, 40.0], None)]
    );
    let second = seal_ofd(&w, &seal, &first.document, at(1, 0.0, 0.0)).unwrap();
    let v = verify(&w, &second.document);
    assert_eq!(v.verdict, "valid", "{v:#?}");
    assert_eq!(v.signatures.len(), 2);
    assert_eq!((first.signature_id.as_str(), second.signature_id.as_str()), ("1", "3"), "ids follow MaxSignId");
    let list = entries(&second.document).into_iter().find(|(n, _)| n.ends_with("Signatures.xml")).unwrap().1;
    assert!(String::from_utf8(list).unwrap().contains("<ofd:MaxSignId>4</ofd:MaxSignId>"));
}

#[test]
fn a_riding_seal_slices_the_image_over_every_page() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = blank_document(3, 210, 297);
    let placement = Placement { page: 1, x_mm: 0.0, y_mm: 120.0, riding: true, final_seal: false };
    let sealed = seal_ofd(&w, &seal, &doc, placement).unwrap();
    assert_eq!(verify(&w, &sealed.document).verdict, "valid");
    let s = stamps(&sealed.document, &sealed.property_info);
    assert_eq!(s.iter().map(|(p, ..)| p.as_str()).collect::<Vec<_>>(), ["10", "11", "12"], "one per page");
    // The slices: each shows its third of the 40 mm image at the page's right edge, and together
    // they are the whole image, without gap or overlap.
    let mut next = 0.0;
    for (page, boundary, clip) in &s {
        let clip = clip.as_ref().expect("a clip");
        assert_eq!((boundary[2], boundary[3]), (40.0, 40.0), "page {page}: the whole image is placed");
        assert!((clip[0] - next).abs() < 0.01, "page {page}: slices join: {clip:?}");
        assert!((boundary[0] + clip[0] + clip[2] - 210.0).abs() < 0.01, "page {page}: the slice ends at the edge");
        assert_eq!(boundary[1], 120.0);
        next = clip[0] + clip[2];
    }
    assert!((next - 40.0).abs() < 0.01, "the slices make the whole image: {s:?}");
}

#[test]
fn a_final_seal_closes_the_document() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = sample("suwellsdk_icbc_receipt_20220101");
    let placement = Placement { final_seal: true, ..at(1, 100.0, 200.0) };
    let sealed = seal_ofd(&w, &seal, &doc, placement).unwrap();
    let v = verify(&w, &sealed.document);
    assert_eq!(v.verdict, "valid", "{v:#?}");
    assert!(v.signatures[1].is_final);
    assert!(v.signatures[1].references.iter().any(|r| r.file.ends_with("Signatures.xml")));
    // No further seal, and nothing signed or journalled for the attempt.
    let head = w.journal.head_seq();
    let e = seal_ofd(&w, &seal, &sealed.document, at(1, 10.0, 10.0)).unwrap_err();
    assert_eq!(e.code(), "ofd_signatures_protected", "{e}");
    assert_eq!(w.journal.head_seq(), head);
    // A file slipped in afterwards is named.
    let mut e = entries(&sealed.document);
    e.push(("Doc_0/Attachs/extra.xml".into(), b"<x/>".to_vec()));
    let v = verify(&w, &zip_of(&e));
    assert_eq!(v.verdict, "invalid");
    assert_eq!(v.added_after_final, ["Doc_0/Attachs/extra.xml"]);
    // So is a signature that no list names.
    let mut e = entries(&doc);
    let sig = e.iter().find(|(n, _)| n.ends_with("Sign_0/Signature.xml")).unwrap().1.clone();
    e.push(("Doc_0/Signs/Sign_9/Signature.xml".into(), sig));
    let v = verify(&w, &zip_of(&e));
    assert_eq!(
        (v.verdict, v.unlisted_signatures.clone()),
        ("invalid", vec!["Doc_0/Signs/Sign_9/Signature.xml".to_string()])
    );
}

/// Changes one byte of `name` in `pkg` (in text that stays well-formed where the verifier parses it).
fn tampered(pkg: &[u8], name: &str) -> Vec<u8> {
    let mut e = entries(pkg);
    let (_, bytes) = e.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}"));
    let at = match name {
        // The document id in OFD.xml; the date in Signature.xml: both parsed, both still XML.
        "OFD.xml" => bytes.windows(11).position(|x| x == b"<ofd:DocID>").unwrap() + 12,
        n if n.ends_with("Signature.xml") => {
            bytes.windows(23).position(|x| x == b"<ofd:SignatureDateTime>").unwrap() + 25
        }
        _ => bytes.len() / 2,
    };
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    zip_of(&e)
}

#[test]
fn one_changed_byte_in_any_file_is_named_with_the_failed_step() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = sample("gomain_tax_jiangsu_signedFile");
    let sealed = seal_ofd(&w, &seal, &doc, at(1, 20.0, 20.0)).unwrap();
    assert_eq!(verify(&w, &sealed.document).verdict, "valid");
    let own = sealed.property_info[1..].to_string();
    let value = own.replace("Signature.xml", "SignedValue.dat");
    let seal_file = own.replace("Signature.xml", "Seal.esl");
    // (file, the step of our signature that fails, the detail names the file)
    let cases: &[(&str, &str, bool)] = &[
        ("OFD.xml", "references", true),
        ("Doc_0/Document.xml", "references", true),
        ("Doc_0/Pages/Page_0/Content.xml", "references", true),
        ("Doc_0/Res/image_80.jb2", "references", true),
        ("Doc_0/Attachs/original_invoice.xml", "references", true),
        (&seal_file, "references", true),
        ("Doc_0/Signs/Sign_0/Signature.xml", "references", true),
        ("Doc_0/Signs/Sign_0/SignedValue.dat", "references", true),
        (&own, "data_hash", true),
        (&value, "signature", false),
    ];
    for (file, step, names_file) in cases {
        let v = verify(&w, &tampered(&sealed.document, file));
        assert_eq!(v.verdict, "invalid", "{file}");
        let ours = v.signatures.iter().find(|s| s.id == sealed.signature_id).unwrap();
        if *step == "signature" {
            // The SES_Signature itself: it no longer reads, or its signatures no longer verify.
            let signature_steps = ["format", "signer_signature", "maker_signature", "signer_in_cert_list"];
            assert!(
                failed(&v, v.signatures.len() - 1).iter().any(|s| signature_steps.contains(s)),
                "{file}: {ours:#?}"
            );
            continue;
        }
        let s = ours.judged.steps.iter().find(|s| s.step == *step).unwrap();
        assert_eq!(s.ok, Some(false), "{file}: {ours:#?}");
        if *names_file {
            assert!(s.detail.contains(file), "{file}: {}", s.detail);
        }
        if *step == "references" {
            let bad: Vec<&str> = ours.references.iter().filter(|r| !r.ok).map(|r| r.file.as_str()).collect();
            assert_eq!(bad, [*file]);
        }
    }
}

#[test]
fn bad_packages_are_refused_before_anything_is_signed() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = sample("ofdrw_SESV4SignDoc");
    let mut bomb_entries = entries(&doc);
    bomb_entries.push(("Doc_0/Res/zeros.bin".into(), vec![0u8; 65 << 20]));
    let bomb = {
        let mut wr = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (n, b) in &bomb_entries {
            if !n.ends_with('/') {
                wr.start_file(n.as_str(), opts).unwrap();
                wr.write_all(b).unwrap();
            }
        }
        wr.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 2 << 20, "the bomb is small: {}", bomb.len());
    let with = |name: &str, bytes: &[u8]| {
        let mut e = entries(&doc);
        e.push((name.into(), bytes.to_vec()));
        zip_of(&e)
    };
    let doctype = {
        let mut e = entries(&doc);
        let (_, b) = e.iter_mut().find(|(n, _)| n == "Doc_0/Document.xml").unwrap();
        let s = String::from_utf8(b.clone()).unwrap().replacen("?>", "?><!DOCTYPE d [<!ENTITY a \"aaaa\">]>", 1);
        *b = s.into_bytes();
        zip_of(&e)
    };
    let duplicate = {
        let mut e = entries(&doc);
        let list = e.iter().find(|(n, _)| n == "Doc_0/Signs/Signatures.xml").unwrap().1.clone();
        e.push(("Doc_0/Signs/Signaturez.xml".into(), list));
        let mut z = zip_of(&e);
        while let Some(i) = z.windows(26).position(|x| x == b"Doc_0/Signs/Signaturez.xml") {
            z[i + 21] = b's';
        }
        z
    };
    // (what, package, placement, code, the verifier refuses it too)
    let cases: Vec<(&str, Vec<u8>, Placement, &str, bool)> = vec![
        ("not a zip", b"%PDF-1.7 not an OFD".to_vec(), at(1, 10.0, 10.0), "ofd_unreadable", true),
        ("a zip bomb", bomb, at(1, 10.0, 10.0), "ofd_limit", false),
        ("a DOCTYPE", doctype, at(1, 10.0, 10.0), "ofd_xml_doctype", false),
        ("a path out of the package", with("../../etc/cron.d/x", b"x"), at(1, 10.0, 10.0), "ofd_unsafe_path", true),
        ("an absolute path", with("/etc/passwd", b"x"), at(1, 10.0, 10.0), "ofd_unsafe_path", true),
        ("a page that does not exist", doc.clone(), at(2, 10.0, 10.0), "ofd_page_not_found", false),
        ("page 0", doc.clone(), at(0, 10.0, 10.0), "ofd_page_not_found", false),
        ("off the page", doc.clone(), at(1, 190.0, 10.0), "ofd_position_off_page", false),
        ("above the page", doc.clone(), at(1, 10.0, -1.0), "ofd_position_off_page", false),
        ("a duplicate Signatures.xml", duplicate, at(1, 10.0, 10.0), "ofd_duplicate_entry", true),
    ];
    let head = w.journal.head_seq();
    for (what, pkg, placement, code, verifier_too) in cases {
        let e = seal_ofd(&w, &seal, &pkg, placement).unwrap_err();
        assert_eq!(e.code(), code, "{what}: {e}");
        if verifier_too {
            let v = w.registry.verification().verify_ofd(&pkg, &TrustStore::default(), &Limits::DEFAULT);
            assert_eq!(v.map(|v| v.verdict).unwrap_err().code(), code, "{what}: the verifier refuses it too");
        }
    }
    assert_eq!(w.journal.head_seq(), head, "nothing journalled");
    assert!(w.registry.uses().usage(&w.admin_a, &seal).unwrap().is_empty(), "no use recorded");
}

#[test]
fn a_ticket_names_the_incoming_document() {
    let w = world();
    let seal = w.usable(Policy { require_approval: true, ..Policy::default() });
    let doc = blank_document(1, 210, 297);
    let other = blank_document(2, 210, 297);
    let digest = hex::encode(seald::crypto::sm3(&doc));
    let t = TicketRequest { app: "app-a".into(), digest, valid_s: None };
    let ticket = w.registry.uses().issue_ticket(&w.admin_a, &seal, t).unwrap().id;
    let use_with = |d: &[u8], ticket: Option<&str>| {
        let req = OfdRequest { document: d, placement: at(1, 10.0, 10.0), name: None, ticket, timestamp: false };
        w.signing.seal_ofd(&w.app_a, &seal, req)
    };
    assert_eq!(use_with(&doc, None).unwrap_err().code(), "ticket_required");
    assert_eq!(use_with(&other, Some(&ticket)).unwrap_err().code(), "ticket_mismatch");
    let sealed = use_with(&doc, Some(&ticket)).unwrap();
    assert_eq!(verify(&w, &sealed.document).verdict, "valid");
    assert_eq!(use_with(&doc, Some(&ticket)).unwrap_err().code(), "ticket_used");
}

/// `blank_document` with its signature list (and more files) given.
fn with_list(list: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut e = entries(&blank_document(1, 210, 297));
    let (_, ofd) = e.iter_mut().find(|(n, _)| n == "OFD.xml").unwrap();
    *ofd = String::from_utf8(ofd.clone())
        .unwrap()
        .replace("</ofd:DocBody>", "<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures></ofd:DocBody>")
        .into_bytes();
    e.push(("Doc_0/Signs/Signatures.xml".into(), list.as_bytes().to_vec()));
    e.extend(extra.iter().map(|(n, b)| (n.to_string(), b.to_vec())));
    zip_of(&e)
}

#[test]
fn names_and_lists_that_try_to_break_the_xml_are_written_safely() {
    let w = world();
    let seal = w.usable(Policy::default());
    // A file name that would close the attribute and open a Reference of its own.
    let name = r#"Doc_0/Attachs/a"><ofd:Reference FileRef="/OFD.xml"><x y="&amp;.xml"#;
    let mut e = entries(&blank_document(1, 210, 297));
    e.push((name.into(), b"attachment".to_vec()));
    let sealed = seal_ofd(&w, &seal, &zip_of(&e), at(1, 10.0, 10.0)).unwrap();
    let v = verify(&w, &sealed.document);
    assert_eq!(v.verdict, "valid", "{v:#?}");
    let files: Vec<&str> = v.signatures[0].references.iter().map(|r| r.file.as_str()).collect();
    assert!(files.contains(&name), "{files:?}");
    assert_eq!(files.iter().filter(|f| **f == "OFD.xml").count(), 1, "no smuggled reference: {files:?}");
    // A list written <ofd:Signatures/>; one whose comment holds what looks like its end and a
    // MaxSignId; ofdrw's s-numbered ids.
    const NS: &str = r#"xmlns:ofd="http://www.ofdspec.org/2016""#;
    for (list, expected_id) in [
        (format!("<ofd:Signatures {NS}/>"), "1"),
        (
            format!(
                "<ofd:Signatures {NS}><!-- </ofd:Signatures> <ofd:MaxSignId>9</ofd:MaxSignId> --></ofd:Signatures>"
            ),
            "1",
        ),
        (format!("<ofd:Signatures {NS}><ofd:MaxSignId>s002</ofd:MaxSignId></ofd:Signatures>"), "s003"),
    ] {
        let sealed = seal_ofd(&w, &seal, &with_list(&list, &[]), at(1, 10.0, 10.0)).unwrap();
        assert_eq!(sealed.signature_id, expected_id, "{list}");
        let v = verify(&w, &sealed.document);
        assert_eq!((v.verdict, v.signatures.len()), ("valid", 1), "{list}: {v:#?}");
        assert!(v.unlisted_signatures.is_empty(), "{list}");
    }
    // A page whose ID is not a number is refused before anything is signed.
    let mut e = entries(&blank_document(1, 210, 297));
    let (_, doc) = e.iter_mut().find(|(n, _)| n == "Doc_0/Document.xml").unwrap();
    *doc = String::from_utf8(doc.clone()).unwrap().replace(r#"ID="10""#, r#"ID="10&quot; x=&quot;""#).into_bytes();
    assert_eq!(seal_ofd(&w, &seal, &zip_of(&e), at(1, 10.0, 10.0)).unwrap_err().code(), "ofd_unreadable");
}

#[test]
fn paths_two_readers_could_read_differently_are_refused() {
    let w = world();
    // Suwell lists its signature as "Sign_0/Signature.xml" (beside Signatures.xml). A copy at the
    // root would be what a root-relative reader reads.
    let doc = sample("suwellsdk_icbc_receipt_20220101");
    let mut e = entries(&doc);
    let sig = e.iter().find(|(n, _)| n == "Doc_0/Signs/Sign_0/Signature.xml").unwrap().1.clone();
    e.push(("Sign_0/Signature.xml".into(), sig));
    let err = w.registry.verification().verify_ofd(&zip_of(&e), &pinned(&doc), &Limits::DEFAULT).unwrap_err();
    assert_eq!(err.code(), "ofd_ambiguous_path", "{err}");
    // An entry whose local header names another file than the central directory does.
    let mut z = zip_of(&entries(&doc));
    let at = z.windows(18).position(|x| x == b"Doc_0/Document.xml").unwrap();
    assert!(z[at + 18..].windows(18).any(|x| x == b"Doc_0/Document.xml"), "the central copy comes later");
    z[at + 6] = b'X';
    let err = w.registry.verification().verify_ofd(&z, &pinned(&doc), &Limits::DEFAULT).unwrap_err();
    assert_eq!(err.code(), "ofd_duplicate_entry", "{err}");
    // A document with no signature at all is not valid.
    let v =
        w.registry.verification().verify_ofd(&blank_document(1, 210, 297), &TrustStore::default(), &Limits::DEFAULT);
    let v = v.unwrap();
    assert_eq!((v.verdict, v.signatures.len()), ("invalid", 0));
}
