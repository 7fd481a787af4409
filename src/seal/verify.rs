//! Verification of seals, seal signatures and SignedData with the registry's knowledge: the issuing
//! CA as a trust anchor, and for seals made here their state at the signing time.

use super::*;
use std::sync::Arc;

/// A verification report with its verdict. Fail closed: `valid` is true only when every check that
/// decides validity ran and passed; a signature checked without its document is `signature_only`
/// and not valid; the checks that did not run are named in `not_run`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Judged {
    /// `valid`, `invalid` (a check failed), `signature_only` (the signature verifies but the document
    /// was not given, so nothing says what it signs) or `incomplete` (another deciding check could not
    /// run).
    #[cfg_attr(test, schemars(extend("enum" = ["valid", "invalid", "signature_only", "incomplete"])))]
    pub verdict: &'static str,
    /// Checks that did not run (deciding or not).
    pub not_run: Vec<&'static str>,
    /// The steps; `valid` as the verdict says.
    #[serde(flatten)]
    pub report: crate::formats::ses::Report,
}

impl std::ops::Deref for Judged {
    type Target = crate::formats::ses::Report;
    fn deref(&self) -> &Self::Target {
        &self.report
    }
}

/// Checks without which nothing is valid: what was signed, by whom, and whether the signer's seal and
/// certificate were good then.
const DECIDING: &[&str] =
    &["format", "signer_signature", "data_hash", "seal_validity", "signer_certificate", "trust_chain"];

/// The verdict on `report`.
pub fn judge(mut report: crate::formats::ses::Report) -> Judged {
    let not_run: Vec<&'static str> = report.steps.iter().filter(|s| s.ok.is_none()).map(|s| s.step).collect();
    let failed = !report.valid || report.steps.iter().any(|s| s.ok == Some(false));
    let missing: Vec<&str> = not_run.iter().copied().filter(|s| DECIDING.contains(s)).collect();
    let verdict = match (failed, missing.as_slice()) {
        (true, _) => "invalid",
        (false, []) => "valid",
        (false, ["data_hash"]) => "signature_only",
        (false, _) => "incomplete",
    };
    report.valid = verdict == "valid";
    Judged { verdict, not_run, report }
}

/// One signature of an OFD package, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct JudgedOfdSignature {
    /// Its `ID` in `Signatures.xml`.
    pub id: String,
    /// `Seal` (an `SES_Signature`) or `Sign` (a SignedData).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where its `Signature.xml` is.
    pub base_loc: String,
    /// Each file its `References` name: the SM3 found, and whether it matches the `CheckValue`.
    pub references: Vec<crate::formats::ofd::ReferenceCheck>,
    /// It protects `Signatures.xml` too: nothing may be added after it.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The verdict and the steps, in GB/T 38540 §7.3 order.
    #[serde(flatten)]
    pub judged: Judged,
}

/// An OFD package's verification: each signature, and what the package holds beside them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct OfdVerdict {
    /// `valid` when there are signatures, every one is valid, and nothing in the package is left
    /// unsigned after a final seal or unlisted; `invalid` when any check failed or there is no
    /// signature; else `incomplete`.
    #[cfg_attr(test, schemars(extend("enum" = ["valid", "invalid", "incomplete"])))]
    pub verdict: &'static str,
    /// `verdict` is `valid`.
    pub valid: bool,
    /// Every signature the package lists, in order.
    pub signatures: Vec<JudgedOfdSignature>,
    /// `Signature.xml` files that no `Signatures.xml` lists.
    pub unlisted_signatures: Vec<String>,
    /// Files a final signature does not cover (added after it).
    pub added_after_final: Vec<String>,
}

/// Verification with the registry's knowledge.
pub struct Verification {
    ledger: Arc<Ledger>,
    pki: Arc<Pki>,
}

impl Verification {
    pub(super) fn new(ledger: Arc<Ledger>, pki: Arc<Pki>) -> Self {
        Verification { ledger, pki }
    }
}

impl Verification {
    /// Verifies a SignedData with `base` trust anchors plus the issuing CA.
    pub fn verify_cms(&self, bytes: &[u8], detached: Option<&[u8]>, base: &crate::formats::x509::TrustStore) -> Judged {
        let trust = self.trust(base);
        let opts = crate::formats::ses::VerifyOptions {
            trust: Some(&trust),
            have_crls: trust.has_crls(),
            ..Default::default()
        };
        judge(crate::formats::cms::verify(bytes, detached, &opts))
    }

    /// The registry's verdict on a seal made here, at `at_ms`: its state then (from its history).
    /// `None` for seals not made here.
    pub fn registry_state(&self, es_id: &str, at_ms: u64) -> Option<(bool, String)> {
        let seal = self.ledger.store.get::<Seal>(tree::SEALS, es_id).ok().flatten()?;
        // `timeInfo` has whole seconds: the seal counts as active then if it was active at any
        // moment of that second. A time-stamp's time has milliseconds: it is taken exactly.
        let state = if at_ms.is_multiple_of(1000) {
            let start = at_ms;
            let mut states: Vec<SealState> =
                seal.history.iter().take_while(|h| h.time_ms < start).last().map(|h| h.state).into_iter().collect();
            states.extend(
                seal.history.iter().filter(|h| h.time_ms >= start && h.time_ms < start + 1000).map(|h| h.state),
            );
            if states.contains(&SealState::Active) {
                Some(SealState::Active)
            } else {
                states.last().copied()
            }
        } else {
            seal.history.iter().take_while(|h| h.time_ms <= at_ms).last().map(|h| h.state)
        };
        Some(match state {
            Some(SealState::Active) => (true, format!("seal {es_id} was active then (now {})", seal.state.name())),
            Some(s) => (false, format!("seal {es_id} was {} then (now {})", s.name(), seal.state.name())),
            None => (false, format!("seal {es_id} did not exist yet then")),
        })
    }

    /// GB/T 38540 §7.3 for a signature, with the registry's state for seals made here, `base` trust
    /// anchors (the configured ones) plus the issuing CA, and `document_sm3` when known.
    pub fn verify_ses(
        &self,
        bytes: &[u8],
        document_sm3: Option<[u8; 32]>,
        base: &crate::formats::x509::TrustStore,
    ) -> Judged {
        use crate::formats::ses;
        judge(match ses::SesSignature::parse(bytes) {
            Err(e) => ses::unreadable(&e),
            Ok(sig) => {
                let trust = self.trust(base);
                let lookup = |es_id: &str, at: std::time::SystemTime| {
                    let at_ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                    self.registry_state(es_id, at_ms)
                };
                let opts = ses::VerifyOptions {
                    trust: Some(&trust),
                    have_crls: trust.has_crls(),
                    document_sm3,
                    registry: Some(&lookup),
                    ..Default::default()
                };
                ses::verify_signature(&sig, &opts)
            }
        })
    }

    /// Every signature of an OFD package (GB/T 33190 §18, GB/T 38540 §7.3), with `base` trust
    /// anchors plus the issuing CA, and for seals made here their state at each signing time.
    pub fn verify_ofd(
        &self,
        bytes: &[u8],
        base: &crate::formats::x509::TrustStore,
        limits: &crate::formats::ofd::Limits,
    ) -> Result<OfdVerdict, crate::formats::ofd::OfdError> {
        let trust = self.trust(base);
        let lookup = |es_id: &str, at: std::time::SystemTime| {
            let at_ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            self.registry_state(es_id, at_ms)
        };
        let opts = crate::formats::ses::VerifyOptions {
            trust: Some(&trust),
            have_crls: trust.has_crls(),
            registry: Some(&lookup),
            ..Default::default()
        };
        let report = crate::formats::ofd::verify_within(bytes, &opts, limits)?;
        let signatures: Vec<JudgedOfdSignature> = report
            .signatures
            .into_iter()
            .map(|s| JudgedOfdSignature {
                id: s.id,
                kind: s.kind,
                base_loc: s.base_loc,
                references: s.references,
                is_final: s.is_final,
                judged: judge(s.report),
            })
            .collect();
        let loose = !report.unlisted_signatures.is_empty() || !report.added_after_final.is_empty();
        // A document without a signature proves nothing: not valid.
        let verdict = if loose || signatures.is_empty() || signatures.iter().any(|s| s.judged.verdict == "invalid") {
            "invalid"
        } else if signatures.iter().all(|s| s.judged.verdict == "valid") {
            "valid"
        } else {
            "incomplete"
        };
        Ok(OfdVerdict {
            verdict,
            valid: verdict == "valid",
            signatures,
            unlisted_signatures: report.unlisted_signatures,
            added_after_final: report.added_after_final,
        })
    }

    /// GB/T 38540 §6.3 for a seal alone at `at` (default now), with the registry's current state for
    /// seals made here.
    pub fn verify_ses_seal(
        &self,
        bytes: &[u8],
        at: Option<std::time::SystemTime>,
        base: &crate::formats::x509::TrustStore,
    ) -> Judged {
        use crate::formats::ses;
        judge(match ses::SesSeal::parse(bytes) {
            Err(e) => ses::unreadable(&e),
            Ok(seal) => {
                let when = at.unwrap_or_else(std::time::SystemTime::now);
                let at_ms = when.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                let trust = self.trust(base);
                let opts = ses::VerifyOptions {
                    trust: Some(&trust),
                    have_crls: trust.has_crls(),
                    at,
                    registry_state: match at {
                        Some(_) => self.registry_state(&seal.info.es_id, at_ms),
                        None => self.ledger.store.get::<Seal>(tree::SEALS, &seal.info.es_id).ok().flatten().map(|s| {
                            (s.state == SealState::Active, format!("seal {} is {} now", s.id, s.state.name()))
                        }),
                    },
                    ..Default::default()
                };
                ses::verify_seal(&seal, &opts)
            }
        })
    }

    /// `base` plus the issuing CA as a trust anchor (the seal maker and seal certificates chain to it).
    pub fn trust(&self, base: &crate::formats::x509::TrustStore) -> crate::formats::x509::TrustStore {
        let mut t = base.clone();
        if let Ok(Some(ca)) = self.pki.issuing_ca() {
            // Retired CA versions stay anchors: the certificates they issued still verify.
            for pem in std::iter::once(&ca.cert_pem).chain(ca.retired.iter().map(|r| &r.cert_pem)) {
                if let Ok(c) = crate::formats::x509::Cert::parse(pem.as_bytes()) {
                    t = t.with_anchor(c);
                }
            }
        }
        t
    }
}
