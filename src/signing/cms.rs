//! GM/T 0010 SignedData (`POST /v1/sign/cms`): PKCS#7 for P-256 seals, over content given whole,
//! attached or detached, signed with a seal.

use super::usage::{self, Product, Subject};
use super::{SealSigned, SignError, Signing};
use crate::authz::Principal;
use crate::formats::{cms, x509::Cert};
use crate::token::TokenKey;

impl Signing {
    /// Signs `content` with a seal as a SignedData. The usage record names SM3 (SM2 seals) or
    /// SHA-256 (P-256 seals) of the content, and is durable before this returns.
    pub fn sign_cms(
        &self,
        p: &Principal,
        seal: &str,
        content: &[u8],
        detached: bool,
        ticket: Option<&str>,
    ) -> Result<SealSigned, SignError> {
        // Hold the seal, digest the content for its algorithm, and pass the gate.
        let held = self.registry.uses().hold_seal(seal)?;
        let digest = cms::content_digest(held.alg(), content);
        let permit = held.authorize_use(p, &digest, ticket)?;
        // Build the SignedData; the token signs its signed attributes (verified on the host).
        let key = permit.key();
        let cert = Cert::parse(key.cert_pem.as_bytes()).map_err(|e| SignError::Certificate(e.to_string()))?;
        let signer = TokenKey::with_public(
            &self.pool,
            &key.key_id,
            cert.public_key().map_err(|e| SignError::Certificate(e.to_string()))?,
        );
        let der = cms::sign(content, detached, std::time::SystemTime::now(), &cert, &signer)
            .map_err(|e| signer.blame(e).map_or_else(SignError::BadInput, SignError::Token))?;
        // Record durably, answer.
        let record = usage::record(p, Subject::Seal(key), Product::Cms { detached }, "ok", Some(&digest));
        let receipt = permit.record(record)?;
        Ok(SealSigned { der, key_version: receipt.key.version, audit_seq: receipt.audit_seq })
    }
}
