//! The usage record of every signing product, built in one place: who used which key (a plain key,
//! or a seal's key version), for what product from which input, over which digest. A seal's record
//! is made durable by its permit (`seal::UsePermit::record`), which adds the counters and the ticket
//! the use spends.

use super::{InputMode, Key};
use crate::audit::{Actor, AuditEvent};
use crate::authz::Principal;
use crate::seal::SealKeyRef;

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
    /// A sealed OFD document.
    Ofd {
        /// The document's name, as the caller gave it.
        name: Option<&'a str>,
        /// SM3 of the document as it came in.
        document_sm3: &'a [u8; 32],
        /// The pages stamped (numbers from 1).
        pages: &'a [u32],
        /// Where the new `Signature.xml` is.
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
            Product::Ofd { name, document_sm3, pages, property_info } => vec![
                ("input", "ofd".into()),
                ("document_name", name.map(serde_json::Value::from).unwrap_or_default()),
                ("document_sm3", hex::encode(document_sm3).into()),
                ("pages", pages.into()),
                ("property_info", property_info.into()),
            ],
        }
    }
}

/// The journal's actor for a caller.
pub(super) fn actor(p: &Principal) -> Actor {
    Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) }
}

/// Whose use a record names.
pub(super) enum Subject<'a> {
    /// A plain key.
    Key(&'a Key),
    /// A seal's key version.
    Seal(&'a SealKeyRef),
}

/// The usage record of every product: `sign` on `key:<id>` for a plain key, `seal.use` on
/// `seal:<id>` for a seal (whose permit adds the counters and the ticket); the key and its version,
/// the product and its input, and the digest (none on a refusal before planning).
pub(super) fn record(
    p: &Principal,
    subject: Subject<'_>,
    product: Product<'_>,
    outcome: &str,
    digest: Option<&[u8; 32]>,
) -> AuditEvent {
    let mut ev = match subject {
        Subject::Key(key) => AuditEvent::new(actor(p), "sign", &format!("key:{}", key.info.id), outcome)
            .detail("key_name", key.name.clone())
            .detail("key_version", key.version)
            .detail("alg", key.info.alg.name()),
        Subject::Seal(k) => AuditEvent::new(actor(p), "seal.use", &format!("seal:{}", k.seal), outcome)
            .detail("key_id", k.key_id.to_hex())
            .detail("key_version", k.version)
            .detail("alg", k.alg.name()),
    };
    for (k, v) in product.details() {
        ev = ev.detail(k, v);
    }
    if let Some(d) = digest {
        ev = ev.detail("digest", hex::encode(d));
    }
    ev
}
