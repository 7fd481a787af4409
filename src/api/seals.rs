//! The registry's routes: seals and their lifecycle, grants, use tickets, usage, filings, accounts
//! and units. Each handler decodes, calls `seal::Registry` on a blocking thread, and encodes; every
//! rule lives in `seal`.

use super::{blocking, body, json_response, parse, ApiError, App};
use crate::authz::Principal;
use crate::seal::{
    AccountSpec, AccountUpdate, Action, ApplyRequest, FilingState, Policy, Registry, SealError, SealKind, SealState,
    TicketRequest, TransitionRequest, UnitSpec, UseRefusal,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

impl From<SealError> for ApiError {
    fn from(e: SealError) -> Self {
        let status = match &e {
            SealError::Forbidden(_) => StatusCode::FORBIDDEN,
            SealError::NotFound(..) => StatusCode::NOT_FOUND,
            SealError::InvalidTransition { .. }
            | SealError::Conflict(..)
            | SealError::NoIssuingCa
            | SealError::NoSealMaker => StatusCode::CONFLICT,
            SealError::BadInput(_) | SealError::Certificate(_) => StatusCode::BAD_REQUEST,
            SealError::Refused(r, _) => match r {
                UseRefusal::NotActive
                | UseRefusal::Frozen
                | UseRefusal::Revoked
                | UseRefusal::Expired
                | UseRefusal::TicketUsed => StatusCode::CONFLICT,
                UseRefusal::UsageLimit => StatusCode::TOO_MANY_REQUESTS,
                UseRefusal::NoGrant
                | UseRefusal::OutsideHours
                | UseRefusal::TicketRequired
                | UseRefusal::TicketExpired
                | UseRefusal::TicketMismatch => StatusCode::FORBIDDEN,
            },
            SealError::Token(t) => super::token_status(t),
            SealError::Audit(_) | SealError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let state = match &e {
            SealError::InvalidTransition { state, .. } => Some(state.name()),
            _ => None,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        err.state = state;
        err
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    name: String,
    kind: SealKind,
    image: String,
    image_type: String,
    width_mm: f64,
    height_mm: f64,
    valid_days: u32,
    alg: crate::crypto::KeyAlg,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    policy: Policy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    image_type: Option<String>,
    #[serde(default)]
    width_mm: Option<f64>,
    #[serde(default)]
    height_mm: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionBody {
    version: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaIssueBody {
    csr: String,
    #[serde(default = "a_year")]
    valid_days: u32,
}

fn a_year() -> u32 {
    365
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtDataBody {
    id: String,
    #[serde(default)]
    critical: bool,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignSesBody {
    data_hash: String,
    property_info: String,
    #[serde(default)]
    ext_datas: Option<Vec<ExtDataBody>>,
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifySesBody {
    ses_signature: String,
    #[serde(default)]
    document: Option<String>,
    #[serde(default)]
    document_sm3: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifySealBody {
    seal: String,
    #[serde(default)]
    at_ms: Option<u64>,
}

/// `POST /v1/verify/ses`: GB/T 38540 §7.3, with the registry's state for seals made here.
pub(super) async fn verify_ses(app: &Arc<App>, b: VerifySesBody) -> Result<Response<Full<Bytes>>, ApiError> {
    let sig = b64("ses_signature", &b.ses_signature)?;
    let doc = match (b.document, b.document_sm3) {
        (Some(_), Some(_)) => return Err(ApiError::bad("bad_input", "give document or document_sm3, not both")),
        (Some(d), None) => Some(crate::crypto::sm3(&b64("document", &d)?)),
        (None, Some(h)) => Some(
            b64("document_sm3", &h)?
                .try_into()
                .map_err(|_| ApiError::bad("bad_input", "document_sm3 must be 32 bytes"))?,
        ),
        (None, None) => None,
    };
    let app2 = app.clone();
    let report = with(app, move |r| Ok(r.verify_ses(&sig, doc, app2.signing.trust()))).await?;
    Ok(ok(&report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignCmsBody {
    seal: String,
    data: String,
    #[serde(default = "yes")]
    detached: bool,
    #[serde(default)]
    ticket: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyCmsBody {
    cms: String,
    #[serde(default)]
    data: Option<String>,
}

/// `POST /v1/sign/cms`: a GM/T 0010 SignedData with a seal, under the seal's use checks.
pub(super) async fn sign_cms(app: &Arc<App>, p: &Principal, b: SignCmsBody) -> Result<Response<Full<Bytes>>, ApiError> {
    let data = b64("data", &b.data)?;
    let _ = registry(app)?;
    let (app2, p) = (app.clone(), p.clone());
    let s = blocking(move || app2.signing.sign_cms(&p, &b.seal, &data, b.detached, b.ticket.as_deref())).await??;
    use base64::Engine as _;
    Ok(ok(&serde_json::json!({
        "cms": base64::engine::general_purpose::STANDARD.encode(s.der),
        "key_version": s.key_version, "audit_seq": s.audit_seq,
    })))
}

/// `POST /v1/verify/cms`: a SignedData (attached, or detached with `data`).
pub(super) async fn verify_cms(app: &Arc<App>, b: VerifyCmsBody) -> Result<Response<Full<Bytes>>, ApiError> {
    let cms = b64("cms", &b.cms)?;
    let data = b.data.as_deref().map(|d| b64("data", d)).transpose()?;
    let app2 = app.clone();
    let report = with(app, move |r| Ok(r.verify_cms(&cms, data.as_deref(), app2.signing.trust()))).await?;
    Ok(ok(&report))
}

/// `POST /v1/verify/seal`: GB/T 38540 §6.3 for a seal alone.
pub(super) async fn verify_seal(app: &Arc<App>, b: VerifySealBody) -> Result<Response<Full<Bytes>>, ApiError> {
    let seal = b64("seal", &b.seal)?;
    let at = b.at_ms.map(|m| std::time::UNIX_EPOCH + std::time::Duration::from_millis(m));
    let app2 = app.clone();
    let report = with(app, move |r| Ok(r.verify_ses_seal(&seal, at, app2.signing.trust()))).await?;
    Ok(ok(&report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBody {
    certificate: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    account: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    reference: Option<String>,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    super::b64(field, s)
}

/// `key=value&...`, every key among `allowed`.
fn query_map<'a>(query: &'a str, allowed: &[&str]) -> Result<Vec<(&'a str, String)>, ApiError> {
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

fn percent_decode(s: &str) -> String {
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

fn days(v: &str) -> Result<u64, ApiError> {
    v.trim_end_matches('d')
        .parse()
        .map_err(|_| ApiError::bad("bad_input", format!("'{v}' is not a number of days like 90d")))
}

fn registry(app: &App) -> Result<Arc<Registry>, ApiError> {
    app.signing.registry().cloned().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_registry", "this appliance runs without a seal registry ([store])")
    })
}

fn ok<T: serde::Serialize>(v: &T) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, v)
}

/// Runs `f` with the registry on a blocking thread.
async fn with<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&Registry) -> Result<T, SealError> + Send + 'static,
) -> Result<T, ApiError> {
    let r = registry(app)?;
    Ok(blocking(move || f(&r)).await??)
}

/// Routes under `/v1/seals`, `/v1/filings`, `/v1/admin`, and `/v1/ca` (the issuing CA certificate,
/// for anyone who checks a seal certificate).
pub(super) async fn route(
    app: &Arc<App>,
    p: &Principal,
    method: Method,
    seg: &[&str],
    query: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let p = p.clone();
    let own = |s: &str| s.to_string();
    match (method, seg) {
        (Method::GET, ["ca"]) => {
            let ca = with(app, |r| r.issuing_ca()).await?.ok_or_else(|| ApiError::from(SealError::NoIssuingCa))?;
            Ok(ok(&serde_json::json!({ "alg": ca.alg, "certificate": ca.cert_pem })))
        }
        (Method::GET, ["seals"]) => {
            let (mut state, mut unit, mut expiring) = (None, None, None);
            for (k, v) in query_map(query, &["state", "unit", "expiring"])? {
                match k {
                    "state" => state = Some(v.parse::<SealState>().map_err(|e| ApiError::bad("bad_input", e))?),
                    "unit" => unit = Some(v),
                    _ => expiring = Some(days(&v)?),
                }
            }
            let seals = with(app, move |r| r.list_seals(&p, state, unit.as_deref(), expiring)).await?;
            let now = crate::seal::now_ms();
            let list: Vec<_> = seals.iter().map(|s| s.view(now, true)).collect();
            Ok(ok(&serde_json::json!({ "seals": list })))
        }
        (Method::POST, ["seals"]) => {
            let b: ApplyBody = parse(&body(app, req).await?)?;
            let req = ApplyRequest {
                name: b.name,
                kind: b.kind,
                image: b64("image", &b.image)?,
                image_type: b.image_type,
                width_mm: b.width_mm,
                height_mm: b.height_mm,
                valid_days: b.valid_days,
                alg: b.alg,
                unit: b.unit,
                policy: b.policy,
            };
            let s = with(app, move |r| r.apply(&p, req)).await?;
            Ok(json_response(StatusCode::CREATED, &serde_json::json!({ "id": s.id, "state": s.state })))
        }
        (Method::GET, ["seals", id]) => {
            let id = own(id);
            let s = with(app, move |r| r.get_seal(&p, &id)).await?;
            Ok(ok(&s.view(crate::seal::now_ms(), false)))
        }
        (Method::POST, ["seals", id, "policy"]) => {
            let (id, policy): (String, Policy) = (own(id), parse(&body(app, req).await?)?);
            let s = with(app, move |r| r.set_policy(&p, &id, policy)).await?;
            Ok(ok(&s.view(crate::seal::now_ms(), true)))
        }
        (Method::POST, ["ca", "issue"]) => {
            let b: CaIssueBody = parse(&body(app, req).await?)?;
            let pem = with(app, move |r| r.ca_issue(&p, &b.csr, b.valid_days)).await?;
            Ok(json_response(StatusCode::CREATED, &serde_json::json!({ "certificate": pem })))
        }
        (Method::GET, ["seals", id, "csr"]) => {
            let id = own(id);
            let pem = with(app, move |r| r.seal_csr(&p, &id)).await?;
            Ok(ok(&serde_json::json!({ "csr": pem })))
        }
        (Method::GET, ["seals", id, "ses"]) => {
            let id = own(id);
            let der = with(app, move |r| r.seal_ses(&p, &id)).await?;
            let mut resp = Response::new(Full::new(Bytes::from(der)));
            let _ = resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/octet-stream"),
            );
            Ok(resp)
        }
        (Method::POST, ["seals", id, "sign-ses"]) => {
            let (id, b): (String, SignSesBody) = (own(id), parse(&body(app, req).await?)?);
            let ext = b
                .ext_datas
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    Ok(crate::formats::ses::ExtData {
                        id: e.id,
                        critical: e.critical,
                        value: b64("ext_datas.value", &e.value)?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let hash = b64("data_hash", &b.data_hash)?;
            let _ = registry(app)?;
            let app2 = app.clone();
            let s =
                blocking(move || app2.signing.sign_ses(&p, &id, &hash, &b.property_info, &ext, b.ticket.as_deref()))
                    .await??;
            use base64::Engine as _;
            Ok(ok(&serde_json::json!({
                "ses_signature": base64::engine::general_purpose::STANDARD.encode(s.der),
                "key_version": s.key_version, "audit_seq": s.audit_seq,
            })))
        }
        (Method::POST, ["seals", id, "certificate"]) => {
            let (id, b): (String, CertificateBody) = (own(id), parse(&body(app, req).await?)?);
            let s = with(app, move |r| r.import_certificate(&p, &id, &b.certificate)).await?;
            Ok(ok(&s.view(crate::seal::now_ms(), true)))
        }
        (Method::GET, ["seals", id, "grants"]) => {
            let id = own(id);
            let g = with(app, move |r| r.get_seal(&p, &id).and_then(|_| r.grants(&id))).await?;
            Ok(ok(&serde_json::json!({ "grants": g })))
        }
        (Method::POST, ["seals", id, "grants"]) => {
            let (id, b): (String, GrantBody) = (own(id), parse(&body(app, req).await?)?);
            let g = with(app, move |r| r.grant(&p, &id, &b.account)).await?;
            Ok(json_response(StatusCode::CREATED, &g))
        }
        (Method::DELETE, ["seals", id, "grants", account]) => {
            let (id, account) = (own(id), own(account));
            with(app, move |r| r.ungrant(&p, &id, &account)).await?;
            Ok(ok(&serde_json::json!({ "withdrawn": true })))
        }
        (Method::POST, ["seals", id, "approvals"]) => {
            let (id, b): (String, TicketRequest) = (own(id), parse(&body(app, req).await?)?);
            let t = with(app, move |r| r.issue_ticket(&p, &id, b)).await?;
            Ok(json_response(StatusCode::CREATED, &t))
        }
        (Method::GET, ["seals", id, "usage"]) => {
            let id = own(id);
            let u = with(app, move |r| r.usage(&p, &id)).await?;
            Ok(ok(&serde_json::json!({ "usage": u })))
        }
        (Method::POST, ["seals", id, action]) => {
            let action: Action = action
                .parse()
                .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no seal action '{action}'")))?;
            let bytes = body(app, req).await?;
            let b: TransitionBody =
                if bytes.iter().all(u8::is_ascii_whitespace) { TransitionBody::default() } else { parse(&bytes)? };
            let image = match b.image {
                Some(img) => Some((
                    b64("image", &img)?,
                    b.image_type.ok_or_else(|| ApiError::bad("bad_input", "image needs image_type"))?,
                    b.width_mm.ok_or_else(|| ApiError::bad("bad_input", "image needs width_mm"))?,
                    b.height_mm.ok_or_else(|| ApiError::bad("bad_input", "image needs height_mm"))?,
                )),
                None => None,
            };
            let treq = TransitionRequest { reason: b.reason, name: b.name, image };
            let id = own(id);
            let s = with(app, move |r| r.transition(&p, &id, action, treq)).await?;
            let mut reply =
                serde_json::json!({ "id": s.id, "state": s.state, "key_version": s.current().map(|v| v.version) });
            if action == Action::Change {
                reply["replaces"] = s.replaces.clone().into();
            }
            Ok(ok(&reply))
        }
        (Method::GET, ["filings"]) => {
            let mut state = None;
            for (_, v) in query_map(query, &["state"])? {
                state = Some(match v.as_str() {
                    "pending" => FilingState::Pending,
                    "acked" => FilingState::Acked,
                    other => {
                        return Err(ApiError::bad("bad_input", format!("state '{other}' is not pending or acked")))
                    }
                });
            }
            let f = with(app, move |r| r.filings(&p, state)).await?;
            Ok(ok(&serde_json::json!({ "filings": f })))
        }
        (Method::GET, ["filings", "export"]) => {
            let _ = query_map(query, &[])?;
            let f = with(app, move |r| r.filings(&p, None)).await?;
            let doc = serde_json::json!({
                "format": "seald-filings-v1", "exported_ms": crate::seal::now_ms(), "filings": f,
            });
            let mut resp = ok(&doc);
            let _ = resp.headers_mut().insert(
                hyper::header::CONTENT_DISPOSITION,
                hyper::header::HeaderValue::from_static("attachment; filename=\"filings.json\""),
            );
            Ok(resp)
        }
        (Method::POST, ["filings", id, "ack"]) => {
            let id = own(id);
            let bytes = body(app, req).await?;
            let b: AckBody =
                if bytes.iter().all(u8::is_ascii_whitespace) { AckBody::default() } else { parse(&bytes)? };
            let f = with(app, move |r| r.ack_filing(&p, &id, b.reference)).await?;
            Ok(ok(&f))
        }
        (Method::GET, ["admin", "accounts"]) => {
            let a = with(app, move |r| r.accounts(&p)).await?;
            Ok(ok(&serde_json::json!({ "accounts": a })))
        }
        (Method::POST, ["admin", "accounts"]) => {
            let spec: AccountSpec = parse(&body(app, req).await?)?;
            let app2 = app.clone();
            let a = with(app, move |r| {
                r.create_account(&p, spec, &|fp| app2.signing.accounts().identify(fp, "").is_some())
            })
            .await?;
            Ok(json_response(StatusCode::CREATED, &a))
        }
        (Method::GET, ["admin", "accounts", name]) => {
            let name = own(name);
            let a = with(app, move |r| {
                r.accounts(&p)?
                    .into_iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{name}'")))
            })
            .await?;
            Ok(ok(&a))
        }
        (Method::POST, ["admin", "accounts", name]) => {
            let (name, up): (String, AccountUpdate) = (own(name), parse(&body(app, req).await?)?);
            let a = with(app, move |r| r.update_account(&p, &name, up)).await?;
            Ok(ok(&a))
        }
        (Method::DELETE, ["admin", "accounts", name]) => {
            let name = own(name);
            let up = AccountUpdate { disabled: Some(true), ..Default::default() };
            let a = with(app, move |r| r.update_account(&p, &name, up)).await?;
            Ok(ok(&a))
        }
        (Method::GET, ["admin", "keys"]) => {
            let k = with(app, move |r| r.key_list(&p)).await?;
            Ok(ok(&serde_json::json!({ "keys": k })))
        }
        (Method::POST, ["admin", "keys", name, "rotate"]) => {
            let name = own(name);
            let v = with(app, move |r| r.rotate(&p, &name)).await?;
            Ok(json_response(StatusCode::CREATED, &v))
        }
        (Method::POST, ["admin", "keys", name, "activate"]) => {
            let (name, b): (String, VersionBody) = (own(name), parse(&body(app, req).await?)?);
            match with(app, move |r| r.activate(&p, &name, b.version)).await? {
                Ok(v) => Ok(ok(&v)),
                Err(request) => {
                    Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({ "awaiting_approval": request })))
                }
            }
        }
        (Method::POST, ["admin", "keys", name, "destroy"]) => {
            let (name, b): (String, VersionBody) = (own(name), parse(&body(app, req).await?)?);
            let request = with(app, move |r| r.request_destroy(&p, &name, b.version)).await?;
            Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({ "awaiting_approval": request })))
        }
        (Method::POST, ["admin", "token", "pin"]) => {
            // Read by hand: a JSON error message must never echo the PIN back.
            let v: serde_json::Value = serde_json::from_slice(&body(app, req).await?)
                .map_err(|_| ApiError::bad("bad_json", "the body must be {\"new_pin\": \"...\"}"))?;
            let text =
                v.get("new_pin").and_then(|p| p.as_str()).filter(|_| v.as_object().is_some_and(|o| o.len() == 1));
            let text = text.ok_or_else(|| {
                ApiError::bad("bad_input", "the body must be {\"new_pin\": \"...\"} and nothing else")
            })?;
            let pin = crate::token::Pin::from_text(text).map_err(|e| ApiError::bad("bad_input", e.to_string()))?;
            let request = with(app, move |r| r.request_pin_change(&p, pin)).await?;
            Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({ "awaiting_approval": request })))
        }
        (Method::GET, ["admin", "requests"]) => {
            let r = with(app, move |r| r.requests(&p)).await?;
            Ok(ok(&serde_json::json!({ "requests": r })))
        }
        (Method::POST, ["admin", "requests", id, "approve"]) => {
            let id = own(id);
            let r = with(app, move |r| r.approve_request(&p, &id)).await?;
            Ok(ok(&r))
        }
        (Method::GET, ["admin", "units"]) => {
            let u = with(app, move |r| r.units(&p)).await?;
            Ok(ok(&serde_json::json!({ "units": u })))
        }
        (Method::POST, ["admin", "units"]) => {
            let spec: UnitSpec = parse(&body(app, req).await?)?;
            let u = with(app, move |r| r.create_unit(&p, spec)).await?;
            Ok(json_response(StatusCode::CREATED, &u))
        }
        (_, ["seals" | "filings" | "admin" | "ca", ..]) => Err(super::method_not_allowed()),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route /v1/{}", seg.join("/")))),
    }
}

/// Registry facts for /readyz and /metrics: (overdue filings, expiring seals), when there is a registry.
pub(super) fn registry_facts(app: &App) -> Option<(Vec<String>, usize, Vec<String>)> {
    let r = app.signing.registry()?;
    let overdue =
        r.overdue_filings().ok()?.into_iter().map(|f| format!("{} ({} of seal {})", f.id, f.action, f.seal)).collect();
    let expiring = r.expiring(r.settings().reminder_days).ok()?.len();
    let keys = r.expiring_appliance_keys().ok()?;
    Some((overdue, expiring, keys))
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(super::percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(super::percent_decode("%E5%8D%B0"), "印");
    }
}
