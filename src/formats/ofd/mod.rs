//! Signatures inside an OFD package (GB/T 33190; STANDARDS.md §1.5): `OFD.xml` names
//! `Signatures.xml`, whose entries point to a `Signature.xml` each. For every signature this checks
//! each `Reference`'s `CheckValue` (SM3 of the package entry, `CheckMethod` spelled `sm3`, `SM3` or
//! `1.2.156.10197.1.401`), then for `Type="Seal"` runs the GB/T 38540 §7.3 procedure on the
//! `SES_Signature` with the bytes of `Signature.xml` as the protected data.
//!
//! `Type="Sign"` entries hold a GM/T 0010 SignedData over `Signature.xml`, verified by `cms`; a bare
//! signature without a certificate is reported, not judged.
//!
//! A package is hostile input: what reading it may cost is bounded by [`Limits`], whatever its
//! headers declare. Each entry is inflated at most once (its bytes or its digest are kept), every
//! byte inflated counts against the limits as it comes out of the decompressor, and a limit that is
//! reached ends the verification with an error naming it. This module does not repair packages.

mod stamp;

pub use stamp::{PagePreview, Placement, Prepared, Unsealed, PREVIEW_OBJECTS};

use super::ses::{self, Report, Step, VerifyOptions};
use base64::Engine as _;
use sm3::Digest as _;
use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::rc::Rc;

/// What reading one OFD package may cost at most. Every count and size is of what is actually
/// found or inflated, never of what a header declares (declared entry counts are refused early when
/// they are already too many). Also for the writers of packages, which read what they seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the ZIP central directory (the counts its end records declare, summed over every
    /// end record the ZIP reader could settle on, and the entries it finds).
    pub max_entries: u64,
    /// Bytes one entry may inflate to.
    pub max_entry_bytes: u64,
    /// Bytes all entries together may inflate to, over the package (each entry is inflated once).
    pub max_total_inflated: u64,
    /// `Reference` elements over all the package's signatures (each checked against a cached digest).
    pub max_references: u64,
    /// `Signature` entries over all the package's `Signatures.xml` files.
    pub max_signatures: u64,
    /// Bytes handed to the XML, SES and CMS parsers over the package, counting a file parsed twice
    /// (say, one `SignedValue.dat` named by many signatures) twice.
    pub max_parsed_bytes: u64,
    /// Nesting depth of the elements of one XML file.
    pub max_xml_depth: u64,
}

impl Limits {
    /// The defaults: 10,000 entries, 64 MiB per entry, 256 MiB inflated in all, 100,000 references,
    /// 1,000 signatures, 256 MiB parsed, XML 256 elements deep.
    pub const DEFAULT: Limits = Limits {
        max_entries: 10_000,
        max_entry_bytes: 64 << 20,
        max_total_inflated: 256 << 20,
        max_references: 100_000,
        max_signatures: 1_000,
        max_parsed_bytes: 256 << 20,
        max_xml_depth: 256,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

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
    /// Each file its `References` name: the SM3 found, and whether it is the `CheckValue`.
    pub references: Vec<ReferenceCheck>,
    /// It protects the signature list too (`Signatures.xml` is among its references): no signature
    /// may follow it.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The verdict (as for a single SES_Signature).
    #[serde(flatten)]
    pub report: Report,
}

/// One `Reference` of a signature, checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ReferenceCheck {
    /// The file, as resolved in the package.
    pub file: String,
    /// SM3 of the file as found, hex; absent when the package has no such file.
    pub sm3: Option<String>,
    /// Its `CheckValue` is that SM3.
    pub ok: bool,
}

/// Every signature of a package, and what the package holds beside them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfdReport {
    /// Each signature the package's `Signatures.xml` files list, in their order.
    pub signatures: Vec<OfdSignature>,
    /// `Signature.xml` files in the package that no `Signatures.xml` lists.
    pub unlisted_signatures: Vec<String>,
    /// Files that a "final" signature (one that protects `Signatures.xml`) does not cover: added
    /// after it.
    pub added_after_final: Vec<String>,
}

impl OfdReport {
    /// It has signatures, every one is valid, and the package holds nothing beside them that they
    /// leave open.
    pub fn valid(&self) -> bool {
        !self.signatures.is_empty()
            && self.signatures.iter().all(|s| s.report.valid)
            && self.unlisted_signatures.is_empty()
            && self.added_after_final.is_empty()
    }
}

/// The package cannot be read as an OFD, or reading it would cost more than its limits allow.
#[derive(Debug, thiserror::Error)]
pub enum OfdError {
    /// Not a readable OFD package.
    #[error("OFD: {0}")]
    Unreadable(String),
    /// A limit of [`Limits`] was reached: `limit` is its field name, `max` its value.
    #[error("OFD: {what} (limit {limit} = {max})")]
    Limit {
        /// What was found.
        what: String,
        /// The field of [`Limits`].
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// The package is readable but refused: `code` is stable (see [`OfdError::code`]).
    #[error("OFD: {message}")]
    Refused {
        /// `ofd_unsafe_path`, `ofd_duplicate_entry`, `ofd_ambiguous_path`, `ofd_xml_doctype`,
        /// `ofd_page_not_found`, `ofd_position_off_page`, `ofd_signatures_protected`.
        code: &'static str,
        /// What was found.
        message: String,
    },
}

impl OfdError {
    /// The stable API code: `ofd_unreadable`, `ofd_limit`, or the code of a refusal.
    pub fn code(&self) -> &'static str {
        match self {
            OfdError::Unreadable(_) => "ofd_unreadable",
            OfdError::Limit { .. } => "ofd_limit",
            OfdError::Refused { code, .. } => code,
        }
    }
}

pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> OfdError {
    OfdError::Refused { code, message: message.into() }
}

pub(crate) fn err(m: impl std::fmt::Display) -> OfdError {
    OfdError::Unreadable(m.to_string())
}

fn over(limit: &'static str, max: u64, what: impl Into<String>) -> OfdError {
    OfdError::Limit { what: what.into(), limit, max }
}

fn le(bytes: &[u8], at: usize, n: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(n)?)?;
    Some(b.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

/// The most entries the ZIP reader may be told to expect, before it reads any: the sum, over every
/// end-of-central-directory record it could settle on (one whose central directory offset points at
/// a central file header, as the reader checks with the archive at offset 0), of the count the
/// record declares, or that its ZIP64 record declares. The reader reserves room for a declared count
/// and tries the records one after another, so this sum bounds its memory and its work.
fn declared_entries(bytes: &[u8]) -> u64 {
    const CDFH: &[u8] = b"PK\x01\x02";
    const LOCATOR: &[u8] = b"PK\x06\x07";
    const EOCD64: &[u8] = b"PK\x06\x06";
    let at = |pos: u64, magic: &[u8]| {
        usize::try_from(pos).ok().and_then(|p| bytes.get(p..p.checked_add(4)?)).is_some_and(|b| b == magic)
    };
    let mut total = 0u64;
    for p in end_records(bytes) {
        let count16 = le(bytes, p + 8, 2).unwrap_or(0).max(le(bytes, p + 10, 2).unwrap_or(0));
        let cd_offset = le(bytes, p + 16, 4).unwrap_or(u64::MAX);
        let count64 = p
            .checked_sub(20)
            .filter(|&l| bytes[l..].starts_with(LOCATOR))
            .and_then(|l| le(bytes, l + 8, 8))
            .filter(|&e| at(e, EOCD64))
            .and_then(|e| le(bytes, usize::try_from(e).ok()? + 32, 8));
        let viable = count64.is_some() || (count16 > 0 && cd_offset < p as u64 && at(cd_offset, CDFH));
        if viable {
            total = total.saturating_add(count16.max(count64.unwrap_or(0)));
        }
    }
    total
}

/// Where end-of-central-directory records may start: every `PK\x05\x06` with room for a record
/// after it (found with `memchr`'s vectorised search: a package is scanned at memory speed).
fn end_records(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memchr::memmem::find_iter(bytes, b"PK\x05\x06").filter(move |&p| p + 22 <= bytes.len())
}

/// The entry count the last end-of-central-directory record declares (its ZIP64 record's when it
/// has one): the record the ZIP reader uses.
fn last_declared_entries(bytes: &[u8]) -> Option<u64> {
    let p = end_records(bytes).last()?;
    let count = le(bytes, p + 10, 2)?;
    if count != 0xffff {
        return Some(count);
    }
    let l = p.checked_sub(20).filter(|&l| bytes[l..].starts_with(b"PK\x06\x07"))?;
    let e = usize::try_from(le(bytes, l + 8, 8)?).ok()?;
    le(bytes, e.checked_add(32)?, 8)
}

/// An OFD package opened within its limits. Entries are found by name in the central directory and
/// inflated at most once: the bytes of those parsed, the SM3 digests of those referenced.
struct Package<'a> {
    zip: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    /// The package's size in bytes.
    size: usize,
    limits: Limits,
    inflated: u64,
    parsed: u64,
    references: u64,
    signatures: u64,
    bytes: HashMap<usize, Rc<[u8]>>,
    digests: HashMap<usize, Option<[u8; 32]>>,
}

impl<'a> Package<'a> {
    fn open(bytes: &'a [u8], limits: Limits) -> Result<Self, OfdError> {
        let max = limits.max_entries;
        let declared = declared_entries(bytes);
        if declared > max {
            return Err(over("max_entries", max, format!("the ZIP end records declare {declared} entries")));
        }
        // The archive starts at offset 0, as every OFD does: the reader then checks each header where
        // its offset says, rather than searching the package for one.
        let config = zip::read::Config { archive_offset: zip::read::ArchiveOffset::Known(0) };
        let zip = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes)).map_err(err)?;
        if zip.len() as u64 > max {
            return Err(over("max_entries", max, format!("the package holds {} entries", zip.len())));
        }
        // Every name is a path inside the package, once. The reader keeps the last of entries that
        // share a name: the central directory's own count tells.
        if last_declared_entries(bytes).is_some_and(|n| n > zip.len() as u64) {
            return Err(refused("ofd_duplicate_entry", "two entries of the package have the same name"));
        }
        let mut names = HashSet::new();
        for name in zip.file_names() {
            let unsafe_path = name.starts_with('/')
                || name.contains('\\')
                || name.chars().any(char::is_control)
                || name.trim_end_matches('/').split('/').any(|seg| seg.is_empty() || seg == ".." || seg == ".");
            if unsafe_path {
                return Err(refused(
                    "ofd_unsafe_path",
                    format!("entry '{name}' is not a plain path inside the package"),
                ));
            }
            if !names.insert(name.trim_end_matches('/').to_ascii_lowercase()) {
                return Err(refused("ofd_duplicate_entry", format!("entry '{name}' appears more than once")));
            }
        }
        // Readers that walk the local headers must see the names the central directory gives.
        let mut zip = zip;
        for i in 0..zip.len() {
            let entry = zip.by_index_raw(i).map_err(err)?;
            let at = usize::try_from(entry.header_start()).unwrap_or(usize::MAX);
            let local = le(bytes, at.saturating_add(26), 2)
                .and_then(|n| bytes.get(at.checked_add(30)?..at.checked_add(30 + n as usize)?));
            if local != Some(entry.name_raw()) {
                return Err(refused(
                    "ofd_duplicate_entry",
                    format!("entry '{}': its local header names another file", entry.name()),
                ));
            }
        }
        Ok(Package {
            zip,
            size: bytes.len(),
            limits,
            inflated: 0,
            parsed: 0,
            references: 0,
            signatures: 0,
            bytes: HashMap::new(),
            digests: HashMap::new(),
        })
    }

    fn index(&self, path: &str) -> Result<usize, OfdError> {
        let name = path.trim_start_matches('/');
        self.zip.index_for_name(name).ok_or_else(|| err(format!("{name}: file not found in the package")))
    }

    /// Inflates entry `index` into `sink`, counting every byte against the limits as it comes.
    fn inflate(&mut self, index: usize, sink: &mut dyn FnMut(&[u8])) -> Result<(), OfdError> {
        let Limits { max_entry_bytes, max_total_inflated, .. } = self.limits;
        let mut file = self.zip.by_index(index).map_err(err)?;
        let name = file.name().to_string();
        // Whatever the headers say, no more than one byte past the limit is ever asked for.
        let mut limited = (&mut file).take(max_entry_bytes.saturating_add(1));
        let mut buf = vec![0u8; 64 << 10];
        let mut entry = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(format!("{name}: {e}"))),
            };
            entry += n as u64;
            self.inflated += n as u64;
            if entry > max_entry_bytes {
                return Err(over(
                    "max_entry_bytes",
                    max_entry_bytes,
                    format!("entry '{name}' inflates to more than {max_entry_bytes} bytes"),
                ));
            }
            if self.inflated > max_total_inflated {
                return Err(over(
                    "max_total_inflated",
                    max_total_inflated,
                    format!("the entries inflate to more than {max_total_inflated} bytes in all (at '{name}')"),
                ));
            }
            sink(&buf[..n]);
        }
    }

    /// The bytes of the entry at `path`, to be parsed.
    fn read(&mut self, path: &str) -> Result<Rc<[u8]>, OfdError> {
        let index = self.index(path)?;
        let bytes = match self.bytes.get(&index) {
            Some(b) => b.clone(),
            None => {
                let mut out = Vec::new();
                self.inflate(index, &mut |chunk| out.extend_from_slice(chunk))?;
                let b: Rc<[u8]> = out.into();
                let _ = self.bytes.insert(index, b.clone());
                b
            }
        };
        let max = self.limits.max_parsed_bytes;
        self.parsed = self.parsed.saturating_add(bytes.len() as u64);
        if self.parsed > max {
            return Err(over("max_parsed_bytes", max, format!("more than {max} bytes are parsed (at '{path}')")));
        }
        Ok(bytes)
    }

    /// SM3 of the entry at `path`; `None` when there is no such entry or it cannot be inflated.
    fn sm3(&mut self, path: &str) -> Result<Option<[u8; 32]>, OfdError> {
        let Ok(index) = self.index(path) else { return Ok(None) };
        if let Some(d) = self.digests.get(&index) {
            return Ok(*d);
        }
        let digest = match self.bytes.get(&index) {
            Some(b) => Some(crate::crypto::sm3(b)),
            None => {
                let mut h = sm3::Sm3::new();
                match self.inflate(index, &mut |chunk| h.update(chunk)) {
                    Ok(()) => Some(h.finalize().into()),
                    Err(e @ OfdError::Limit { .. }) => return Err(e),
                    Err(OfdError::Unreadable(_) | OfdError::Refused { .. }) => None,
                }
            }
        };
        let _ = self.digests.insert(index, digest);
        Ok(digest)
    }

    /// `path` as seen from the file `from`: absolute paths from the package root; others relative to
    /// `from`'s folder, as GB/T 33190 says, or, when no file is there, to the root (what some
    /// producers mean). A relative path that names a file in both places is refused: two readers
    /// could read two different files.
    fn resolve(&self, from: &str, path: &str) -> Result<String, OfdError> {
        let path = path.trim();
        if path.starts_with('/') {
            return Ok(path.trim_start_matches('/').to_string());
        }
        let dir = from.trim_start_matches('/').rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        if dir.is_empty() {
            return Ok(path.to_string());
        }
        let joined = format!("{dir}/{path}");
        match (self.zip.index_for_name(&joined).is_some(), self.zip.index_for_name(path).is_some()) {
            (true, true) => Err(refused(
                "ofd_ambiguous_path",
                format!("'{path}' in {from} names both {joined} and the root's {path}"),
            )),
            (true, false) => Ok(joined),
            (false, _) => Ok(path.to_string()),
        }
    }

    /// Every file of the package (directories left out), in the central directory's order.
    fn files(&self) -> Vec<String> {
        self.zip.file_names().filter(|n| !n.ends_with('/')).map(str::to_string).collect()
    }

    fn count_signature(&mut self) -> Result<(), OfdError> {
        let max = self.limits.max_signatures;
        self.signatures += 1;
        if self.signatures > max {
            return Err(over("max_signatures", max, format!("the package lists more than {max} signatures")));
        }
        Ok(())
    }

    fn count_reference(&mut self) -> Result<(), OfdError> {
        let max = self.limits.max_references;
        self.references += 1;
        if self.references > max {
            return Err(over("max_references", max, format!("the signatures hold more than {max} references")));
        }
        Ok(())
    }
}

/// An element of interest in an XML file: its local name, attributes and direct text.
#[derive(Debug, Default)]
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

/// Walks an XML document (namespaces dropped) and hands each element named in `keep` to `visit` when
/// it closes, with the local name of its parent. Elements nest at most `max_xml_depth` deep; quick-xml
/// expands no entity declared in a DTD, so the work is linear in the size of the document.
fn walk(
    xml: &[u8],
    keep: &[&str],
    limits: &Limits,
    mut visit: impl FnMut(Element, Option<&str>) -> Result<(), OfdError>,
) -> Result<(), OfdError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    // The open elements: each one's name, and the element itself when it is kept.
    let mut open: Vec<(String, Option<Element>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|e| err(format!("XML: {e}")))?;
        let is_empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if open.len() as u64 >= limits.max_xml_depth {
                    let max = limits.max_xml_depth;
                    return Err(over("max_xml_depth", max, format!("XML elements nest more than {max} deep")));
                }
                let kept = keep.contains(&name.as_str()).then(|| {
                    let attrs = e
                        .attributes()
                        .flatten()
                        .map(|a| {
                            let k = a.key.local_name().as_ref().to_string();
                            let v = a
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map(|v| v.into_owned())
                                .unwrap_or_default();
                            (k, v)
                        })
                        .collect();
                    Element { name: name.clone(), attrs, text: String::new() }
                });
                if is_empty {
                    if let Some(el) = kept {
                        visit(el, open.last().map(|(n, _)| n.as_str()))?;
                    }
                } else {
                    open.push((name, kept));
                }
            }
            Event::Text(t) => {
                if let Some((_, Some(el))) = open.last_mut() {
                    el.text.push_str(t.xml10_content().trim());
                }
            }
            // `&#46;`, `&amp;` and the like inside text: read as every XML reader reads them.
            Event::GeneralRef(r) => {
                if let Some((_, Some(el))) = open.last_mut() {
                    let name = r.borrow().into_inner().into_owned();
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => quick_xml::escape::resolve_predefined_entity(&name)
                            .map(str::to_string)
                            .ok_or_else(|| err(format!("XML: unknown entity &{name};")))?,
                    };
                    el.text.push_str(&c);
                }
            }
            Event::CData(t) => {
                if let Some((_, Some(el))) = open.last_mut() {
                    el.text.push_str(t.trim());
                }
            }
            Event::End(_) => {
                if let Some((_, Some(el))) = open.pop() {
                    visit(el, open.last().map(|(n, _)| n.as_str()))?;
                }
            }
            Event::DocType(_) => {
                return Err(refused("ofd_xml_doctype", "XML with a DOCTYPE (a DTD, entities) is not accepted in OFD"));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

/// The signature lists `OFD.xml` names (its `Signatures` elements).
fn signature_lists(xml: &[u8], limits: &Limits) -> Result<Vec<String>, OfdError> {
    let mut out = Vec::new();
    walk(xml, &["Signatures"], limits, |e, _| {
        if !e.text.is_empty() {
            out.push(e.text);
        }
        Ok(())
    })?;
    Ok(out)
}

/// One `Signature` entry of a `Signatures.xml`.
struct Listed {
    id: String,
    kind: String,
    base_loc: String,
}

fn listed_signatures(pkg: &mut Package<'_>, xml: &[u8]) -> Result<Vec<Listed>, OfdError> {
    let mut out = Vec::new();
    let limits = pkg.limits;
    walk(xml, &["Signature"], &limits, |e, _| {
        pkg.count_signature()?;
        out.push(Listed {
            id: e.attr("ID").unwrap_or_default().to_string(),
            kind: e.attr("Type").unwrap_or("Seal").to_string(),
            base_loc: e.attr("BaseLoc").unwrap_or_default().to_string(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// What a `Signature.xml` says: its `CheckMethod`, its `Reference`s (FileRef, CheckValue) and
/// where its `SignedValue` is.
#[derive(Default)]
struct SignatureFile {
    method: String,
    references: Vec<(String, String)>,
    signed_value: String,
}

fn signature_file(pkg: &mut Package<'_>, xml: &[u8]) -> Result<SignatureFile, OfdError> {
    let mut file = SignatureFile::default();
    let (mut method, mut signed_value) = (None, None);
    let mut check_value = None;
    let limits = pkg.limits;
    walk(xml, &["References", "Reference", "CheckValue", "SignedValue"], &limits, |e, parent| {
        match e.name.as_str() {
            "References" => {
                let _ = method.get_or_insert_with(|| e.attr("CheckMethod").unwrap_or_default().to_string());
            }
            "CheckValue" if parent == Some("Reference") => check_value = Some(e.text),
            "Reference" => {
                pkg.count_reference()?;
                let value = check_value.take().unwrap_or_default();
                file.references.push((e.attr("FileRef").unwrap_or_default().to_string(), value));
            }
            "SignedValue" => {
                let _ = signed_value.get_or_insert(e.text);
            }
            _ => {}
        }
        Ok(())
    })?;
    file.method = method.unwrap_or_default();
    file.signed_value = signed_value.unwrap_or_default();
    Ok(file)
}

fn sm3_method(m: &str) -> bool {
    m.trim().eq_ignore_ascii_case("sm3") || m.trim() == super::oid::SM3
}

/// Verifies every signature of an OFD package, within the default [`Limits`].
pub fn verify(bytes: &[u8], opts: &VerifyOptions<'_>) -> Result<OfdReport, OfdError> {
    verify_within(bytes, opts, &Limits::DEFAULT)
}

/// Verifies every signature of an OFD package; reading it costs no more than `limits` allow, and
/// a limit reached ends the verification with [`OfdError::Limit`].
pub fn verify_within(bytes: &[u8], opts: &VerifyOptions<'_>, limits: &Limits) -> Result<OfdReport, OfdError> {
    let mut pkg = Package::open(bytes, *limits)?;
    let ofd = pkg.read("OFD.xml")?;
    let mut lists_seen = HashSet::new();
    let mut signatures = Vec::new();
    // Per signature: the files it covers, and its own two.
    let mut covered: Vec<(bool, HashSet<String>)> = Vec::new();
    for list in signature_lists(&ofd, limits)? {
        let list_path = pkg.resolve("OFD.xml", &list)?;
        if !lists_seen.insert(list_path.clone()) {
            continue;
        }
        let list_xml = pkg.read(&list_path)?;
        for entry in listed_signatures(&mut pkg, &list_xml)? {
            let base_loc = pkg.resolve(&list_path, &entry.base_loc)?;
            let (mut report, references, own) = match verify_one(&mut pkg, &base_loc, &entry.kind, opts) {
                Ok(v) => v,
                Err(e @ (OfdError::Limit { .. } | OfdError::Refused { .. })) => return Err(e),
                Err(e) => (ses::unreadable(&ses::SesError(e.to_string())), Vec::new(), Vec::new()),
            };
            if !entry.base_loc.trim().starts_with('/') {
                report.warnings.push(format!(
                    "BaseLoc '{}' in {list_path} is relative; resolved from its folder [relative_path]",
                    entry.base_loc.trim()
                ));
            }
            let is_final = references.iter().any(|r| r.file == list_path);
            let mut files: HashSet<String> = references.iter().map(|r| r.file.clone()).collect();
            let _ = files.insert(base_loc.clone());
            files.extend(own);
            covered.push((is_final, files));
            signatures.push(OfdSignature { id: entry.id, kind: entry.kind, base_loc, references, is_final, report });
        }
    }
    let files: Vec<String> = pkg.files();
    // The document's own files (not signatures, seals or lists) a signature leaves out: named, as
    // a reader may want to know what the signature does not vouch for.
    let signing_file = |f: &str| {
        let base = f.rsplit('/').next().unwrap_or(f);
        ["Signature.xml", "SignedValue.dat", "SignValue.dat", "Seal.esl", "Signatures.xml"]
            .iter()
            .any(|n| base.eq_ignore_ascii_case(n))
    };
    for (sig, (_, c)) in signatures.iter_mut().zip(&covered) {
        let open: Vec<&String> = files.iter().filter(|f| !signing_file(f) && !c.contains(*f)).collect();
        if let Some(first) = open.first() {
            sig.report.warnings.push(format!(
                "{} file(s) of the document are not among its references (first: {first}) [partial_coverage]",
                open.len()
            ));
        }
    }
    let listed: HashSet<&str> = signatures.iter().map(|s| s.base_loc.as_str()).collect();
    let unlisted_signatures = files
        .iter()
        .filter(|f| f.rsplit('/').next().is_some_and(|n| n.eq_ignore_ascii_case("Signature.xml")))
        .filter(|f| !listed.contains(f.as_str()))
        .cloned()
        .collect();
    let added_after_final =
        files.iter().filter(|f| covered.iter().any(|(is_final, c)| *is_final && !c.contains(*f))).cloned().collect();
    Ok(OfdReport { signatures, unlisted_signatures, added_after_final })
}

/// One signature: its report, its references checked, and its own files (the signed value).
fn verify_one(
    pkg: &mut Package<'_>,
    base_loc: &str,
    kind: &str,
    opts: &VerifyOptions<'_>,
) -> Result<(Report, Vec<ReferenceCheck>, Vec<String>), OfdError> {
    let xml = pkg.read(base_loc)?;
    let file = signature_file(pkg, &xml)?;
    let method = file.method;
    if !method.is_empty() && !sm3_method(&method) {
        return Err(err(format!("CheckMethod '{method}' is not SM3")));
    }
    let mut references = Vec::with_capacity(file.references.len());
    for (file_ref, value) in &file.references {
        let path = pkg.resolve(base_loc, file_ref)?;
        let digest = pkg.sm3(&path)?;
        let ok = digest.is_some_and(|digest| {
            base64::engine::general_purpose::STANDARD.decode(value.trim()).is_ok_and(|v| v == digest)
        });
        references.push(ReferenceCheck { file: path, sm3: digest.map(hex::encode), ok });
    }
    let mut tolerated = Vec::new();
    if !method.is_empty() && method.trim() != super::oid::SM3 {
        tolerated.push(format!(
            "references: CheckMethod '{}' names SM3 instead of its OID {} [check_method_name]",
            method.trim(),
            super::oid::SM3
        ));
    }
    let relative: Vec<&str> = file
        .references
        .iter()
        .map(|(f, _)| f.as_str())
        .chain(std::iter::once(file.signed_value.as_str()))
        .filter(|f| !f.trim().starts_with('/'))
        .collect();
    if let Some(first) = relative.first() {
        tolerated.push(format!(
            "{} path(s) in Signature.xml are relative (first: '{}'); resolved from its folder, else from the package root [relative_path]",
            relative.len(),
            first.trim()
        ));
    }
    let value_path = pkg.resolve(base_loc, &file.signed_value)?;
    let value = pkg.read(&value_path)?;
    let mut report = if kind == "Seal" {
        match ses::SesSignature::parse(&value) {
            Ok(sig) => {
                // The registry is asked inside, at the time the signature is judged at (its
                // time-stamp's, else its timeInfo).
                let o = VerifyOptions {
                    trust: opts.trust,
                    have_crls: opts.have_crls,
                    require_trust: opts.require_trust,
                    at: opts.at,
                    document_sm3: Some(crate::crypto::sm3(&xml)),
                    registry_state: opts.registry_state.clone(),
                    registry: opts.registry,
                };
                let mut r = ses::verify_signature(&sig, &o);
                if let Some(s) = r.steps.iter_mut().find(|s| s.step == "data_hash") {
                    s.detail = s.detail.replace("of the document", &format!("of {base_loc}"));
                }
                r
            }
            // Unreadable, but its references are still reported below.
            Err(e) => ses::unreadable(&e),
        }
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
    // The references protect the document itself: the first step after the format.
    let mismatched: Vec<&str> = references.iter().filter(|r| !r.ok).map(|r| r.file.as_str()).collect();
    let detail = match mismatched.len() {
        0 => format!("all {} Reference CheckValues match (SM3 of each file)", references.len()),
        n if n > 20 => format!("CheckValue mismatch: {} and {} more", mismatched[..20].join(", "), n - 20),
        _ => format!("CheckValue mismatch: {}", mismatched.join(", ")),
    };
    report.warnings.extend(tolerated);
    if references.is_empty() {
        report.warnings.push("references: the signature protects no file of the package [no_references]".into());
    }
    let at = report.steps.iter().position(|s| s.step == "format").map_or(0, |i| i + 1);
    report.steps.insert(at, Step { step: "references", ok: Some(mismatched.is_empty()), detail });
    report.valid = report.valid && mismatched.is_empty();
    Ok((report, references, vec![value_path]))
}

#[cfg(test)]
mod tests {
    //! Hostile packages, built here: each is refused with an error naming the limit it reaches, and
    //! what reading it costs is bounded by the limits whatever its headers say.
    use super::*;
    use std::io::Write as _;

    const SIGN_DIR: &str = "Doc_0/Signs/Sign_0";

    /// A ZIP of `entries`, deflated or stored.
    fn zip_of(entries: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn b64_sm3(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(crate::crypto::sm3(data))
    }

    /// A `Signature.xml` with a `Reference` to each of `refs` (FileRef, CheckValue).
    fn signature_xml(refs: impl Iterator<Item = (String, String)>) -> Vec<u8> {
        let mut x = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016"><ofd:SignedInfo><ofd:References CheckMethod="1.2.156.10197.1.401">"#,
        );
        for (file, value) in refs {
            x.push_str(&format!(
                r#"<ofd:Reference FileRef="{file}"><ofd:CheckValue>{value}</ofd:CheckValue></ofd:Reference>"#
            ));
        }
        x.push_str(&format!(
            "</ofd:References></ofd:SignedInfo><ofd:SignedValue>/{SIGN_DIR}/SignedValue.dat</ofd:SignedValue></ofd:Signature>"
        ));
        x.into_bytes()
    }

    /// An OFD package whose `Signatures.xml` lists `signatures` entries, all pointing to one
    /// `Signature.xml` (given), with `extra` entries beside them.
    fn ofd(signature: Vec<u8>, signatures: usize, extra: Vec<(String, Vec<u8>)>, deflate: bool) -> Vec<u8> {
        let ofd_xml = r#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot><ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures></ofd:DocBody></ofd:OFD>"#;
        let mut list = String::from(r#"<ofd:Signatures xmlns:ofd="http://www.ofdspec.org/2016">"#);
        for i in 0..signatures {
            list.push_str(&format!(r#"<ofd:Signature ID="{i}" Type="Seal" BaseLoc="Sign_0/Signature.xml"/>"#));
        }
        list.push_str("</ofd:Signatures>");
        let mut entries = vec![
            ("OFD.xml".to_string(), ofd_xml.as_bytes().to_vec()),
            ("Doc_0/Signs/Signatures.xml".to_string(), list.into_bytes()),
            (format!("{SIGN_DIR}/Signature.xml"), signature),
            (format!("{SIGN_DIR}/SignedValue.dat"), b"not an SES_Signature".to_vec()),
        ];
        entries.extend(extra);
        zip_of(&entries, deflate)
    }

    fn limit_of(r: Result<OfdReport, OfdError>) -> (&'static str, String) {
        match r {
            Err(e @ OfdError::Limit { limit, .. }) => (limit, e.to_string()),
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    fn check_detail(report: &OfdReport) -> String {
        let s = report.signatures[0].report.steps.iter().find(|s| s.step == "references").expect("a references step");
        s.detail.clone()
    }

    #[test]
    fn a_well_formed_package_within_the_limits_is_read() {
        let page = b"<Page/>".to_vec();
        let sig = signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let pkg = ofd(sig, 1, vec![("Doc_0/Page.xml".into(), page)], true);
        let sigs = verify(&pkg, &VerifyOptions::default()).unwrap();
        assert_eq!(sigs.signatures.len(), 1);
        assert!(check_detail(&sigs).contains("all 1 Reference CheckValues match"), "{sigs:#?}");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_entry_limit() {
        // 65 MiB of zeros deflate to about 64 KiB: one more MiB than an entry may inflate to.
        let big = vec![0u8; (Limits::DEFAULT.max_entry_bytes + (1 << 20)) as usize];
        let sig = signature_xml([("/Doc_0/bomb.bin".to_string(), b64_sm3(&big))].into_iter());
        let pkg = ofd(sig, 1, vec![("Doc_0/bomb.bin".into(), big)], true);
        assert!(pkg.len() < 1 << 20, "the bomb is small: {} bytes", pkg.len());
        let (limit, msg) = limit_of(verify(&pkg, &VerifyOptions::default()));
        assert_eq!(limit, "max_entry_bytes", "{msg}");
        assert!(msg.contains("Doc_0/bomb.bin") && msg.contains("67108864"), "{msg}");
    }

    #[test]
    fn entries_that_each_fit_stop_at_the_total_limit() {
        let limits = Limits { max_entry_bytes: 1 << 20, max_total_inflated: 4 << 20, ..Limits::DEFAULT };
        let part = vec![7u8; 1 << 20];
        let names: Vec<String> = (0..8).map(|i| format!("Doc_0/part{i}.bin")).collect();
        let sig = signature_xml(names.iter().map(|n| (format!("/{n}"), b64_sm3(&part))));
        let pkg = ofd(sig, 1, names.iter().map(|n| (n.clone(), part.clone())).collect(), true);
        let (limit, msg) = limit_of(verify_within(&pkg, &VerifyOptions::default(), &limits));
        assert_eq!(limit, "max_total_inflated", "{msg}");
    }

    #[test]
    fn one_entry_referenced_forty_thousand_times_is_inflated_once() {
        // Re-inflating the 16 MiB entry for each reference would need 640 GB; the total limit here
        // leaves room for one inflation only, so the package is read only if the digest is reused.
        let limits = Limits { max_total_inflated: 24 << 20, ..Limits::DEFAULT };
        let big = vec![1u8; 16 << 20];
        let value = b64_sm3(&big);
        let sig = signature_xml((0..40_000).map(|_| ("/Doc_0/big.bin".to_string(), value.clone())));
        let pkg = ofd(sig, 1, vec![("Doc_0/big.bin".into(), big)], true);
        let sigs = verify_within(&pkg, &VerifyOptions::default(), &limits).unwrap();
        assert!(check_detail(&sigs).contains("all 40000 Reference CheckValues match"), "{sigs:#?}");
    }

    #[test]
    fn references_are_counted_over_the_package() {
        let limits = Limits { max_references: 1_000, ..Limits::DEFAULT };
        let page = b"<Page/>".to_vec();
        let value = b64_sm3(&page);
        // 600 references, listed by two signatures: 1,200 in the package.
        let sig = signature_xml((0..600).map(|_| ("/Doc_0/Page.xml".to_string(), value.clone())));
        let pkg = ofd(sig, 2, vec![("Doc_0/Page.xml".into(), page)], true);
        let (limit, msg) = limit_of(verify_within(&pkg, &VerifyOptions::default(), &limits));
        assert_eq!(limit, "max_references", "{msg}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let mut entries: Vec<(String, Vec<u8>)> =
            (0..Limits::DEFAULT.max_entries).map(|i| (format!("Doc_0/Res/r{i}"), Vec::new())).collect();
        entries.push(("OFD.xml".into(), b"<OFD/>".to_vec()));
        let (limit, msg) = limit_of(verify(&zip_of(&entries, false), &VerifyOptions::default()));
        assert_eq!(limit, "max_entries", "{msg}");
    }

    fn eocd(bytes: &[u8]) -> usize {
        bytes.windows(4).rposition(|w| w == b"PK\x05\x06").expect("an end record")
    }

    #[test]
    fn an_end_record_declaring_too_many_entries_is_refused_before_they_are_read() {
        let page = b"<Page/>".to_vec();
        let sig = signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let mut pkg = ofd(sig, 1, vec![("Doc_0/Page.xml".into(), page)], false);
        let at = eocd(&pkg);
        pkg[at + 8..at + 12].copy_from_slice(&[0x60, 0xea, 0x60, 0xea]); // 60,000 entries
        let (limit, msg) = limit_of(verify(&pkg, &VerifyOptions::default()));
        assert_eq!(limit, "max_entries", "{msg}");
        assert!(msg.contains("declare 60000 entries"), "{msg}");
    }

    #[test]
    fn end_records_repeated_to_make_the_reader_retry_count_together() {
        // Each copy of the end record is one more central directory the ZIP reader would try.
        let page = b"<Page/>".to_vec();
        let sig = signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let pkg = ofd(sig, 1, vec![("Doc_0/Page.xml".into(), page)], false);
        let end = pkg[eocd(&pkg)..].to_vec();
        let copies = Limits::DEFAULT.max_entries as usize / 5 + 1;
        let hostile = [&pkg[..], &end.repeat(copies)[..]].concat();
        let (limit, msg) = limit_of(verify(&hostile, &VerifyOptions::default()));
        assert_eq!(limit, "max_entries", "{msg}");
    }

    #[test]
    fn a_zip64_end_record_declaring_a_trillion_entries_is_refused() {
        let page = b"<Page/>".to_vec();
        let sig = signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let pkg = ofd(sig, 1, vec![("Doc_0/Page.xml".into(), page)], false);
        let at = eocd(&pkg);
        let (head, tail) = pkg.split_at(at);
        let cd_offset = u64::from(u32::from_le_bytes(tail[16..20].try_into().unwrap()));
        let cd_size = u64::from(u32::from_le_bytes(tail[12..16].try_into().unwrap()));
        let mut out = head.to_vec();
        let eocd64_at = out.len() as u64;
        out.extend_from_slice(b"PK\x06\x06");
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(1u64 << 40).to_le_bytes());
        out.extend_from_slice(&(1u64 << 40).to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(b"PK\x06\x07\0\0\0\0");
        out.extend_from_slice(&eocd64_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let mut end = tail.to_vec();
        end[8..12].copy_from_slice(&[0xff; 4]);
        end[16..20].copy_from_slice(&[0xff; 4]);
        out.extend_from_slice(&end);
        let (limit, msg) = limit_of(verify(&out, &VerifyOptions::default()));
        assert_eq!(limit, "max_entries", "{msg}");
    }

    /// Sets the uncompressed size that the local and central headers of entry `name` declare.
    fn declare_size(pkg: &mut [u8], name: &str, size: u32) {
        let mut patched = 0;
        for at in 0..pkg.len().saturating_sub(46) {
            let (magic, size_at, name_at) = match &pkg[at..at + 4] {
                b"PK\x03\x04" => ("local", at + 22, at + 30),
                b"PK\x01\x02" => ("central", at + 24, at + 46),
                _ => continue,
            };
            let _ = magic;
            if pkg[name_at..].starts_with(name.as_bytes()) {
                pkg[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 2, "both headers of {name}");
    }

    #[test]
    fn headers_that_lie_about_sizes_are_not_believed() {
        let limits = Limits { max_entry_bytes: 1 << 20, ..Limits::DEFAULT };
        // Declared 100 bytes, inflates to 2 MiB: refused at the limit, not at the declared size.
        let big = vec![3u8; 2 << 20];
        let sig = signature_xml([("/Doc_0/big.bin".to_string(), b64_sm3(&big))].into_iter());
        let mut pkg = ofd(sig, 1, vec![("Doc_0/big.bin".into(), big)], true);
        declare_size(&mut pkg, "Doc_0/big.bin", 100);
        let (limit, msg) = limit_of(verify_within(&pkg, &VerifyOptions::default(), &limits));
        assert_eq!(limit, "max_entry_bytes", "{msg}");
        // Declared 4 GiB, holds 7 bytes: read as the 7 bytes it holds, nothing reserved for the rest.
        let page = b"<Page/>".to_vec();
        let sig = signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let mut pkg = ofd(sig, 1, vec![("Doc_0/Page.xml".into(), page)], true);
        declare_size(&mut pkg, "Doc_0/Page.xml", u32::MAX - 1);
        let sigs = verify_within(&pkg, &VerifyOptions::default(), &limits).unwrap();
        assert!(check_detail(&sigs).contains("all 1 Reference CheckValues match"), "{sigs:#?}");
    }

    #[test]
    fn xml_nested_too_deep_is_refused() {
        let depth = Limits::DEFAULT.max_xml_depth as usize + 1;
        let sig = [&b"<a>".repeat(depth)[..], &b"</a>".repeat(depth)[..]].concat();
        let (limit, msg) = limit_of(verify(&ofd(sig, 1, Vec::new(), true), &VerifyOptions::default()));
        assert_eq!(limit, "max_xml_depth", "{msg}");
    }

    #[test]
    fn signatures_are_counted_and_what_they_share_is_parsed_within_the_limit() {
        let sig = signature_xml(std::iter::empty());
        let n = Limits::DEFAULT.max_signatures as usize + 1;
        let (limit, msg) = limit_of(verify(&ofd(sig.clone(), n, Vec::new(), true), &VerifyOptions::default()));
        assert_eq!(limit, "max_signatures", "{msg}");
        // 100 signatures share one Signature.xml: each parse of it counts.
        let limits = Limits { max_parsed_bytes: 50 * sig.len() as u64, ..Limits::DEFAULT };
        let pkg = ofd(sig, 100, Vec::new(), true);
        let (limit, msg) = limit_of(verify_within(&pkg, &VerifyOptions::default(), &limits));
        assert_eq!(limit, "max_parsed_bytes", "{msg}");
    }

    #[test]
    fn a_check_value_belongs_to_its_own_reference() {
        let (a, b) = (b"<A/>".to_vec(), b"<B/>".to_vec());
        // The first Reference has no CheckValue: it does not borrow the second's.
        let mut sig = String::from_utf8(signature_xml(std::iter::empty())).unwrap();
        let refs = format!(
            r#"<ofd:Reference FileRef="/Doc_0/A.xml"/><ofd:Reference FileRef="/Doc_0/A.xml"><ofd:CheckValue>{}</ofd:CheckValue></ofd:Reference>"#,
            b64_sm3(&a)
        );
        sig = sig.replace("</ofd:References>", &format!("{refs}</ofd:References>"));
        let pkg = ofd(sig.into_bytes(), 1, vec![("Doc_0/A.xml".into(), a), ("Doc_0/B.xml".into(), b)], false);
        let sigs = verify(&pkg, &VerifyOptions::default()).unwrap();
        assert_eq!(check_detail(&sigs), "CheckValue mismatch: Doc_0/A.xml", "{sigs:#?}");
        let oks: Vec<bool> = sigs.signatures[0].references.iter().map(|r| r.ok).collect();
        assert_eq!(oks, [false, true]);
    }

    fn refusal(r: Result<OfdReport, OfdError>) -> &'static str {
        match r {
            Err(e) => e.code(),
            Ok(r) => panic!("expected a refusal, got {r:#?}"),
        }
    }

    #[test]
    fn unsafe_names_duplicates_and_doctypes_are_refused() {
        let page = b"<Page/>".to_vec();
        let sig = || signature_xml([("/Doc_0/Page.xml".to_string(), b64_sm3(&page))].into_iter());
        let opts = VerifyOptions::default();
        for name in ["../evil.xml", "/etc/passwd", "Doc_0/../../x", "Doc_0\\x.xml"] {
            let pkg = ofd(sig(), 1, vec![(name.into(), page.clone())], true);
            assert_eq!(refusal(verify(&pkg, &opts)), "ofd_unsafe_path", "{name}");
        }
        // Two entries with one name (written under two, then renamed in place): the ZIP reader
        // would keep the last one silently.
        let mut dup = ofd(
            sig(),
            1,
            vec![("Doc_0/Page.xml".into(), page.clone()), ("Doc_0/Pagf.xml".into(), page.clone())],
            false,
        );
        while let Some(at) = dup.windows(14).position(|w| w == b"Doc_0/Pagf.xml") {
            dup[at + 9] = b'e';
        }
        assert_eq!(refusal(verify(&dup, &opts)), "ofd_duplicate_entry");
        // A DTD with an entity, anywhere the verifier parses.
        let bomb = String::from_utf8(sig()).unwrap().replacen(
            "<ofd:Signature ",
            "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><ofd:Signature ",
            1,
        );
        let pkg = ofd(bomb.into_bytes(), 1, vec![("Doc_0/Page.xml".into(), page)], true);
        assert_eq!(refusal(verify(&pkg, &opts)), "ofd_xml_doctype");
    }
}
