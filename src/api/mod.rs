//! The HTTP API: the route table (`routes.rs`), error mapping, and handlers that decode (with the
//! types of [`crate::contract`]), call a service on a blocking thread, and encode. No business rule
//! lives here: `signing` signs and verifies, `seal` holds the registry's rules and the audit trail's
//! access.
//!
//! Every error is `{ "error": { "code", "message" } }` with a stable code and the right status.
//! Bodies are size-limited, unknown JSON fields are refused, and no input can panic a handler into
//! taking the daemon down (a panic in a blocking task becomes a 500 for that request only).

mod admin;
mod audit;
mod metrics;
pub mod routes;
mod seals;
mod sign;
mod time;

pub use metrics::Metrics;

use crate::audit::Journal;
use crate::authz::Principal;
use crate::contract::{Alive, ErrorDetail, ErrorReply, Readiness, ReadinessBare, ReadinessDetails};
use crate::signing::{SignError, Signing};
use crate::store::Store;
use crate::token::{Health, TokenPool};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use routes::Op;
use serde::Serialize;
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
    /// Largest document (an OFD package to seal or verify).
    pub max_document: usize,
    /// Verification runs at most this many at once (the CPU pool), off the I/O threads.
    pub verify_slots: tokio::sync::Semaphore,
    /// A request's body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// The listener's counters.
    pub door: crate::listener::DoorStats,
    /// The CRLs loaded, for readiness and metrics.
    pub crls: std::sync::RwLock<Vec<crate::tls::CrlStatus>>,
    /// The web console's session secret.
    pub console: crate::console::Console,
}

impl App {
    /// Records the CRLs loaded (at start and on reload).
    pub fn set_crls(&self, crls: Vec<crate::tls::CrlStatus>) {
        *self.crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
    }

    /// A place in the CPU pool for verification or document work, waited for off the I/O threads.
    pub(crate) async fn verify_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.verify_slots
            .acquire()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "shutting down"))
    }

    /// The loaded CRLs past their nextUpdate.
    fn stale_crls(&self) -> Vec<crate::tls::CrlStatus> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.crls.read().unwrap_or_else(|p| p.into_inner()).iter().filter(|c| c.stale_at(now)).cloned().collect()
    }
}

/// Marks an answer after which the listener closes the connection (its certificate belongs to no
/// account, or to a disabled one).
#[derive(Debug, Clone, Copy)]
pub struct CloseConnection;

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
    state: Option<crate::seal::SealState>,
}

impl ApiError {
    /// Its status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
    /// Its stable code.
    pub(crate) fn code(&self) -> &str {
        self.code
    }
    /// Its message.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
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
            SignError::Ofd(o) => ofd_status(o),
            SignError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SignError::TimeStamp(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// A package that cannot be sealed: 409 when an earlier signature forbids it, 413 past a limit, else 400.
fn ofd_status(e: &crate::formats::ofd::OfdError) -> StatusCode {
    match e.code() {
        "ofd_signatures_protected" => StatusCode::CONFLICT,
        "ofd_limit" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
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

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Body::Left(Full::new(Bytes::from(bytes))));
    *r.status_mut() = status;
    let _ = r
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let error = ErrorDetail { code: e.code.to_string(), message: e.message.clone(), state: e.state };
    json_response(e.status, &ErrorReply { error })
}

/// An answer's body: whole (`Left`), or streamed from a blocking writer ([`Streamed`]).
pub type Body = http_body_util::Either<Full<Bytes>, Streamed>;

/// A body written by a blocking task through a [`StreamWriter`], in chunks of up to 64 KiB with at
/// most 8 chunks in flight: memory stays bounded whatever the answer's size, and a client that
/// stops reading stops the writer.
pub struct Streamed {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// Held until the body ends: the listener's mark that a request is in flight, so that a long
    /// stream is not taken for an idle connection.
    held: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamed").finish_non_exhaustive()
    }
}

impl Streamed {
    /// Keeps `guard` until the body ends (or is dropped).
    pub fn hold(&mut self, guard: Box<dyn std::any::Any + Send + Sync>) {
        self.held = Some(guard);
    }
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let next = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(None) = next {
            drop(self.held.take());
        }
        next.map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// The writing end of a [`Streamed`] body (blocking; use it on a blocking thread).
pub struct StreamWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const STREAM_CHUNK: usize = 64 << 10;

impl StreamWriter {
    /// A writer and the body it feeds.
    pub fn new() -> (StreamWriter, Streamed) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        (StreamWriter { tx, buf: Vec::with_capacity(STREAM_CHUNK) }, Streamed { rx, held: None })
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client stopped reading"))
    }

    /// Ends the body with an error: the client sees the answer cut short, never a complete-looking
    /// one.
    pub fn fail(self, why: String) {
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why)));
    }
}

impl std::io::Write for StreamWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// An answer of `content_type` streamed from `body`.
pub(crate) fn streamed_response(status: StatusCode, content_type: &'static str, body: Streamed) -> Response<Body> {
    let mut r = Response::new(Body::Right(body));
    *r.status_mut() = status;
    let _ = r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

/// An answer of `content_type` with `body` as it is (text, YAML, DER, a backup).
pub(super) fn raw_response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::Left(Full::new(body.into())));
    *r.status_mut() = status;
    let _ = r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

/// The API's contract, `docs/openapi.yaml`, served at `GET /v1/openapi.yaml` (its schemas are
/// generated from `crate::contract`, and a test keeps its paths equal to the route table).
const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

/// Items per batch request.
pub const MAX_BATCH: usize = 1000;

fn b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ApiError::bad("bad_base64", format!("{field} is not base64: {e}")))
}

/// `key=value&...`, every key among `allowed`.
pub(super) fn query_pairs<'a>(query: &'a str, allowed: &[&str]) -> Result<Vec<(&'a str, String)>, ApiError> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            return Err(ApiError::bad(
                "bad_input",
                format!("unknown parameter '{k}' (allowed: {})", allowed.join(", ")),
            ));
        }
        out.push((k, percent_decode(v)));
    }
    Ok(out)
}

/// A paged list's parameters: `cursor` (from the page before), `limit` (default 100, 1 to 1000) and
/// `order` (`oldest`, the default, or `newest`).
#[derive(Debug, Clone)]
pub(super) struct Paging {
    pub cursor: Option<String>,
    pub limit: usize,
    pub newest_first: bool,
}

/// The parameters every paged list takes.
pub(super) const PAGING: [&str; 3] = ["cursor", "limit", "order"];

impl Paging {
    /// Reads the paging parameters among `pairs` (the others are the caller's).
    pub(super) fn from_pairs(pairs: &[(&str, String)]) -> Result<Self, ApiError> {
        let mut p = Paging { cursor: None, limit: 100, newest_first: false };
        for (k, v) in pairs {
            match *k {
                "cursor" => p.cursor = Some(v.clone()),
                "limit" => {
                    p.limit = v.parse().ok().filter(|n| (1..=crate::audit::MAX_PAGE).contains(n)).ok_or_else(|| {
                        ApiError::bad("bad_input", format!("limit must be 1 to {}, not '{v}'", crate::audit::MAX_PAGE))
                    })?
                }
                "order" => {
                    p.newest_first = match v.as_str() {
                        "oldest" => false,
                        "newest" => true,
                        _ => {
                            return Err(ApiError::bad(
                                "bad_input",
                                format!("order must be oldest or newest, not '{v}'"),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// Percent-decoding, `+` as a space (query strings and forms).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad("bad_json", e.to_string()))
}

/// Runs blocking work off the I/O threads; a panic there is this request's 500, nothing more.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed inside the server")
    })
}

/// Handles one request.
pub async fn handle(
    app: Arc<App>,
    peer: Arc<Peer>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let console = path == "/console" || path.starts_with("/console/");
    let resolved = routes::resolve(&method, &path);
    let label = if console { "/console" } else { resolved.label() };
    // The caller's id when it is a sane one (1 to 64 of A-Z a-z 0-9 - _ . :), else ours.
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.metrics.next_request_id());
    // Whether the body the request carries was read to its end. An HTTP/1 connection whose request
    // body was left unread cannot carry another request: the answer says `connection: close`, so
    // that the client does not send its next request into a connection that is closing.
    let body_read = BodyRead::default();
    let unread_body = (!hyper::body::Body::is_end_stream(req.body())).then(|| body_read.0.clone());
    let version = req.version();
    let _ = req.extensions_mut().insert(body_read);
    let call = Call { app: &app, peer: &peer, path: &path, query: &query };
    let answer = match console {
        true => Ok(crate::console::respond(&app, &peer, req).await),
        false => respond(call, resolved, req).await,
    };
    let mut response = match answer {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(%request_id, code = e.code, message = %e.message, "request failed");
            }
            let mut r = error_response(&e);
            if e.code == "unknown_identity" {
                let _ = r.extensions_mut().insert(CloseConnection);
            }
            if e.status == StatusCode::METHOD_NOT_ALLOWED {
                if let Ok(v) = hyper::header::HeaderValue::from_str(&routes::allowed(&path)) {
                    let _ = r.headers_mut().insert(hyper::header::ALLOW, v);
                }
            }
            r
        }
    };
    let left_unread = unread_body.is_some_and(|read| !read.load(std::sync::atomic::Ordering::Acquire));
    if left_unread && version <= hyper::Version::HTTP_11 {
        let _ =
            response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    if method == Method::HEAD {
        // A HEAD answer carries headers only; a body here is a protocol error in HTTP/2.
        *response.body_mut() = Body::Left(Full::new(Bytes::new()));
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(&request_id) {
        // The same id is in the daemon's log line for this request.
        let _ = response.headers_mut().insert("x-request-id", v);
    }
    let status = response.status().as_u16();
    let took = started.elapsed();
    app.metrics.observe(label, status, took);
    // The access log: one line per request.
    let account = app.signing.identify(&peer.fingerprint, &peer.subject).map(|p| p.account);
    tracing::info!(
        target: "seald::access",
        %request_id,
        %method,
        route = label,
        status,
        ms = took.as_secs_f64() * 1000.0,
        account = account.as_deref().unwrap_or("-"),
        fingerprint = %peer.fingerprint,
        "request"
    );
    Ok(response)
}

/// One request's context.
#[derive(Clone, Copy)]
struct Call<'a> {
    app: &'a Arc<App>,
    peer: &'a Arc<Peer>,
    path: &'a str,
    query: &'a str,
}

/// Everything under `/v1` needs an account, whether or not the route exists.
async fn respond(
    call: Call<'_>,
    resolved: routes::Resolved<'_>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let principal = match call.path.starts_with("/v1/") || call.path == "/v1" {
        true => Some(principal(call.app, call.peer)?),
        false => None,
    };
    match (resolved, principal) {
        (routes::Resolved::Found(route, params), p) => dispatch(call, route.op, &params, p, req).await,
        (routes::Resolved::MethodNotAllowed(_), _) => Err(method_not_allowed()),
        (routes::Resolved::NotFound, _) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {}", call.path)))
        }
    }
}

/// Runs the handler of `op`. Probes take no account; every other route has one.
async fn dispatch(
    call: Call<'_>,
    op: Op,
    params: &[&str],
    p: Option<Principal>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let p = match (op, p) {
        (Op::Healthz, _) => return Ok(json_response(StatusCode::OK, &Alive { status: "alive".into() })),
        // Detail only for known accounts: the rest learn whether the appliance is ready, nothing more.
        (Op::Readyz, _) => return readyz(app, principal(app, call.peer).is_ok()).await,
        (Op::Metrics, _) => {
            let _ = principal(app, call.peer)?;
            return metrics(app).await;
        }
        (_, Some(p)) => p,
        (_, None) => return Err(ApiError::new(StatusCode::FORBIDDEN, "unknown_identity", "no account")),
    };
    let param = |i: usize| params.get(i).map(|s| s.to_string()).unwrap_or_default();
    let q = call.query;
    match op {
        Op::Healthz | Op::Readyz | Op::Metrics => Err(method_not_allowed()),
        Op::Sign => sign::sign(app, p, parse(&body(app, req).await?)?).await,
        Op::SignBatch => sign::sign_batch(app, p, parse(&body(app, req).await?)?).await,
        Op::Verify => sign::verify(app, parse(&body(app, req).await?)?).await,
        Op::VerifyBatch => sign::verify_batch(app, parse(&body(app, req).await?)?).await,
        Op::Whoami => Ok(ok(&crate::contract::Whoami {
            account: p.account,
            role: p.role,
            unit: p.unit,
            fingerprint: p.fingerprint,
            subject: p.subject,
        })),
        Op::OpenApi => Ok(raw_response(StatusCode::OK, "application/yaml", OPENAPI)),
        Op::Keys => Ok(sign::keys(app, &p)),
        Op::Key => sign::key(app, &p, &param(0)),
        Op::SignCms => seals::sign_cms(app, p, parse(&body(app, req).await?)?).await,
        Op::SignSes => seals::sign_ses(app, p, param(0), parse(&body(app, req).await?)?).await,
        Op::VerifyCms => seals::verify_cms(app, parse(&body(app, req).await?)?).await,
        Op::VerifySes => seals::verify_ses(app, parse(&body(app, req).await?)?).await,
        Op::VerifySeal => seals::verify_seal(app, parse(&body(app, req).await?)?).await,
        Op::SealOfd => seals::seal_ofd(app, p, param(0), q, body_within(app, req, app.max_document).await?).await,
        Op::VerifyOfd => seals::verify_ofd(app, body_within(app, req, app.max_document).await?).await,
        Op::Tsa => time::tsa(app, p, req).await,
        Op::SealStatus => time::seal_status(app, &param(0), q, &req).await,
        Op::AuditVerify => audit::verify(app, p).await,
        Op::AuditRecords => audit::records(app, p, q).await,
        Op::AuditExport => audit::export(app, p, q).await,
        Op::Backup => audit::backup(app, p, q).await,
        Op::ListAccounts
        | Op::CreateAccount
        | Op::GetAccount
        | Op::UpdateAccount
        | Op::DisableAccount
        | Op::ListApplianceKeys
        | Op::RotateKey
        | Op::ActivateKey
        | Op::DestroyKey
        | Op::ChangePin
        | Op::ListRequests
        | Op::ApproveRequest
        | Op::ListUnits
        | Op::CreateUnit => admin::route(app, p, op, params, req).await,
        _ => seals::route(app, p, op, params, q, req).await,
    }
}

/// Set once a request's body has been read to its end (see `handle`).
#[derive(Debug, Clone, Default)]
struct BodyRead(Arc<std::sync::atomic::AtomicBool>);

/// A body over the limit is still read (and thrown away) up to this much more, so that a client
/// that writes its whole body before it reads gets its 413 instead of a reset connection. Beyond
/// it, the connection is closed.
const REFUSED_BODY_DRAIN: usize = 64 << 20;

async fn body(app: &App, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    body_within(app, req, app.max_body).await
}

/// The request's body, at most `max` bytes.
pub(crate) async fn body_within(app: &App, req: Request<Incoming>, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("request body is larger than {max} bytes"))
    };
    let declared =
        req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(REFUSED_BODY_DRAIN)) {
        return Err(too_large());
    }
    let read_to_end = req.extensions().get::<BodyRead>().map(|b| b.0.clone());
    let read = async {
        let mut body = req.into_body();
        // The declared length sizes the buffer (up to 16 MiB; it never sets the limit), so a
        // document is not copied again each time the buffer grows.
        let reserve = declared.unwrap_or(0).min(max).min(16 << 20);
        let (mut kept, mut seen) = (Vec::with_capacity(reserve), 0usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad("bad_body", e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen <= max {
                kept.extend_from_slice(&data);
            } else if seen > max.saturating_add(REFUSED_BODY_DRAIN) {
                return Err(too_large());
            }
        }
        if let Some(flag) = &read_to_end {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
        if seen > max {
            return Err(too_large());
        }
        Ok(Bytes::from(kept))
    };
    tokio::time::timeout(app.body_timeout, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} s", app.body_timeout.as_secs()),
        )
    })?
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

/// 200 with a JSON body.
pub(super) fn ok<T: serde::Serialize>(v: &T) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

/// Runs `f` with the registry on a blocking thread.
pub(crate) async fn with<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&crate::seal::Registry) -> Result<T, crate::seal::SealError> + Send + 'static,
) -> Result<T, ApiError> {
    let r = app.signing.registry().clone();
    Ok(blocking(move || f(&r)).await??)
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}

/// `GET /metrics`.
async fn metrics(app: &Arc<App>) -> Result<Response<Body>, ApiError> {
    let app2 = app.clone();
    let facts = blocking(move || seals::registry_facts(&app2)).await?;
    let registry = facts.map(|(f, keys)| (f.overdue_count, f.expiring_count, keys.len() as u64));
    let mut text = app.metrics.render(&app.pool.stats(), &app.pool.health(), app.journal.head_seq(), registry);
    let crls = app.crls.read().unwrap_or_else(|p| p.into_inner()).clone();
    Metrics::render_door(&mut text, &app.door, &crls, crate::seal::now_ms() / 1000);
    if let Some(db) = app.store.pg() {
        Metrics::render_db(&mut text, db.node(), db.round_trips());
    }
    Ok(raw_response(StatusCode::OK, "text/plain; version=0.0.4", text))
}

/// `GET /readyz`: 503 with reasons while the token, the store or the journal is down, or a client-CA
/// CRL is past its nextUpdate. `detail`: the reasons and the registry's facts (known accounts only).
async fn readyz(app: &Arc<App>, detail: bool) -> Result<Response<Body>, ApiError> {
    let pool = app.pool.clone();
    let health = blocking(move || pool.probe()).await?;
    let mut reasons = Vec::new();
    if let Health::Down(r) = &health {
        reasons.push(format!("token down: {r}"));
    }
    // The store answers (on a cluster: the database, within its connect timeout).
    let store = app.store.clone();
    let (answered, cluster) = blocking(move || match store.pg() {
        Some(pg) => {
            let ping = pg.ping();
            let now = crate::seal::now_ms();
            let nodes = match &ping {
                Ok(_) => pg.heads().unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let cluster = crate::contract::ClusterReadiness {
                node: pg.node(),
                round_trip_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1e3),
                nodes: nodes
                    .into_iter()
                    .map(|h| crate::contract::NodeReadiness {
                        node: h.node,
                        head_seq: h.seq,
                        behind_ms: now.saturating_sub(h.time_ms),
                    })
                    .collect(),
            };
            (ping.map(|_| ()), Some(cluster))
        }
        None => (store.applied_seq().map(|_| ()), None),
    })
    .await?;
    if let Err(e) = answered {
        reasons.push(format!("store: {e}"));
    }
    if let Some(why) = app.journal.failure() {
        reasons.push(format!("audit journal: {why}"));
    }
    for c in app.stale_crls() {
        reasons.push(format!(
            "CRL {} of {} is past its nextUpdate: load a fresh one (SIGHUP)",
            c.path.display(),
            c.issuer
        ));
    }
    let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !detail {
        return Ok(json_response(status, &ReadinessBare { ready: reasons.is_empty() }));
    }
    // Overdue filings and expiring seals need an operator, not a restart: details, not unreadiness.
    let app2 = app.clone();
    let (facts, keys) = blocking(move || seals::registry_facts(&app2)).await?.unwrap_or_default();
    let (overdue, expiring) = (facts.overdue, facts.expiring_count as usize);
    let ready = Readiness {
        ready: reasons.is_empty(),
        token: health,
        audit_head: app.journal.head_seq(),
        reasons,
        details: ReadinessDetails { filings_overdue: overdue, seals_expiring: expiring, keys_expiring: keys },
        clock: app.signing.registry().tsa().clock(),
        cluster,
    };
    Ok(json_response(status, &ready))
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(super::percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(super::percent_decode("%E5%8D%B0"), "印");
    }
}
