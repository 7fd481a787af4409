//! The appliance's own PKI in the token: the issuing CA (it certifies seal keys and the seal maker),
//! the seal maker (制章者, it signs each `SESeal`), the time-stamp authority and the seal-status
//! responder (each an end-entity key for that one purpose, certified by the issuing CA). It takes
//! neutral inputs (a subject, a public key, a seal template), not seals.

use super::*;
use std::sync::Arc;

/// The issuing CA and the seal maker.
pub struct Pki {
    ledger: Arc<Ledger>,
}

impl Pki {
    pub(super) fn new(ledger: Arc<Ledger>) -> Self {
        Pki { ledger }
    }
}

impl Pki {
    /// The issuing CA, if set up.
    pub fn issuing_ca(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.ledger.store.get::<ApplianceKey>(tree::KEYS, "issuing-ca")?)
    }

    /// Sets up the issuing CA: a key generated in the token (SM2 where the token offers it, P-256
    /// otherwise) and its self-signed certificate. Does nothing when one exists. Returns it.
    pub fn ensure_issuing_ca(&self, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        let _g = self.ledger.admin_lock()?;
        if let Some(ca) = self.issuing_ca()? {
            return Ok(ca);
        }
        let alg = if self.ledger.pool.profile().sm2.is_some() { KeyAlg::Sm2 } else { KeyAlg::P256 };
        self.create_appliance_key("issuing-ca", "ca.create", alg, common_name, valid_days, None, None)
    }

    /// The seal-maker key, if set up.
    pub fn seal_maker(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.ledger.store.get::<ApplianceKey>(tree::KEYS, "seal-maker")?)
    }

    /// Sets up the seal maker (制章者): a key generated in the token with a certificate from the
    /// issuing CA. Does nothing when one exists. Returns it.
    pub fn ensure_seal_maker(&self, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        self.ensure_certified("seal-maker", "maker.create", None, common_name, valid_days, None)
    }

    /// The time-stamp authority's key, if set up.
    pub fn tsa(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.ledger.store.get::<ApplianceKey>(tree::KEYS, "tsa")?)
    }

    /// Sets up the time-stamp authority: a key of `alg` (SM2, or P-256 for clients that verify
    /// with OpenSSL's `ts`) generated in the token, with a certificate from the issuing CA whose
    /// only purpose is `timeStamping` (critical, RFC 3161 §2.3). Does nothing when one exists.
    pub fn ensure_tsa(&self, alg: KeyAlg, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        let purpose = Some(crate::formats::oid::KP_TIME_STAMPING);
        self.ensure_certified("tsa", "tsa.create", Some(alg), common_name, valid_days, purpose)
    }

    /// The seal-status responder's key, if set up.
    pub fn status_responder(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.ledger.store.get::<ApplianceKey>(tree::KEYS, "status-responder")?)
    }

    /// Sets up the seal-status responder: a key generated in the token (the issuing CA's
    /// algorithm), certified by the issuing CA for signing status answers only (`OCSPSigning`,
    /// critical). Does nothing when one exists.
    pub fn ensure_status_responder(&self, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        let purpose = Some(crate::formats::oid::KP_OCSP_SIGNING);
        self.ensure_certified("status-responder", "status.create", None, common_name, valid_days, purpose)
    }

    /// The appliance key `name` certified by the issuing CA (for `purpose` only, when given), of
    /// `alg` or else the CA's algorithm: the stored one, or one made now and journalled as `action`.
    fn ensure_certified(
        &self,
        name: &str,
        action: &str,
        alg: Option<KeyAlg>,
        common_name: &str,
        valid_days: u32,
        purpose: Option<&'static str>,
    ) -> Result<ApplianceKey, SealError> {
        let _g = self.ledger.admin_lock()?;
        if let Some(k) = self.ledger.store.get::<ApplianceKey>(tree::KEYS, name)? {
            return Ok(k);
        }
        let ca = self.issuing_ca()?.ok_or(SealError::NoIssuingCa)?;
        let alg = alg.unwrap_or(ca.alg);
        self.create_appliance_key(name, action, alg, common_name, valid_days, Some(&ca), purpose)
    }

    /// Makes the TSA key (of `tsa.alg`, else the issuing CA's algorithm) and the status
    /// responder where they are missing, once the issuing CA exists; returns them then.
    pub fn ensure_time_keys(
        &self,
        tsa: &super::TsaSettings,
    ) -> Result<Option<(ApplianceKey, ApplianceKey)>, SealError> {
        let Some(ca) = self.issuing_ca()? else { return Ok(None) };
        let t = self.ensure_tsa(tsa.alg.unwrap_or(ca.alg), "seald time-stamp authority", 1825)?;
        let s = self.ensure_status_responder("seald seal-status responder", 1825)?;
        Ok(Some((t, s)))
    }

    /// Generates the appliance key `name` in the token, certifies it (self-signed as a CA when
    /// `issuer` is none, else by the issuing CA `issuer`, for `purpose` only when given), journals
    /// `action` and stores it.
    #[allow(clippy::too_many_arguments)]
    fn create_appliance_key(
        &self,
        name: &str,
        action: &str,
        alg: KeyAlg,
        common_name: &str,
        valid_days: u32,
        issuer: Option<&ApplianceKey>,
        purpose: Option<&'static str>,
    ) -> Result<ApplianceKey, SealError> {
        let bad_cert = |e: crate::formats::x509::X509Error| SealError::Certificate(e.to_string());
        let key = self.ledger.pool.generate(alg, &format!("seald-{name}"))?;
        let issuer_cert = issuer.map(|i| Cert::parse(i.cert_pem.as_bytes())).transpose().map_err(bad_cert)?;
        let signer = match (issuer, &issuer_cert) {
            (Some(i), Some(c)) => crate::token::TokenKey::with_public(
                &self.ledger.pool,
                &KeyId::from_hex(&i.key_id)?,
                c.public_key().map_err(bad_cert)?,
            ),
            _ => crate::token::TokenKey::with_public(&self.ledger.pool, &key.id, key.public_key.clone()),
        };
        let now = std::time::SystemTime::now();
        let template = crate::formats::x509::CertTemplate {
            subject: vec![("CN", common_name.to_string()), ("O", "seald".to_string())],
            public_key: &key.public_key,
            not_before: now - std::time::Duration::from_secs(3600),
            not_after: now + std::time::Duration::from_secs(u64::from(valid_days) * 86400),
            ca: issuer.is_none(),
            purpose,
        };
        let cert = crate::formats::x509::issue(&template, issuer_cert.as_ref(), &signer)
            .map_err(|e| super::signing_failed(&signer, e))?;
        let made = ApplianceKey::first(key.id.to_hex(), alg, cert.to_pem());
        let ev = AuditEvent::new(Actor::system(), action, &format!("key:{name}"), "ok")
            .detail("key_id", made.key_id.clone())
            .detail("alg", alg.name())
            .detail("cert_sha256", cert.fingerprint())
            .change(put(tree::KEYS, name, &made));
        let _ = self.ledger.commit(ev)?;
        Ok(made)
    }

    /// Signs a GB/T 38540 v4 `SESeal` made from `template` with the seal maker in the token; DER.
    pub(super) fn sign_seal(&self, template: &crate::formats::ses::SealTemplate<'_>) -> Result<Vec<u8>, SealError> {
        use crate::formats::ses;
        let maker = self.seal_maker()?.ok_or(SealError::NoSealMaker)?;
        let maker_cert = Cert::parse(maker.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let info = ses::build_seal_info(template).map_err(|e| SealError::BadInput(e.to_string()))?;
        let signature = self
            .ledger
            .pool
            .sign(&KeyId::from_hex(&maker.key_id)?, SignInput::Message { data: &info, user_id: None })?
            .der;
        ses::build_seal(&info, maker_cert.der(), crate::formats::oid::signature_oid(maker.alg), &signature)
            .map_err(|e| SealError::BadInput(e.to_string()))
    }

    /// An end-entity signing certificate (digitalSignature, nonRepudiation) from the issuing CA.
    pub(crate) fn issue_with_ca(
        &self,
        subject: Vec<(&'static str, String)>,
        key: &PublicKey,
        valid_days: u32,
    ) -> Result<Cert, SealError> {
        let ca = self.issuing_ca()?.ok_or(SealError::NoIssuingCa)?;
        let ca_cert = Cert::parse(ca.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let ca_key = ca_cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?;
        let signer = crate::token::TokenKey::with_public(&self.ledger.pool, &KeyId::from_hex(&ca.key_id)?, ca_key);
        let now = std::time::SystemTime::now();
        let template = crate::formats::x509::CertTemplate {
            subject,
            public_key: key,
            not_before: now - std::time::Duration::from_secs(60),
            not_after: now + std::time::Duration::from_secs(u64::from(valid_days) * 86400),
            ca: false,
            purpose: None,
        };
        crate::formats::x509::issue(&template, Some(&ca_cert), &signer).map_err(|e| super::signing_failed(&signer, e))
    }

    pub(super) fn appliance_key(&self, name: &str) -> Result<ApplianceKey, SealError> {
        if let Some(k) = self.ledger.store.get::<ApplianceKey>(tree::KEYS, name)? {
            return Ok(k);
        }
        if name == "audit" {
            // The audit key lives in the configuration until its first rotation; then in the store.
            let id = self
                .ledger
                .audit_key()
                .ok_or_else(|| SealError::NotFound("unknown_key", "this journal signs no checkpoints".into()))?;
            let info = self.ledger.pool.key(&id)?;
            return Ok(ApplianceKey::first(id.to_hex(), info.alg, info.public_key.to_spki_pem()));
        }
        Err(SealError::NotFound("unknown_key", format!("no {name} key: run `seald init`")))
    }

    /// The built-in issuing CA certifies a PKCS#10 request (issuers only): for development and small
    /// deployments without an outside CA. The request must be signed by its own key.
    pub fn ca_issue(&self, p: &Principal, csr_pem: &str, valid_days: u32) -> Result<String, SealError> {
        self.ledger.require_role(
            p,
            Role::Issuer,
            "ca.issue",
            "key:issuing-ca",
            "only an issuer uses the issuing CA",
        )?;
        if valid_days == 0 || valid_days > 3650 {
            return Err(SealError::BadInput("valid_days must be 1 to 3650".into()));
        }
        let csr =
            crate::formats::x509::Csr::parse(csr_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        if !csr.signature_ok() {
            return Err(SealError::Certificate("the request is not signed by its own key".into()));
        }
        let key = csr.public_key().map_err(|e| SealError::Certificate(e.to_string()))?;
        let subject = csr.subject_attributes();
        if subject.is_empty() {
            return Err(SealError::BadInput("the request's subject names nothing (CN, O, OU, C)".into()));
        }
        let cert = self.issue_with_ca(subject, &key, valid_days)?;
        let ev = AuditEvent::new(actor(p), "ca.issue", "key:issuing-ca", "ok")
            .detail("subject", cert.subject_text())
            .detail("serial", cert.serial_hex())
            .detail("cert_sha256", cert.fingerprint());
        let _ = self.ledger.commit(ev)?;
        Ok(cert.to_pem())
    }
}
