//! The signed seal-status answer (docs/seal-status.md), in the style of an OCSP response: what the
//! registry says of a seal over one stretch of time, when that was said, signed by the status
//! responder whose certificate (from the issuing CA, for `OCSPSigning` only) it carries.
//!
//! ```text
//! SealStatusResponse ::= SEQUENCE {
//!   tbsStatus           TBSSealStatus,
//!   signatureAlgorithm  AlgorithmIdentifier,   -- SM2-with-SM3 or ecdsa-with-SHA256
//!   signature           BIT STRING,            -- over the DER of tbsStatus
//!   certs           [0] EXPLICIT SEQUENCE OF Certificate }
//!
//! TBSSealStatus ::= SEQUENCE {
//!   version             INTEGER { v1(1) },
//!   esID                IA5String,
//!   state               ENUMERATED { applied(0), approved(1), rejected(2), made(3), active(4),
//!                                    frozen(5), revoked(6), notYetApplied(7) },
//!   since               GeneralizedTime,       -- the state held from this time ...
//!   until           [0] GeneralizedTime OPTIONAL,  -- ... to this one; absent: still at producedAt,
//!                                                  -- and the answer current until nextUpdate
//!   reason          [1] UTF8String OPTIONAL,   -- the reason given for the change into it
//!   producedAt          GeneralizedTime,
//!   nextUpdate      [2] GeneralizedTime OPTIONAL } -- with no until: ask again after this
//! ```

use super::oid::*;
use super::ses::{self, children, der_int, der_oid, der_tlv, oid, seq, tlv, SesError};
use super::x509::{Cert, TrustStore};
use crate::crypto::{self, KeySigner};
use std::time::SystemTime;

/// The states an answer may name, by their ENUMERATED value.
pub const STATES: [&str; 8] =
    ["applied", "approved", "rejected", "made", "active", "frozen", "revoked", "not_yet_applied"];

/// What a status answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTbs {
    /// The seal.
    pub es_id: String,
    /// Index into [`STATES`].
    pub state: u8,
    /// From.
    pub since: SystemTime,
    /// To (absent: still when produced).
    pub until: Option<SystemTime>,
    /// The reason given.
    pub reason: Option<String>,
    /// When it was said.
    pub produced_at: SystemTime,
    /// Ask again after (open stretches only).
    pub next_update: Option<SystemTime>,
}

impl StatusTbs {
    /// The state's name.
    pub fn state_name(&self) -> &'static str {
        STATES.get(self.state as usize).copied().unwrap_or("unknown")
    }

    /// Whether the answer covers `at`: within [since, until); for a stretch still open, from
    /// `since` until `nextUpdate` (as an OCSP response stays current until its nextUpdate: the
    /// registry said so at `producedAt`, and the next answer after a change says otherwise), or
    /// until `producedAt` when no `nextUpdate` is given.
    pub fn covers(&self, at: SystemTime) -> bool {
        at >= self.since
            && match (self.until, self.next_update) {
                (Some(u), _) => at < u,
                (None, Some(n)) => at < n,
                (None, None) => at <= self.produced_at,
            }
    }
}

/// The DER of `TBSSealStatus`.
pub fn tbs(s: &StatusTbs) -> Result<Vec<u8>, SesError> {
    if s.state as usize >= STATES.len() {
        return Err(SesError(format!("state {} is not defined", s.state)));
    }
    let mut parts = vec![der_int(1), ses::der_ia5(&s.es_id)?, der_tlv(0x0a, &[s.state]), ses::der_time_ms(s.since)];
    if let Some(u) = s.until {
        parts.push(der_tlv(0xa0, &ses::der_time_ms(u)));
    }
    if let Some(r) = &s.reason {
        parts.push(der_tlv(0xa1, &der_tlv(0x0c, r.as_bytes())));
    }
    parts.push(ses::der_time_ms(s.produced_at));
    if let Some(n) = s.next_update {
        parts.push(der_tlv(0xa2, &ses::der_time_ms(n)));
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(seq(&refs))
}

/// A signed answer: `tbs` signed by `signer`, the holder of `responder`'s key.
pub fn sign(tbs: &[u8], responder: &Cert, signer: &dyn KeySigner) -> Result<Vec<u8>, SesError> {
    let key = responder.public_key().map_err(|e| SesError(e.to_string()))?;
    if signer.verifying_key() != key {
        return Err(SesError("the signer's key is not the responder certificate's".into()));
    }
    let signature = signer.try_sign(tbs).map_err(|e| SesError(format!("signing: {e}")))?.into_vec();
    Ok(assemble(tbs, signature_oid(key.alg()), &signature, responder))
}

/// The answer from its parts, as [`sign`] makes it.
pub fn assemble(tbs: &[u8], sig_alg: &str, signature: &[u8], responder: &Cert) -> Vec<u8> {
    let alg = seq(&[&der_oid(sig_alg).unwrap_or_default()]);
    seq(&[tbs, &alg, &ses::der_bits(signature), &der_tlv(0xa0, &seq(&[responder.der()]))])
}

/// Reads `TBSSealStatus`.
pub fn parse_tbs(der: &[u8]) -> Result<StatusTbs, SesError> {
    let bad = |m: &str| SesError(format!("TBSSealStatus: {m}"));
    let (outer, _) = tlv(der)?;
    let el = children(&outer)?;
    if el.first().is_none_or(|v| v.tag != 0x02 || v.content != [1]) {
        return Err(bad("version is not 1"));
    }
    let es_id = el.get(1).filter(|t| t.tag == 0x16).ok_or_else(|| bad("no esID"))?;
    let state = el.get(2).filter(|t| t.tag == 0x0a && t.content.len() == 1).ok_or_else(|| bad("no state"))?;
    if state.content[0] as usize >= STATES.len() {
        return Err(bad("an unknown state"));
    }
    let since = ses::read_time_ms(el.get(3).ok_or_else(|| bad("no since"))?)?;
    let (mut until, mut reason, mut produced_at, mut next_update) = (None, None, None, None);
    for e in &el[4..] {
        match e.tag {
            0xa0 => until = Some(ses::read_time_ms(children(e)?.first().ok_or_else(|| bad("empty until"))?)?),
            0xa1 => {
                let r = children(e)?;
                let s = r.first().filter(|t| t.tag == 0x0c).ok_or_else(|| bad("reason is not UTF8String"))?;
                reason = Some(String::from_utf8(s.content.to_vec()).map_err(|_| bad("reason is not UTF-8"))?);
            }
            0x18 if produced_at.is_none() => produced_at = Some(ses::read_time_ms(e)?),
            0xa2 => {
                next_update = Some(ses::read_time_ms(children(e)?.first().ok_or_else(|| bad("empty nextUpdate"))?)?)
            }
            t => return Err(bad(&format!("unexpected tag 0x{t:02x}"))),
        }
    }
    Ok(StatusTbs {
        es_id: String::from_utf8_lossy(es_id.content).into_owned(),
        state: state.content[0],
        since,
        until,
        reason,
        produced_at: produced_at.ok_or_else(|| bad("no producedAt"))?,
        next_update,
    })
}

/// Verifies a signed answer offline against `anchors` (the issuing CA): the responder certificate
/// it carries chains to them and is for `OCSPSigning`, was valid when the answer was produced,
/// and its key signed the answer. Returns what the answer says.
pub fn verify(der: &[u8], anchors: &TrustStore) -> Result<StatusTbs, String> {
    let (outer, _) = tlv(der).map_err(|e| e.to_string())?;
    let el = children(&outer).map_err(|e| e.to_string())?;
    let (Some(tbs_tlv), Some(alg), Some(sig), Some(certs)) = (el.first(), el.get(1), el.get(2), el.get(3)) else {
        return Err("not a SealStatusResponse (four elements)".into());
    };
    let tbs = parse_tbs(tbs_tlv.raw).map_err(|e| e.to_string())?;
    let alg = children(alg).ok().and_then(|a| a.first().and_then(|o| oid(o, "signatureAlgorithm").ok()));
    let alg = alg.ok_or("no signatureAlgorithm")?;
    if sig.tag != 0x03 || sig.content.first() != Some(&0) {
        return Err("the signature is not a BIT STRING".into());
    }
    let inner = children(certs).map_err(|e| e.to_string())?;
    let list = inner.first().map(children).transpose().map_err(|e| e.to_string())?.unwrap_or_default();
    let responder = list.first().ok_or("the answer carries no responder certificate")?;
    let cert = Cert::parse(responder.raw).map_err(|e| format!("the responder certificate: {e}"))?;
    match cert.extended_key_usage() {
        Some((p, _)) if p.iter().any(|o| o == KP_OCSP_SIGNING) => {}
        _ => return Err("the responder certificate is not for signing status answers (OCSPSigning)".into()),
    }
    let carried: Vec<Cert> = list.iter().skip(1).filter_map(|c| Cert::parse(c.raw).ok()).collect();
    let reasons = anchors.check_with(&cert, tbs.produced_at, &carried);
    if !reasons.is_empty() {
        return Err(format!("the responder certificate: {}", reasons.join(", ")));
    }
    let key = cert.public_key().map_err(|e| e.to_string())?;
    if alg != signature_oid(key.alg()) {
        return Err(format!("signature algorithm {alg} does not fit the responder's {} key", key.alg()));
    }
    crypto::verify_message(&key, tbs_tlv.raw, &sig.content[1..])
        .map_err(|_| "the signature does not verify: the answer was altered or forged".to_string())?;
    Ok(tbs)
}
