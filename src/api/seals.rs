//! The seals' routes: seals and their lifecycle, grants, use tickets, usage, filings, the issuing CA;
//! the seal products (SES, CMS) and their verification. (The administrators' routes are `admin.rs`.)
//! Each handler decodes with the contract's types, calls `seal::Registry` or `signing` on a blocking
//! thread, and encodes; every rule lives in those services.

use super::routes::Op;
use super::Body;
use super::{blocking, body, json_response, ok, parse, with, ApiError, App};
use crate::authz::Principal;
use crate::contract::{
    AckBody, Applied, ApplyBody, CaCertificate, CaIssueBody, CertificateBody, CsrReply, FilingExport, FilingList,
    GrantBody, GrantList, IssuedCertificate, SealDetail, SealList, SealSummary, SignCmsBody, SignCmsReply, SignSesBody,
    SignSesReply, TransitionBody, TransitionReply, UsageList, VerifyCmsBody, VerifySealBody, VerifySesBody, Withdrawn,
};
use crate::seal::{
    Action, ApplyRequest, FilingState, Policy, SealError, SealState, TicketRequest, TransitionRequest, UseRefusal,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
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
            SealError::BadInput(_) | SealError::Invalid(..) | SealError::Certificate(_) => StatusCode::BAD_REQUEST,
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
            SealError::Audit(_) | SealError::Store(_) | SealError::Backup(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let state = match &e {
            SealError::InvalidTransition { state, .. } => Some(*state),
            _ => None,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        err.state = state;
        err
    }
}

/// `POST /v1/verify/ses`: GB/T 38540 §7.3, with the registry's state for seals made here.
pub(super) async fn verify_ses(app: &Arc<App>, b: VerifySesBody) -> Result<Response<Body>, ApiError> {
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
    let report = with(app, move |r| Ok(r.verification().verify_ses(&sig, doc, app2.signing.trust()))).await?;
    Ok(ok(&report))
}

/// `POST /v1/seals/{id}/seal-ofd?page=&x=&y=[&riding=][&final=][&ticket=][&name=]`: the body is an
/// OFD package; the answer is the package sealed (`application/ofd`), with the new signature's id,
/// the key version and the usage record's seq in `x-seald-*` headers.
pub(super) async fn seal_ofd(
    app: &Arc<App>,
    p: Principal,
    id: String,
    query: &str,
    document: Bytes,
) -> Result<Response<Body>, ApiError> {
    let (mut page, mut x, mut y, mut riding, mut final_seal, mut ticket, mut name, mut timestamp) =
        (None, None, None, false, false, None, None, false);
    let number = |k: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| ApiError::bad("bad_input", format!("{k} must be a number of mm, not '{v}'")))
    };
    let flag = |k: &str, v: &str| match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad("bad_input", format!("{k} must be true or false, not '{v}'"))),
    };
    let allowed = ["page", "x", "y", "riding", "final", "ticket", "name", "timestamp"];
    for (k, v) in super::query_pairs(query, &allowed)? {
        match k {
            "page" => {
                page =
                    Some(v.parse::<u32>().map_err(|_| {
                        ApiError::bad("bad_input", format!("page must be a page number from 1, not '{v}'"))
                    })?)
            }
            "x" => x = Some(number(k, &v)?),
            "y" => y = Some(number(k, &v)?),
            "riding" => riding = flag(k, &v)?,
            "final" => final_seal = flag(k, &v)?,
            "timestamp" => timestamp = flag(k, &v)?,
            "ticket" => ticket = Some(v),
            _ => name = Some(v),
        }
    }
    let missing = |what: &str| ApiError::bad("bad_input", format!("{what} is required"));
    let placement = crate::formats::ofd::Placement {
        page: if riding { page.unwrap_or(1) } else { page.ok_or_else(|| missing("page"))? },
        x_mm: if riding { 0.0 } else { x.ok_or_else(|| missing("x"))? },
        y_mm: y.ok_or_else(|| missing("y"))?,
        riding,
        final_seal,
    };
    // Reading a document costs what verifying one does: the same slots bound it.
    let _slot = app.verify_slot().await?;
    let app2 = app.clone();
    let s = blocking(move || {
        let req = crate::signing::OfdRequest {
            document: &document,
            placement,
            name: name.as_deref(),
            ticket: ticket.as_deref(),
            timestamp,
        };
        app2.signing.seal_ofd(&p, &id, req)
    })
    .await??;
    let mut r = super::raw_response(StatusCode::OK, "application/ofd", s.document);
    for (k, v) in [
        ("x-seald-signature-id", s.signature_id),
        ("x-seald-property-info", s.property_info),
        ("x-seald-key-version", s.key_version.to_string()),
        ("x-seald-audit-seq", s.audit_seq.to_string()),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            let _ = r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// `POST /v1/verify/ofd`: every signature of the OFD package in the body, judged.
pub(super) async fn verify_ofd(app: &Arc<App>, document: Bytes) -> Result<Response<Body>, ApiError> {
    let _slot = app.verify_slot().await?;
    let app2 = app.clone();
    let verdict = blocking(move || {
        let limits = crate::formats::ofd::Limits::DEFAULT;
        app2.signing.registry().verification().verify_ofd(&document, app2.signing.trust(), &limits)
    })
    .await?
    .map_err(crate::signing::SignError::Ofd)?;
    Ok(ok(&verdict))
}

/// `POST /v1/seals/{id}/sign-ses`: an `SES_Signature` with the seal, under its use checks.
pub(super) async fn sign_ses(
    app: &Arc<App>,
    p: Principal,
    id: String,
    b: SignSesBody,
) -> Result<Response<Body>, ApiError> {
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
    let app2 = app.clone();
    let s = blocking(move || {
        let how = crate::signing::SealUse { ticket: b.ticket.as_deref(), timestamp: b.timestamp.unwrap_or(false) };
        app2.signing.sign_ses(&p, &id, &hash, &b.property_info, &ext, how)
    })
    .await??;
    use base64::Engine as _;
    let reply = SignSesReply {
        ses_signature: base64::engine::general_purpose::STANDARD.encode(s.der),
        key_version: s.key_version,
        audit_seq: s.audit_seq,
    };
    Ok(ok(&reply))
}

/// `POST /v1/sign/cms`: a GM/T 0010 SignedData with a seal, under the seal's use checks.
pub(super) async fn sign_cms(app: &Arc<App>, p: Principal, b: SignCmsBody) -> Result<Response<Body>, ApiError> {
    let data = b64("data", &b.data)?;
    let app2 = app.clone();
    let s = blocking(move || app2.signing.sign_cms(&p, &b.seal, &data, b.detached, b.ticket.as_deref())).await??;
    use base64::Engine as _;
    let reply = SignCmsReply {
        cms: base64::engine::general_purpose::STANDARD.encode(s.der),
        key_version: s.key_version,
        audit_seq: s.audit_seq,
    };
    Ok(ok(&reply))
}

/// `POST /v1/verify/cms`: a SignedData (attached, or detached with `data`).
pub(super) async fn verify_cms(app: &Arc<App>, b: VerifyCmsBody) -> Result<Response<Body>, ApiError> {
    let cms = b64("cms", &b.cms)?;
    let data = b.data.as_deref().map(|d| b64("data", d)).transpose()?;
    let app2 = app.clone();
    let report =
        with(app, move |r| Ok(r.verification().verify_cms(&cms, data.as_deref(), app2.signing.trust()))).await?;
    Ok(ok(&report))
}

/// `POST /v1/verify/seal`: GB/T 38540 §6.3 for a seal alone.
pub(super) async fn verify_seal(app: &Arc<App>, b: VerifySealBody) -> Result<Response<Body>, ApiError> {
    let seal = b64("seal", &b.seal)?;
    let at = b.at_ms.map(|m| std::time::UNIX_EPOCH + std::time::Duration::from_millis(m));
    let app2 = app.clone();
    let report = with(app, move |r| Ok(r.verification().verify_ses_seal(&seal, at, app2.signing.trust()))).await?;
    Ok(ok(&report))
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    super::b64(field, s)
}

fn days(v: &str) -> Result<u64, ApiError> {
    v.trim_end_matches('d')
        .parse()
        .map_err(|_| ApiError::bad("bad_input", format!("'{v}' is not a number of days like 90d")))
}

/// Routes under `/v1/seals`, `/v1/filings` and `/v1/ca` (the issuing CA certificate, for anyone who
/// checks a seal certificate).
pub(super) async fn route(
    app: &Arc<App>,
    p: Principal,
    op: Op,
    params: &[&str],
    query: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    let (id, account, action) = (param(0), param(1), param(1));
    let own = |s: &str| s.to_string();
    match op {
        Op::Ca => {
            let ca =
                with(app, |r| r.pki().issuing_ca()).await?.ok_or_else(|| ApiError::from(SealError::NoIssuingCa))?;
            Ok(ok(&CaCertificate { alg: ca.alg, certificate: ca.cert_pem }))
        }
        Op::ListSeals => {
            let (mut state, mut unit, mut expiring) = (None, None, None);
            // Listed by id: `order` does not apply.
            let pairs = super::query_pairs(query, &["state", "unit", "expiring", "cursor", "limit"])?;
            let paging = super::Paging::from_pairs(&pairs)?;
            for (k, v) in pairs {
                match k {
                    "state" => state = Some(v.parse::<SealState>().map_err(|e| ApiError::bad("bad_input", e))?),
                    "unit" => unit = Some(v),
                    "expiring" => expiring = Some(days(&v)?),
                    _ => {}
                }
            }
            let (seals, next_cursor) = with(app, move |r| {
                r.lifecycle().list_seals_page(
                    &p,
                    (state, unit.as_deref(), expiring),
                    paging.cursor.as_deref(),
                    paging.limit,
                )
            })
            .await?;
            let now = crate::seal::now_ms();
            let list: Vec<_> = seals.iter().map(|s| SealSummary::of(s, now)).collect();
            Ok(ok(&SealList { seals: list, next_cursor }))
        }
        Op::Apply => {
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
            let s = with(app, move |r| r.lifecycle().apply(&p, req)).await?;
            Ok(json_response(StatusCode::CREATED, &Applied { id: s.id, state: s.state }))
        }
        Op::GetSeal => {
            let id = own(id);
            let s = with(app, move |r| r.lifecycle().get_seal(&p, &id)).await?;
            Ok(ok(&SealDetail::of(s, crate::seal::now_ms())))
        }
        Op::SetPolicy => {
            let (id, policy): (String, Policy) = (own(id), parse(&body(app, req).await?)?);
            let s = with(app, move |r| r.lifecycle().set_policy(&p, &id, policy)).await?;
            Ok(ok(&SealSummary::of(&s, crate::seal::now_ms())))
        }
        Op::CaIssue => {
            let b: CaIssueBody = parse(&body(app, req).await?)?;
            let pem = with(app, move |r| r.pki().ca_issue(&p, &b.csr, b.valid_days)).await?;
            Ok(json_response(StatusCode::CREATED, &IssuedCertificate { certificate: pem }))
        }
        Op::SealCsr => {
            let id = own(id);
            let pem = with(app, move |r| r.lifecycle().seal_csr(&p, &id)).await?;
            Ok(ok(&CsrReply { csr: pem }))
        }
        Op::SealSes => {
            let id = own(id);
            let der = with(app, move |r| r.lifecycle().seal_ses(&p, &id)).await?;
            Ok(super::raw_response(StatusCode::OK, "application/octet-stream", der))
        }
        Op::ImportCertificate => {
            let (id, b): (String, CertificateBody) = (own(id), parse(&body(app, req).await?)?);
            let s = with(app, move |r| r.lifecycle().import_certificate(&p, &id, &b.certificate)).await?;
            Ok(ok(&SealSummary::of(&s, crate::seal::now_ms())))
        }
        Op::ListGrants => {
            let id = own(id);
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &["cursor", "limit"])?)?;
            let (grants, next_cursor) = with(app, move |r| {
                let _ = r.lifecycle().get_seal(&p, &id)?;
                r.lifecycle().grants_page(&id, paging.cursor.as_deref(), paging.limit)
            })
            .await?;
            Ok(ok(&GrantList { grants, next_cursor }))
        }
        Op::Grant => {
            let (id, b): (String, GrantBody) = (own(id), parse(&body(app, req).await?)?);
            let g = with(app, move |r| r.lifecycle().grant(&p, &id, &b.account)).await?;
            Ok(json_response(StatusCode::CREATED, &g))
        }
        Op::Ungrant => {
            let (id, account) = (own(id), own(account));
            with(app, move |r| r.lifecycle().ungrant(&p, &id, &account)).await?;
            Ok(ok(&Withdrawn { withdrawn: true }))
        }
        Op::IssueTicket => {
            let (id, b): (String, TicketRequest) = (own(id), parse(&body(app, req).await?)?);
            let t = with(app, move |r| r.uses().issue_ticket(&p, &id, b)).await?;
            Ok(json_response(StatusCode::CREATED, &t))
        }
        Op::Usage => {
            let id = own(id);
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &super::PAGING)?)?;
            let u = with(app, move |r| {
                r.uses().usage_page(&p, &id, paging.cursor.as_deref(), paging.newest_first, paging.limit)
            })
            .await?;
            Ok(ok(&UsageList { usage: u.usage, next_cursor: u.next_cursor }))
        }
        Op::AccountUsage => {
            let name = own(id);
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &super::PAGING)?)?;
            let u = with(app, move |r| {
                r.uses().account_usage_page(&p, &name, paging.cursor.as_deref(), paging.newest_first, paging.limit)
            })
            .await?;
            Ok(ok(&UsageList { usage: u.usage, next_cursor: u.next_cursor }))
        }
        Op::Transition => {
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
            let s = with(app, move |r| r.lifecycle().transition(&p, &id, action, treq)).await?;
            let replaces = (action == Action::Change).then(|| s.replaces.clone());
            let key_version = s.current().map(|v| v.version);
            Ok(ok(&TransitionReply { id: s.id, state: s.state, key_version, replaces }))
        }
        Op::ListFilings => {
            let mut state = None;
            let pairs = super::query_pairs(query, &["state", "cursor", "limit"])?;
            let paging = super::Paging::from_pairs(&pairs)?;
            for (k, v) in pairs {
                if k != "state" {
                    continue;
                }
                state = Some(match v.as_str() {
                    "pending" => FilingState::Pending,
                    "acked" => FilingState::Acked,
                    other => {
                        return Err(ApiError::bad("bad_input", format!("state '{other}' is not pending or acked")))
                    }
                });
            }
            let (f, next_cursor) =
                with(app, move |r| r.filings().filings_page(&p, state, paging.cursor.as_deref(), paging.limit)).await?;
            Ok(ok(&FilingList { filings: f, next_cursor }))
        }
        Op::ExportFilings => {
            // One JSON document (FilingExport), streamed a page of filings at a time. The first
            // page is read before answering, so a refusal is an ordinary error answer.
            let _ = super::query_pairs(query, &[])?;
            let who = p.clone();
            let first = with(app, move |r| r.filings().filings_page(&who, None, None, crate::audit::MAX_PAGE)).await?;
            let r = app.signing.registry().clone();
            let (mut writer, stream) = super::StreamWriter::new();
            let _detached = tokio::task::spawn_blocking(move || {
                use std::io::Write as _;
                let head = FilingExport {
                    format: "seald-filings-v1".into(),
                    exported_ms: crate::seal::now_ms(),
                    filings: vec![],
                };
                let text = serde_json::to_string(&head).unwrap_or_default();
                let (mut page, mut next) = first;
                let mut written = 0usize;
                let result = (|| -> Result<(), String> {
                    let e = |e: std::io::Error| e.to_string();
                    writer.write_all(text.trim_end_matches("]}").as_bytes()).map_err(e)?;
                    loop {
                        for f in &page {
                            if written > 0 {
                                writer.write_all(b",").map_err(e)?;
                            }
                            serde_json::to_writer(&mut writer, f).map_err(|x| x.to_string())?;
                            written += 1;
                        }
                        let Some(cursor) = next.take() else { break };
                        (page, next) = r
                            .filings()
                            .filings_page(&p, None, Some(&cursor), crate::audit::MAX_PAGE)
                            .map_err(|x| x.to_string())?;
                    }
                    writer.write_all(b"]}").and_then(|()| writer.flush()).map_err(e)
                })();
                if let Err(why) = result {
                    tracing::error!(error = %why, "filings export cut short");
                    writer.fail(why);
                }
            });
            let mut resp = super::streamed_response(StatusCode::OK, "application/json", stream);
            let _ = resp.headers_mut().insert(
                hyper::header::CONTENT_DISPOSITION,
                hyper::header::HeaderValue::from_static("attachment; filename=\"filings.json\""),
            );
            Ok(resp)
        }
        Op::AckFiling => {
            let id = own(id);
            let bytes = body(app, req).await?;
            let b: AckBody =
                if bytes.iter().all(u8::is_ascii_whitespace) { AckBody::default() } else { parse(&bytes)? };
            let f = with(app, move |r| r.filings().ack_filing(&p, &id, b.reference)).await?;
            Ok(ok(&f))
        }
        _ => Err(super::method_not_allowed()),
    }
}

/// Registry facts for /readyz and /metrics, with the expiring appliance keys; `None` when the
/// store cannot answer.
pub(super) fn registry_facts(app: &App) -> Option<(crate::seal::RegistryFacts, Vec<String>)> {
    let r = app.signing.registry();
    let facts = r.filings().facts().ok()?;
    let keys = r.dual_control().expiring_appliance_keys().ok()?;
    Some((facts, keys))
}
