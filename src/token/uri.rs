//! PKCS#11 URIs (RFC 7512): how config and CLI name a token and a key, e.g.
//! `pkcs11:token=seald;object=seal-123;id=%01%02?module-path=/usr/lib/libx.so`.
//!
//! `pin-value` is refused on purpose: PINs come from a file or a systemd credential, never from a
//! string that ends up in shell history, process lists or logs.

use std::collections::BTreeMap;

/// A URI that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// Does not start with `pkcs11:`.
    #[error("not a PKCS#11 URI (must start with 'pkcs11:')")]
    Scheme,
    /// A component has no '='.
    #[error("PKCS#11 URI component '{0}' is not name=value")]
    Component(String),
    /// A %XX escape is broken.
    #[error("PKCS#11 URI has a bad percent-escape in '{0}'")]
    Escape(String),
    /// An attribute this implementation does not know.
    #[error("PKCS#11 URI attribute '{0}' is not supported")]
    Unsupported(String),
    /// An attribute given twice.
    #[error("PKCS#11 URI attribute '{0}' is given twice")]
    Duplicate(String),
    /// A PIN inside the URI.
    #[error("PKCS#11 URI must not carry a PIN (pin-value); give --pin-file or a systemd credential")]
    PinValue,
    /// slot-id is not a number.
    #[error("PKCS#11 URI slot-id '{0}' is not a number")]
    SlotId(String),
}

/// The parts of a PKCS#11 URI that select a token and an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token` (CK_TOKEN_INFO.label).
    pub token: Option<String>,
    /// `serial` (CK_TOKEN_INFO.serialNumber).
    pub serial: Option<String>,
    /// `manufacturer` (CK_TOKEN_INFO.manufacturerID).
    pub manufacturer: Option<String>,
    /// `model` (CK_TOKEN_INFO.model).
    pub model: Option<String>,
    /// `slot-id`.
    pub slot_id: Option<u64>,
    /// `object` (CKA_LABEL).
    pub object: Option<String>,
    /// `id` (CKA_ID), raw bytes.
    pub id: Option<Vec<u8>>,
    /// `type` (public, private, cert, ...).
    pub object_type: Option<String>,
    /// `module-path` query attribute.
    pub module_path: Option<String>,
    /// `pin-source` query attribute (a file path, optionally `file:`-prefixed).
    pub pin_source: Option<String>,
}

fn percent_decode(s: &str) -> Result<Vec<u8>, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(|| UriError::Escape(s.into()))?;
            let hex = std::str::from_utf8(hex).map_err(|_| UriError::Escape(s.into()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::Escape(s.into()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(s: &str) -> Result<String, UriError> {
    String::from_utf8(percent_decode(s)?).map_err(|_| UriError::Escape(s.into()))
}

fn components(part: &str, sep: char) -> Result<BTreeMap<String, String>, UriError> {
    let mut map = BTreeMap::new();
    for comp in part.split(sep).filter(|c| !c.is_empty()) {
        let (k, v) = comp.split_once('=').ok_or_else(|| UriError::Component(comp.into()))?;
        let k = k.to_ascii_lowercase();
        if map.insert(k.clone(), v.to_string()).is_some() {
            return Err(UriError::Duplicate(k));
        }
    }
    Ok(map)
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let rest = s.strip_prefix("pkcs11:").or_else(|| s.strip_prefix("PKCS11:")).ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        for (k, v) in components(path, ';')? {
            match k.as_str() {
                "token" => uri.token = Some(text(&v)?),
                "serial" => uri.serial = Some(text(&v)?),
                "manufacturer" => uri.manufacturer = Some(text(&v)?),
                "model" => uri.model = Some(text(&v)?),
                "object" => uri.object = Some(text(&v)?),
                "id" => uri.id = Some(percent_decode(&v)?),
                "type" => uri.object_type = Some(text(&v)?),
                "slot-id" => {
                    let t = text(&v)?;
                    uri.slot_id = Some(t.parse().map_err(|_| UriError::SlotId(t))?);
                }
                // Library and slot descriptions select nothing we need; accepted and ignored.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                k if k.starts_with("x-") => {}
                other => return Err(UriError::Unsupported(other.into())),
            }
        }
        for (k, v) in components(query, '&')? {
            match k.as_str() {
                "pin-value" => return Err(UriError::PinValue),
                "pin-source" => {
                    let t = text(&v)?;
                    uri.pin_source = Some(t.strip_prefix("file:").map(str::to_string).unwrap_or(t));
                }
                "module-path" => uri.module_path = Some(text(&v)?),
                "module-name" => {}
                k if k.starts_with("x-") => {}
                other => return Err(UriError::Unsupported(other.into())),
            }
        }
        Ok(uri)
    }
}

impl std::fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn enc(bytes: &[u8], all: bool) -> String {
            bytes
                .iter()
                .map(|&b| {
                    if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02x}")
                    }
                })
                .collect()
        }
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", enc(t.as_bytes(), false)));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial={}", enc(s.as_bytes(), false)));
        }
        if let Some(s) = self.slot_id {
            parts.push(format!("slot-id={s}"));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object={}", enc(o.as_bytes(), false)));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", enc(id, true)));
        }
        if let Some(t) = &self.object_type {
            parts.push(format!("type={t}"));
        }
        write!(f, "pkcs11:{}", parts.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rfc_examples_we_rely_on() {
        let u: Pkcs11Uri = "pkcs11:token=seald;object=seal-123".parse().unwrap();
        assert_eq!(u.token.as_deref(), Some("seald"));
        assert_eq!(u.object.as_deref(), Some("seal-123"));
        let u: Pkcs11Uri =
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;id=%01%a2;slot-id=3?module-path=/usr/lib/x.so&pin-source=file:/run/pin"
                .parse()
                .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.id, Some(vec![1, 0xa2]));
        assert_eq!(u.slot_id, Some(3));
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/x.so"));
        assert_eq!(u.pin_source.as_deref(), Some("/run/pin"));
        assert_eq!(u.to_string(), "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;slot-id=3;id=%01%a2");
    }

    #[test]
    fn refuses_pins_and_nonsense() {
        assert_eq!("pkcs11:token=a?pin-value=1234".parse::<Pkcs11Uri>(), Err(UriError::PinValue));
        assert_eq!("token=a".parse::<Pkcs11Uri>(), Err(UriError::Scheme));
        assert!(matches!("pkcs11:token".parse::<Pkcs11Uri>(), Err(UriError::Component(_))));
        assert!(matches!("pkcs11:id=%zz".parse::<Pkcs11Uri>(), Err(UriError::Escape(_))));
        assert!(matches!("pkcs11:id=%0".parse::<Pkcs11Uri>(), Err(UriError::Escape(_))));
        assert!(matches!("pkcs11:foo=1".parse::<Pkcs11Uri>(), Err(UriError::Unsupported(_))));
        assert!(matches!("pkcs11:token=a;token=b".parse::<Pkcs11Uri>(), Err(UriError::Duplicate(_))));
        assert!(matches!("pkcs11:slot-id=x".parse::<Pkcs11Uri>(), Err(UriError::SlotId(_))));
    }
}
