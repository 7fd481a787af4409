//! Handlers of `/v1/sign`, `/v1/verify` (single and batch) and `/v1/keys`: decode with the contract's
//! types, call `signing` off the I/O threads, encode.

use super::Body;
use super::{b64, blocking, json_response, ApiError, App, MAX_BATCH};
use crate::authz::Principal;
use crate::contract::{
    Batch, BatchItem, BatchReply, Encoding, ErrorDetail, KeyDetail, KeyList, KeySummary, SignBody, SignReply,
    VerifyBody,
};
use crate::crypto::PublicKey;
use crate::signing::{Request as SignRequest, Verdict};
use base64::Engine as _;
use hyper::{Response, StatusCode};
use std::sync::Arc;

type Reply = Result<Response<Body>, ApiError>;

/// `POST /v1/sign`.
pub(super) async fn sign(app: &Arc<App>, p: Principal, b: SignBody) -> Reply {
    Ok(json_response(StatusCode::OK, &sign_one(app, &p, b).await?))
}

/// `POST /v1/sign/batch`: items are signed concurrently (their usage records share fsyncs) and
/// answered in order, each with its signature or its error.
pub(super) async fn sign_batch(app: &Arc<App>, p: Principal, b: Batch<SignBody>) -> Reply {
    check_batch(b.items.len())?;
    let mut results = Vec::with_capacity(b.items.len());
    for chunk in b.items.chunks(64) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|item| {
                let (app, p, item) = (app.clone(), p.clone(), item.clone());
                tokio::spawn(async move { sign_one(&app, &p, item).await })
            })
            .collect();
        for h in handles {
            results.push(match h.await {
                Ok(r) => item_result(r),
                Err(_) => item_error("internal", "item failed inside the server".into()),
            });
        }
    }
    Ok(json_response(StatusCode::OK, &BatchReply { results }))
}

/// `POST /v1/verify`.
pub(super) async fn verify(app: &Arc<App>, b: VerifyBody) -> Reply {
    Ok(json_response(StatusCode::OK, &verify_one(app, b).await?))
}

/// `POST /v1/verify/batch`.
pub(super) async fn verify_batch(app: &Arc<App>, b: Batch<VerifyBody>) -> Reply {
    check_batch(b.items.len())?;
    let mut results = Vec::with_capacity(b.items.len());
    for item in b.items {
        results.push(item_result(verify_one(app, item).await));
    }
    Ok(json_response(StatusCode::OK, &BatchReply { results }))
}

/// `GET /v1/keys`: the plain keys the caller may sign with.
pub(super) fn keys(app: &App, p: &Principal) -> Response<Body> {
    let keys = app
        .signing
        .keys_for(p)
        .into_iter()
        .map(|k| KeySummary { id: k.info.id.to_hex(), name: k.name.clone(), alg: k.info.alg, key_version: k.version })
        .collect();
    json_response(StatusCode::OK, &KeyList { keys })
}

/// `GET /v1/keys/{id}`: one of them, with its public key and SM2 Z.
pub(super) fn key(app: &App, p: &Principal, id: &str) -> Reply {
    let v = app
        .signing
        .key_view(p, id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "unknown_key", format!("no key '{id}' for this account")))?;
    let k = v.key;
    let detail = KeyDetail {
        id: k.info.id.to_hex(),
        name: k.name,
        alg: k.info.alg,
        key_version: k.version,
        public_key_pem: v.public_key_pem,
        certificate: None,
        sm2_z_default_id: v.sm2_z_default_id,
    };
    Ok(json_response(StatusCode::OK, &detail))
}

fn check_batch(n: usize) -> Result<(), ApiError> {
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::bad("bad_input", format!("a batch holds 1 to {MAX_BATCH} items, not {n}")));
    }
    Ok(())
}

fn item_result<T>(r: Result<T, ApiError>) -> BatchItem<T> {
    match r {
        Ok(v) => BatchItem::Done(v),
        Err(e) => item_error(e.code, e.message),
    }
}

fn item_error<T>(code: &str, message: String) -> BatchItem<T> {
    BatchItem::Failed { error: ErrorDetail { code: code.into(), message, state: None } }
}

async fn sign_one(app: &Arc<App>, p: &Principal, b: SignBody) -> Result<SignReply, ApiError> {
    if b.key.is_some() == b.seal.is_some() {
        return Err(ApiError::bad("bad_input", "give exactly one of key, seal"));
    }
    let req = SignRequest {
        key: b.key.clone().unwrap_or_default(),
        seal: b.seal.clone(),
        ticket: b.ticket.clone(),
        input: b.input,
        data: b64("data", &b.data)?,
        digest_alg: b.digest_alg.clone(),
        user_id: b.user_id.as_ref().map(|u| u.as_bytes().to_vec()),
    };
    let (app2, p2) = (app.clone(), p.clone());
    let signed = blocking(move || app2.signing.sign(&p2, &req)).await??;
    app.metrics.signed(&signed.key.name);
    let bytes = if b.encoding == Encoding::Raw { &signed.raw } else { &signed.der };
    Ok(SignReply {
        signature: base64::engine::general_purpose::STANDARD.encode(bytes),
        encoding: b.encoding,
        key_id: signed.key.info.id.to_hex(),
        key_version: signed.key.version,
        alg: signed.key.info.alg.signature_name().to_string(),
        seal: signed.seal,
        cert: signed.cert,
        audit_seq: signed.audit_seq,
    })
}

async fn verify_one(app: &Arc<App>, b: VerifyBody) -> Result<Verdict, ApiError> {
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
    let _slot = app.verify_slot().await?;
    let app2 = app.clone();
    Ok(blocking(move || app2.signing.verify(&req, public_key.as_ref(), certificate.as_ref(), &sig)).await??)
}
