//! The GB/T 38540 and GM/T 0031 structures as this crate reads and writes them, named after the
//! standard's (`SESeal`, `SES_SealInfo`, `SES_Signature`, `TBS_Sign`).

use super::*;

/// A time read from a seal or signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SesTime {
    /// The instant.
    pub at: SystemTime,
}

/// Which standard a structure follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SesVersion {
    /// GM/T 0031-2014.
    V1,
    /// GB/T 38540-2020.
    V4,
}

/// `SES_CertList`: the signer certificates, or their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertList {
    /// DER certificates (certListType 1, or v1).
    Certs(Vec<Vec<u8>>),
    /// (digest algorithm name, digest) (certListType 2).
    Digests(Vec<(String, Vec<u8>)>),
}

/// `SES_ESPictrueInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// `PNG`, `GIF`, `JPG`, `SVG`, `BMP`, `ofd` ...
    pub kind: String,
    /// The bytes.
    pub data: Vec<u8>,
    /// Width, mm.
    pub width: i64,
    /// Height, mm.
    pub height: i64,
}

/// `SES_SealInfo` (GB/T 38540 §6.1.2; GM/T 0031 §6.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesSealInfo {
    /// Header ID ("ES").
    pub header_id: String,
    /// Header version.
    pub version: i64,
    /// Vendor id.
    pub vid: String,
    /// esID.
    pub es_id: String,
    /// Seal type.
    pub seal_type: i64,
    /// Name.
    pub name: String,
    /// certListType (v4).
    pub cert_list_type: Option<i64>,
    /// The signer certificates.
    pub cert_list: CertList,
    /// createDate.
    pub create_date: SesTime,
    /// validStart.
    pub valid_start: SesTime,
    /// validEnd.
    pub valid_end: SesTime,
    /// The picture.
    pub picture: Picture,
    /// extDatas present.
    pub has_ext_datas: bool,
}

/// `SESeal` (GB/T 38540 §6.1.1; GM/T 0031 §6.1.1), with its stored bytes.
#[derive(Debug, Clone)]
pub struct SesSeal {
    /// v1 or v4.
    pub version: SesVersion,
    /// The whole structure as stored.
    pub raw: Vec<u8>,
    /// The seal information.
    pub info: SesSealInfo,
    /// The maker certificate, DER.
    pub maker_cert: Vec<u8>,
    /// signAlgID.
    pub sign_alg: String,
    /// The maker's signature as stored.
    pub signed_value: Vec<u8>,
    /// The bytes the maker signed: v4 the stored `SES_SealInfo` TLV; v1 SEQUENCE{SealInfo, cert, alg}
    /// built from the stored TLVs.
    pub signed_bytes: Vec<u8>,
    /// Tolerated deviations.
    pub warnings: Vec<String>,
}

/// `SES_Signature` (GB/T 38540 §7.1; GM/T 0031 §6.2.1), with its stored bytes.
#[derive(Debug, Clone)]
pub struct SesSignature {
    /// v1 or v4.
    pub version: SesVersion,
    /// The whole structure as stored.
    pub raw: Vec<u8>,
    /// `TBS_Sign` as stored: what the signer signed.
    pub tbs: Vec<u8>,
    /// The seal inside.
    pub seal: SesSeal,
    /// timeInfo (v4), or the v1 time when it is a plain time.
    pub time_info: Option<SesTime>,
    /// dataHash.
    pub data_hash: Vec<u8>,
    /// propertyInfo.
    pub property_info: String,
    /// The signer certificate, DER.
    pub signer_cert: Vec<u8>,
    /// signatureAlgID.
    pub sign_alg: String,
    /// The signature as stored.
    pub signature: Vec<u8>,
    /// The time-stamp token, if any.
    pub timestamp: Option<Vec<u8>>,
    /// Tolerated deviations (including the seal's).
    pub warnings: Vec<String>,
}

/// Either structure, told apart by shape (a signature's first element holds a version INTEGER).
#[derive(Debug, Clone)]
pub enum SesObject {
    /// A seal.
    Seal(Box<SesSeal>),
    /// A signature.
    Signature(Box<SesSignature>),
}

/// What a new v4 seal says (GB/T 38540 §6.1).
#[derive(Debug, Clone)]
pub struct SealTemplate<'a> {
    /// Vendor id (`seald`).
    pub vid: &'a str,
    /// esID (ASCII).
    pub es_id: &'a str,
    /// Seal type (business-defined in v4; seald writes 1 for unit seals, 2 for personal ones).
    pub seal_type: i64,
    /// Name, as on file with the police.
    pub name: &'a str,
    /// The signer certificates (DER): certListType 1.
    pub certs: Vec<&'a [u8]>,
    /// createDate.
    pub create_date: SystemTime,
    /// validStart.
    pub valid_start: SystemTime,
    /// validEnd.
    pub valid_end: SystemTime,
    /// Picture type (`PNG`, `GIF`, `JPG`, `SVG`).
    pub picture_type: &'a str,
    /// Picture bytes.
    pub picture: &'a [u8],
    /// Width, mm.
    pub width_mm: i64,
    /// Height, mm.
    pub height_mm: i64,
}

/// One `ExtData` (GB/T 38540 §6.1): an OID, its criticality, its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtData {
    /// extnID.
    pub id: String,
    /// critical (DEFAULT FALSE: omitted when false, as DER wants).
    pub critical: bool,
    /// extnValue.
    pub value: Vec<u8>,
}
