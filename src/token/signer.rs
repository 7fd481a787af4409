//! A token key as a [`crate::crypto::KeySigner`]: the one adapter between the token and every format
//! that builds with a signer (certificates, CSRs, CMS, SES, audit checkpoints).
//!
//! It signs whole messages (`SignInput::Message` with the default SM2 ID), and the pool verifies every
//! signature on the host before it returns. A token failure travels inside the `signature::Error` as
//! its source.

use super::{KeyId, SignInput, TokenError, TokenPool};
use crate::crypto::{DerSignature, PublicKey};

/// A key in the token, with its public half.
#[derive(Clone)]
pub struct TokenKey {
    pool: TokenPool,
    id: KeyId,
    public: PublicKey,
    /// The token's last failure, kept whole: the formats that sign with this key report errors as
    /// text, and a token that is down must not come back to the caller as bad input.
    failure: std::sync::Arc<std::sync::Mutex<Option<TokenError>>>,
}

impl TokenKey {
    /// The token key `id`; its public half is read from the token.
    pub fn open(pool: &TokenPool, id: &KeyId) -> Result<Self, TokenError> {
        let public = pool.key(id)?.public_key.clone();
        Ok(TokenKey::with_public(pool, id, public))
    }

    /// The token key `id`, whose public half the caller already holds.
    pub fn with_public(pool: &TokenPool, id: &KeyId, public: PublicKey) -> Self {
        TokenKey { pool: pool.clone(), id: id.clone(), public, failure: Default::default() }
    }

    /// Who failed when a format built with this key failed with `e`: the token (its error, whole),
    /// or the format (its message).
    pub fn blame(&self, e: impl std::fmt::Display) -> Result<TokenError, String> {
        match self.failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(t) => Ok(t),
            None => Err(e.to_string()),
        }
    }

    /// Its CKA_ID.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl signature::Signer<DerSignature> for TokenKey {
    fn try_sign(&self, message: &[u8]) -> Result<DerSignature, signature::Error> {
        self.pool
            .sign(&self.id, SignInput::Message { data: message, user_id: None })
            .map(|s| DerSignature::new(s.der))
            .map_err(|e| {
                let shown = signature::Error::from_source(e.to_string());
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                shown
            })
    }
}

impl signature::Keypair for TokenKey {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.public.clone()
    }
}
