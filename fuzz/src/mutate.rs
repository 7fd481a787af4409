//! Seeded mutations of seed inputs: generic ones (bit flips, interesting bytes, truncation, deleted,
//! duplicated and spliced ranges) and structured ones per input shape (DER length fields, ZIP header
//! fields, XML tokens). The same seed gives the same inputs.

use crate::Shape;

/// xorshift64*: small, fast and reproducible; not for anything but choosing mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const INTERESTING: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, 0x30, 0x31, 0x02, 0x03, 0x04, 0x06, 0xa0];

const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "<a>",
    "</a>",
    "&amp;",
    "&#0;",
    "&#x10FFFF;",
    "&undefined;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE a [<!ENTITY e \"&e;&e;\">]>",
    "xmlns:ofd=\"http://www.ofdspec.org/2016\"",
    "<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>",
    "<ofd:Signature ID=\"2\" Type=\"Sign\" BaseLoc=\"Sign_0/Signature.xml\"/>",
    "<ofd:Reference FileRef=\"/Doc_0/Signs/Sign_0/SignedValue.dat\"><ofd:CheckValue>AAAA</ofd:CheckValue></ofd:Reference>",
    "<ofd:References CheckMethod=\"SM3\">",
    "<ofd:SignedValue>/OFD.xml</ofd:SignedValue>",
    "FileRef=\"../../../OFD.xml\"",
    "BaseLoc=\"/\"",
    "\u{feff}",
    "\u{0}",
    "é",
];

/// The TLV headers of a DER structure: (offset, header length, content length), nested ones too.
fn der_headers(data: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![(0usize, data.len())];
    while let Some((mut at, end)) = stack.pop() {
        while at + 2 <= end && out.len() < 4096 {
            let tag = data[at];
            let first = data[at + 1] as usize;
            let (len, header) = if first < 0x80 {
                (first, 2)
            } else {
                let n = first & 0x7f;
                if n == 0 || n > 4 || at + 2 + n > end {
                    break;
                }
                (data[at + 2..at + 2 + n].iter().fold(0usize, |a, b| (a << 8) | *b as usize), 2 + n)
            };
            let Some(next) = (at + header).checked_add(len).filter(|&n| n <= end) else { break };
            out.push((at, header, len));
            if tag & 0x20 != 0 {
                stack.push((at + header, next));
            }
            at = next;
        }
    }
    out
}

fn der_length(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        0x100..=0xffff => vec![0x82, (len >> 8) as u8, len as u8],
        _ => vec![0x84, (len >> 24) as u8, (len >> 16) as u8, (len >> 8) as u8, len as u8],
    }
}

/// Rewrites one DER length field: off by one, zero, huge, indefinite, or in a longer form.
fn tweak_der_length(rng: &mut Rng, data: &mut Vec<u8>) {
    let headers = der_headers(data);
    if headers.is_empty() {
        return;
    }
    let (at, header, len) = headers[rng.below(headers.len())];
    let field = match rng.below(8) {
        0 => der_length(len + 1),
        1 => der_length(len.saturating_sub(1)),
        2 => vec![0x00],
        3 => vec![0x80],
        4 => vec![0x84, 0xff, 0xff, 0xff, 0xff],
        5 => vec![0x82, (len >> 8) as u8, len as u8],
        6 => vec![0x85, 0, 0, 0, 0, 1],
        _ => der_length(rng.below(len.saturating_mul(2) + 2)),
    };
    let _ = data.splice(at + 1..at + header, field);
}

/// Rewrites one field of a ZIP header (local, central, end, ZIP64 end or locator): sizes, counts,
/// offsets, name and extra lengths, compression method, flags.
fn tweak_zip_header(rng: &mut Rng, data: &mut [u8]) {
    /// A record's magic, and its fields as (offset, width).
    type Record = (&'static [u8], &'static [(usize, usize)]);
    const RECORDS: &[Record] = &[
        (b"PK\x03\x04", &[(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]),
        (b"PK\x01\x02", &[(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)]),
        (b"PK\x05\x06", &[(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]),
        (b"PK\x06\x06", &[(4, 8), (24, 8), (32, 8), (40, 8), (48, 8)]),
        (b"PK\x06\x07", &[(4, 4), (8, 8), (16, 4)]),
    ];
    let mut found = Vec::new();
    for at in 0..data.len().saturating_sub(4) {
        if data[at] == b'P' && data[at + 1] == b'K' {
            for (magic, fields) in RECORDS {
                if data[at..].starts_with(magic) {
                    found.push((at, *fields));
                }
            }
        }
    }
    if found.is_empty() {
        return;
    }
    let (at, fields) = found[rng.below(found.len())];
    let (off, width) = fields[rng.below(fields.len())];
    let Some(field) = data.get_mut(at + off..at + off + width) else { return };
    let old = field.iter().rev().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let value = match rng.below(6) {
        0 => 0,
        1 => u64::MAX,
        2 => old.wrapping_add(1),
        3 => old.wrapping_sub(1),
        4 => old.wrapping_mul(1 + rng.below(1024) as u64),
        _ => rng.next_u64(),
    };
    for (i, b) in field.iter_mut().enumerate() {
        *b = (value >> (8 * i)) as u8;
    }
}

/// Inserts an XML token, or nests a stretch of the document inside itself.
fn tweak_xml(rng: &mut Rng, data: &mut Vec<u8>) {
    let at = 1 + rng.below(data.len().max(1));
    let at = at.min(data.len());
    if rng.chance(4) {
        let starts: Vec<usize> = (1..data.len()).filter(|&i| data[i] == b'<').collect();
        if starts.len() >= 2 {
            let a = starts[rng.below(starts.len())];
            let b = starts[rng.below(starts.len())];
            let (from, to) = (a.min(b), a.max(b));
            let piece = data[from..to].to_vec();
            for _ in 0..1 + rng.below(8) {
                let _ = data.splice(from..from, piece.iter().copied());
            }
            return;
        }
    }
    let token = XML_TOKENS[rng.below(XML_TOKENS.len())].as_bytes();
    let _ = data.splice(at..at, token.iter().copied());
}

/// One mutated input from `seed`: one to four stacked mutations, the structured ones for `shape`,
/// spliced material taken from `corpus`.
pub fn mutate(rng: &mut Rng, seed: &[u8], shape: Shape, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 | 1 if len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(len);
                    data[i] ^= 1 << rng.below(8);
                }
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => data.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                let _ = data.drain(from..to);
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(256)).min(len);
                let piece = data[from..to].to_vec();
                let at = rng.below(len + 1);
                let _ = data.splice(at..at, piece);
            }
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(512)).min(other.len());
                    let at = rng.below(len + 1);
                    let end = if rng.chance(2) { (at + (to - from)).min(len) } else { at };
                    let _ = data.splice(at..end, other[from..to].iter().copied());
                }
            }
            _ => match shape {
                Shape::Der => tweak_der_length(rng, &mut data),
                Shape::Zip => tweak_zip_header(rng, &mut data),
                Shape::Xml => tweak_xml(rng, &mut data),
            },
        }
    }
    data
}
