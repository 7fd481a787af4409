//! The GB/T 38540 v4 `SES_Signature` (`POST /v1/seals/{id}/sign-ses`): a seal's signature over a
//! document's protected bytes, given as their SM3 hash (§7.2).

use super::usage::{self, Product, Subject};
use super::{SealSigned, SignError, Signing};
use crate::authz::Principal;
use crate::formats::{ses, x509::Cert};
use crate::token::SignInput;

/// At most this many `extDatas`, each at most [`MAX_EXT_DATA`] bytes.
pub const MAX_EXT_DATAS: usize = 16;
/// The largest `extDatas` value.
pub const MAX_EXT_DATA: usize = 4096;

/// How many seals' maker signatures [`Signing`] remembers as checked before it starts again.
pub(super) const CHECKED_SEALS: usize = 4096;

/// What a `TBS_Sign` holds besides its version.
pub(super) struct SealTbs<'a> {
    /// The seal's `SESeal` DER.
    pub seal: &'a [u8],
    /// `timeInfo`.
    pub at: std::time::SystemTime,
    /// `dataHash`.
    pub hash: &'a [u8; 32],
    /// `propertyInfo`.
    pub property_info: &'a str,
    /// `extDatas`.
    pub ext_datas: &'a [ses::ExtData],
}

/// How a seal is used besides what it signs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealUse<'a> {
    /// The approval ticket, where the seal's policy needs one.
    pub ticket: Option<&'a str>,
    /// Put a time-stamp over the signature value into `timeStamp` (GB/T 38540 §7.1.6).
    pub timestamp: bool,
}

impl Signing {
    /// The `SES_Signature` over `tbs` with the held seal's key version: `TBS_Sign` built, signed in
    /// the token (which verifies on the host), and wrapped with the key version's certificate and,
    /// when `stamp_for` names the requester, a time-stamp token over the signature value. The one
    /// way both seal products (`sign-ses`, `seal-ofd`) sign.
    pub(super) fn ses_signature(
        &self,
        key: &crate::seal::SealKeyRef,
        tbs: &SealTbs<'_>,
        stamp_for: Option<&Principal>,
    ) -> Result<Vec<u8>, SignError> {
        let cert = Cert::parse(key.cert_pem.as_bytes()).map_err(|e| SignError::Certificate(e.to_string()))?;
        self.check_seal_data(key, &cert, tbs.seal)?;
        let tbs = ses::build_tbs_sign(tbs.seal, tbs.at, tbs.hash, tbs.property_info, tbs.ext_datas)
            .map_err(|e| SignError::BadInput(e.to_string()))?;
        let sig = self
            .pool
            .sign(&key.key_id, SignInput::Message { data: &tbs, user_id: None })
            .map_err(crate::seal::SealError::Token)?;
        let token = stamp_for.map(|p| self.time_stamp(p, &sig.der)).transpose()?;
        ses::build_signature(&tbs, cert.der(), crate::formats::oid::signature_oid(key.alg), &sig.der, token.as_deref())
            .map_err(|e| SignError::BadInput(e.to_string()))
    }

    /// What makes a host-verified token signature a valid seal signature: the certificate that goes
    /// into the `SES_Signature` carries the key that signed (the pool verifies every signature with
    /// that key on the host), and the seal verifies under its maker's signature. A seal's maker
    /// signature is checked once per `SESeal` (it does not change between uses). Either failing is
    /// the seal's data at fault (say, a certificate that is not the key's): nothing is signed.
    fn check_seal_data(&self, key: &crate::seal::SealKeyRef, cert: &Cert, seal: &[u8]) -> Result<(), SignError> {
        let signer = self.pool.key(&key.key_id).map_err(crate::seal::SealError::Token)?;
        if cert.public_key().ok().as_ref() != Some(&signer.public_key) {
            return Err(SignError::Internal(format!(
                "the certificate of seal {} key version {} does not carry the seal's key",
                key.seal, key.version
            )));
        }
        let digest = crate::crypto::sm3(seal);
        if self.checked_seals.lock().unwrap_or_else(|e| e.into_inner()).contains(&digest) {
            return Ok(());
        }
        ses::SesSeal::parse(seal)
            .map_err(|e| e.0)
            .and_then(|s| ses::verify_maker_signature(&s))
            .map_err(|e| SignError::Internal(format!("seal {} does not verify under its maker: {e}", key.seal)))?;
        let mut checked = self.checked_seals.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= CHECKED_SEALS {
            checked.clear();
        }
        let _ = checked.insert(digest);
        Ok(())
    }

    /// A time-stamp token over a signature value (an SM3 imprint), from the appliance's own TSA or
    /// from `[tsa] external_url`. The token is verified here as a verifier of the seal will
    /// (imprint, signature, TSA certificate and its path to the trusted anchors) before it is used.
    pub(super) fn time_stamp(&self, p: &Principal, value: &[u8]) -> Result<Vec<u8>, SignError> {
        use crate::formats::{oid::SM3, tsp};
        let imprint = crate::crypto::sm3(value);
        let tsa = self.registry.tsa();
        let (token, from) = match &tsa.settings().external_url {
            None => {
                (tsa.stamp(p, SM3, &imprint).map_err(|r| SignError::TimeStamp(r.to_string()))?, "this appliance's TSA")
            }
            Some(url) => {
                let timeout = std::time::Duration::from_millis(tsa.settings().external_timeout_ms);
                (crate::seal::external_stamp(url, SM3, &imprint, timeout).map_err(SignError::TimeStamp)?, url.as_str())
            }
        };
        let trust = self.registry.verification().trust(&self.trust);
        let opts = ses::VerifyOptions { trust: Some(&trust), have_crls: trust.has_crls(), ..Default::default() };
        let check = tsp::verify_token(&token, value, &opts);
        if !check.ok {
            return Err(SignError::TimeStamp(format!("the token from {from} does not verify: {}", check.detail)));
        }
        Ok(token)
    }

    /// Seals a document: a v4 `TBS_Sign` over the seal's current `SESeal`, `data_hash` (SM3 of the
    /// protected bytes, also the usage record's digest), `property_info` and `ext_datas`, signed
    /// with the seal's key. Returns the `SES_Signature` DER once its usage record is durable.
    pub fn sign_ses(
        &self,
        p: &Principal,
        seal: &str,
        data_hash: &[u8],
        property_info: &str,
        ext_datas: &[ses::ExtData],
        how: SealUse<'_>,
    ) -> Result<SealSigned, SignError> {
        // Check the input before the seal is held.
        if ext_datas.len() > MAX_EXT_DATAS || ext_datas.iter().any(|e| e.value.len() > MAX_EXT_DATA) {
            return Err(SignError::BadInput(format!(
                "at most {MAX_EXT_DATAS} ext_datas of at most {MAX_EXT_DATA} bytes each"
            )));
        }
        let hash: [u8; 32] = data_hash
            .try_into()
            .map_err(|_| SignError::BadInput(format!("data_hash must be 32 bytes (SM3), got {}", data_hash.len())))?;
        if property_info.is_empty() || property_info.len() > 1024 || !property_info.is_ascii() {
            return Err(SignError::BadInput("property_info must be 1 to 1024 ASCII characters (IA5String)".into()));
        }
        // Hold the seal and pass the gate: the digest is the data hash.
        let permit = self.registry.uses().hold_seal(seal)?.authorize_use(p, &hash, how.ticket)?;
        // Build TBS_Sign over this key version's SESeal and sign it in the token (verified on the host).
        let key = permit.key();
        let seal_der = permit.ses().ok_or(crate::seal::SealError::NoSealMaker)?;
        let tbs = SealTbs { seal: &seal_der, at: std::time::SystemTime::now(), hash: &hash, property_info, ext_datas };
        let der = self.ses_signature(key, &tbs, how.timestamp.then_some(p))?;
        // Record durably, answer.
        let record = usage::record(p, Subject::Seal(key), Product::Ses { property_info }, "ok", Some(&hash));
        let receipt = permit.record(record)?;
        Ok(SealSigned { der, key_version: receipt.key.version, audit_seq: receipt.audit_seq })
    }
}
