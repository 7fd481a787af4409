//! Handlers of the audit trail: `/v1/audit/verify` and `/v1/audit/export` (auditors), and
//! `/v1/admin/backup` (the system administrator). Who may is the registry's rule (`seal::trail`).

use super::Body;
use super::{blocking, json_response, ApiError, App};
use crate::audit::ExportRange;
use crate::authz::Principal;
use hyper::{Response, StatusCode};
use std::sync::Arc;

type Reply = Result<Response<Body>, ApiError>;

/// `GET /v1/audit/verify`.
pub(super) async fn verify(app: &Arc<App>, p: Principal) -> Reply {
    let r = app.signing.registry().clone();
    let report = blocking(move || r.trail().audit_verify(&p)).await??;
    Ok(json_response(StatusCode::OK, &report))
}

/// `GET /v1/audit/records?from=&to=&actor=&action=&object=&seal=&cursor=&limit=&order=`: a page of
/// the journal's records, found through the store's indexes.
pub(super) async fn records(app: &Arc<App>, p: Principal, query: &str) -> Reply {
    let mut allowed = vec!["from", "to", "actor", "action", "object", "seal"];
    allowed.extend(super::PAGING);
    let pairs = super::query_pairs(query, &allowed)?;
    let paging = super::Paging::from_pairs(&pairs)?;
    let mut q = crate::audit::Query::default();
    let time = |k: &str, v: &str| -> Result<u64, ApiError> {
        let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map_err(|e| ApiError::bad("bad_input", format!("{k} '{v}' is not an RFC 3339 time: {e}")))?;
        u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| ApiError::bad("bad_input", format!("{k} is before 1970")))
    };
    for (k, v) in pairs {
        match k {
            "from" => q.from_ms = Some(time(k, &v)?),
            "to" => q.to_ms = Some(time(k, &v)?),
            "actor" => q.actor = Some(v),
            "action" => q.action = Some(v),
            "object" => q.object = Some(v),
            "seal" => q.object = Some(format!("seal:{v}")),
            _ => {}
        }
    }
    let r = app.signing.registry().clone();
    let page =
        blocking(move || r.trail().audit_records(&p, &q, &paging.cursor, paging.newest_first, paging.limit)).await??;
    Ok(json_response(StatusCode::OK, &crate::contract::AuditRecords { records: page.records, next_cursor: page.next }))
}

/// `GET /v1/audit/export?from=&to=`: checked first (a refusal is an ordinary error answer), then
/// streamed as it is read, so memory stays flat whatever the range.
pub(super) async fn export(app: &Arc<App>, p: Principal, query: &str) -> Reply {
    // Who may comes first: a bad query from someone who may not export is a refusal, not a 400.
    let range = range(query).map_err(|e| (e.code, e.message));
    let r = app.signing.registry().clone();
    let r2 = r.clone();
    let range = blocking(move || r2.trail().audit_export(&p, range)).await??;
    let (mut writer, body) = super::StreamWriter::new();
    let _detached = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        match r.trail().write_export(range, &mut writer) {
            Ok(()) => {
                let _ = writer.flush();
            }
            Err(e) => {
                tracing::error!(error = %e, "audit export cut short");
                writer.fail(e.to_string());
            }
        }
    });
    Ok(super::streamed_response(StatusCode::OK, "application/x-ndjson", body))
}

/// `GET /v1/admin/backup[?from=&head=]`: prepared (checkpointed, signed, journalled) first, then
/// streamed as it is read; `from` and `head` together resume a download cut short.
pub(super) async fn backup(app: &Arc<App>, p: Principal, query: &str) -> Reply {
    let resume = resume(query).map_err(|e| (e.code, e.message));
    let r = app.signing.registry().clone();
    let r2 = r.clone();
    // Who may comes first: a bad query from someone who may not back up is a refusal, not a 400.
    let prepared = blocking(move || r2.trail().backup(&p, resume)).await??;
    let (mut writer, body) = super::StreamWriter::new();
    let _detached = tokio::task::spawn_blocking(move || {
        if let Err(e) = r.trail().write_backup(&prepared, &mut writer) {
            tracing::error!(error = %e, "backup cut short");
            writer.fail(e.to_string());
        }
    });
    Ok(super::streamed_response(StatusCode::OK, crate::backup::MEDIA_TYPE, body))
}

/// `from` and `head`, both or neither.
fn resume(query: &str) -> Result<Option<(u64, u64)>, ApiError> {
    let (mut from, mut head) = (None, None);
    for (k, v) in super::query_pairs(query, &["from", "head"])? {
        let n: u64 = v.parse().map_err(|_| ApiError::bad("bad_range", format!("{k} must be a sequence number")))?;
        match k {
            "from" => from = Some(n),
            _ => head = Some(n),
        }
    }
    match (from, head) {
        (None, None) => Ok(None),
        (Some(f), Some(h)) => Ok(Some((f, h))),
        _ => Err(ApiError::bad("bad_range", "from and head go together: they resume a backup")),
    }
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
