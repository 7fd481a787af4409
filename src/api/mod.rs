//! The HTTP API: routing, JSON types, error mapping. No business rules live here: handlers decode,
//! call `signing` (or the journal, for auditors) on blocking threads, and encode.
//!
//! Every error is `{ "error": { "code", "message" } }` with a stable code and the right status.
//! Bodies are size-limited, unknown JSON fields are refused, and no input can panic a handler into
//! taking the daemon down (a panic in a blocking task becomes a 500 for that request only).

mod metrics;
mod seals;

pub use metrics::Metrics;

use crate::audit::Journal;
use crate::authz::Principal;
use crate::crypto::PublicKey;
use crate::signing::{InputMode, Request as SignRequest, SignError, Signing};
use crate::store::Store;
use crate::token::{Health, TokenPool};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Everything a request may need.
pub struct App {
    /// The signing service.
    pub signing: Signing,
    /// The token pool (health, metrics).
    pub pool: TokenPool,
    /// The journal (audit endpoints, readiness).
    pub journal: Arc<Journal>,
    /// The store (readiness).
    pub store: Arc<Store>,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Largest request body.
    pub max_body: usize,
    /// Verification runs at most this many at once (the CPU pool), off the I/O threads.
    pub verify_slots: tokio::sync::Semaphore,
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Certificate subject.
    pub subject: String,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For `invalid_transition`: the seal's current state.
    state: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), state: None }
    }
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> Self {
        let e = match e {
            SignError::Seal(s) => return ApiError::from(s),
            other => other,
        };
        let status = match &e {
            SignError::UnknownKey(_) => StatusCode::NOT_FOUND,
            SignError::Forbidden { .. } => StatusCode::FORBIDDEN,
            SignError::BadInput(_) => StatusCode::BAD_REQUEST,
            SignError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            SignError::Token(t) => token_status(t),
            SignError::Audit(_) => StatusCode::SERVICE_UNAVAILABLE,
            SignError::Certificate(_) => StatusCode::BAD_REQUEST,
            SignError::Seal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

fn token_status(t: &crate::token::TokenError) -> StatusCode {
    match t {
        crate::token::TokenError::BadInput(_) => StatusCode::BAD_REQUEST,
        crate::token::TokenError::KeyNotFound(_) => StatusCode::NOT_FOUND,
        crate::token::TokenError::TokenBusy(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    let _ = r
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    json_response(e.status, &ErrorBody { error: ErrorInner { code: e.code, message: &e.message, state: e.state } })
}

fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let _ = r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

/// The encoding of a returned signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Der,
    Raw,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    seal: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    input: InputMode,
    data: String,
    #[serde(default)]
    digest_alg: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Debug, Serialize)]
struct SignReply {
    signature: String,
    encoding: Encoding,
    key_id: String,
    key_version: u32,
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<String>,
    cert: Option<String>,
    audit_seq: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    signature: String,
    input: InputMode,
    data: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    digest_alg: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<T> {
    items: Vec<T>,
}

/// Items per batch request.
pub const MAX_BATCH: usize = 1000;

fn b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ApiError::bad("bad_base64", format!("{field} is not base64: {e}")))
}

fn sign_request(b: &SignBody) -> Result<SignRequest, ApiError> {
    if b.key.is_some() == b.seal.is_some() {
        return Err(ApiError::bad("bad_input", "give exactly one of key, seal"));
    }
    Ok(SignRequest {
        key: b.key.clone().unwrap_or_default(),
        seal: b.seal.clone(),
        ticket: b.ticket.clone(),
        input: b.input,
        data: b64("data", &b.data)?,
        digest_alg: b.digest_alg.clone(),
        user_id: b.user_id.as_ref().map(|u| u.as_bytes().to_vec()),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad("bad_json", e.to_string()))
}

/// Runs blocking work off the I/O threads; a panic there is this request's 500, nothing more.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed inside the server")
    })
}

/// Handles one request.
pub async fn handle(
    app: Arc<App>,
    peer: Arc<Peer>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let route = metrics::route_label(&method, &path);
    let request_id = app.metrics.next_request_id();
    let response = match route_request(&app, &peer, method.clone(), &path, &query, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(request_id, code = e.code, message = %e.message, "request failed");
            }
            error_response(&e)
        }
    };
    let mut response = response;
    if method == Method::HEAD {
        // A HEAD answer carries headers only; a body here is a protocol error in HTTP/2.
        *response.body_mut() = Full::new(Bytes::new());
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(&request_id.to_string()) {
        // The same id is in the daemon's log line for this request.
        let _ = response.headers_mut().insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    app.metrics.observe(route, status, started.elapsed());
    tracing::debug!(request_id, %method, path = %path, status, fingerprint = %peer.fingerprint, "request");
    Ok(response)
}

async fn body(app: &App, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), app.max_body).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is larger than {} bytes", app.max_body),
        )),
        Err(e) => Err(ApiError::bad("bad_body", e.to_string())),
    }
}

/// The caller's account, looked up per request so that a disabled account stops at once.
fn principal(app: &App, peer: &Peer) -> Result<Principal, ApiError> {
    app.signing.identify(&peer.fingerprint, &peer.subject).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_identity",
            format!("certificate {} belongs to no account", peer.fingerprint),
        )
    })
}

async fn route_request(
    app: &Arc<App>,
    peer: &Arc<Peer>,
    method: Method,
    path: &str,
    query: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "alive" }))),
        (&Method::GET, ["readyz"]) => readyz(app).await,
        (&Method::GET, ["metrics"]) => {
            let app2 = app.clone();
            let facts = blocking(move || seals::registry_facts(&app2)).await?;
            let registry =
                facts.map(|(overdue, expiring, keys)| (overdue.len() as u64, expiring as u64, keys.len() as u64));
            let text = app.metrics.render(&app.pool.stats(), &app.pool.health(), app.journal.head_seq(), registry);
            Ok(text_response(StatusCode::OK, "text/plain; version=0.0.4", text))
        }
        (_, ["healthz" | "readyz" | "metrics"]) => Err(method_not_allowed()),
        (_, ["v1", ..]) => {
            let p = principal(app, peer)?;
            v1(app, &p, method, &segments[1..], query, req).await
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {path}"))),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}

async fn v1(
    app: &Arc<App>,
    p: &Principal,
    method: Method,
    seg: &[&str],
    query: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    match (method.clone(), seg) {
        (Method::POST, ["sign"]) => {
            let b: SignBody = parse(&body(app, req).await?)?;
            let reply = sign_one(app, p, b).await?;
            Ok(json_response(StatusCode::OK, &reply))
        }
        (Method::POST, ["sign", "batch"]) => {
            let b: Batch<SignBody> = parse(&body(app, req).await?)?;
            check_batch(b.items.len())?;
            let mut results = Vec::with_capacity(b.items.len());
            // Items are signed concurrently (their usage records share fsyncs), answered in order.
            for chunk in b.items.into_iter().collect::<Vec<_>>().chunks(64) {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|item| {
                        let (app, p) = (app.clone(), p.clone());
                        let item = item.clone();
                        tokio::spawn(async move { sign_one(&app, &p, item).await })
                    })
                    .collect();
                for h in handles {
                    results.push(match h.await {
                        Ok(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
                        Ok(Err(e)) => serde_json::json!({ "error": { "code": e.code, "message": e.message } }),
                        Err(_) => serde_json::json!({ "error": { "code": "internal", "message": "item failed inside the server" } }),
                    });
                }
            }
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "results": results })))
        }
        (Method::POST, ["verify"]) => {
            let b: VerifyBody = parse(&body(app, req).await?)?;
            let verdict = verify_one(app, b).await?;
            Ok(json_response(StatusCode::OK, &verdict))
        }
        (Method::POST, ["sign", "cms"]) => seals::sign_cms(app, p, parse(&body(app, req).await?)?).await,
        (Method::POST, ["verify", "cms"]) => seals::verify_cms(app, parse(&body(app, req).await?)?).await,
        (Method::POST, ["verify", "ses"]) => seals::verify_ses(app, parse(&body(app, req).await?)?).await,
        (Method::POST, ["verify", "seal"]) => seals::verify_seal(app, parse(&body(app, req).await?)?).await,
        (Method::POST, ["verify", "batch"]) => {
            let b: Batch<VerifyBody> = parse(&body(app, req).await?)?;
            check_batch(b.items.len())?;
            let mut results = Vec::with_capacity(b.items.len());
            for item in b.items {
                results.push(match verify_one(app, item).await {
                    Ok(v) => serde_json::to_value(v).unwrap_or_default(),
                    Err(e) => {
                        serde_json::json!({ "error": { "code": e.code, "message": e.message } })
                    }
                });
            }
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "results": results })))
        }
        (Method::GET, ["keys"]) => {
            let keys: Vec<_> = app
                .signing
                .keys_for(p)
                .into_iter()
                .map(|k| serde_json::json!({ "id": k.info.id.to_hex(), "name": k.name, "alg": k.info.alg, "key_version": k.version }))
                .collect();
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "keys": keys })))
        }
        (Method::GET, ["keys", id]) => {
            let k = app
                .signing
                .keys_for(p)
                .into_iter()
                .find(|k| k.name == *id || k.info.id.to_hex().eq_ignore_ascii_case(id))
                .ok_or_else(|| {
                    ApiError::new(StatusCode::NOT_FOUND, "unknown_key", format!("no key '{id}' for this account"))
                })?;
            let z = match &k.info.public_key {
                PublicKey::Sm2(pk) => {
                    crate::crypto::sm2::z(pk, crate::crypto::sm2::DEFAULT_USER_ID).ok().map(hex::encode)
                }
                _ => None,
            };
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "id": k.info.id.to_hex(), "name": k.name, "alg": k.info.alg, "key_version": k.version,
                    "public_key_pem": k.info.public_key.to_spki_pem(), "certificate": null, "sm2_z_default_id": z,
                }),
            ))
        }
        (Method::GET, ["audit", "verify"]) => {
            if !app.signing.accounts().may_audit(p) {
                return Err(forbidden("auditor"));
            }
            let journal = app.journal.clone();
            let report =
                blocking(move || crate::audit::verify_journal_dir(journal.dir(), journal.public_key().as_ref()))
                    .await?;
            let report = report
                .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string()))?;
            Ok(json_response(StatusCode::OK, &report))
        }
        (Method::GET, ["admin", "backup"]) => {
            if !app.signing.accounts().may_backup(p) {
                let ev = crate::audit::AuditEvent::new(
                    crate::audit::Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) },
                    "backup.make",
                    "backup",
                    "refused:forbidden",
                );
                let journal = app.journal.clone();
                let _ = blocking(move || journal.append(ev)).await;
                return Err(forbidden("sysadmin"));
            }
            let (app2, by) = (
                app.clone(),
                crate::audit::Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) },
            );
            let bytes = blocking(move || {
                // The audit key signing now (it may have been rotated since the start).
                let key = app2
                    .signing
                    .registry()
                    .and_then(|r| r.audit_key())
                    .ok_or_else(|| crate::backup::BackupError("this appliance signs no checkpoints".into()))?;
                let signer = crate::token::TokenKey::open(&app2.pool, &key)
                    .map_err(|e| crate::backup::BackupError(e.to_string()))?;
                crate::backup::make(&app2.journal, &app2.store, &signer, &key, by)
            })
            .await?
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "backup_failed", e.to_string()))?;
            let mut r = Response::new(Full::new(Bytes::from(bytes)));
            let _ = r
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
            Ok(r)
        }
        (Method::GET, ["audit", "export"]) => {
            if !app.signing.accounts().may_audit(p) {
                return Err(forbidden("auditor"));
            }
            let (from, to) = range(query)?;
            let journal = app.journal.clone();
            let out = blocking(move || {
                let mut buf = Vec::new();
                crate::audit::export(journal.dir(), crate::audit::ExportRange { from, to }, &mut buf).map(|_| buf)
            })
            .await?
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit_unavailable", e.to_string()))?;
            Ok(text_response(StatusCode::OK, "application/x-ndjson", String::from_utf8_lossy(&out).into_owned()))
        }
        (_, ["seals" | "filings" | "admin" | "ca", ..]) => seals::route(app, p, method, seg, query, req).await,
        (_, ["sign" | "verify" | "keys" | "audit", ..]) => Err(method_not_allowed()),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route /v1/{}", seg.join("/")))),
    }
}

fn forbidden(role: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this needs the {role} role"))
}

fn check_batch(n: usize) -> Result<(), ApiError> {
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::bad("bad_input", format!("a batch holds 1 to {MAX_BATCH} items, not {n}")));
    }
    Ok(())
}

fn range(query: &str) -> Result<(u64, u64), ApiError> {
    let (mut from, mut to) = (1u64, u64::MAX);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n: u64 = v.parse().map_err(|_| ApiError::bad("bad_input", format!("{k} must be a sequence number")))?;
        match k {
            "from" => from = n,
            "to" => to = n,
            other => return Err(ApiError::bad("bad_input", format!("unknown parameter {other}"))),
        }
    }
    Ok((from, to))
}

async fn sign_one(app: &Arc<App>, p: &Principal, b: SignBody) -> Result<SignReply, ApiError> {
    let req = sign_request(&b)?;
    let (app2, p2) = (app.clone(), p.clone());
    let signed = blocking(move || app2.signing.sign(&p2, &req)).await??;
    app.metrics.signed(&signed.key.name);
    let bytes = if b.encoding == Encoding::Raw { &signed.raw } else { &signed.der };
    Ok(SignReply {
        signature: base64::engine::general_purpose::STANDARD.encode(bytes),
        encoding: b.encoding,
        key_id: signed.key.info.id.to_hex(),
        key_version: signed.key.version,
        alg: signed.key.info.alg.signature_name(),
        seal: signed.seal,
        cert: signed.cert,
        audit_seq: signed.audit_seq,
    })
}

async fn verify_one(app: &Arc<App>, b: VerifyBody) -> Result<crate::signing::Verdict, ApiError> {
    let public_key = match &b.public_key {
        Some(pem) => Some(PublicKey::from_spki_pem(pem).map_err(|e| ApiError::bad("bad_public_key", e.to_string()))?),
        None => None,
    };
    let certificate = match &b.certificate {
        Some(pem) => Some(
            crate::formats::x509::Cert::parse(pem.as_bytes())
                .map_err(|e| ApiError::bad("bad_certificate", e.to_string()))?,
        ),
        None => None,
    };
    let given = [b.key.is_some(), public_key.is_some(), certificate.is_some()].iter().filter(|g| **g).count();
    if given != 1 {
        return Err(ApiError::bad("bad_input", "give exactly one of key, public_key, certificate"));
    }
    let req = SignRequest {
        key: b.key.clone().unwrap_or_default(),
        input: b.input,
        data: b64("data", &b.data)?,
        digest_alg: b.digest_alg.clone(),
        user_id: b.user_id.as_ref().map(|u| u.as_bytes().to_vec()),
        seal: None,
        ticket: None,
    };
    let sig = b64("signature", &b.signature)?;
    let _slot = app
        .verify_slots
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "shutting down"))?;
    let app2 = app.clone();
    Ok(blocking(move || app2.signing.verify(&req, public_key.as_ref(), certificate.as_ref(), &sig)).await??)
}

async fn readyz(app: &Arc<App>) -> Result<Response<Full<Bytes>>, ApiError> {
    let pool = app.pool.clone();
    let health = blocking(move || pool.probe()).await?;
    let mut reasons = Vec::new();
    if let Health::Down(r) = &health {
        reasons.push(format!("token down: {r}"));
    }
    if let Err(e) = app.store.applied_seq() {
        reasons.push(format!("store: {e}"));
    }
    if let Some(why) = app.journal.failure() {
        reasons.push(format!("audit journal: {why}"));
    }
    let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // Overdue filings and expiring seals need an operator, not a restart: details, not unreadiness.
    let app2 = app.clone();
    let (overdue, expiring, keys) = blocking(move || seals::registry_facts(&app2)).await?.unwrap_or_default();
    Ok(json_response(
        status,
        &serde_json::json!({
            "ready": reasons.is_empty(), "token": health, "audit_head": app.journal.head_seq(), "reasons": reasons,
            "details": { "filings_overdue": overdue, "seals_expiring": expiring, "keys_expiring": keys },
        }),
    ))
}
