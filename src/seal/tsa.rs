//! The time-stamp authority (RFC 3161, the base of GB/T 20520): answers a `TimeStampReq` with a
//! token signed in the token by the TSA key, whose certificate the issuing CA made for time-stamping
//! only. Every token issued is journalled (serial, imprint, time, policy) before it is answered.
//! Nothing is stamped while the clock is not synchronised.
//!
//! Serial numbers are `generation << 32 | n`: the generation is a counter journalled the first time
//! the TSA stamps after a start, `n` counts up from 1 in this process. They are unique across
//! restarts and crashes without a journal write per serial.

use super::*;
use crate::clock::{ClockSource, ClockState};
use crate::formats::tsp::{self, FailInfo, NotDer, Rejected, Request, Stamp};
use std::sync::Arc;

/// `[tsa]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaSettings {
    /// The TSA key's algorithm when it is made: `sm2` or `p256` (default: the issuing CA's).
    pub alg: Option<KeyAlg>,
    /// The policy OID tokens are issued under (and the only one requests may ask for).
    pub policy: String,
    /// The accuracy stated in every token, milliseconds (0: not stated).
    pub accuracy_ms: u64,
    /// Whether the clock is synchronised: ask the kernel, or trust it.
    pub clock: ClockSource,
    /// Seals' time-stamps (`timestamp: true`) come from this RFC 3161 URL (`http://`) instead of
    /// the appliance's own TSA.
    pub external_url: Option<String>,
    /// How long a call to `external_url` may take, milliseconds.
    pub external_timeout_ms: u64,
}

impl Default for TsaSettings {
    fn default() -> Self {
        TsaSettings {
            alg: None,
            policy: crate::formats::oid::SEALD_TSA_POLICY.to_string(),
            accuracy_ms: 1000,
            clock: ClockSource::Kernel,
            external_url: None,
            external_timeout_ms: 5000,
        }
    }
}

impl TsaSettings {
    /// Why these settings cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        // Every arc within 32 bits first (the OID parser underneath overflows on larger ones).
        let arcs_fit = self.policy.split('.').all(|a| a.parse::<u32>().is_ok());
        if !arcs_fit || der::asn1::ObjectIdentifier::new(&self.policy).is_err() {
            return Err(format!("[tsa] policy '{}' is not an OID", self.policy));
        }
        if matches!(self.alg, Some(KeyAlg::Rsa2048 | KeyAlg::Rsa3072)) {
            return Err("[tsa] alg must be sm2 or p256".into());
        }
        if self.accuracy_ms > 60_000 {
            return Err("[tsa] accuracy_ms must be at most 60000".into());
        }
        if let Some(u) = &self.external_url {
            let _ = split_url(u).map_err(|e| format!("[tsa] external_url: {e}"))?;
        }
        if self.external_timeout_ms == 0 {
            return Err("[tsa] external_timeout_ms must be above 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Serials {
    generation: u64,
    next: u64,
}

/// The time-stamp authority.
pub struct Tsa {
    ledger: Arc<Ledger>,
    pki: Arc<Pki>,
    settings: TsaSettings,
    serials: Mutex<Option<Serials>>,
}

impl Tsa {
    pub(super) fn new(ledger: Arc<Ledger>, pki: Arc<Pki>, settings: TsaSettings) -> Self {
        Tsa { ledger, pki, settings, serials: Mutex::new(None) }
    }

    /// The same authority (key, journal, serial numbers' generation counter) with other settings.
    pub fn with_settings(&self, settings: TsaSettings) -> Tsa {
        Tsa::new(self.ledger.clone(), self.pki.clone(), settings)
    }

    /// The settings.
    pub fn settings(&self) -> &TsaSettings {
        &self.settings
    }

    /// The clock's state, as the TSA judges it.
    pub fn clock(&self) -> ClockState {
        crate::clock::state(self.settings.clock)
    }

    /// Answers a `TimeStampReq` (DER) with a `TimeStampResp` (DER): granted, or a rejection that
    /// says why. `Err` only for a body that is not DER at all.
    pub fn respond(&self, p: &Principal, der: &[u8]) -> Result<Vec<u8>, NotDer> {
        let req = match tsp::parse_request(der) {
            Ok(r) => r,
            Err(Ok(not_der)) => return Err(not_der),
            Err(Err(rejected)) => return Ok(tsp::rejection(&rejected)),
        };
        Ok(match self.issue(p, &req) {
            Ok(token) => tsp::granted(&token),
            Err(rejected) => {
                tracing::info!(fail = rejected.fail.name(), reason = %rejected.text, "time-stamp refused");
                tsp::rejection(&rejected)
            }
        })
    }

    /// A token over `hashed` (an imprint of `hash_alg`), with the TSA certificate: for the
    /// time-stamps seald puts into its own seals.
    pub fn stamp(&self, p: &Principal, hash_alg: &str, hashed: &[u8]) -> Result<Vec<u8>, Rejected> {
        let req = Request {
            hash_alg: hash_alg.to_string(),
            hashed: hashed.to_vec(),
            imprint_der: None,
            policy: None,
            nonce: None,
            cert_req: true,
        };
        self.issue(p, &req)
    }

    /// Issues one token for `req` and journals it; the token only once its record is durable.
    fn issue(&self, p: &Principal, req: &Request) -> Result<Vec<u8>, Rejected> {
        let system = |m: String| Rejected::new(FailInfo::SystemFailure, m);
        if let Some(asked) = &req.policy {
            if *asked != self.settings.policy {
                return Err(Rejected::new(
                    FailInfo::UnacceptedPolicy,
                    format!("policy {asked} is not this TSA's ({})", self.settings.policy),
                ));
            }
        }
        let clock = self.clock();
        if !clock.synchronised {
            return Err(Rejected::new(FailInfo::TimeNotAvailable, clock.detail));
        }
        // The accuracy every token states must hold: the kernel's own bound on its error within it.
        let stated_us = self.settings.accuracy_ms.saturating_mul(1000);
        if let Some(err) = clock.max_error_us.filter(|e| stated_us > 0 && *e as u64 > stated_us) {
            return Err(Rejected::new(
                FailInfo::TimeNotAvailable,
                format!(
                    "the kernel's maximum clock error ({err} µs) exceeds the accuracy tokens state ({stated_us} µs)"
                ),
            ));
        }
        let key = self
            .pki
            .tsa()
            .map_err(|e| system(e.to_string()))?
            .ok_or_else(|| system("this appliance has no TSA key: run `seald init` (or restart seald)".into()))?;
        let cert = Cert::parse(key.cert_pem.as_bytes()).map_err(|e| system(format!("the TSA certificate: {e}")))?;
        let (from, to) = cert.validity();
        let now = std::time::SystemTime::now();
        if now < from || now > to {
            return Err(system(format!(
                "the TSA certificate is not valid now ({} to {}): renew it",
                crate::formats::ses::fmt_time(from),
                crate::formats::ses::fmt_time(to)
            )));
        }
        let public = cert.public_key().map_err(|e| system(format!("the TSA certificate: {e}")))?;
        let id = KeyId::from_hex(&key.key_id).map_err(|e| system(e.to_string()))?;
        let signer = crate::token::TokenKey::with_public(&self.ledger.pool, &id, public);
        let serial = self.next_serial()?;
        let time = std::time::SystemTime::now();
        let stamp = Stamp {
            request: req,
            policy: &self.settings.policy,
            serial,
            time,
            accuracy_ms: self.settings.accuracy_ms,
            tsa_cert: &cert,
        };
        let token = tsp::token(&stamp, &signer).map_err(|e| match signer.blame(e) {
            Ok(token_error) => Rejected::new(FailInfo::TimeNotAvailable, format!("the token: {token_error}")),
            Err(text) => system(text),
        })?;
        let ev = AuditEvent::new(actor(p), "tsa.stamp", "key:tsa", "ok")
            .detail("serial", serial.to_string())
            .detail("hash_alg", tsp::digest_name(&req.hash_alg).to_string())
            .detail("imprint", hex::encode(&req.hashed))
            .detail("policy", self.settings.policy.clone())
            .detail(
                "gen_time_ms",
                time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            )
            .detail("token_sha256", hex::encode(crate::crypto::sha256(&token)));
        let _seq = self.ledger.commit(ev).map_err(|e| system(format!("the stamp could not be recorded: {e}")))?;
        Ok(token)
    }

    /// The next serial number (see the module's documentation).
    fn next_serial(&self) -> Result<u64, Rejected> {
        let mut g = self.serials.lock().unwrap_or_else(|p| p.into_inner());
        let exhausted = g.is_some_and(|s| s.next > u64::from(u32::MAX));
        if g.is_none() || exhausted {
            let ev = AuditEvent::new(Actor::system(), "tsa.generation", "key:tsa", "ok")
                .change(Change::Add { key: "tsa.generation".into(), delta: 1 });
            let fail = |e: SealError| Rejected::new(FailInfo::SystemFailure, format!("serial numbers: {e}"));
            let _ = self.ledger.commit(ev).map_err(fail)?;
            let generation = self.ledger.store.counter("tsa.generation").map_err(|e| fail(e.into()))?;
            *g = Some(Serials { generation: generation.max(1) as u64, next: 1 });
        }
        let s = g.as_mut().ok_or_else(|| Rejected::new(FailInfo::SystemFailure, "no serial".to_string()))?;
        let serial = (s.generation << 32) | s.next;
        s.next += 1;
        Ok(serial)
    }
}

/// A token from an outside TSA over `hashed`: a `TimeStampReq` POSTed to `url` (RFC 3161 §3.4),
/// its answer read within `timeout` and at most 64 KiB.
pub fn external_stamp(
    url: &str,
    hash_alg: &str,
    hashed: &[u8],
    timeout: std::time::Duration,
) -> Result<Vec<u8>, String> {
    let (host, authority, path) = split_url(url)?;
    let mut nonce = [0u8; 8];
    let _ = getrandom::getrandom(&mut nonce);
    let nonce = u64::from_be_bytes(nonce) >> 1;
    let body = tsp::request(hash_alg, hashed, nonce).map_err(|e| e.to_string())?;
    let sent_nonce = tsp::parse_request(&body).ok().and_then(|r| r.nonce);
    let asked = std::time::SystemTime::now();
    let token = post(url, &host, &authority, &path, body, timeout)?;
    // The answer must be to this request: its imprint and nonce, and a time near ours.
    let info = crate::formats::cms::parse(&token)
        .ok()
        .and_then(|sd| sd.content)
        .and_then(|c| tsp::parse_tst_info(&c).ok())
        .ok_or_else(|| format!("{url} answered a token without a readable TSTInfo"))?;
    if info.hashed != hashed || info.hash_alg != hash_alg {
        return Err(format!("{url} stamped another imprint than the one asked for"));
    }
    if info.nonce != sent_nonce {
        return Err(format!("{url} did not echo the request's nonce"));
    }
    let slack = std::time::Duration::from_millis(info.accuracy_ms.unwrap_or(0).min(60_000) + 1000);
    let off = match info.time.duration_since(asked) {
        Ok(ahead) => ahead.saturating_sub(timeout),
        Err(behind) => behind.duration(),
    };
    if off > slack {
        let when = crate::formats::ses::fmt_time(info.time);
        return Err(format!("{url} stamped {when}, too far from this appliance's clock"));
    }
    Ok(token)
}

/// `http://host[:port]/path` as (host, host:port with port 80 by default, path).
fn split_url(url: &str) -> Result<(String, String, String), String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("'{url}' is not an http:// URL (RFC 3161 over HTTP)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("'{url}' names no host (or carries credentials)"));
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    let with_port = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Ok((authority.to_string(), with_port, path.to_string()))
}

/// POSTs a time-stamp query to `authority`; the token of a granted answer, read within `timeout`
/// and 64 KiB.
fn post(
    url: &str,
    host: &str,
    authority: &str,
    path: &str,
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime for the call: {e}"))?;
    let call = async {
        let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("{authority}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        // The connection runs beside the request; it ends with it (or with the runtime).
        drop(tokio::spawn(conn));
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/timestamp-query")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered HTTP {}", resp.status()));
        }
        let limited = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
        let answer = limited.collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
        tsp::parse_response(&answer).map_err(|e| format!("{url}: {e}"))
    };
    runtime
        .block_on(async { tokio::time::timeout(timeout, call).await })
        .map_err(|_| format!("{url} did not answer within {} ms", timeout.as_millis()))?
}
