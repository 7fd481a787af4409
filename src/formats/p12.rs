//! PKCS#12 files (RFC 7292) as OpenSSL 3 writes them, read for `sealctl --p12`: the MAC is checked
//! (PKCS#12 KDF, HMAC-SHA-256 or SHA-1), then the certificate bags and the shrouded key bag are
//! decrypted (PBES2: PBKDF2 with AES-CBC). The RustCrypto `pkcs12`, `cms` and `pkcs5` crates carry
//! the structures and the ciphers; this module only walks them.
//!
//! What it deliberately does not do: the legacy PKCS#12 PBE ciphers (RC2, 3DES). Re-export such a
//! file with `openssl pkcs12 -export` from OpenSSL 3.

use super::oid::{CERT_BAG, KEY_BAG, PKCS7_DATA, PKCS7_ENCRYPTED_DATA, SHROUDED_KEY_BAG};
use der::{Decode, Encode};
use hmac::Mac as _;

/// A PKCS#12 file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("PKCS#12: {0}")]
pub struct P12Error(String);

fn err(m: impl std::fmt::Display) -> P12Error {
    P12Error(m.to_string())
}

/// The certificates (DER, in file order) and the private key (PKCS#8 DER) in a PKCS#12 file.
pub struct Identity {
    /// Certificates.
    pub certs: Vec<Vec<u8>>,
    /// The private key, PKCS#8 DER (zeroized on drop).
    pub key: zeroize::Zeroizing<Vec<u8>>,
}

fn octets(any: &der::Any) -> Result<Vec<u8>, P12Error> {
    Ok(der::asn1::OctetString::from_der(&any.to_der().map_err(err)?).map_err(err)?.as_bytes().to_vec())
}

fn check_mac(pfx: &pkcs12::pfx::Pfx, data: &[u8], password: &str) -> Result<(), P12Error> {
    let Some(mac) = &pfx.mac_data else {
        return Err(err("the file has no MAC: refusing an unauthenticated PKCS#12"));
    };
    let salt = mac.mac_salt.as_bytes();
    let want = mac.mac.digest.as_bytes();
    let ok = match mac.mac.algorithm.oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => {
            let key = pkcs12::kdf::derive_key_utf8::<sha2::Sha256>(
                password,
                salt,
                pkcs12::kdf::Pkcs12KeyType::Mac,
                mac.iterations,
                32,
            )
            .map_err(err)?;
            let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(err)?;
            h.update(data);
            h.verify_slice(want).is_ok()
        }
        other => return Err(err(format!("MAC digest {other} is not supported (OpenSSL 3 writes SHA-256)"))),
    };
    if ok {
        Ok(())
    } else {
        Err(err("the MAC does not verify: wrong password, or the file was altered"))
    }
}

/// Reads a PKCS#12 file (DER) with `password` (empty for none).
pub fn read(der_bytes: &[u8], password: &str) -> Result<Identity, P12Error> {
    let pfx = pkcs12::pfx::Pfx::from_der(der_bytes).map_err(err)?;
    if pfx.auth_safe.content_type.to_string() != PKCS7_DATA {
        return Err(err("authSafe is not id-data (public-key integrity mode is not supported)"));
    }
    let safe = octets(&pfx.auth_safe.content)?;
    check_mac(&pfx, &safe, password)?;
    let contents = Vec::<cms::content_info::ContentInfo>::from_der(&safe).map_err(err)?;
    let mut certs = Vec::new();
    let mut key = None;
    for ci in contents {
        let bags_der = match ci.content_type.to_string().as_str() {
            PKCS7_DATA => octets(&ci.content)?,
            PKCS7_ENCRYPTED_DATA => {
                let ed =
                    cms::encrypted_data::EncryptedData::from_der(&ci.content.to_der().map_err(err)?).map_err(err)?;
                let alg = ed.enc_content_info.content_enc_alg.to_der().map_err(err)?;
                let scheme = pkcs5::EncryptionScheme::try_from(alg.as_slice()).map_err(err)?;
                let ciphertext =
                    ed.enc_content_info.encrypted_content.ok_or_else(|| err("encrypted bags without content"))?;
                scheme
                    .decrypt(password, ciphertext.as_bytes())
                    .map_err(|_| err("cannot decrypt the certificate bags"))?
            }
            other => return Err(err(format!("content type {other} is not supported"))),
        };
        for bag in pkcs12::safe_bag::SafeContents::from_der(&bags_der).map_err(err)? {
            // bagValue arrives with its [0] EXPLICIT wrapper: the value is the TLV inside.
            let (wrapped, _) = super::ses::tlv(&bag.bag_value).map_err(err)?;
            let value = if wrapped.tag == 0xa0 { wrapped.content } else { &bag.bag_value[..] };
            match bag.bag_id.to_string().as_str() {
                CERT_BAG => {
                    let cb = pkcs12::cert_type::CertBag::from_der(value).map_err(err)?;
                    certs.push(cb.cert_value.as_bytes().to_vec());
                }
                SHROUDED_KEY_BAG => {
                    let info = EncryptedPrivateKeyInfo::from_der(value).map_err(err)?;
                    let scheme = pkcs5::EncryptionScheme::try_from(info.algorithm.as_slice()).map_err(err)?;
                    let plain =
                        scheme.decrypt(password, &info.data).map_err(|_| err("cannot decrypt the private key"))?;
                    key = Some(zeroize::Zeroizing::new(plain));
                }
                KEY_BAG => key = Some(zeroize::Zeroizing::new(value.to_vec())),
                _ => {}
            }
        }
    }
    let key = key.ok_or_else(|| err("the file holds no private key"))?;
    if certs.is_empty() {
        return Err(err("the file holds no certificate"));
    }
    Ok(Identity { certs, key })
}

/// `EncryptedPrivateKeyInfo`, kept as raw algorithm bytes and ciphertext (RFC 5958).
struct EncryptedPrivateKeyInfo {
    algorithm: Vec<u8>,
    data: Vec<u8>,
}

impl EncryptedPrivateKeyInfo {
    fn from_der(bytes: &[u8]) -> Result<Self, der::Error> {
        let mut r = der::SliceReader::new(bytes)?;
        der::Reader::sequence(&mut r, |r| {
            let algorithm = der::Any::decode(r)?.to_der()?;
            let data = der::asn1::OctetString::decode(r)?.as_bytes().to_vec();
            Ok(EncryptedPrivateKeyInfo { algorithm, data })
        })
    }
}
