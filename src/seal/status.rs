//! The seal-status service (电子印章状态查询): whether seal X was valid at time T, from the seal's
//! history in the registry, answered as JSON or as an answer signed by the status responder
//! (`formats::seal_status`, docs/seal-status.md).
//!
//! Answers are pre-signed, as OCSP responders do: an answer covers one stretch of a seal's history
//! (a state from `since` to `until`), so every question about a time inside a closed stretch gets
//! the same signed bytes, kept in memory. A stretch still open is signed again once its answer is
//! older than `[status] refresh_s`. A change of state closes the stretch, and the next question
//! finds a new one: a cached answer never outlives the state it describes. The token signs once
//! per stretch and refresh, never once per question.

use super::*;
use crate::formats::seal_status::{self, StatusTbs, STATES};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[status]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSettings {
    /// An answer about a seal's current state is signed again after this many seconds (and says
    /// so in `nextUpdate`).
    pub refresh_s: u64,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings { refresh_s: 300 }
    }
}

/// Answers kept at most; past it the cache starts over.
const MAX_CACHED: usize = 100_000;

/// What the registry says of a seal at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The seal.
    pub es_id: String,
    /// The time asked about, ms.
    pub at_ms: u64,
    /// The state then (`not_yet_applied` before the seal's first step).
    pub state: &'static str,
    /// The state held from, ms.
    pub since_ms: u64,
    /// ... to, ms (`None`: it still holds).
    pub until_ms: Option<u64>,
    /// The reason given for the change into it.
    pub reason: Option<String>,
    /// When the registry was read, ms.
    pub produced_ms: u64,
    /// The stretch's place in the seal's history (0: before its first step).
    pub stretch: usize,
}

/// A signed answer.
#[derive(Debug)]
pub struct SignedStatus {
    /// `SealStatusResponse` DER (shared, not copied, by every answer that sends it).
    pub der: bytes::Bytes,
    /// When it was produced, ms.
    pub produced_ms: u64,
}

/// A stretch of a seal's history: (esID, its place in the history, state, since, until).
type Stretch = (String, usize, &'static str, u64, Option<u64>);

/// The seal-status service.
pub struct SealStatus {
    ledger: Arc<Ledger>,
    pki: Arc<Pki>,
    settings: StatusSettings,
    cache: Mutex<HashMap<Stretch, Arc<SignedStatus>>>,
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl SealStatus {
    pub(super) fn new(ledger: Arc<Ledger>, pki: Arc<Pki>, settings: StatusSettings) -> Self {
        SealStatus { ledger, pki, settings, cache: Mutex::new(HashMap::new()) }
    }

    /// The state of seal `es_id` at `at_ms` (not after now), from its history.
    pub fn answer(&self, es_id: &str, at_ms: u64) -> Result<StatusAnswer, SealError> {
        // The seal's lock (shared), so that no transition is between taking its time and committing
        // it; then the clock before the registry: the answer is true as of `produced_ms`.
        let slot = self.ledger.slot(es_id);
        let _no_transition = slot.lock.read();
        let produced_ms = now_ms();
        if at_ms > produced_ms + 5_000 {
            return Err(SealError::BadInput("`at` is in the future: the status of a seal is known up to now".into()));
        }
        // The history alone is decoded (a seal's record also carries its images and SESeals).
        #[derive(Deserialize)]
        struct History {
            #[serde(default)]
            history: Vec<HistoryEntry>,
        }
        let seal = self
            .ledger
            .store
            .get::<History>(tree::SEALS, es_id)?
            .ok_or_else(|| SealError::NotFound("unknown_seal", format!("no seal {es_id} was made here")))?;
        let i = seal.history.iter().rposition(|h| h.time_ms <= at_ms);
        let answer = match i {
            None => StatusAnswer {
                es_id: es_id.to_string(),
                at_ms,
                state: "not_yet_applied",
                since_ms: 0,
                until_ms: seal.history.first().map(|h| h.time_ms),
                reason: None,
                produced_ms,
                stretch: 0,
            },
            Some(i) => {
                let h = &seal.history[i];
                StatusAnswer {
                    es_id: es_id.to_string(),
                    at_ms,
                    state: h.state.name(),
                    since_ms: h.time_ms,
                    until_ms: seal.history.get(i + 1).map(|n| n.time_ms),
                    reason: h.reason.clone(),
                    produced_ms,
                    stretch: i + 1,
                }
            }
        };
        Ok(answer)
    }

    /// The answer for seal `es_id` at `at_ms`, signed by the status responder: from the cache
    /// when an answer for that stretch is there (and, for a stretch still open, fresh).
    pub fn signed(&self, es_id: &str, at_ms: u64) -> Result<(StatusAnswer, Arc<SignedStatus>), SealError> {
        let answer = self.answer(es_id, at_ms)?;
        let key = (answer.es_id.clone(), answer.stretch, answer.state, answer.since_ms, answer.until_ms);
        let refresh_ms = self.settings.refresh_s.saturating_mul(1000);
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if answer.until_ms.is_some() || answer.produced_ms.saturating_sub(hit.produced_ms) < refresh_ms {
                return Ok((answer, hit.clone()));
            }
        }
        let state = STATES.iter().position(|s| *s == answer.state).unwrap_or(0) as u8;
        let tbs = StatusTbs {
            es_id: answer.es_id.clone(),
            state,
            since: at(answer.since_ms),
            until: answer.until_ms.map(at),
            reason: answer.reason.clone(),
            produced_at: at(answer.produced_ms),
            next_update: answer.until_ms.is_none().then(|| at(answer.produced_ms + refresh_ms)),
        };
        let der = self.sign(&tbs)?;
        let signed = Arc::new(SignedStatus { der: der.into(), produced_ms: answer.produced_ms });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let _ = cache.insert(key, signed.clone());
        Ok((answer, signed))
    }

    fn sign(&self, tbs: &StatusTbs) -> Result<Vec<u8>, SealError> {
        let key = self.pki.status_responder()?.ok_or_else(|| {
            SealError::Conflict(
                "no_status_responder",
                "no status-responder key: run `seald init` (or restart seald)".into(),
            )
        })?;
        let cert = Cert::parse(key.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let public = cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?;
        let signer = crate::token::TokenKey::with_public(&self.ledger.pool, &KeyId::from_hex(&key.key_id)?, public);
        let tbs = seal_status::tbs(tbs).map_err(|e| SealError::BadInput(e.to_string()))?;
        seal_status::sign(&tbs, &cert, &signer).map_err(|e| super::signing_failed(&signer, e))
    }
}
