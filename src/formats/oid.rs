//! Every object identifier the formats read or write, in one table, named as the standards name them.

use crate::crypto::KeyAlg;

/// SM2 curve (GM/T 0006), also the SM2 public-key algorithm in GM/T 0010.
pub const SM2: &str = "1.2.156.10197.1.301";
/// SM2 signature (`sm2-1`), as GM/T 0010 names the signature algorithm.
pub const SM2_1: &str = "1.2.156.10197.1.301.1";
/// SM3 digest.
pub const SM3: &str = "1.2.156.10197.1.401";
/// SM2 signature with SM3 (GM/T 0006): certificates, CSRs and SES `signAlgID`.
pub const SM2_SM3: &str = "1.2.156.10197.1.501";
/// GM/T 0010 `data`.
pub const GM_DATA: &str = "1.2.156.10197.6.1.4.2.1";
/// GM/T 0010 `signedData`.
pub const GM_SIGNED_DATA: &str = "1.2.156.10197.6.1.4.2.2";
/// SHA-256.
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// EC public key (RFC 5480).
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// ECDSA with SHA-256.
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// RSA PKCS#1 v1.5 with SHA-256.
pub const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
/// PKCS#7 `data`.
pub const PKCS7_DATA: &str = "1.2.840.113549.1.7.1";
/// PKCS#7 `signedData`.
pub const PKCS7_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// PKCS#7 `encryptedData`.
pub const PKCS7_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
/// PKCS#9 `contentType`.
pub const ATTR_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
/// PKCS#9 `messageDigest`.
pub const ATTR_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// PKCS#9 `signingTime`.
pub const ATTR_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
/// PKCS#12 `keyBag`.
pub const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
/// PKCS#12 `pkcs8ShroudedKeyBag`.
pub const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
/// PKCS#12 `certBag`.
pub const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
/// X.520 `commonName`.
pub const AT_COMMON_NAME: &str = "2.5.4.3";
/// X.520 `serialNumber`.
pub const AT_SERIAL_NUMBER: &str = "2.5.4.5";
/// X.520 `countryName`.
pub const AT_COUNTRY: &str = "2.5.4.6";
/// X.520 `organizationName`.
pub const AT_ORGANIZATION: &str = "2.5.4.10";
/// X.520 `organizationalUnitName`.
pub const AT_ORGANIZATIONAL_UNIT: &str = "2.5.4.11";
/// X.509 `subjectKeyIdentifier`.
pub const EXT_SUBJECT_KEY_ID: &str = "2.5.29.14";
/// X.509 `keyUsage`.
pub const EXT_KEY_USAGE: &str = "2.5.29.15";
/// X.509 `basicConstraints`.
pub const EXT_BASIC_CONSTRAINTS: &str = "2.5.29.19";
/// X.509 `authorityKeyIdentifier`.
pub const EXT_AUTHORITY_KEY_ID: &str = "2.5.29.35";
/// X.509 `extKeyUsage`.
pub const EXT_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
/// `id-kp-timeStamping` (RFC 5280): the one purpose of a TSA certificate (RFC 3161 §2.3).
pub const KP_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// `id-kp-OCSPSigning` (RFC 5280): the purpose of seald's seal-status responder certificate,
/// whose answers are built in the style of OCSP responses (docs/seal-status.md).
pub const KP_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
/// `id-ct-TSTInfo` (RFC 3161): the content of a time-stamp token.
pub const CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
/// `id-aa-signingCertificateV2` (RFC 5035): the TSA certificate's hash in a token's signed attributes.
pub const ATTR_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// `id-aa-signingCertificate` (RFC 2634, SHA-1): read in tokens of other TSAs.
pub const ATTR_SIGNING_CERTIFICATE: &str = "1.2.840.113549.1.9.16.2.12";
/// `id-aa-timeStampToken` (RFC 3161 appendix A): a time-stamp in a SignerInfo's unsigned attributes.
pub const ATTR_TIME_STAMP_TOKEN: &str = "1.2.840.113549.1.9.16.2.14";
/// SHA-1: named in time-stamp requests only to be refused.
pub const SHA1: &str = "1.3.14.3.2.26";
/// SHA-384.
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
/// SHA-512.
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
/// The default TSA policy: ETSI EN 319 421's best-practices time-stamp policy
/// (`0.4.0.2023.1.1`), until the operator configures the organisation's own (`[tsa] policy`).
pub const SEALD_TSA_POLICY: &str = "0.4.0.2023.1.1";

/// The signature algorithm a key of `alg` signs with here (certificates, CSRs, SES `signAlgID`).
pub fn signature_oid(alg: KeyAlg) -> &'static str {
    match alg {
        KeyAlg::Sm2 => SM2_SM3,
        KeyAlg::P256 => ECDSA_SHA256,
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 => RSA_SHA256,
    }
}

/// The digest a key of `alg` signs with in SignedData (GM/T 0010: SM3 for SM2; SHA-256 for P-256),
/// or `None` where SignedData is not made or read with such keys.
pub fn digest_oid(alg: KeyAlg) -> Option<&'static str> {
    match alg {
        KeyAlg::Sm2 => Some(SM3),
        KeyAlg::P256 => Some(SHA256),
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sm2_curve_is_the_one_crypto_encodes() {
        assert_eq!(super::SM2, crate::crypto::sm2::CURVE_OID);
    }
}
