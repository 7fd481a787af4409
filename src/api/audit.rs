//! Handlers of the audit trail: `/v1/audit/verify` and `/v1/audit/export` (auditors), and
//! `/v1/admin/backup` (the system administrator). Who may is the registry's rule (`seal::trail`).

use super::{blocking, json_response, raw_response, ApiError, App};
use crate::audit::ExportRange;
use crate::authz::Principal;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use std::sync::Arc;

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// `GET /v1/audit/verify`.
pub(super) async fn verify(app: &Arc<App>, p: Principal) -> Reply {
    let r = app.signing.registry().clone();
    let report = blocking(move || r.trail().audit_verify(&p)).await??;
    Ok(json_response(StatusCode::OK, &report))
}

/// `GET /v1/audit/export?from=&to=`.
pub(super) async fn export(app: &Arc<App>, p: Principal, query: &str) -> Reply {
    // Who may comes first: a bad query from someone who may not export is a refusal, not a 400.
    let range = range(query).map_err(|e| e.message);
    let r = app.signing.registry().clone();
    let out = blocking(move || r.trail().audit_export(&p, range)).await??;
    Ok(raw_response(StatusCode::OK, "application/x-ndjson", String::from_utf8_lossy(&out).into_owned()))
}

/// `GET /v1/admin/backup`.
pub(super) async fn backup(app: &Arc<App>, p: Principal) -> Reply {
    let r = app.signing.registry().clone();
    let bytes = blocking(move || r.trail().backup(&p)).await??;
    Ok(raw_response(StatusCode::OK, "application/json", bytes))
}

fn range(query: &str) -> Result<ExportRange, ApiError> {
    let (mut from, mut to) = (1u64, u64::MAX);
    for (k, v) in super::query_pairs(query, &["from", "to"])? {
        let n: u64 = v.parse().map_err(|_| ApiError::bad("bad_range", format!("{k} must be a sequence number")))?;
        match k {
            "from" => from = n,
            _ => to = n,
        }
    }
    Ok(ExportRange { from, to })
}
