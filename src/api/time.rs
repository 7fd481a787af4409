//! Proofs of time: `POST /v1/tsa` (RFC 3161 time-stamps) and `GET /v1/seal-status/{id}` (a seal's
//! state at a time, as JSON or as an answer signed by the status responder). Any account may ask.

use super::Body;
use super::{blocking, body, ok, raw_response, with, ApiError, App};
use crate::authz::Principal;
use crate::contract::{rfc3339_ms, SealStatusReply};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// The media type of a signed seal-status answer.
pub const SEAL_STATUS_DER: &str = "application/seal-status+der";

/// `POST /v1/tsa`: a `TimeStampReq` in, a `TimeStampResp` out (granted, or a rejection that says
/// why); 415 for a media type other than application/timestamp-query or application/octet-stream,
/// 400 for a body that is not DER.
pub(super) async fn tsa(app: &Arc<App>, p: Principal, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let media = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    // The body is read (within the limit) before any answer, so that the client reads its 415 on a
    // connection that stays whole.
    let der = body(app, req).await?;
    // RFC 3161's media type; a generic binary one too, for clients that send every body as such.
    if media != "application/timestamp-query" && media != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be application/timestamp-query (RFC 3161), not '{media}'"),
        ));
    }
    let registry = app.signing.registry().clone();
    let answer = blocking(move || registry.tsa().respond(&p, &der)).await?;
    match answer {
        Ok(resp) => Ok(raw_response(StatusCode::OK, "application/timestamp-reply", resp)),
        Err(e) => Err(ApiError::bad("bad_der", e.to_string())),
    }
}

/// `GET /v1/seal-status/{id}?at=RFC3339`: JSON, or the signed answer with `Accept:
/// application/seal-status+der` (or `format=der`).
pub(super) async fn seal_status(
    app: &Arc<App>,
    id: &str,
    query: &str,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let mut at_ms = crate::seal::now_ms();
    let mut der = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.split(';').next().unwrap_or("").trim() == SEAL_STATUS_DER));
    for (k, v) in super::query_pairs(query, &["at", "format"])? {
        match k {
            "at" => {
                let t = time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| ApiError::bad("bad_input", format!("at '{v}' is not an RFC 3339 time: {e}")))?;
                let ms = t.unix_timestamp_nanos() / 1_000_000;
                at_ms = u64::try_from(ms).map_err(|_| ApiError::bad("bad_input", "at is before 1970"))?;
            }
            _ => match v.as_str() {
                "der" => der = true,
                "json" => der = false,
                other => return Err(ApiError::bad("bad_input", format!("format '{other}' is not json or der"))),
            },
        }
    }
    let id = id.to_string();
    if der {
        let (_, signed) = with(app, move |r| r.status().signed(&id, at_ms)).await?;
        return Ok(raw_response(StatusCode::OK, SEAL_STATUS_DER, signed.der.clone()));
    }
    let a = with(app, move |r| r.status().answer(&id, at_ms)).await?;
    Ok(ok(&SealStatusReply {
        es_id: a.es_id,
        at: rfc3339_ms(a.at_ms),
        state: a.state.to_string(),
        since: rfc3339_ms(a.since_ms),
        until: a.until_ms.map(rfc3339_ms),
        reason: a.reason,
        produced_at: rfc3339_ms(a.produced_ms),
    }))
}
