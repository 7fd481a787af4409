//! The API contract: the request and response bodies of every route, as types. The daemon decodes
//! and encodes with them, and `sealctl` builds its requests and reads its answers with them, so the
//! two cannot drift apart. Fields are documented once, here; `docs/openapi.yaml` describes the same
//! shapes. Unknown request fields are refused (`deny_unknown_fields`).
//!
//! Binary values travel as standard base64 strings; times as milliseconds since the Unix epoch.

use crate::crypto::KeyAlg;
use crate::seal::{
    AccountRecord, DualRequest, FilingStatus, Grant, KeyListing, Policy, Seal, SealKind, SealState, Unit, UsageEntry,
};
use crate::signing::InputMode;
use serde::{Deserialize, Serialize};

/// The encoding of a returned signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// DER `SEQUENCE { r, s }` (or the RSA block).
    #[default]
    Der,
    /// `r || s`.
    Raw,
}

/// `POST /v1/sign` (and each item of `/v1/sign/batch`): exactly one of `key`, `seal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    /// A plain key, by name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A seal, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The approval ticket of a seal use, where its policy needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// What `data` is.
    pub input: InputMode,
    /// The message, digest or e, base64.
    pub data: String,
    /// `sm3` or `sha256`, checked against the key when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_alg: Option<String>,
    /// The SM2 signer ID (default `1234567812345678`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The signature's encoding.
    #[serde(default)]
    pub encoding: Encoding,
}

/// The answer to a signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SignReply {
    /// The signature, base64.
    pub signature: String,
    /// Its encoding.
    pub encoding: Encoding,
    /// The token key that signed, hex CKA_ID.
    pub key_id: String,
    /// Its version.
    pub key_version: u32,
    /// `sm2-sm3`, `ecdsa-p256-sha256`, ...
    pub alg: String,
    /// The seal used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The certificate of the seal's key version, PEM.
    pub cert: Option<String>,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
}

/// `POST /v1/verify` (and each item of `/v1/verify/batch`): exactly one of `key`, `public_key`,
/// `certificate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The signature, base64 (DER or raw).
    pub signature: String,
    /// What `data` is.
    pub input: InputMode,
    /// The message, digest or e, base64.
    pub data: String,
    /// A configured key, by name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A public key, SPKI PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A signer certificate, PEM (also checked for validity, chain and revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// `sm3` or `sha256`, checked against the key when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_alg: Option<String>,
    /// The SM2 signer ID (default `1234567812345678`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A batch of items.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, schemars(rename = "Batch_{T}"))]
pub struct Batch<T> {
    /// 1 to 1000 items.
    #[cfg_attr(test, schemars(length(min = 1, max = 1000)))]
    pub items: Vec<T>,
}

/// `POST /v1/seals`: an application for a seal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The seal's name.
    pub name: String,
    /// Its kind.
    pub kind: SealKind,
    /// Its image, base64.
    pub image: String,
    /// `png`, `jpg`, `bmp`, `gif`, `svg` or `ofd`.
    pub image_type: String,
    /// Width in mm.
    pub width_mm: f64,
    /// Height in mm.
    pub height_mm: f64,
    /// Days of validity.
    pub valid_days: u32,
    /// The key algorithm.
    pub alg: KeyAlg,
    /// The unit (default: the applicant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The use policy.
    #[serde(default)]
    pub policy: Policy,
}

/// `POST /v1/seals/{id}/{action}`: a transition's reason and, for `change`, what changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// Why (freeze, revoke, reject, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A new name (change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A new image, base64 (change); needs the three fields below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The new image's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    /// The new image's width in mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_mm: Option<f64>,
    /// The new image's height in mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_mm: Option<f64>,
}

/// `POST /v1/admin/keys/{name}/activate|destroy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    /// The key version.
    pub version: u32,
}

/// `POST /v1/ca/issue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CaIssueBody {
    /// A PKCS#10 request, PEM.
    pub csr: String,
    /// Days of validity (default 365).
    #[serde(default = "a_year")]
    pub valid_days: u32,
}

fn a_year() -> u32 {
    365
}

/// One `extDatas` entry of an `SES_Signature`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtDataBody {
    /// Its OID.
    pub id: String,
    /// Whether it is critical.
    #[serde(default)]
    pub critical: bool,
    /// Its value, base64.
    pub value: String,
}

/// `POST /v1/seals/{id}/sign-ses`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignSesBody {
    /// SM3 of the document's protected bytes, base64.
    pub data_hash: String,
    /// Where those bytes are (`propertyInfo`), ASCII.
    pub property_info: String,
    /// `extDatas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_datas: Option<Vec<ExtDataBody>>,
    /// The approval ticket, where the policy needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Put a time-stamp over the signature value into `timeStamp` (from the appliance's TSA, or
    /// from `[tsa] external_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<bool>,
}

/// The answer to `sign-ses`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SignSesReply {
    /// The `SES_Signature`, DER, base64.
    pub ses_signature: String,
    /// The seal's key version that signed.
    pub key_version: u32,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
}

/// `POST /v1/sign/cms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignCmsBody {
    /// The seal.
    pub seal: String,
    /// The content, base64.
    pub data: String,
    /// Leave the content out (default true).
    #[serde(default = "yes")]
    pub detached: bool,
    /// The approval ticket, where the policy needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

fn yes() -> bool {
    true
}

/// The answer to `sign/cms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SignCmsReply {
    /// The SignedData, DER, base64.
    pub cms: String,
    /// The seal's key version that signed.
    pub key_version: u32,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
}

/// `POST /v1/verify/ses`: the signature, and the document or its SM3 (not both).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifySesBody {
    /// The `SES_Signature`, base64.
    pub ses_signature: String,
    /// The protected bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Their SM3, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_sm3: Option<String>,
}

/// `POST /v1/verify/seal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifySealBody {
    /// The `SESeal`, base64.
    pub seal: String,
    /// Judge it at this time (default now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

/// `POST /v1/verify/cms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyCmsBody {
    /// The SignedData, base64.
    pub cms: String,
    /// The content of a detached SignedData, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `POST /v1/seals/{id}/certificate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CertificateBody {
    /// A certificate for the seal's token key, PEM.
    pub certificate: String,
}

/// `POST /v1/seals/{id}/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The application account.
    pub account: String,
}

/// `POST /v1/filings/{id}/ack`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// The police system's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A seal as `GET /v1/seals/{id}` shows it: as the registry keeps it, with what is derived from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SealDetail {
    /// The seal.
    #[serde(flatten)]
    pub seal: Seal,
    /// Whether its validity has ended (derived, never stored).
    pub expired: bool,
    /// The version that signs.
    pub key_version: Option<u32>,
    /// When that version's certificate ends, ms.
    pub not_after_ms: Option<u64>,
}

impl SealDetail {
    /// The view of `seal` at `now_ms`.
    pub fn of(seal: Seal, now_ms: u64) -> Self {
        let current = seal.current();
        let (key_version, not_after_ms) = (current.map(|c| c.version), current.map(|c| c.not_after_ms));
        SealDetail { expired: seal.expired(now_ms), key_version, not_after_ms, seal }
    }
}

/// The picture of a seal in a list: everything but its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ImageSummary {
    /// `png`, `gif`, `jpg` or `svg`.
    pub image_type: String,
    /// SM3 of the bytes, hex.
    pub sm3: String,
    /// Width in mm.
    pub width_mm: f64,
    /// Height in mm.
    pub height_mm: f64,
}

/// A seal in a list, and the answer to a change of its policy or certificate: without its key
/// versions, its history and its picture's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SealSummary {
    /// Its code (esID).
    pub id: String,
    /// Its unit.
    pub unit: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SealKind,
    /// Its picture.
    pub image: ImageSummary,
    /// Key algorithm.
    pub alg: KeyAlg,
    /// Validity of each certificate, in days.
    pub valid_days: u32,
    /// Its state.
    pub state: SealState,
    /// Its use policy.
    pub policy: Policy,
    /// The seal it replaced.
    pub replaces: Option<String>,
    /// The seal that replaced it.
    pub replaced_by: Option<String>,
    /// Whether its validity has ended.
    pub expired: bool,
    /// The version that signs.
    pub key_version: Option<u32>,
    /// When that version's certificate ends, ms.
    pub not_after_ms: Option<u64>,
}

impl SealSummary {
    /// The summary of `seal` at `now_ms`.
    pub fn of(seal: &Seal, now_ms: u64) -> Self {
        let current = seal.current();
        let i = &seal.image;
        SealSummary {
            id: seal.id.clone(),
            unit: seal.unit.clone(),
            name: seal.name.clone(),
            kind: seal.kind,
            image: ImageSummary {
                image_type: i.image_type.clone(),
                sm3: i.sm3.clone(),
                width_mm: i.width_mm,
                height_mm: i.height_mm,
            },
            alg: seal.alg,
            valid_days: seal.valid_days,
            state: seal.state,
            policy: seal.policy.clone(),
            replaces: seal.replaces.clone(),
            replaced_by: seal.replaced_by.clone(),
            expired: seal.expired(now_ms),
            key_version: current.map(|c| c.version),
            not_after_ms: current.map(|c| c.not_after_ms),
        }
    }
}

/// One item of a batch answer: the item's answer, or its error. `status` tells which, so that a
/// client never reads a failed item as an answer with its fields missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "status")]
#[cfg_attr(test, schemars(rename = "BatchItem_{T}"))]
pub enum BatchItem<T> {
    /// The item's error (`"status": "error"`).
    #[serde(rename = "error")]
    Failed {
        /// The error.
        error: ErrorDetail,
    },
    /// The item's answer (`"status": "ok"`, beside the answer's own fields).
    #[serde(rename = "ok")]
    Done(T),
}

/// An error as every answer carries it, inside [`ErrorReply`] or a batch item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    /// The stable code (`docs/errors.md` lists every one).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// For `invalid_transition`: the seal's state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SealState>,
}

/// Every error answer: `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(rename = "Error"))]
pub struct ErrorReply {
    /// The error.
    pub error: ErrorDetail,
}

/// The answer to a batch, in the order of its items.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(rename = "BatchReply_{T}"))]
pub struct BatchReply<T> {
    /// One per item.
    pub results: Vec<BatchItem<T>>,
}

/// A plain key, as `GET /v1/keys` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct KeySummary {
    /// CKA_ID, hex.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// Version (always 1 for a plain key).
    pub key_version: u32,
}

/// `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct KeyList {
    /// The keys the caller may sign with.
    pub keys: Vec<KeySummary>,
}

/// `GET /v1/keys/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct KeyDetail {
    /// CKA_ID, hex.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// Version.
    pub key_version: u32,
    /// Its public key, SPKI PEM.
    pub public_key_pem: String,
    /// A certificate for it (none for plain keys).
    pub certificate: Option<String>,
    /// SM2 only: Z for the default ID, hex.
    pub sm2_z_default_id: Option<String>,
}

/// `POST /v1/seals`: the new application.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Applied {
    /// The seal's id.
    pub id: String,
    /// `applied`.
    pub state: SealState,
}

/// `POST /v1/seals/{id}/{action}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TransitionReply {
    /// The seal (for `change`: the new one).
    pub id: String,
    /// Its state now.
    pub state: SealState,
    /// The version that signs.
    pub key_version: Option<u32>,
    /// For `change` only: the seal it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Option<String>>,
}

/// `GET /v1/ca`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct CaCertificate {
    /// The issuing CA's algorithm.
    pub alg: KeyAlg,
    /// Its certificate, PEM.
    pub certificate: String,
}

/// `POST /v1/ca/issue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate: String,
}

/// `GET /v1/seals/{id}/csr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct CsrReply {
    /// The request, PEM.
    pub csr: String,
}

/// `DELETE /v1/seals/{id}/grants/{account}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Withdrawn {
    /// Always true.
    pub withdrawn: bool,
}

/// A dual-control step that waits for a second security officer, or for an administrator of another
/// role for an administrator's account (202).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct AwaitingApproval {
    /// The request the second officer approves.
    pub awaiting_approval: DualRequest,
}

/// `GET /v1/seals`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SealList {
    /// The seals the caller may see, by id.
    pub seals: Vec<SealSummary>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/seals/{id}/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct GrantList {
    /// The grants, by account.
    pub grants: Vec<Grant>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/seals/{id}/usage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct UsageList {
    /// The usage records, oldest first (or newest first with `order=newest`).
    pub usage: Vec<UsageEntry>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/audit/records`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct AuditRecords {
    /// The journal's records, oldest first (or newest first with `order=newest`).
    pub records: Vec<crate::audit::JournalRecord>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/filings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FilingList {
    /// The filings, by id.
    pub filings: Vec<FilingStatus>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/filings/export`: the document sent to the police system.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FilingExport {
    /// `seald-filings-v1`.
    pub format: String,
    /// When it was exported, ms.
    pub exported_ms: u64,
    /// The filings.
    pub filings: Vec<FilingStatus>,
}

/// `GET /v1/admin/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct AccountList {
    /// The registry's accounts.
    pub accounts: Vec<AccountRecord>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/admin/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ApplianceKeyList {
    /// The keys with their versions: the appliance keys first, then the seals' by seal id.
    pub keys: Vec<KeyListing>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/admin/requests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RequestList {
    /// The dual-control requests.
    pub requests: Vec<DualRequest>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/admin/units`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct UnitList {
    /// The units, by id.
    pub units: Vec<Unit>,
    /// The next page's cursor: give it back as `cursor` (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Milliseconds since the epoch as RFC 3339 (UTC, to the millisecond): the times of the
/// seal-status answer, written by the daemon and by `sealctl`.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| ms.to_string())
}

/// `GET /v1/seal-status/{id}`: what the registry says of a seal at a time (docs/seal-status.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SealStatusReply {
    /// The seal (GB/T 38540 esID).
    #[serde(rename = "esID")]
    pub es_id: String,
    /// The time asked about (RFC 3339).
    pub at: String,
    /// The state then: applied, approved, rejected, made, active, frozen, revoked, or
    /// not_yet_applied (before the seal's first step).
    pub state: String,
    /// The state held from (RFC 3339).
    pub since: String,
    /// ... until (RFC 3339); null while it still holds.
    pub until: Option<String>,
    /// The reason given for the change into this state.
    pub reason: Option<String>,
    /// When the registry was read (RFC 3339).
    pub produced_at: String,
}

/// `GET /v1/whoami`: who the daemon takes the caller's certificate for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Whoami {
    /// The account.
    pub account: String,
    /// Its role.
    pub role: crate::authz::Role,
    /// Its unit (unit administrators and applications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// SHA-256 of the certificate presented.
    pub fingerprint: String,
    /// Its subject.
    pub subject: String,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Alive {
    /// `alive`.
    pub status: String,
}

/// `GET /readyz`: 503 with `reasons` while the token, the store or the journal is down.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Readiness {
    /// Whether the appliance can sign now.
    pub ready: bool,
    /// The token's health.
    pub token: crate::token::Health,
    /// The highest durable journal seq.
    pub audit_head: u64,
    /// Why it is not ready.
    pub reasons: Vec<String>,
    /// What needs an operator but does not stop signing.
    pub details: ReadinessDetails,
    /// Whether the clock is synchronised (the TSA stamps only then; signing goes on).
    pub clock: crate::clock::ClockState,
    /// On a cluster: the database as this node sees it, and how far behind each node's chain is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReadiness>,
}

/// `GET /readyz` on a cluster node: the database and every node's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ClusterReadiness {
    /// This node's id.
    pub node: u16,
    /// How long the database took to answer, ms (none: it did not answer).
    pub round_trip_ms: Option<f64>,
    /// Every node's chain: its head and how long ago its last record was written (a node that
    /// stopped falls behind here; this node reads the database itself, so it is never behind it).
    pub nodes: Vec<NodeReadiness>,
}

/// One node's chain, for `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct NodeReadiness {
    /// Node id.
    pub node: u16,
    /// Its chain's last seq.
    pub head_seq: u64,
    /// How long ago its last record was written, ms.
    pub behind_ms: u64,
}

/// `GET /readyz` for a certificate of no account: whether the appliance is ready, nothing more.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ReadinessBare {
    /// Whether the appliance can sign now.
    pub ready: bool,
}

/// What needs an operator but does not stop signing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ReadinessDetails {
    /// Filings pending past the deadline (the first 100; `/metrics` counts them all). The registry's
    /// facts are worked out at most every 15 s.
    pub filings_overdue: Vec<String>,
    /// Seals whose certificate ends within the reminder period.
    pub seals_expiring: usize,
    /// Appliance keys whose certificate ends within the reminder period.
    pub keys_expiring: Vec<String>,
}

#[cfg(test)]
mod openapi;
