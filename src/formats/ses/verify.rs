//! The standard's verification procedures step by step: GB/T 38540 §6.3 for a seal, §7.3 for a
//! signature, each step reported under a fixed name with `ok` true, false or null.

use super::*;

/// One step of a verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Step {
    /// Fixed name: `format`, `signer_signature`, `signer_in_cert_list`, `maker_signature`,
    /// `maker_certificate`, `seal_validity`, `signer_certificate`, `data_hash`, `timestamp`,
    /// `trust_chain`, `revocation`, `registry_state`.
    pub step: &'static str,
    /// Passed, failed, or could not run (`None`).
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
}

/// A verification's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Report {
    /// Every check that ran passed (and, with `require_trust`, every check ran).
    pub valid: bool,
    /// Every step, in the standard's order.
    pub steps: Vec<Step>,
    /// Tolerated deviations.
    pub warnings: Vec<String>,
}

/// The registry's verdict on seal `esID` at a time: `Some((ok, detail))` for seals made here.
pub type RegistryLookup<'a> = &'a dyn Fn(&str, SystemTime) -> Option<(bool, String)>;

/// What a verification may use beyond the structure.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Trust anchors (and CRLs) for the maker and signer certificates.
    pub trust: Option<&'a crate::formats::x509::TrustStore>,
    /// Whether CRLs were given (the revocation step runs only then).
    pub have_crls: bool,
    /// A check that could not run counts as failed.
    pub require_trust: bool,
    /// The time to judge a seal alone at (default: now).
    pub at: Option<SystemTime>,
    /// SM3 of the protected bytes, when known.
    pub document_sm3: Option<[u8; 32]>,
    /// The registry's verdict for seals made here: `Some((ok, detail))`.
    pub registry_state: Option<(bool, String)>,
    /// For documents with many signatures: the registry's verdict on seal `esID` at a signing time,
    /// asked per signature (`registry_state` is then left `None`).
    pub registry: Option<RegistryLookup<'a>>,
}

pub(crate) fn step(steps: &mut Vec<Step>, name: &'static str, ok: Option<bool>, detail: impl Into<String>) {
    steps.push(Step { step: name, ok, detail: detail.into() });
}

/// `t` as a UTC calendar time (times before 1970 included); `None` beyond what `time` represents.
pub(crate) fn utc(t: SystemTime) -> Option<::time::OffsetDateTime> {
    let secs =
        t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_else(|e| -(e.duration().as_secs() as i64));
    ::time::OffsetDateTime::from_unix_timestamp(secs).ok()
}

pub(crate) fn fmt_time(t: SystemTime) -> String {
    match utc(t) {
        Some(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => t.duration_since(UNIX_EPOCH).map(|d| d.as_secs().to_string()).unwrap_or_default(),
    }
}

pub(super) fn verify_with_cert(cert_der: &[u8], alg: &str, message: &[u8], sig: &[u8]) -> Result<(), String> {
    let cert = Cert::parse(cert_der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let key = cert.public_key().map_err(|e| format!("certificate key: {e}"))?;
    let fits = matches!(
        (alg, &key),
        (OID_SM2_SM3, PublicKey::Sm2(_)) | (crate::formats::oid::ECDSA_SHA256, PublicKey::P256(_))
    );
    if !fits {
        return Err(format!("algorithm {alg} does not fit the certificate's {} key", key.alg()));
    }
    crypto::verify_message(&key, message, sig).map_err(|_| "the signature does not verify".to_string())
}

pub(crate) fn cert_validity_at(cert_der: &[u8], at: SystemTime) -> (bool, String) {
    match Cert::parse(cert_der) {
        Err(e) => (false, format!("certificate does not parse: {e}")),
        Ok(c) => {
            let (from, to) = c.validity();
            let signs = c.key_usage().is_none_or(|(_, sign)| sign);
            let ok = at >= from && at <= to && signs;
            let usage = if signs { "" } else { "; its key usage allows neither digitalSignature nor nonRepudiation" };
            (
                ok,
                format!(
                    "{} valid {} to {}; judged at {}{usage}",
                    c.subject_text(),
                    fmt_time(from),
                    fmt_time(to),
                    fmt_time(at)
                ),
            )
        }
    }
}

/// The trust steps for certificates, at `at`.
/// `carried`: the certificates the document carries, through which a path to an anchor may pass.
pub(crate) fn trust_steps(
    steps: &mut Vec<Step>,
    certs: &[(&str, &[u8])],
    carried: &[Cert],
    at: SystemTime,
    opts: &VerifyOptions<'_>,
) {
    let Some(store) = opts.trust else {
        step(steps, "trust_chain", None, "no trust anchors given");
        step(steps, "revocation", None, "no CRL given");
        return;
    };
    // Each certificate's path is built once; both steps read it.
    let paths: Vec<(&str, Option<crate::formats::x509::PathCheck>)> = certs
        .iter()
        .map(|(who, der)| (*who, Cert::parse(der).ok().map(|c| store.check_path(&c, at, carried))))
        .collect();
    let untrusted: Vec<&str> = paths
        .iter()
        .filter(|(_, p)| {
            p.as_ref().is_none_or(|p| {
                p.reasons
                    .iter()
                    .any(|r| matches!(*r, "certificate_untrusted" | "issuer_not_a_ca" | "intermediate_not_valid"))
            })
        })
        .map(|(who, _)| *who)
        .collect();
    let detail = if untrusted.is_empty() {
        "chains to a trust anchor".to_string()
    } else {
        format!("untrusted: {}", untrusted.join(", "))
    };
    step(steps, "trust_chain", Some(untrusted.is_empty()), detail);
    if !opts.have_crls {
        step(steps, "revocation", None, "no CRL given");
        return;
    }
    let revoked: Vec<&str> = paths
        .iter()
        .filter(|(_, p)| p.as_ref().is_some_and(|p| p.reasons.contains(&"certificate_revoked")))
        .map(|(who, _)| *who)
        .collect();
    // A CA on a path without a CRL of its own: that certificate's revocation is unknown.
    let mut gaps: Vec<&str> =
        paths.iter().flat_map(|(_, p)| p.iter().flat_map(|p| p.revocation_gaps.iter().map(String::as_str))).collect();
    gaps.dedup();
    let (ok, detail) = match (revoked.is_empty(), gaps.is_empty()) {
        (false, _) => (Some(false), format!("revoked: {}", revoked.join(", "))),
        (true, true) => (Some(true), "not on the CRLs".to_string()),
        (true, false) => (None, format!("no CRL from {}", gaps.join("; "))),
    };
    step(steps, "revocation", ok, detail);
}

/// The certificates a seal carries (its certList of certificates, and its maker's), for paths.
fn carried_certs(seal: &SesSeal) -> Vec<Cert> {
    let listed: &[Vec<u8>] = match &seal.info.cert_list {
        CertList::Certs(c) => c,
        CertList::Digests(_) => &[],
    };
    listed.iter().chain(std::iter::once(&seal.maker_cert)).filter_map(|d| Cert::parse(d).ok()).collect()
}

/// The order of GB/T 38540 §7.3 (and §6.3 for a seal alone), which every report follows: what was
/// signed, by whom, under which seal, with which certificates, valid when.
const ORDER: &[&str] = &[
    "format",
    "references",
    "data_hash",
    "signer_signature",
    "signer_in_cert_list",
    "maker_signature",
    "maker_certificate",
    "signer_certificate",
    "trust_chain",
    "revocation",
    "timestamp",
    "seal_validity",
    "registry_state",
];

pub(crate) fn finish(mut steps: Vec<Step>, warnings: Vec<String>, require_trust: bool) -> Report {
    steps.sort_by_key(|s| ORDER.iter().position(|o| *o == s.step).unwrap_or(ORDER.len()));
    let valid = steps.iter().all(|s| s.ok != Some(false))
        && (!require_trust || steps.iter().all(|s| s.ok.is_some() || !matches!(s.step, "trust_chain" | "revocation")));
    Report { valid, steps, warnings }
}

/// GB/T 38540 §6.3 for a seal alone, judged at `opts.at` (default now).
pub fn verify_seal(seal: &SesSeal, opts: &VerifyOptions<'_>) -> Report {
    let mut warnings = seal.warnings.clone();
    let mut steps = Vec::new();
    let at = opts.at.unwrap_or_else(SystemTime::now);
    step(
        &mut steps,
        "format",
        Some(true),
        format!("{:?} seal '{}' (esID {}), vid {}", seal.version, seal.info.name, seal.info.es_id, seal.info.vid),
    );
    maker_steps(&mut steps, seal, at, &mut warnings);
    let (from, to) = (seal.info.valid_start.at, seal.info.valid_end.at);
    step(
        &mut steps,
        "seal_validity",
        Some(at >= from && at <= to),
        format!("valid {} to {}; judged at {}", fmt_time(from), fmt_time(to), fmt_time(at)),
    );
    trust_steps(&mut steps, &[("maker certificate", &seal.maker_cert)], &carried_certs(seal), at, opts);
    registry_step(&mut steps, opts);
    finish(steps, warnings, opts.require_trust)
}

/// The seal maker's signature over the seal (GB/T 38540 §6.3 b), alone: `Err` says why it fails.
pub fn verify_maker_signature(seal: &SesSeal) -> Result<(), String> {
    maker_signature(seal, &mut Vec::new())
}

fn maker_signature(seal: &SesSeal, warnings: &mut Vec<String>) -> Result<(), String> {
    let sig = signature_for_verify(&seal.signed_value, warnings, "maker signature");
    verify_with_cert(&seal.maker_cert, &seal.sign_alg, &seal.signed_bytes, &sig)
}

pub(super) fn maker_steps(steps: &mut Vec<Step>, seal: &SesSeal, at: SystemTime, warnings: &mut Vec<String>) {
    let what = match seal.version {
        SesVersion::V4 => "over the stored SES_SealInfo",
        SesVersion::V1 => "over SEQUENCE{SES_SealInfo, cert, signatureAlgorithm}",
    };
    match maker_signature(seal, warnings) {
        Ok(()) => step(steps, "maker_signature", Some(true), format!("verifies {what}")),
        Err(e) => step(steps, "maker_signature", Some(false), format!("{e} ({what})")),
    }
    let (ok, detail) = cert_validity_at(&seal.maker_cert, at);
    step(steps, "maker_certificate", Some(ok), detail);
}

pub(super) fn registry_step(steps: &mut Vec<Step>, opts: &VerifyOptions<'_>) {
    match &opts.registry_state {
        Some((ok, detail)) => step(steps, "registry_state", Some(*ok), detail.clone()),
        None => step(steps, "registry_state", None, "not a seal made here"),
    }
}

/// GB/T 38540 §7.3 for a signature: the seal and the signer certificate judged at `timeInfo`.
pub fn verify_signature(sig: &SesSignature, opts: &VerifyOptions<'_>) -> Report {
    let mut warnings = sig.warnings.clone();
    let mut steps = Vec::new();
    let seal = &sig.seal;
    step(
        &mut steps,
        "format",
        Some(true),
        format!(
            "{:?} signature with seal '{}' (esID {}), propertyInfo {}",
            sig.version, seal.info.name, seal.info.es_id, sig.property_info
        ),
    );
    let value = signature_for_verify(&sig.signature, &mut warnings, "signature");
    match verify_with_cert(&sig.signer_cert, &sig.sign_alg, &sig.tbs, &value) {
        Ok(()) => step(&mut steps, "signer_signature", Some(true), "verifies over the stored TBS_Sign"),
        Err(e) => step(&mut steps, "signer_signature", Some(false), e),
    }
    let listed = match &seal.info.cert_list {
        CertList::Certs(certs) => {
            (certs.contains(&sig.signer_cert), "the signer certificate is in the seal's certList")
        }
        CertList::Digests(d) => {
            let sm3 = crypto::sm3(&sig.signer_cert);
            let sha256 = crypto::sha256(&sig.signer_cert);
            (
                d.iter().any(|(_, v)| v[..] == sm3[..] || v[..] == sha256[..]),
                "the signer certificate's digest is in the seal's certList",
            )
        }
    };
    step(
        &mut steps,
        "signer_in_cert_list",
        Some(listed.0),
        if listed.0 {
            listed.1.to_string()
        } else {
            "the signer certificate is not in the seal's certList".to_string()
        },
    );
    // GB/T 38540 §7.3 h): a time-stamp over the signature value, verified; when it holds, the seal
    // and the certificates are judged at its time, else at timeInfo (the signer's own claim).
    let stamp = sig.timestamp.as_ref().map(|t| crate::formats::tsp::verify_token(t, &sig.signature, opts));
    let stamped_at = stamp.as_ref().filter(|s| s.ok).and_then(|s| s.time);
    let claimed = sig.time_info.map(|t| t.at);
    let at = stamped_at.or(claimed);
    let by = if stamped_at.is_some() { "by its time-stamp" } else { "by timeInfo" };
    match (&stamp, stamped_at, claimed) {
        (None, ..) => step(&mut steps, "timestamp", None, "no time-stamp"),
        (Some(s), None, _) => step(&mut steps, "timestamp", Some(false), s.detail.clone()),
        // timeInfo may not be later than the time-stamp (by more than a second: timeInfo has whole
        // seconds, the stamp milliseconds).
        (Some(s), Some(t), Some(c)) if c > t + std::time::Duration::from_secs(1) => step(
            &mut steps,
            "timestamp",
            Some(false),
            format!("timeInfo {} is later than the time-stamp's {}; {}", fmt_time(c), fmt_time(t), s.detail),
        ),
        (Some(s), Some(_), _) => step(
            &mut steps,
            "timestamp",
            Some(true),
            format!("{}; the seal and the certificates are judged at its time", s.detail),
        ),
    }
    maker_steps(&mut steps, seal, at.unwrap_or_else(SystemTime::now), &mut warnings);
    match at {
        Some(at) => {
            let (from, to) = (seal.info.valid_start.at, seal.info.valid_end.at);
            step(
                &mut steps,
                "seal_validity",
                Some(at >= from && at <= to),
                format!("valid {} to {}; signed at {} ({by})", fmt_time(from), fmt_time(to), fmt_time(at)),
            );
            let (ok, detail) = cert_validity_at(&sig.signer_cert, at);
            step(&mut steps, "signer_certificate", Some(ok), detail);
        }
        None => {
            step(&mut steps, "seal_validity", None, "timeInfo is a time-stamp that was not read");
            step(&mut steps, "signer_certificate", None, "timeInfo is a time-stamp that was not read");
        }
    }
    match opts.document_sm3 {
        Some(d) => {
            let ok = sig.data_hash == d;
            step(
                &mut steps,
                "data_hash",
                Some(ok),
                if ok {
                    "dataHash is SM3 of the document".to_string()
                } else {
                    format!("dataHash {} is not SM3 of the document {}", hex::encode(&sig.data_hash), hex::encode(d))
                },
            );
        }
        None => {
            step(&mut steps, "data_hash", None, format!("no document given; dataHash {}", hex::encode(&sig.data_hash)))
        }
    }
    let at = at.unwrap_or_else(SystemTime::now);
    trust_steps(
        &mut steps,
        &[("maker certificate", &seal.maker_cert), ("signer certificate", &sig.signer_cert)],
        &carried_certs(seal),
        at,
        opts,
    );
    match opts.registry {
        Some(lookup) => {
            let state = lookup(&seal.info.es_id, at);
            registry_step(&mut steps, &VerifyOptions { registry_state: state, ..Default::default() });
        }
        None => registry_step(&mut steps, opts),
    }
    finish(steps, warnings, opts.require_trust)
}

/// A report for input that is not a seal or signature at all.
pub fn unreadable(e: &SesError) -> Report {
    Report {
        valid: false,
        steps: vec![Step { step: "format", ok: Some(false), detail: e.to_string() }],
        warnings: Vec::new(),
    }
}
