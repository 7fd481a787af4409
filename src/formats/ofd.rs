//! Signatures inside an OFD package (GB/T 33190; STANDARDS.md §1.5): `OFD.xml` names
//! `Signatures.xml`, whose entries point to a `Signature.xml` each. For every signature this checks
//! each `Reference`'s `CheckValue` (SM3 of the package entry, `CheckMethod` spelled `sm3`, `SM3` or
//! `1.2.156.10197.1.401`), then for `Type="Seal"` runs the GB/T 38540 §7.3 procedure on the
//! `SES_Signature` with the bytes of `Signature.xml` as the protected data.
//!
//! `Type="Sign"` entries hold a GM/T 0010 SignedData over `Signature.xml`, verified by `cms`; a bare
//! signature without a certificate is reported, not judged.

use super::ses::{self, Report, Step, VerifyOptions};
use base64::Engine as _;
use std::io::Read as _;

/// One signature of the package, judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfdSignature {
    /// Its `ID`.
    pub id: String,
    /// `Seal` or `Sign`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where its `Signature.xml` is.
    pub base_loc: String,
    /// The verdict (as for a single SES_Signature).
    #[serde(flatten)]
    pub report: Report,
}

/// The package cannot be read as an OFD.
#[derive(Debug, thiserror::Error)]
#[error("OFD: {0}")]
pub struct OfdError(pub String);

fn err(m: impl std::fmt::Display) -> OfdError {
    OfdError(m.to_string())
}

struct Package {
    zip: zip::ZipArchive<std::io::Cursor<Vec<u8>>>,
}

impl Package {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, OfdError> {
        let name = path.trim_start_matches('/');
        let mut f = self.zip.by_name(name).map_err(|e| err(format!("{name}: {e}")))?;
        let mut out = Vec::new();
        let _ = f.read_to_end(&mut out).map_err(|e| err(format!("{name}: {e}")))?;
        Ok(out)
    }

    /// `path` as seen from the file `from`: absolute paths from the package root, others relative to
    /// `from`'s directory (or, failing that, to the root).
    fn resolve(&self, from: &str, path: &str) -> String {
        let path = path.trim();
        if let Some(abs) = path.strip_prefix('/') {
            return abs.to_string();
        }
        let dir = from.trim_start_matches('/').rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let joined = if dir.is_empty() { path.to_string() } else { format!("{dir}/{path}") };
        if self.zip.index_for_name(&joined).is_some() {
            joined
        } else {
            path.to_string()
        }
    }
}

/// An element seen in an XML file: its local name, attributes and text.
#[derive(Debug, Default, Clone)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every element of an XML document in document order (namespaces dropped), with its direct text.
fn elements(xml: &[u8]) -> Result<Vec<Element>, OfdError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|e| err(format!("XML: {e}")))?;
        let is_empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                let mut attrs = Vec::new();
                for a in e.attributes().flatten() {
                    let k = a.key.local_name().as_ref().to_string();
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(|v| v.into_owned())
                        .unwrap_or_default();
                    attrs.push((k, v));
                }
                out.push(Element { name, attrs, text: String::new() });
                if !is_empty {
                    open.push(out.len() - 1);
                }
            }
            Event::Text(t) => {
                if let Some(i) = open.last() {
                    let text = t.xml10_content();
                    out[*i].text.push_str(text.trim());
                }
            }
            Event::End(_) => {
                let _ = open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn sm3_method(m: &str) -> bool {
    matches!(m.trim(), "sm3" | "SM3" | super::oid::SM3)
}

/// Verifies every signature of an OFD package.
pub fn verify(bytes: &[u8], opts: &VerifyOptions<'_>) -> Result<Vec<OfdSignature>, OfdError> {
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).map_err(err)?;
    let mut pkg = Package { zip };
    let ofd = elements(&pkg.read("OFD.xml")?)?;
    let mut out = Vec::new();
    for list in ofd.iter().filter(|e| e.name == "Signatures" && !e.text.is_empty()) {
        let list_path = pkg.resolve("OFD.xml", &list.text);
        let entries = elements(&pkg.read(&list_path)?)?;
        for entry in entries.iter().filter(|e| e.name == "Signature") {
            let id = entry.attr("ID").unwrap_or_default().to_string();
            let kind = entry.attr("Type").unwrap_or("Seal").to_string();
            let base_loc = pkg.resolve(&list_path, entry.attr("BaseLoc").unwrap_or_default());
            let report = match verify_one(&mut pkg, &base_loc, &kind, opts) {
                Ok(r) => r,
                Err(e) => ses::unreadable(&ses::SesError(e.0)),
            };
            out.push(OfdSignature { id, kind, base_loc, report });
        }
    }
    if out.is_empty() {
        return Err(err("the package holds no signatures"));
    }
    Ok(out)
}

fn verify_one(pkg: &mut Package, base_loc: &str, kind: &str, opts: &VerifyOptions<'_>) -> Result<Report, OfdError> {
    let xml = pkg.read(base_loc)?;
    let els = elements(&xml)?;
    let method =
        els.iter().find(|e| e.name == "References").and_then(|e| e.attr("CheckMethod")).unwrap_or("").to_string();
    let mut mismatched = Vec::new();
    let mut checked = 0;
    if !method.is_empty() && !sm3_method(&method) {
        return Err(err(format!("CheckMethod '{method}' is not SM3")));
    }
    let refs: Vec<(String, String)> = els
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == "Reference")
        .map(|(i, e)| {
            let value =
                els[i + 1..].iter().find(|c| c.name == "CheckValue").map(|c| c.text.clone()).unwrap_or_default();
            (e.attr("FileRef").unwrap_or_default().to_string(), value)
        })
        .collect();
    for (file, value) in &refs {
        let path = pkg.resolve(base_loc, file);
        let ok = pkg.read(&path).is_ok_and(|b| {
            base64::engine::general_purpose::STANDARD.decode(value.trim()).is_ok_and(|v| v == crate::crypto::sm3(&b))
        });
        checked += 1;
        if !ok {
            mismatched.push(file.clone());
        }
    }
    let signed_value = els.iter().find(|e| e.name == "SignedValue").map(|e| e.text.clone()).unwrap_or_default();
    let value = pkg.read(&pkg.resolve(base_loc, &signed_value))?;
    let mut report = if kind == "Seal" {
        let sig = match ses::SesSignature::parse(&value) {
            Ok(s) => s,
            Err(e) => return Ok(ses::unreadable(&e)),
        };
        let mut o = VerifyOptions {
            trust: opts.trust,
            have_crls: opts.have_crls,
            require_trust: opts.require_trust,
            at: opts.at,
            document_sm3: Some(crate::crypto::sm3(&xml)),
            registry_state: None,
        };
        o.registry_state = opts.registry_state.clone();
        ses::verify_signature(&sig, &o)
    } else if value.first() == Some(&0x30) && super::cms::parse(&value).is_ok() {
        super::cms::verify(&value, Some(&xml), opts)
    } else {
        // A bare SM2 signature over Signature.xml cannot name its signer: reported, not judged.
        Report {
            valid: false,
            steps: vec![
                Step {
                    step: "format",
                    ok: Some(true),
                    detail: format!("Type=\"{kind}\": a {}-byte bare signature", value.len()),
                },
                Step {
                    step: "signer_signature",
                    ok: None,
                    detail: "a bare signature carries no certificate to check it with".into(),
                },
            ],
            warnings: Vec::new(),
        }
    };
    // The references protect the document itself: their result joins the data-hash step.
    if let Some(s) = report.steps.iter_mut().find(|s| s.step == "data_hash") {
        if mismatched.is_empty() {
            s.detail = format!("{}; all {checked} Reference CheckValues match", s.detail);
        } else {
            s.ok = Some(false);
            s.detail = format!("{}; Reference CheckValue mismatch: {}", s.detail, mismatched.join(", "));
        }
    } else {
        report.steps.push(Step {
            step: "data_hash",
            ok: Some(mismatched.is_empty()),
            detail: if mismatched.is_empty() {
                format!("all {checked} Reference CheckValues match")
            } else {
                format!("mismatch: {}", mismatched.join(", "))
            },
        });
    }
    report.valid = report.valid && mismatched.is_empty();
    Ok(report)
}
