//! The administrators' routes under `/v1/admin`: accounts and units (the system administrator),
//! appliance keys, the token PIN and dual-control requests (security officers). Each handler
//! decodes with the contract's types, calls a registry service on a blocking thread, and encodes.

use super::routes::Op;
use super::Body;
use super::{body, json_response, ok, parse, with, ApiError, App};
use crate::authz::Principal;
use crate::contract::{AccountList, ApplianceKeyList, AwaitingApproval, RequestList, UnitList, VersionBody};
use crate::seal::{AccountChange, AccountSpec, AccountUpdate, SealError, UnitSpec};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// Routes under `/v1/admin` (but the backup, which is the audit trail's).
pub(super) async fn route(
    app: &Arc<App>,
    p: Principal,
    op: Op,
    params: &[&str],
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let name = params.first().copied().unwrap_or_default();
    let id = name;
    let own = |s: &str| s.to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let query = query.as_str();
    match op {
        Op::ListAccounts => {
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &["cursor", "limit"])?)?;
            let (a, next_cursor) =
                with(app, move |r| r.directory().accounts_page(&p, paging.cursor.as_deref(), paging.limit)).await?;
            Ok(ok(&AccountList { accounts: a, next_cursor }))
        }
        Op::CreateAccount => {
            let spec: AccountSpec = parse(&body(app, req).await?)?;
            let change = with(app, move |r| r.directory().create_account(&p, spec)).await?;
            Ok(account_change(change, StatusCode::CREATED))
        }
        Op::GetAccount => {
            let name = own(name);
            let a = with(app, move |r| {
                r.directory()
                    .accounts(&p)?
                    .into_iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{name}'")))
            })
            .await?;
            Ok(ok(&a))
        }
        Op::UpdateAccount => {
            let (name, up): (String, AccountUpdate) = (own(name), parse(&body(app, req).await?)?);
            let change = with(app, move |r| r.directory().update_account(&p, &name, up)).await?;
            Ok(account_change(change, StatusCode::OK))
        }
        Op::DisableAccount => {
            let name = own(name);
            let up = AccountUpdate { disabled: Some(true), ..Default::default() };
            let change = with(app, move |r| r.directory().update_account(&p, &name, up)).await?;
            Ok(account_change(change, StatusCode::OK))
        }
        Op::ListApplianceKeys => {
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &["cursor", "limit"])?)?;
            let (keys, next_cursor) =
                with(app, move |r| r.dual_control().key_list_page(&p, paging.cursor.as_deref(), paging.limit)).await?;
            Ok(ok(&ApplianceKeyList { keys, next_cursor }))
        }
        Op::RotateKey => {
            let name = own(name);
            let v = with(app, move |r| r.dual_control().rotate(&p, &name)).await?;
            Ok(json_response(StatusCode::CREATED, &v))
        }
        Op::ActivateKey => {
            let (name, b): (String, VersionBody) = (own(name), parse(&body(app, req).await?)?);
            match with(app, move |r| r.dual_control().activate(&p, &name, b.version)).await? {
                Ok(v) => Ok(ok(&v)),
                Err(request) => {
                    Ok(json_response(StatusCode::ACCEPTED, &AwaitingApproval { awaiting_approval: request }))
                }
            }
        }
        Op::DestroyKey => {
            let (name, b): (String, VersionBody) = (own(name), parse(&body(app, req).await?)?);
            let request = with(app, move |r| r.dual_control().request_destroy(&p, &name, b.version)).await?;
            Ok(json_response(StatusCode::ACCEPTED, &AwaitingApproval { awaiting_approval: request }))
        }
        Op::ChangePin => {
            // Read by hand: a JSON error message must never echo the PIN back.
            let v: serde_json::Value = serde_json::from_slice(&body(app, req).await?)
                .map_err(|_| ApiError::bad("bad_json", "the body must be {\"new_pin\": \"...\"}"))?;
            let text =
                v.get("new_pin").and_then(|p| p.as_str()).filter(|_| v.as_object().is_some_and(|o| o.len() == 1));
            let text = text.ok_or_else(|| {
                ApiError::bad("bad_input", "the body must be {\"new_pin\": \"...\"} and nothing else")
            })?;
            let pin = crate::token::Pin::from_text(text).map_err(|e| ApiError::bad("bad_input", e.to_string()))?;
            let request = with(app, move |r| r.dual_control().request_pin_change(&p, pin)).await?;
            Ok(json_response(StatusCode::ACCEPTED, &AwaitingApproval { awaiting_approval: request }))
        }
        Op::ListRequests => {
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &["cursor", "limit"])?)?;
            let (r, next_cursor) =
                with(app, move |r| r.dual_control().requests_page(&p, paging.cursor.as_deref(), paging.limit)).await?;
            Ok(ok(&RequestList { requests: r, next_cursor }))
        }
        Op::ApproveRequest => {
            let id = own(id);
            let r = with(app, move |r| r.dual_control().approve_request(&p, &id)).await?;
            Ok(ok(&r))
        }
        Op::ListUnits => {
            let paging = super::Paging::from_pairs(&super::query_pairs(query, &["cursor", "limit"])?)?;
            let (units, next_cursor) =
                with(app, move |r| r.directory().units_page(&p, paging.cursor.as_deref(), paging.limit)).await?;
            Ok(ok(&UnitList { units, next_cursor }))
        }
        Op::CreateUnit => {
            let spec: UnitSpec = parse(&body(app, req).await?)?;
            let u = with(app, move |r| r.directory().create_unit(&p, spec)).await?;
            Ok(json_response(StatusCode::CREATED, &u))
        }
        _ => Err(super::method_not_allowed()),
    }
}

/// `done` with the account, or 202 with the request a second administrator approves.
fn account_change(change: AccountChange, done: StatusCode) -> Response<Body> {
    match change {
        AccountChange::Done(a) => json_response(done, &a),
        AccountChange::AwaitingApproval(request) => {
            json_response(StatusCode::ACCEPTED, &AwaitingApproval { awaiting_approval: request })
        }
    }
}
