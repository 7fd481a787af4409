//! The usage record of every signing product: what was made, from which input, over which digest.
//!
//! A plain key's use is journalled here as `sign` on `key:<id>`; a seal's use is journalled by its
//! permit (`seal::UsePermit::record`) as `seal.use` on `seal:<id>`, with the counters and the ticket
//! it spends, and these same product details.

use super::{InputMode, Key};
use crate::audit::{Actor, AuditEvent};
use crate::authz::Principal;

/// A signing product, as its usage record names it.
#[derive(Debug, Clone, Copy)]
pub enum Product<'a> {
    /// A raw signature over a message, a digest or e.
    Raw(InputMode),
    /// A GM/T 0010 SignedData, attached or detached.
    Cms {
        /// Whether the content is left out.
        detached: bool,
    },
    /// A GB/T 38540 `SES_Signature`.
    Ses {
        /// Its `propertyInfo`: where the document's protected bytes are.
        property_info: &'a str,
    },
}

impl Product<'_> {
    /// The details every usage record of this product carries.
    pub fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match *self {
            Product::Raw(input) => vec![("input", serde_json::to_value(input).unwrap_or_default())],
            Product::Cms { detached } => vec![("input", "cms".into()), ("detached", detached.into())],
            Product::Ses { property_info } => vec![("input", "ses".into()), ("property_info", property_info.into())],
        }
    }
}

/// The journal's actor for a caller.
pub(super) fn actor(p: &Principal) -> Actor {
    Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) }
}

/// The record of a use (or a refused use: no digest) of a plain key.
pub(super) fn key_use(
    p: &Principal,
    key: &Key,
    product: Product<'_>,
    outcome: &str,
    digest: Option<&[u8; 32]>,
) -> AuditEvent {
    let mut ev = AuditEvent::new(actor(p), "sign", &format!("key:{}", key.info.id), outcome)
        .detail("key_name", key.name.clone())
        .detail("key_version", key.version)
        .detail("alg", key.info.alg.name());
    for (k, v) in product.details() {
        ev = ev.detail(k, v);
    }
    if let Some(d) = digest {
        ev = ev.detail("digest", hex::encode(d));
    }
    ev
}
