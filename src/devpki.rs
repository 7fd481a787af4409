//! A development PKI for `seald dev` and the tests: a CA, a server certificate for localhost, client
//! certificates, CRLs. P-256, made with rcgen. Never for production: a real appliance's TLS identity
//! comes from the operator's CA.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// rcgen failed.
#[derive(Debug, thiserror::Error)]
#[error("dev PKI: {0}")]
pub struct PkiError(String);

fn e(x: rcgen::Error) -> PkiError {
    PkiError(x.to_string())
}

/// An issued certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
    /// SHA-256 fingerprint of the certificate DER, hex.
    pub fingerprint: String,
}

/// A development CA.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "seald development");
    dn.push(DnType::CommonName, cn);
    dn
}

impl DevCa {
    /// A new self-signed CA valid for ten years.
    pub fn new(cn: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        p.distinguished_name = named(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        p.key_identifier_method = KeyIdMethod::Sha256;
        let cert = p.self_signed(&key).map_err(e)?;
        Ok(DevCa { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
        serial: u64,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let key = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::new(sans).map_err(e)?;
        p.distinguished_name = named(cn);
        p.extended_key_usages = vec![eku];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        p.not_before = from;
        p.not_after = to;
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(e)?;
        Ok(Issued {
            fingerprint: hex::encode(crate::crypto::sha256(cert.der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A TLS server certificate for `localhost` and 127.0.0.1, valid for two years.
    pub fn server(&self, serial: u64) -> Result<Issued, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.issue(
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            serial,
            now - Duration::days(1),
            now + Duration::days(730),
        )
    }

    /// A TLS client certificate, valid from `from_days` to `to_days` relative to now.
    pub fn client(&self, cn: &str, serial: u64, from_days: i64, to_days: i64) -> Result<Issued, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.issue(
            cn,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            serial,
            now + Duration::days(from_days),
            now + Duration::days(to_days),
        )
    }

    /// A certificate for a P-256 public key held elsewhere (a key in the token), for signing use,
    /// valid from `from_days` to `to_days` relative to now. `point` is the uncompressed SEC1 point.
    pub fn certify_p256(
        &self,
        cn: &str,
        point: &[u8],
        serial: u64,
        from_days: i64,
        to_days: i64,
    ) -> Result<Issued, PkiError> {
        struct External<'a>(&'a [u8]);
        impl rcgen::PublicKeyData for External<'_> {
            fn der_bytes(&self) -> &[u8] {
                self.0
            }
            fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
                &rcgen::PKCS_ECDSA_P256_SHA256
            }
        }
        let now = OffsetDateTime::now_utc();
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        p.distinguished_name = named(cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        p.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        p.not_before = now + Duration::days(from_days);
        p.not_after = now + Duration::days(to_days);
        let cert = p.signed_by(&External(point), &self.cert, &self.key).map_err(e)?;
        Ok(Issued {
            fingerprint: hex::encode(crate::crypto::sha256(cert.der())),
            cert_pem: cert.pem(),
            key_pem: String::new(),
        })
    }

    /// A CRL revoking the given serials, PEM.
    pub fn crl(&self, revoked: &[u64], number: u64) -> Result<String, PkiError> {
        self.crl_until(revoked, number, OffsetDateTime::now_utc() + Duration::days(30))
    }

    /// A CRL whose nextUpdate is `next_update` (in the past: a stale CRL, for tests).
    pub fn crl_until(&self, revoked: &[u64], number: u64, next_update: OffsetDateTime) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: (now - Duration::hours(2)).min(next_update - Duration::hours(1)),
            next_update,
            crl_number: SerialNumber::from(number.to_be_bytes().to_vec()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(s.to_be_bytes().to_vec()),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.cert, &self.key).map(|c| c.pem().unwrap_or_default()).map_err(e)
    }
}
