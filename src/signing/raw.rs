//! The raw signature (`POST /v1/sign`, `/v1/sign/batch`): over a message, a digest or SM2's e, with
//! a plain key or with a seal.

use super::plan::plan;
use super::usage::{self, Product, Subject};
use super::{Key, Request, SignError, Signed, Signing};
use crate::authz::Principal;
use crate::seal::SealError;

impl Signing {
    /// Signs `req` with its plain key or its seal. The usage record is durable before this returns.
    pub fn sign(&self, p: &Principal, req: &Request) -> Result<Signed, SignError> {
        match &req.seal {
            Some(seal) => self.sign_raw_with_seal(p, seal, req),
            None => self.sign_raw_with_key(p, req),
        }
    }

    fn sign_raw_with_key(&self, p: &Principal, req: &Request) -> Result<Signed, SignError> {
        if req.ticket.is_some() {
            return Err(SignError::BadInput("a ticket goes with a seal, not a plain key".into()));
        }
        // Authorize: the caller's grant on the key; a refusal is journalled.
        let key = self.key(&req.key).ok_or_else(|| SignError::UnknownKey(req.key.clone()))?.clone();
        if !self.may_sign_with(p, &key) {
            let refusal = usage::record(p, Subject::Key(&key), Product::Raw(req.input), "refused:forbidden", None);
            self.registry.journal_refusal(refusal);
            return Err(SignError::Forbidden { account: p.account.clone(), key: key.name.clone() });
        }
        // Plan, sign in the token (verified on the host), record durably, answer.
        let (input, digest) = plan(key.info.alg, req, self.max_message)?;
        let sig = self.pool.sign(&key.info.id, input)?;
        let seq = self.record(usage::record(p, Subject::Key(&key), Product::Raw(req.input), "ok", Some(&digest)))?;
        Ok(Signed { key, der: sig.der, raw: sig.raw, audit_seq: seq, seal: None, cert: None })
    }

    fn sign_raw_with_seal(&self, p: &Principal, seal: &str, req: &Request) -> Result<Signed, SignError> {
        // Hold the seal, plan for its algorithm, and pass the gate (which journals a refusal).
        // A seal's failures carry the registry's codes (a bad request is `bad_input`, a token
        // failure the token's own code), as they always have.
        let held = self.registry.uses().hold_seal(seal)?;
        let (input, digest) = plan(held.alg(), req, self.max_message).map_err(as_seal_input)?;
        let permit = held.authorize_use(p, &digest, req.ticket.as_deref())?;
        // Sign in the token with the seal's current key version (verified on the host).
        let info = self.pool.key(&permit.key().key_id).map_err(SealError::Token)?;
        let sig = self.pool.sign(&info.id, input).map_err(SealError::Token)?;
        // Record durably; the seal is let go after that.
        let record = usage::record(p, Subject::Seal(permit.key()), Product::Raw(req.input), "ok", Some(&digest));
        let receipt = permit.record(record)?;
        Ok(Signed {
            key: Key { name: format!("seal:{seal}"), info, version: receipt.key.version },
            der: sig.der,
            raw: sig.raw,
            audit_seq: receipt.audit_seq,
            seal: Some(seal.to_string()),
            cert: Some(receipt.key.cert_pem),
        })
    }
}

/// A request that does not fit a seal's key is the registry's `bad_input`.
fn as_seal_input(e: SignError) -> SignError {
    SignError::Seal(SealError::BadInput(e.to_string()))
}
