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
    /// The list writes its ids as ofdrw does (`s` and digits).
    s_style: bool,
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
    /// The pages stamped (numbers from 1), one per `StampAnnot`.
    pub stamped_pages: Vec<u32>,
}

/// An ID's number: digits, or ofdrw's `s` and digits.
fn number(s: &str) -> Option<u64> {
    s.trim().trim_start_matches(['s', 'S']).parse().ok()
}

/// `s` as XML text or attribute value.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // (written as an escape: a lone double quote here would confuse the error-code scan)
            '\x22' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Where to edit an XML file, found by the XML reader (so that comments, CDATA and attribute values
/// are never taken for elements): byte offsets into the file.
#[derive(Debug, Default)]
struct Landmarks {
    /// The root element's prefix, with its colon (`ofd:`), or empty.
    prefix: String,
    /// The end of the root's start tag.
    root_open_end: usize,
    /// The start of the root's end tag; `None` for a root written `<x/>`.
    root_close: Option<usize>,
    /// A root written `<x/>`: where that tag is.
    root_empty: Option<std::ops::Range<usize>>,
    /// The first child of the root named as asked: the range of its start tag (or of the whole
    /// element when written `<x/>`), and the start of its end tag.
    child: Option<(std::ops::Range<usize>, Option<usize>)>,
}

fn landmarks(xml: &[u8], child: &str) -> Result<Landmarks, OfdError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut marks = Landmarks::default();
    let (mut depth, mut buf) = (0usize, Vec::new());
    let mut child_depth_open = false;
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event_into(&mut buf).map_err(|e| err(format!("XML: {e}")))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(e) | Event::Empty(e) if depth == 0 => {
                let name = e.name().as_ref().to_string();
                marks.prefix = name.rsplit_once(':').map(|(p, _)| format!("{p}:")).unwrap_or_default();
                marks.root_open_end = after;
                if after >= 2 && xml.get(after - 2..after) == Some(b"/>") {
                    marks.root_empty = Some(before..after);
                    return Ok(marks);
                }
                depth = 1;
            }
            Event::Start(e) => {
                if depth == 1 && marks.child.is_none() && e.local_name().as_ref() == child {
                    marks.child = Some((before..after, None));
                    child_depth_open = true;
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 && marks.child.is_none() && e.local_name().as_ref() == child => {
                marks.child = Some((before..after, None));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 && child_depth_open {
                    if let Some((_, close)) = marks.child.as_mut() {
                        *close = Some(before);
                    }
                    child_depth_open = false;
                }
                if depth == 0 {
                    marks.root_close = Some(before);
                    return Ok(marks);
                }
            }
            Event::DocType(_) => return Err(refused("ofd_xml_doctype", "XML with a DOCTYPE is not accepted in OFD")),
            Event::Eof => return Err(err("XML: the root element is not closed")),
            _ => {}
        }
        buf.clear();
    }
}

/// `xml` with each `(offset, text)` inserted (and each `(range, text)` replaced), from the last
/// offset to the first so that the others stay where they are.
fn edit(xml: &[u8], mut edits: Vec<(std::ops::Range<usize>, String)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = xml.to_vec();
    for (r, text) in edits {
        let _ = out.splice(r, text.into_bytes());
    }
    out
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
        let doc_root = pkg.resolve("OFD.xml", &doc_root.ok_or_else(|| err("OFD.xml names no DocRoot"))?)?;
        if lists.len() > 1 {
            return Err(refused("ofd_duplicate_entry", "OFD.xml names more than one Signatures.xml"));
        }
        let list = match lists.first() {
            Some(l) => {
                let path = pkg.resolve("OFD.xml", l)?;
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
        if let Some(p) = pages.iter().find(|p| p.id.is_empty() || !p.id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(err(format!("{doc_root}: page ID '{}' is not a number", p.id)));
        }
        let (mut max_id, mut s_style) = (0, false);
        if let Some((path, xml)) = &list {
            let path = path.clone();
            let mut signatures = Vec::new();
            walk(xml, &["MaxSignId", "Signature"], &limits, |e, _| {
                match e.name.as_str() {
                    "MaxSignId" => {
                        s_style |= e.text.trim().starts_with(['s', 'S']);
                        max_id = max_id.max(number(&e.text).unwrap_or(0));
                    }
                    _ => {
                        let id = e.attr("ID").unwrap_or_default();
                        s_style |= id.trim().starts_with(['s', 'S']);
                        max_id = max_id.max(number(id).unwrap_or(0));
                        signatures.push(e.attr("BaseLoc").unwrap_or_default().to_string());
                    }
                }
                Ok(())
            })?;
            // An earlier signature that protects the list forbids any further one.
            for base_loc in signatures {
                let base_loc = pkg.resolve(&path, &base_loc)?;
                let sig_xml = pkg.read(&base_loc)?;
                let file = super::signature_file(&mut pkg, &sig_xml)?;
                let mut protects = false;
                for (r, _) in &file.references {
                    protects |= pkg.resolve(&base_loc, r)? == path;
                }
                if protects {
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
        Ok(Unsealed { pkg, ofd_xml, doc_root, list, max_id, s_style, pages, default_size })
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
        let path = self.pkg.resolve(&self.doc_root, &self.pages[i].base_loc)?;
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
        if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
            return Err(err(format!("the seal's image has no usable size ({w} × {h} mm)")));
        }
        let off = |what: String| refused("ofd_position_off_page", what);
        // StampAnnot PageRef, Boundary, Clip; and the page numbers.
        let mut stamps: Vec<(String, String, Option<String>)> = Vec::new();
        let mut stamped_pages = Vec::new();
        if placement.riding {
            let n = self.pages.len();
            let slice = w / n as f64;
            for i in 0..n {
                let (pw, ph) = self.page_size(i)?;
                if !placement.y_mm.is_finite() || placement.y_mm < 0.0 || placement.y_mm + h > ph || slice > pw {
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
                stamped_pages.push(i as u32 + 1);
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
            stamped_pages.push(placement.page);
            stamps.push((self.pages[i].id.clone(), format!("{} {} {} {}", mm(x), mm(y), mm(w), mm(h)), None));
        }

        // Where the new files go.
        let doc_dir = self.doc_root.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        let signs = if doc_dir.is_empty() { "Signs".to_string() } else { format!("{doc_dir}/Signs") };
        let files = self.pkg.files();
        // Every folder that holds a file, to find the first free Sign_K.
        let mut folders = std::collections::HashSet::new();
        for f in &files {
            let mut rest = f.as_str();
            while let Some((dir, _)) = rest.rsplit_once('/') {
                if !folders.insert(dir) {
                    break;
                }
                rest = dir;
            }
        }
        let sign_dir =
            (0..).map(|k| format!("{signs}/Sign_{k}")).find(|d| !folders.contains(d.as_str())).unwrap_or_default();
        let seal_path = format!("{sign_dir}/Seal.esl");
        let signature_path = format!("{sign_dir}/Signature.xml");
        let signed_value_path = format!("{sign_dir}/SignedValue.dat");
        let too_many = || err("the signature ids are exhausted");
        let id = |n: u64| if self.s_style { format!("s{n:03}") } else { n.to_string() };
        let first = self.max_id.checked_add(1).ok_or_else(too_many)?;
        let max_id = first.checked_add(stamps.len() as u64).ok_or_else(too_many)?;
        let signature_id = id(first);

        // The signature list, extended or new; OFD.xml names a new one.
        let mut replaced = HashMap::new();
        let mut added = vec![(seal_path.clone(), seal.to_vec())];
        let entry = |p: &str| {
            format!(r#"<{p}Signature ID="{}" Type="Seal" BaseLoc="/{}"/>"#, esc(&signature_id), esc(&signature_path))
        };
        let list_path = match &self.list {
            Some((path, xml)) => {
                let m = landmarks(xml, "MaxSignId")?;
                let p = m.prefix.clone();
                let max = format!("<{p}MaxSignId>{}</{p}MaxSignId>", esc(&id(max_id)));
                let edits = match (&m.root_empty, m.root_close, &m.child) {
                    // <ofd:Signatures .../>: opened, filled, closed.
                    (Some(r), _, _) => {
                        let open = String::from_utf8_lossy(&xml[r.start..r.end - 2]).into_owned();
                        vec![(r.clone(), format!("{open}>{max}{}</{p}Signatures>", entry(&p)))]
                    }
                    (None, Some(close), child) => {
                        let mut e = vec![(close..close, entry(&p))];
                        match child {
                            // <MaxSignId>n</MaxSignId>: its text replaced.
                            Some((open, Some(end))) => e.push((open.end..*end, esc(&id(max_id)))),
                            // <MaxSignId/>: replaced whole.
                            Some((whole, None)) => e.push((whole.clone(), max)),
                            None => e.push((m.root_open_end..m.root_open_end, max)),
                        }
                        e
                    }
                    (None, None, _) => return Err(err(format!("{path}: the root element is not closed"))),
                };
                let _ = replaced.insert(path.clone(), edit(xml, edits));
                path.clone()
            }
            None => {
                let path = format!("{signs}/Signatures.xml");
                if files.contains(&path) {
                    return Err(err(format!("{path} exists but OFD.xml does not name it")));
                }
                let list = format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>{}<ofd:Signatures xmlns:ofd="http://www.ofdspec.org/2016"><ofd:MaxSignId>{}</ofd:MaxSignId>{}</ofd:Signatures>"#,
                    "\n",
                    esc(&id(max_id)),
                    entry("ofd:")
                );
                added.push((path.clone(), list.into_bytes()));
                let m = landmarks(&self.ofd_xml, "DocBody")?;
                let Some((open, Some(close))) = m.child else {
                    return Err(err("OFD.xml: no DocBody element with content"));
                };
                let tag = String::from_utf8_lossy(&self.ofd_xml[open.start + 1..open.end]).into_owned();
                let name = tag.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or_default();
                let p = name.rsplit_once(':').map(|(p, _)| format!("{p}:")).unwrap_or_default();
                let text = format!("<{p}Signatures>{}</{p}Signatures>", esc(&path));
                let _ = replaced.insert("OFD.xml".to_string(), edit(&self.ofd_xml, vec![(close..close, text)]));
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
                r#"<ofd:Reference FileRef="/{}"><ofd:CheckValue>{value}</ofd:CheckValue></ofd:Reference>"#,
                esc(file)
            ));
        }
        x.push_str("</ofd:References>");
        // Page IDs are digits (checked on opening), boundaries numbers: only paths need escaping.
        for (n, (page, boundary, clip)) in stamps.into_iter().enumerate() {
            let annot = id(first + 1 + n as u64);
            let clip = clip.map(|c| format!(r#" Clip="{c}""#)).unwrap_or_default();
            x.push_str(&format!(r#"<ofd:StampAnnot ID="{annot}" PageRef="{page}" Boundary="{boundary}"{clip}/>"#));
        }
        x.push_str(&format!("<ofd:Seal><ofd:BaseLoc>/{}</ofd:BaseLoc></ofd:Seal>", esc(&seal_path)));
        x.push_str("</ofd:SignedInfo>");
        x.push_str(&format!("<ofd:SignedValue>/{}</ofd:SignedValue></ofd:Signature>", esc(&signed_value_path)));
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
        // XML is deflated; the DER files (Seal.esl with its picture, SignedValue.dat) are stored, as
        // deflating them gains nothing and costs a compressor's tables each.
        let write = |out: &mut zip::ZipWriter<_>, name: &str, bytes: &[u8]| -> Result<(), OfdError> {
            let method =
                if name.ends_with(".xml") { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
            out.start_file(name, zip::write::SimpleFileOptions::default().compression_method(method)).map_err(err)?;
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

/// A page drawn roughly, to place a seal on: its size, where its text and its other objects are.
/// Only the page's own content is read (not its templates, fonts or images), within the package's
/// limits and at most [`PREVIEW_OBJECTS`] objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PagePreview {
    /// The page's width and height, mm.
    pub size_mm: (f64, f64),
    /// Text runs: left, baseline, font size (mm) and the text.
    pub texts: Vec<(f64, f64, f64, String)>,
    /// Images and paths: their boundaries (left, top, width, height; mm).
    pub boxes: Vec<(f64, f64, f64, f64)>,
}

/// The most objects a preview draws.
pub const PREVIEW_OBJECTS: usize = 5_000;

fn four(s: &str) -> Option<(f64, f64, f64, f64)> {
    let v: Vec<f64> = s.split_whitespace().map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match v.as_slice() {
        [x, y, w, h] if v.iter().all(|n| n.is_finite()) => Some((*x, *y, *w, *h)),
        _ => None,
    }
}

impl Unsealed<'_> {
    /// The preview of page `page` (from 1).
    pub fn preview(&mut self, page: u32) -> Result<PagePreview, OfdError> {
        let placement = Placement { page, x_mm: 0.0, y_mm: 0.0, riding: false, final_seal: false };
        self.check_page(&placement)?;
        let i = page as usize - 1;
        let size_mm = self.page_size(i)?;
        let path = self.pkg.resolve(&self.doc_root, &self.pages[i].base_loc)?;
        let content = self.pkg.read(&path)?;
        let limits = self.pkg.limits;
        let mut out = PagePreview { size_mm, ..Default::default() };
        // A TextCode closes before its TextObject: its runs wait for the object's boundary.
        let mut runs: Vec<(f64, f64, String)> = Vec::new();
        let mut objects = 0usize;
        walk(&content, &["TextObject", "TextCode", "ImageObject", "PathObject"], &limits, |e, _| {
            match e.name.as_str() {
                "TextCode" => {
                    let at = |k: &str| e.attr(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
                    runs.push((at("X").unwrap_or(0.0), at("Y").unwrap_or(0.0), e.text.clone()));
                }
                "TextObject" => {
                    let (x, y, _, _) = e.attr("Boundary").and_then(four).unwrap_or((0.0, 0.0, 0.0, 0.0));
                    let size =
                        e.attr("Size").and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v > 0.0);
                    for (dx, dy, text) in runs.drain(..) {
                        if objects < PREVIEW_OBJECTS && !text.is_empty() {
                            objects += 1;
                            out.texts.push((x + dx, y + dy, size.unwrap_or(3.5), text));
                        }
                    }
                }
                _ => {
                    if let Some(b) = e.attr("Boundary").and_then(four) {
                        if objects < PREVIEW_OBJECTS {
                            objects += 1;
                            out.boxes.push(b);
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}
