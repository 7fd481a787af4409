//! A sealed OFD document (`POST /v1/seals/{id}/seal-ofd`): GB/T 33190 §18 with a GB/T 38540 v4
//! `SES_Signature` over the new `Signature.xml`. The seal's rules are those of every seal use; the
//! use is bound to the incoming document (its SM3 is the digest a ticket names and the usage record
//! keeps), and the record names the document and the pages stamped.

use super::ses::SealTbs;
use super::usage::{self, Product, Subject};
use super::{SignError, Signing};
use crate::authz::Principal;
use crate::formats::ofd::{self, Placement, Unsealed};
use crate::formats::ses;

/// The longest document name a usage record keeps.
pub const MAX_DOCUMENT_NAME: usize = 256;

/// What to seal, and how.
#[derive(Debug, Clone)]
pub struct OfdRequest<'a> {
    /// The OFD package.
    pub document: &'a [u8],
    /// Where the seal goes.
    pub placement: Placement,
    /// The document's name, for the usage record.
    pub name: Option<&'a str>,
    /// The approval ticket, where the seal's policy needs one.
    pub ticket: Option<&'a str>,
    /// Put a time-stamp over the signature value into the `SES_Signature`.
    pub timestamp: bool,
}

/// A sealed document.
#[derive(Debug, Clone)]
pub struct SealedOfd {
    /// The sealed package.
    pub document: Vec<u8>,
    /// The new signature's `ID` in `Signatures.xml`.
    pub signature_id: String,
    /// Where its `Signature.xml` is.
    pub property_info: String,
    /// The seal key version used.
    pub key_version: u32,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
}

impl Signing {
    /// Seals `req.document` with `seal`. Returns the sealed package once its usage record is durable.
    pub fn seal_ofd(&self, p: &Principal, seal: &str, req: OfdRequest<'_>) -> Result<SealedOfd, SignError> {
        // Read and check the document before the seal is held (every digest it needs is taken here).
        if req.name.is_some_and(|n| n.chars().count() > MAX_DOCUMENT_NAME || n.chars().any(char::is_control)) {
            return Err(SignError::BadInput(format!(
                "the document name must be at most {MAX_DOCUMENT_NAME} characters, without control characters"
            )));
        }
        let incoming = crate::crypto::sm3(req.document);
        let doc = Unsealed::open(req.document, self.ofd_limits)?;
        doc.check_page(&req.placement)?;
        // Hold the seal and pass the gate: the digest is the incoming document's.
        let permit = self.registry.uses().hold_seal(seal)?.authorize_use(p, &incoming, req.ticket)?;
        // Place the seal, write Seal.esl and Signature.xml, and sign SM3(Signature.xml) in the token.
        let key = permit.key();
        let seal_der = permit.ses().ok_or(crate::seal::SealError::NoSealMaker)?;
        let picture = ses::SesSeal::parse(&seal_der).map(|s| s.info.picture).map_err(|e| SignError::BadInput(e.0))?;
        let size = (picture.width as f64, picture.height as f64);
        let now = std::time::SystemTime::now();
        let prepared = doc.prepare(&req.placement, &seal_der, size, now)?;
        let hash = prepared.data_hash();
        let tbs =
            SealTbs { seal: &seal_der, at: now, hash: &hash, property_info: &prepared.property_info, ext_datas: &[] };
        // Signed in the token and verified on the host with the key that the certificate carries
        // (ses_signature); dataHash is SM3 of the Signature.xml bytes that go into the package.
        let der = self.ses_signature(key, &tbs, req.timestamp.then_some(p))?;
        let signature_id = prepared.signature_id.clone();
        let property_info = prepared.property_info.clone();
        let pages = prepared.stamped_pages.clone();
        let document = prepared.finish(&der).map_err(|e| SignError::Internal(format!("writing the package: {e}")))?;
        // Record durably, answer.
        let product =
            Product::Ofd { name: req.name, document_sm3: &incoming, pages: &pages, property_info: &property_info };
        let record = usage::record(p, Subject::Seal(key), product, "ok", Some(&incoming));
        let receipt = permit.record(record)?;
        Ok(SealedOfd {
            document,
            signature_id,
            property_info,
            key_version: receipt.key.version,
            audit_seq: receipt.audit_seq,
        })
    }
}

impl From<ofd::OfdError> for SignError {
    fn from(e: ofd::OfdError) -> Self {
        SignError::Ofd(e)
    }
}
