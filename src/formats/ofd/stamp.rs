//! Sealing an OFD package (GB/T 33190 §18, GB/T 38540 §7.2), in two steps around the token:
//!
//! 1. [`Unsealed::open`] reads the package within its [`Limits`] and refuses what cannot be sealed:
//!    unsafe or duplicate names, a DOCTYPE, a signature list that an earlier signature protects.
//! 2. [`Unsealed::prepare`] places the seal and writes, in this order, `Seal.esl`, the signature
//!    list (`Signatures.xml`, created or extended with `MaxSignId`; `OFD.xml` names a new one), and
//!    `Signature.xml` with a `Reference` (SM3, `1.2.156.10197.1.401`) to every other file of the
//!    package (the list too when the seal is final), the `StampAnnot`s, and `SignatureDateTime`.
//!    `Signature.xml` is serialised once: its SM3 is the `dataHash` the seal signs, and its absolute
//!    path the `propertyInfo`.
//! 3. [`Prepared::finish`] takes the `SES_Signature` and writes the package: every file that was not
//!    rewritten is copied as stored (its compressed bytes unchanged), then the new files.
//!
//! Positions are in millimetres from the page's top left, as OFD's own coordinates are.

use super::{err, refused, walk, Limits, OfdError, Package};
use base64::Engine as _;
use std::collections::HashMap;
use std::io::Write as _;
use std::rc::Rc;
use std::time::SystemTime;

/// Where the seal goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The page, from 1.
    pub page: u32,
    /// The seal's left edge, in mm from the page's left.
    pub x_mm: f64,
    /// The seal's top edge, in mm from the page's top.
    pub y_mm: f64,
    /// A riding seal (骑缝章): the image sliced over the right edge of every page, one slice per
    /// page; `page` and `x_mm` are then not used.
    pub riding: bool,
    /// Protect the signature list too: no signature may be added after this one.
    pub final_seal: bool,
}

/// One page: its object id, and its size in mm.
#[derive(Debug, Clone)]
struct Page {
    id: String,
    base_loc: String,
    size: Option<(f64, f64)>,
}

/// A package read for sealing.
pub struct Unsealed<'a> {
    pkg: Package<'a>,
    ofd_xml: Rc<[u8]>,
    doc_root: String,
    /// The signature list `OFD.xml` names, and its bytes.
    list: Option<(String, Rc<[u8]>)>,
    /// The largest signature or stamp id in use.
    max_id: u64,
    pages: Vec<Page>,
    default_size: Option<(f64, f64)>,
}

/// A package with its new `Signature.xml`, waiting for the signature over it.
pub struct Prepared<'a> {
    pkg: Package<'a>,
    replaced: HashMap<String, Vec<u8>>,
    added: Vec<(String, Vec<u8>)>,
    signed_value_path: String,
    /// The bytes of the new `Signature.xml`: the seal signs their SM3.
    pub signature_xml: Vec<u8>,
    /// The absolute path of the new `Signature.xml` (the `SES_Signature`'s `propertyInfo`).
    pub property_info: String,
    /// The new signature's `ID`.
    pub signature_id: String,
    /// The page objects stamped (their `ID`s), one per `StampAnnot`.
    pub stamped_pages: Vec<String>,
}

fn number(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// `x y w h` → (w, h).
fn box_size(s: &str) -> Option<(f64, f64)> {
    let v: Vec<f64> = s.split_whitespace().map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match v.as_slice() {
        [_, _, w, h] if *w > 0.0 && *h > 0.0 && w.is_finite() && h.is_finite() => Some((*w, *h)),
        _ => None,
    }
}

/// Millimetres as OFD writes them: at most three decimals, no trailing zeros.
fn mm(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn text(xml: &[u8], what: &str) -> Result<String, OfdError> {
    String::from_utf8(xml.to_vec()).map_err(|_| err(format!("{what} is not UTF-8")))
}

/// The element names in `xml` that close as `local`: (offset of `</`, prefix with its colon).
fn closing_tags(xml: &str, local: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = xml[from..].find("</") {
        let at = from + i;
        let rest = &xml[at + 2..];
        let end = rest.find('>').unwrap_or(rest.len());
        let name = rest[..end].trim();
        let (prefix, l) = match name.rsplit_once(':') {
            Some((p, l)) => (format!("{p}:"), l),
            None => (String::new(), name),
        };
        if l == local {
            out.push((at, prefix));
        }
        from = at + 2;
    }
    out
}

/// The text range of the first element `<prefix:local>` without attributes.
fn element_text(xml: &str, prefix: &str, local: &str) -> Option<std::ops::Range<usize>> {
    let open = format!("<{prefix}{local}>");
    let close = format!("</{prefix}{local}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(start..end)
}

impl<'a> Unsealed<'a> {
    /// Reads `bytes` for sealing, within `limits`.
    pub fn open(bytes: &'a [u8], limits: Limits) -> Result<Self, OfdError> {
        let mut pkg = Package::open(bytes, limits)?;
        let ofd_xml = pkg.read("OFD.xml")?;
        // The first document's root and signature list.
        let (mut doc_root, mut lists) = (None, Vec::new());
        walk(&ofd_xml, &["DocRoot", "Signatures"], &limits, |e, _| {
            match e.name.as_str() {
                "DocRoot" if doc_root.is_none() => doc_root = Some(e.text),
                "Signatures" if !e.text.is_empty() => lists.push(e.text),
                _ => {}
            }
            Ok(())
        })?;
        let doc_root = pkg.resolve("OFD.xml", &doc_root.ok_or_else(|| err("OFD.xml names no DocRoot"))?);
        if lists.len() > 1 {
            return Err(refused("ofd_duplicate_entry", "OFD.xml names more than one Signatures.xml"));
        }
        let list = match lists.first() {
            Some(l) => {
                let path = pkg.resolve("OFD.xml", l);
                let xml = pkg.read(&path)?;
                Some((path, xml))
            }
            None => None,
        };
        let document = pkg.read(&doc_root)?;
        let (mut pages, mut default_size) = (Vec::new(), None);
        walk(&document, &["Page", "PhysicalBox"], &limits, |e, parent| {
            match (e.name.as_str(), parent) {
                ("Page", Some("Pages")) => pages.push(Page {
                    id: e.attr("ID").unwrap_or_default().to_string(),
                    base_loc: e.attr("BaseLoc").unwrap_or_default().to_string(),
                    size: None,
                }),
                ("PhysicalBox", Some("PageArea")) if default_size.is_none() => default_size = box_size(&e.text),
                _ => {}
            }
            Ok(())
        })?;
        if pages.is_empty() {
            return Err(err(format!("{doc_root} lists no pages")));
        }
        let mut max_id = 0;
        if let Some((path, xml)) = &list {
            let path = path.clone();
            let mut signatures = Vec::new();
            walk(xml, &["MaxSignId", "Signature"], &limits, |e, _| {
                match e.name.as_str() {
                    "MaxSignId" => max_id = max_id.max(number(&e.text).unwrap_or(0)),
                    _ => {
                        max_id = max_id.max(e.attr("ID").and_then(number).unwrap_or(0));
                        signatures.push(e.attr("BaseLoc").unwrap_or_default().to_string());
                    }
                }
                Ok(())
            })?;
            // An earlier signature that protects the list forbids any further one.
            for base_loc in signatures {
                let base_loc = pkg.resolve(&path, &base_loc);
                let sig_xml = pkg.read(&base_loc)?;
                let file = super::signature_file(&mut pkg, &sig_xml)?;
                if file.references.iter().any(|(r, _)| pkg.resolve(&base_loc, r) == path) {
                    return Err(refused(
                        "ofd_signatures_protected",
                        format!("the signature at {base_loc} protects {path}: the document is sealed final"),
                    ));
                }
                walk(&sig_xml, &["StampAnnot"], &limits, |e, _| {
                    max_id = max_id.max(e.attr("ID").and_then(number).unwrap_or(0));
                    Ok(())
                })?;
            }
        }
        // Every file's digest now, before the seal is held: sealing then adds only the new files.
        for f in pkg.files() {
            let _ = pkg.sm3(&f)?;
        }
        Ok(Unsealed { pkg, ofd_xml, doc_root, list, max_id, pages, default_size })
    }

    /// How many pages the document has.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Refuses a placement whose page does not exist.
    pub fn check_page(&self, placement: &Placement) -> Result<(), OfdError> {
        if !placement.riding && (placement.page == 0 || placement.page as usize > self.pages.len()) {
            return Err(refused(
                "ofd_page_not_found",
                format!("page {} does not exist: the document has {} page(s)", placement.page, self.pages.len()),
            ));
        }
        Ok(())
    }

    /// The size of page `i` (from 0) in mm: its own `Area`, else the document's `PageArea`.
    fn page_size(&mut self, i: usize) -> Result<(f64, f64), OfdError> {
        if let Some(s) = self.pages[i].size {
            return Ok(s);
        }
        let path = self.pkg.resolve(&self.doc_root, &self.pages[i].base_loc);
        let content = self.pkg.read(&path)?;
        let mut own = None;
        let limits = self.pkg.limits;
        walk(&content, &["PhysicalBox"], &limits, |e, parent| {
            if parent == Some("Area") && own.is_none() {
                own = box_size(&e.text);
            }
            Ok(())
        })?;
        let size = own.or(self.default_size).ok_or_else(|| err(format!("{path}: the page has no size")))?;
        self.pages[i].size = Some(size);
        Ok(size)
    }

    /// Places a seal of `size_mm` (its image's width and height) and writes everything but the
    /// signature: `Seal.esl` (`seal`, the `SESeal` DER), the list, and `Signature.xml`.
    pub fn prepare(
        mut self,
        placement: &Placement,
        seal: &[u8],
        size_mm: (f64, f64),
        now: SystemTime,
    ) -> Result<Prepared<'a>, OfdError> {
        self.check_page(placement)?;
        let (w, h) = size_mm;
        let off = |what: String| refused("ofd_position_off_page", what);
        // StampAnnot ID, PageRef, Boundary, Clip.
        let mut stamps: Vec<(String, String, Option<String>)> = Vec::new();
        if placement.riding {
            let n = self.pages.len();
            let slice = w / n as f64;
            for i in 0..n {
                let (pw, ph) = self.page_size(i)?;
                if placement.y_mm < 0.0 || placement.y_mm + h > ph || slice > pw {
                    return Err(off(format!(
                        "a riding seal {}×{} mm at y = {} mm does not fit page {} ({}×{} mm)",
                        mm(w),
                        mm(h),
                        mm(placement.y_mm),
                        i + 1,
                        mm(pw),
                        mm(ph)
                    )));
                }
                // The whole image, placed so that its slice i lies on the page's right edge; the
                // clip (in the boundary's own coordinates) keeps that slice only.
                let x = pw - (i as f64 + 1.0) * slice;
                stamps.push((
                    self.pages[i].id.clone(),
                    format!("{} {} {} {}", mm(x), mm(placement.y_mm), mm(w), mm(h)),
                    Some(format!("{} 0 {} {}", mm(i as f64 * slice), mm(slice), mm(h))),
                ));
            }
        } else {
            let i = placement.page as usize - 1;
            let (pw, ph) = self.page_size(i)?;
            let (x, y) = (placement.x_mm, placement.y_mm);
            let fits = x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0 && x + w <= pw && y + h <= ph;
            if !fits {
                return Err(off(format!(
                    "a seal {}×{} mm at ({}, {}) mm does not fit page {} ({}×{} mm)",
                    mm(w),
                    mm(h),
                    mm(x),
                    mm(y),
                    placement.page,
                    mm(pw),
                    mm(ph)
                )));
            }
            stamps.push((self.pages[i].id.clone(), format!("{} {} {} {}", mm(x), mm(y), mm(w), mm(h)), None));
        }

        // Where the new files go.
        let doc_dir = self.doc_root.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        let signs = if doc_dir.is_empty() { "Signs".to_string() } else { format!("{doc_dir}/Signs") };
        let files = self.pkg.files();
        let taken = |dir: &str| files.iter().any(|f| f.starts_with(&format!("{dir}/")));
        let sign_dir = (0..).map(|k| format!("{signs}/Sign_{k}")).find(|d| !taken(d)).unwrap_or_default();
        let seal_path = format!("{sign_dir}/Seal.esl");
        let signature_path = format!("{sign_dir}/Signature.xml");
        let signed_value_path = format!("{sign_dir}/SignedValue.dat");
        let signature_id = (self.max_id + 1).to_string();
        let max_id = self.max_id + 1 + stamps.len() as u64;

        // The signature list, extended or new; OFD.xml names a new one.
        let mut replaced = HashMap::new();
        let mut added = vec![(seal_path.clone(), seal.to_vec())];
        let entry = |p: &str| format!(r#"<{p}Signature ID="{signature_id}" Type="Seal" BaseLoc="/{signature_path}"/>"#);
        let list_path = match &self.list {
            Some((path, xml)) => {
                let mut x = text(xml, path)?;
                let (close, p) = closing_tags(&x, "Signatures")
                    .pop()
                    .ok_or_else(|| err(format!("{path}: no closing Signatures tag")))?;
                x.insert_str(close, &entry(&p));
                match element_text(&x, &p, "MaxSignId") {
                    Some(r) => x.replace_range(r, &max_id.to_string()),
                    None => {
                        let open = x.find(&format!("<{p}Signatures")).unwrap_or(0);
                        let at = open + x[open..].find('>').map_or(0, |i| i + 1);
                        x.insert_str(at, &format!("<{p}MaxSignId>{max_id}</{p}MaxSignId>"));
                    }
                }
                let _ = replaced.insert(path.clone(), x.into_bytes());
                path.clone()
            }
            None => {
                let path = format!("{signs}/Signatures.xml");
                if files.contains(&path) {
                    return Err(err(format!("{path} exists but OFD.xml does not name it")));
                }
                let list = format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>{}<ofd:Signatures xmlns:ofd="http://www.ofdspec.org/2016"><ofd:MaxSignId>{max_id}</ofd:MaxSignId>{}</ofd:Signatures>"#,
                    "\n",
                    entry("ofd:")
                );
                added.push((path.clone(), list.into_bytes()));
                let mut x = text(&self.ofd_xml, "OFD.xml")?;
                let (close, p) = closing_tags(&x, "DocBody")
                    .into_iter()
                    .next()
                    .ok_or_else(|| err("OFD.xml: no closing DocBody tag"))?;
                x.insert_str(close, &format!("<{p}Signatures>{path}</{p}Signatures>"));
                let _ = replaced.insert("OFD.xml".to_string(), x.into_bytes());
                path
            }
        };

        // The references: every file of the package as it will be, but the new signature's own two,
        // and the list unless the seal is final.
        let mut references = Vec::new();
        for name in files.iter().chain(added.iter().map(|(n, _)| n)) {
            if *name == list_path && !placement.final_seal {
                continue;
            }
            let digest = match (replaced.get(name), added.iter().find(|(n, _)| n == name)) {
                (Some(b), _) | (None, Some((_, b))) => crate::crypto::sm3(b),
                (None, None) => self.pkg.sm3(name)?.ok_or_else(|| err(format!("{name}: cannot be read")))?,
            };
            references.push((name.clone(), base64::engine::general_purpose::STANDARD.encode(digest)));
        }

        let when = crate::formats::ses::generalized_time_text(now);
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(r#"<ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016"><ofd:SignedInfo>"#);
        x.push_str(&format!(
            r#"<ofd:Provider ProviderName="seald" Version="{}" Company="seald"/>"#,
            env!("CARGO_PKG_VERSION")
        ));
        x.push_str(&format!("<ofd:SignatureMethod>{}</ofd:SignatureMethod>", crate::formats::oid::SM2_SM3));
        x.push_str(&format!("<ofd:SignatureDateTime>{when}</ofd:SignatureDateTime>"));
        x.push_str(&format!(r#"<ofd:References CheckMethod="{}">"#, crate::formats::oid::SM3));
        for (file, value) in &references {
            x.push_str(&format!(
                r#"<ofd:Reference FileRef="/{file}"><ofd:CheckValue>{value}</ofd:CheckValue></ofd:Reference>"#
            ));
        }
        x.push_str("</ofd:References>");
        let mut stamped_pages = Vec::new();
        for (n, (page, boundary, clip)) in stamps.into_iter().enumerate() {
            let id = self.max_id + 2 + n as u64;
            let clip = clip.map(|c| format!(r#" Clip="{c}""#)).unwrap_or_default();
            x.push_str(&format!(r#"<ofd:StampAnnot ID="{id}" PageRef="{page}" Boundary="{boundary}"{clip}/>"#));
            stamped_pages.push(page);
        }
        x.push_str(&format!("<ofd:Seal><ofd:BaseLoc>/{seal_path}</ofd:BaseLoc></ofd:Seal>"));
        x.push_str("</ofd:SignedInfo>");
        x.push_str(&format!("<ofd:SignedValue>/{signed_value_path}</ofd:SignedValue></ofd:Signature>"));
        let signature_xml = x.into_bytes();
        added.push((signature_path.clone(), signature_xml.clone()));
        Ok(Prepared {
            pkg: self.pkg,
            replaced,
            added,
            signed_value_path,
            signature_xml,
            property_info: format!("/{signature_path}"),
            signature_id,
            stamped_pages,
        })
    }
}

impl Prepared<'_> {
    /// SM3 of the new `Signature.xml`: the `dataHash` to sign.
    pub fn data_hash(&self) -> [u8; 32] {
        crate::crypto::sm3(&self.signature_xml)
    }

    /// The sealed package: `signed_value` (the `SES_Signature` DER) as `SignedValue.dat`.
    pub fn finish(mut self, signed_value: &[u8]) -> Result<Vec<u8>, OfdError> {
        let room = self.pkg.size + self.added.iter().map(|(_, b)| b.len()).sum::<usize>() + signed_value.len() + 4096;
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(room)));
        let deflate = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let write = |out: &mut zip::ZipWriter<_>, name: &str, bytes: &[u8]| -> Result<(), OfdError> {
            out.start_file(name, deflate).map_err(err)?;
            out.write_all(bytes).map_err(err)
        };
        for i in 0..self.pkg.zip.len() {
            let raw = self.pkg.zip.by_index_raw(i).map_err(err)?;
            let name = raw.name().to_string();
            match self.replaced.get(&name) {
                Some(bytes) => {
                    drop(raw);
                    write(&mut out, &name, bytes)?;
                }
                None => out.raw_copy_file(raw).map_err(err)?,
            }
        }
        for (name, bytes) in &self.added {
            write(&mut out, name, bytes)?;
        }
        write(&mut out, &self.signed_value_path, signed_value)?;
        Ok(out.finish().map_err(err)?.into_inner())
    }
}
