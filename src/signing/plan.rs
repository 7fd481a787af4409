//! Planning a raw signature: what the token signs for a key of a given algorithm, the digest the
//! usage record names, and the checks of a request against that algorithm (shared with verification).

use super::{InputMode, Request, SignError};
use crate::crypto::{self, KeyAlg, PublicKey};
use crate::token::SignInput;

/// What the token signs for a key of `alg`, and the digest the usage record names.
pub(super) fn plan(alg: KeyAlg, req: &Request, max_message: usize) -> Result<(SignInput<'_>, [u8; 32]), SignError> {
    check_request(alg, req, max_message)?;
    let sm2 = alg == KeyAlg::Sm2;
    Ok(match (req.input, sm2) {
        (InputMode::Message, true) => {
            (SignInput::Message { data: &req.data, user_id: req.user_id.as_deref() }, crypto::sm3(&req.data))
        }
        (InputMode::Message, false) => {
            (SignInput::Message { data: &req.data, user_id: None }, crypto::sha256(&req.data))
        }
        (InputMode::Digest, true) => {
            (SignInput::Message { data: &req.data, user_id: req.user_id.as_deref() }, digest32(&req.data)?)
        }
        (InputMode::Digest, false) | (InputMode::E, _) => (SignInput::Prehashed(&req.data), digest32(&req.data)?),
    })
}

fn digest32(d: &[u8]) -> Result<[u8; 32], SignError> {
    d.try_into().map_err(|_| SignError::BadInput(format!("digest must be 32 bytes, got {}", d.len())))
}

/// Checks mode, lengths and options against the key's algorithm.
pub(super) fn check_request(alg: KeyAlg, req: &Request, max_message: usize) -> Result<(), SignError> {
    let sm2 = alg == KeyAlg::Sm2;
    match req.input {
        InputMode::Message if req.data.len() > max_message => {
            return Err(SignError::TooLarge(req.data.len(), max_message))
        }
        InputMode::Digest | InputMode::E if req.data.len() != 32 => {
            return Err(SignError::BadInput(
                format!("{:?} input must be 32 bytes, got {}", req.input, req.data.len()).to_lowercase(),
            ))
        }
        InputMode::E if !sm2 => return Err(SignError::BadInput("input \"e\" is for SM2 keys only".into())),
        _ => {}
    }
    if req.user_id.is_some() && (!sm2 || req.input == InputMode::E) {
        return Err(SignError::BadInput("user_id applies to SM2 with input \"message\" or \"digest\" only".into()));
    }
    if let Some(u) = &req.user_id {
        if u.is_empty() || u.len() > 1024 {
            return Err(SignError::BadInput("user_id must be 1 to 1024 bytes".into()));
        }
    }
    if let Some(alg_name) = &req.digest_alg {
        let expected = if sm2 { "sm3" } else { "sha256" };
        if !alg_name.eq_ignore_ascii_case(expected) {
            return Err(SignError::BadInput(format!("digest_alg for a {alg} key is {expected}, not {alg_name}")));
        }
    }
    Ok(())
}

/// What a signature over this request covers: e for SM2, the SHA-256 digest otherwise.
pub(super) fn prehash(pk: &PublicKey, req: &Request) -> Result<[u8; 32], SignError> {
    let bad = |e: seald_gm::GmError| SignError::BadInput(e.to_string());
    Ok(match (pk, req.input) {
        (PublicKey::Sm2(k), InputMode::Message | InputMode::Digest) => {
            crypto::sm2::e(k, req.user_id.as_deref().unwrap_or(crypto::sm2::DEFAULT_USER_ID), &req.data).map_err(bad)?
        }
        (_, InputMode::Message) => crypto::sha256(&req.data),
        (_, InputMode::Digest | InputMode::E) => digest32(&req.data)?,
    })
}
