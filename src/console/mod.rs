//! The web console under `/console/`: pages for the people who run seals (issuers, unit
//! administrators, auditors, security officers, system administrators), served on the API's
//! mutual-TLS listener. The browser's client certificate is the person: the account behind it
//! decides what each page shows and allows, through the same registry services as the API. No
//! business rule lives here; a page asks a service and shows what it says, refusals included.
//!
//! Pages are HTML written with `maud` (escaped by default, checked at compile time), Simplified
//! Chinese first with English as a switch (`view::Lang`). Nothing is loaded from elsewhere; the
//! `Content-Security-Policy` allows this origin's stylesheet and script only, no inline script, no
//! framing. The client certificate is sent by the browser on its own, so every state-changing form
//! carries a token bound to this browser's session cookie and certificate, and a POST is taken only
//! when its `Origin` (or `Sec-Fetch-Site`) says it came from the console itself.

mod admin;
mod form;
mod office;
mod sealing;
mod seals;
mod view;

use crate::api::{App, Body, CloseConnection, Peer};
use crate::authz::{Principal, Role};
use bytes::Bytes;
use form::Form;
use hmac::Mac as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;
use std::sync::Arc;
use view::Lang;

/// The console's own secret: it makes the per-session form tokens. New at every start (a form
/// left open across a restart is refused, and a reload gives a fresh one).
pub struct Console {
    secret: [u8; 32],
    /// Documents uploaded to be sealed by hand, between the steps.
    drafts: sealing::Drafts,
    /// The console's documents are read one at a time (then in the API's verification slots), so
    /// people's uploads never take more than one of the cores applications verify and seal on.
    documents: tokio::sync::Semaphore,
}

impl Console {
    /// A console with a fresh secret.
    pub fn new() -> Self {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).expect("the system's random source is readable");
        Console { secret, drafts: Default::default(), documents: tokio::sync::Semaphore::new(1) }
    }

    /// The form token of a session cookie and a certificate.
    fn token(&self, session: &str, fingerprint: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(b"seald-console-form\0");
        mac.update(session.as_bytes());
        mac.update(b"\0");
        mac.update(fingerprint.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the form token of the session and certificate (constant time).
    fn token_ok(&self, session: &str, fingerprint: &str, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else { return false };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(b"seald-console-form\0");
        mac.update(session.as_bytes());
        mac.update(b"\0");
        mac.update(fingerprint.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

/// The session cookie: random, this origin only, never sent cross-site, not readable by script.
const SESSION_COOKIE: &str = "__Host-seald-session";
/// The language cookie (`zh` or `en`).
const LANG_COOKIE: &str = "seald-lang";

/// One request's context: who, in which language, and the form token of their session.
pub(crate) struct Ctx {
    app: Arc<App>,
    p: Principal,
    lang: Lang,
    csrf: String,
    path: String,
}

impl Ctx {
    /// A place to read a document: the console's one, then one of the API's verification slots.
    pub(crate) async fn document_slot(
        &self,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, tokio::sync::SemaphorePermit<'_>), Refusal> {
        let shutting_down = |_| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "shutting down");
        let console = self.app.console.documents.acquire().await.map_err(shutting_down)?;
        Ok((console, self.app.verify_slot().await?))
    }

    /// `zh` or `en`, by the reader's language.
    pub(crate) fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang.t(zh, en)
    }
}

/// What a page answers: a page, a redirect after a change, or a download.
pub(crate) enum Answer {
    Page(StatusCode, Markup),
    Redirect(String),
    File(&'static str, Option<String>, Body),
}

/// A refusal or failure, shown as a page with the API's stable code and message.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Refusal { status, code: code.to_string(), message: message.into() }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_input", message)
    }
    fn not_found(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no console page {path}"))
    }
}

impl From<crate::api::ApiError> for Refusal {
    fn from(e: crate::api::ApiError) -> Self {
        Refusal { status: e.status(), code: e.code().to_string(), message: e.message().to_string() }
    }
}

impl From<crate::seal::SealError> for Refusal {
    fn from(e: crate::seal::SealError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

pub(crate) type Reply = Result<Answer, Refusal>;

/// Runs `f` with the registry off the I/O threads.
pub(crate) async fn with<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&crate::seal::Registry, &Principal) -> Result<T, crate::seal::SealError> + Send + 'static,
) -> Result<T, Refusal> {
    let p = ctx.p.clone();
    Ok(crate::api::with(&ctx.app, move |r| f(r, &p)).await?)
}

/// Answers a request under `/console`.
pub async fn respond(app: &Arc<App>, peer: &Peer, req: Request<Incoming>) -> Response<Body> {
    let lang = Lang::of(cookie(&req, LANG_COOKIE).as_deref(), req.headers());
    let Some(p) = app.signing.identify(&peer.fingerprint, &peer.subject) else {
        let mut r =
            finish(view::refused_page(lang, StatusCode::FORBIDDEN, "unknown_identity", &view::no_account(lang)));
        let _ = r.extensions_mut().insert(CloseConnection);
        return r;
    };
    if p.role == Role::App {
        return finish(view::refused_page(lang, StatusCode::FORBIDDEN, "console_forbidden", &view::app_refused(lang)));
    }
    let (session, fresh) = match cookie(&req, SESSION_COOKIE).filter(|s| s.len() == 32 && hex::decode(s).is_ok()) {
        Some(s) => (s, false),
        None => {
            let mut b = [0u8; 16];
            getrandom::getrandom(&mut b).expect("the system's random source is readable");
            (hex::encode(b), true)
        }
    };
    let csrf = app.console.token(&session, &p.fingerprint);
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if path == "/console/lang" && method == Method::GET {
        // A display preference only: kept in a cookie, then back to the dashboard.
        let to = if form::Query::parse(&query).get("to") == Some("en") { "en" } else { "zh" };
        let mut r = finish((StatusCode::SEE_OTHER, maud::html! {}));
        let c = format!("{LANG_COOKIE}={to}; Path=/console; Secure; SameSite=Strict; Max-Age=31536000");
        for (k, v) in [(hyper::header::LOCATION, "/console/".to_string()), (hyper::header::SET_COOKIE, c)] {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                let _ = r.headers_mut().append(k, v);
            }
        }
        return r;
    }
    let ctx = Ctx { app: app.clone(), p, lang, csrf, path: path.clone() };
    let answer = match method {
        // Another site may link to a page (a navigation the person sees), not load one unseen (an
        // image or a fetch that would run a chain verification or an export with their certificate).
        Method::GET | Method::HEAD if cross_site_subresource(req.headers()) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "csrf_refused",
            "another site may link to the console, not load its pages",
        )),
        Method::GET | Method::HEAD => route_get(&ctx, &path, &query).await,
        // A browser without this session's cookie cannot hold its form token: refused before
        // its body is read.
        Method::POST if fresh => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "csrf_refused",
            "this form did not come from your console session: reload the page and try again",
        )),
        Method::POST => match same_origin(&req) {
            Err(r) => Err(r),
            Ok(()) => match Form::read(app, req).await {
                Err(r) => Err(r),
                Ok(form) if fresh || !app.console.token_ok(&session, &ctx.p.fingerprint, form.text("csrf")) => {
                    Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "csrf_refused",
                        "this form did not come from your console session: reload the page and try again",
                    ))
                }
                Ok(form) => route_post(&ctx, &path, &query, form).await,
            },
        },
        _ => Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "the console takes GET and POST")),
    };
    let mut r = match answer {
        Ok(Answer::Page(status, markup)) => finish((status, markup)),
        Ok(Answer::Redirect(to)) => {
            let mut r = finish((StatusCode::SEE_OTHER, maud::html! {}));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&to) {
                let _ = r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            r
        }
        Ok(Answer::File(content_type, name, body)) => {
            let mut r = Response::new(body);
            let h = r.headers_mut();
            let _ = h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
            if let Some(v) = name.and_then(|n| hyper::header::HeaderValue::from_str(&disposition(&n)).ok()) {
                let _ = h.insert(hyper::header::CONTENT_DISPOSITION, v);
            }
            secure_headers(&mut r);
            if content_type.starts_with("image/") {
                // A seal's picture (an SVG among them) is a document of its own: nothing in it runs.
                let _ = r.headers_mut().insert(
                    "content-security-policy",
                    hyper::header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
                );
            }
            r
        }
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(code = %e.code, message = %e.message, "console request failed");
            }
            finish(view::refused_in_layout(&ctx, e.status, &e.code, &e.message))
        }
    };
    if fresh {
        let c = format!("{SESSION_COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=Strict");
        if let Ok(v) = hyper::header::HeaderValue::from_str(&c) {
            let _ = r.headers_mut().append(hyper::header::SET_COOKIE, v);
        }
    }
    r
}

/// The pages read with GET.
async fn route_get(ctx: &Ctx, path: &str, query: &str) -> Reply {
    let rest = path.strip_prefix("/console").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let q = form::Query::parse(query);
    match segs.as_slice() {
        [] if rest.is_empty() => Ok(Answer::Redirect("/console/".into())),
        [] => office::dashboard(ctx).await,
        ["static", "console.css"] => Ok(asset("text/css; charset=utf-8", view::STYLE)),
        ["static", "console.js"] => Ok(asset("text/javascript; charset=utf-8", view::SCRIPT)),
        ["seal-document"] => sealing::form(ctx).await,
        ["seal-document", id] => sealing::place(ctx, id, &q).await,
        ["seal-document", id, "done"] => sealing::done(ctx, id).await,
        ["seal-document", id, "file"] => sealing::file(ctx, id).await,
        ["seals"] => seals::list(ctx, &q).await,
        ["seals", "new"] => seals::apply_form(ctx).await,
        ["seals", id] => seals::detail(ctx, id).await,
        ["seals", id, "image"] => seals::image(ctx, id).await,
        ["seals", id, "confirm"] => seals::confirm(ctx, id, &q).await,
        ["seals", id, "usage"] => seals::usage(ctx, id, &q).await,
        ["seals", id, "usage.csv"] => seals::usage_csv(ctx, id).await,
        ["seals", id, "csr"] => seals::csr(ctx, id).await,
        ["inbox"] => seals::inbox(ctx).await,
        ["filings"] => office::filings(ctx, &q).await,
        ["filings", id, "package"] => office::package(ctx, id).await,
        ["verify"] => office::verify_form(ctx),
        ["audit"] => office::audit(ctx, &q).await,
        ["audit", "verify"] => office::audit_verify(ctx).await,
        ["keys"] => admin::keys(ctx, &q).await,
        ["requests"] => admin::requests(ctx, &q).await,
        ["accounts"] => admin::accounts(ctx, &q).await,
        ["units"] => admin::units(ctx, &q).await,
        _ => Err(Refusal::not_found(path)),
    }
}

/// The forms posted (the token and the origin are checked before).
async fn route_post(ctx: &Ctx, path: &str, _query: &str, f: Form) -> Reply {
    let rest = path.strip_prefix("/console").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["seals"] => seals::apply(ctx, f).await,
        ["seal-document"] => sealing::upload(ctx, f).await,
        ["seal-document", id] => sealing::apply(ctx, id, f).await,
        ["seal-document", id, "discard"] => sealing::discard(ctx, id).await,
        ["seals", id, "act"] => seals::act(ctx, id, f).await,
        ["seals", id, "change"] => seals::change(ctx, id, f).await,
        ["seals", id, "certificate"] => seals::certificate(ctx, id, f).await,
        ["seals", id, "grants"] => seals::grant(ctx, id, f).await,
        ["seals", id, "withdraw"] => seals::withdraw(ctx, id, f).await,
        ["seals", id, "policy"] => seals::policy(ctx, id, f).await,
        ["seals", id, "tickets"] => seals::ticket(ctx, id, f).await,
        ["filings", id, "ack"] => office::ack(ctx, id, f).await,
        ["verify"] => office::verify(ctx, f).await,
        ["keys", name, "rotate"] => admin::rotate(ctx, name).await,
        ["token", "pin"] => admin::change_pin(ctx, f).await,
        ["keys", name, "activate"] => admin::activate(ctx, name, f).await,
        ["keys", name, "destroy"] => admin::destroy(ctx, name, f).await,
        ["requests", id, "approve"] => admin::approve(ctx, id).await,
        ["accounts"] => admin::create_account(ctx, f).await,
        ["accounts", name, "disable"] => admin::disable_account(ctx, name).await,
        ["accounts", name, "certificate"] => admin::bind_certificate(ctx, name, f).await,
        ["units"] => admin::create_unit(ctx, f).await,
        _ => Err(Refusal::not_found(path)),
    }
}

/// A POST is taken only from the console's own pages: its `Origin` is this origin, or, where a
/// browser sends none, `Sec-Fetch-Site` says `same-origin`. A request with neither is refused.
fn same_origin(req: &Request<Incoming>) -> Result<(), Refusal> {
    same_origin_of(req.headers(), req.uri().authority().map(|a| a.as_str()))
}

/// [`same_origin`] on a request's headers and `:authority` (HTTP/2).
fn same_origin_of(headers: &hyper::HeaderMap, authority: Option<&str>) -> Result<(), Refusal> {
    let refused = |why: String| Err(Refusal::new(StatusCode::FORBIDDEN, "csrf_refused", why));
    let host = authority
        .map(str::to_string)
        .or_else(|| headers.get(hyper::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let Some(host) = host else { return refused("the request names no host".into()) };
    // Browsers say where a request comes from; whatever the Host header says, a browser's word
    // that it is not same-origin is final.
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") | None => {}
        Some(other) => return refused(format!("a {other} form may not change anything here")),
    }
    if headers.get_all(hyper::header::ORIGIN).iter().count() > 1 {
        return refused("the request names more than one origin".into());
    }
    match headers.get(hyper::header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) if origin.eq_ignore_ascii_case(&format!("https://{host}")) => Ok(()),
        Some(origin) if origin != "null" => refused(format!("a form from {origin} may not change anything here")),
        // No origin, or an opaque one: only the browser's own word that it is same-origin will do.
        _ => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("same-origin") => Ok(()),
            _ => refused("the request says neither its origin nor that it is same-origin".into()),
        },
    }
}

/// A request another site made the browser send without navigating to it.
fn cross_site_subresource(headers: &hyper::HeaderMap) -> bool {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    h("sec-fetch-site") == "cross-site" && h("sec-fetch-mode") != "navigate"
}

/// The value of cookie `name`.
fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `attachment` with the name as ASCII (others as `_`) and, for every reader that takes it, in
/// UTF-8 (RFC 6266, RFC 8187).
fn disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", form::encode(name))
}

fn asset(content_type: &'static str, text: &'static str) -> Answer {
    Answer::File(content_type, None, Body::Left(Full::new(Bytes::from_static(text.as_bytes()))))
}

/// A page's response with the console's headers.
fn finish((status, markup): (StatusCode, Markup)) -> Response<Body> {
    let mut r = Response::new(Body::Left(Full::new(Bytes::from(markup.into_string()))));
    *r.status_mut() = status;
    let _ = r
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(&mut r);
    r
}

/// This origin's stylesheet, script and images only; no inline script; never framed; nothing kept.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn secure_headers(r: &mut Response<Body>) {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Same-origin: a form's POST then carries this origin (with no-referrer, browsers send
        // `Origin: null`); nothing is sent to other sites.
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        let _ = h.insert(k, hyper::header::HeaderValue::from_static(v));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn other_sites_may_link_but_not_load_and_downloads_keep_their_names() {
        let headers = |site: &str, mode: &str| {
            let mut h = hyper::HeaderMap::new();
            let _ = h.insert("sec-fetch-site", site.parse().unwrap());
            let _ = h.insert("sec-fetch-mode", mode.parse().unwrap());
            h
        };
        assert!(super::cross_site_subresource(&headers("cross-site", "no-cors")));
        assert!(super::cross_site_subresource(&headers("cross-site", "cors")));
        assert!(!super::cross_site_subresource(&headers("cross-site", "navigate")));
        assert!(!super::cross_site_subresource(&headers("same-origin", "no-cors")));
        assert!(!super::cross_site_subresource(&hyper::HeaderMap::new()));
        let d = super::disposition("回单 \"2026\".ofd");
        assert_eq!(d, "attachment; filename=\"__ _2026_.ofd\"; filename*=UTF-8''%E5%9B%9E%E5%8D%95%20%222026%22.ofd");
        assert!(hyper::header::HeaderValue::from_str(&d).is_ok());
    }

    #[test]
    fn a_post_is_taken_from_this_origin_only_whatever_the_host_header_says() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = hyper::HeaderMap::new();
            for (k, v) in pairs {
                let _ = m.append(*k, v.parse().unwrap());
            }
            m
        };
        let ok = |m: &hyper::HeaderMap, auth: Option<&str>| super::same_origin_of(m, auth).is_ok();
        let here =
            h(&[("host", "localhost:8443"), ("origin", "https://localhost:8443"), ("sec-fetch-site", "same-origin")]);
        assert!(ok(&here, None));
        assert!(ok(&h(&[("origin", "https://seald.example:443")]), Some("seald.example:443")));
        // A forged Host that matches a forged Origin: the browser's Sec-Fetch-Site still says cross-site.
        let forged =
            h(&[("host", "evil.example"), ("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")]);
        assert!(!ok(&forged, None));
        assert!(!ok(&h(&[("host", "localhost:8443"), ("origin", "https://evil.example")]), None));
        assert!(!ok(
            &h(&[("host", "localhost:8443"), ("origin", "https://localhost:8443"), ("origin", "https://evil.example")]),
            None
        ));
        // No origin, or an opaque one: only the browser's same-origin word will do.
        assert!(!ok(&h(&[("host", "localhost:8443")]), None));
        assert!(!ok(&h(&[("host", "localhost:8443"), ("origin", "null")]), None));
        assert!(ok(&h(&[("host", "localhost:8443"), ("origin", "null"), ("sec-fetch-site", "same-origin")]), None));
        assert!(!ok(&h(&[("origin", "https://localhost:8443")]), None), "no host at all");
    }
}
