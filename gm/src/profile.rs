//! Token profiles: what a token family calls its mechanisms, and how it deviates from the standard.
//!
//! Vendor SM2 codes, raw-or-DER signature output and where Z is computed differ from one cipher
//! machine to the next. Those facts live in `pkcs11-profiles/*.toml`, are read into a typed
//! [`Profile`] here, and are checked against `C_GetMechanismList` before the token is used. Code
//! elsewhere asks the profile; it never hard-codes a vendor.

use serde::Deserialize;
use std::path::Path;

/// The profiles shipped with seald, compiled in so that a name works without the directory.
const BUILTIN: &[(&str, &str)] = &[
    ("softhsm2", include_str!("../../pkcs11-profiles/softhsm2.toml")),
    ("softtoken", include_str!("../../pkcs11-profiles/softtoken.toml")),
    ("sansec", include_str!("../../pkcs11-profiles/sansec.toml")),
    ("tass", include_str!("../../pkcs11-profiles/tass.toml")),
    ("luna", include_str!("../../pkcs11-profiles/luna.toml")),
];

/// A profile could not be found, read, or does not fit the token.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No builtin profile has this name and no such file exists.
    #[error("unknown token profile '{0}' (builtin: softhsm2, softtoken, sansec, tass, luna; or a path to a .toml)")]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read token profile {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("token profile {origin} is invalid: {message}")]
    Invalid {
        /// File or builtin name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The token lacks a mechanism the profile relies on.
    #[error("token lacks mechanism {what} ({code:#010x}) required by profile '{profile}'")]
    MissingMechanism {
        /// Profile name.
        profile: String,
        /// What the mechanism is for.
        what: &'static str,
        /// The mechanism code.
        code: u64,
    },
}

/// Whether the profile has been run against real hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileStatus {
    /// Tested by seald's own test suite against this module.
    Tested,
    /// Written from the vendor's public documentation; nobody here has run it on the device.
    UnverifiedOnHardware,
}

/// How a module's signatures come out of C_Sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// `r||s`, as PKCS#11 specifies for ECDSA.
    Raw,
    /// DER `SEQUENCE { r, s }`.
    Der,
}

/// Where SM2's Z (and so e) is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZPlace {
    /// seald computes e = SM3(Z||M) and calls the sign-e mechanism.
    Host,
    /// The token computes Z with the default ID (sign-with-SM3 mechanism over M).
    Token,
}

/// How CKA_EC_POINT is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EcPointFormat {
    /// A DER OCTET STRING wrapping the uncompressed point (PKCS#11 v2.40).
    #[default]
    Der,
    /// The bare uncompressed point.
    Raw,
}

/// How to recognise a module of this family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleMatch {
    /// CK_INFO.manufacturerID (trimmed), matched as a prefix.
    pub manufacturer_id: String,
    /// Library file names.
    #[serde(default)]
    pub library_names: Vec<String>,
    /// Where the library is usually installed, tried in order when no path is given.
    #[serde(default)]
    pub library_paths: Vec<String>,
}

/// SM2 through vendor-defined codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sm2Mechanisms {
    /// CKA_KEY_TYPE of SM2 keys.
    pub key_type: u64,
    /// SM2 key-pair generation.
    pub keygen: u64,
    /// Sign (and verify) a 32-byte host-computed e.
    pub sign_e: u64,
    /// Sign M with SM3, Z computed by the token with the default ID.
    #[serde(default)]
    pub sign_sm3: Option<u64>,
    /// SM3 digest.
    #[serde(default)]
    pub digest_sm3: Option<u64>,
    /// Output format of the SM2 sign mechanisms.
    pub signature: SignatureFormat,
    /// Where Z is computed.
    pub z: ZPlace,
    /// Whether key generation takes CKA_EC_PARAMS with the sm2p256v1 OID.
    #[serde(default = "yes")]
    pub ec_params: bool,
}

fn yes() -> bool {
    true
}

/// ECDSA over P-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcdsaMechanisms {
    /// EC key-pair generation (CKM_EC_KEY_PAIR_GEN).
    pub keygen: u64,
    /// ECDSA over a host-computed digest (CKM_ECDSA).
    pub sign: u64,
    /// Output format of `sign`.
    pub signature: SignatureFormat,
}

/// RSA PKCS#1 v1.5.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsaMechanisms {
    /// RSA key-pair generation (CKM_RSA_PKCS_KEY_PAIR_GEN).
    pub keygen: u64,
    /// Raw PKCS#1 v1.5 over a host-built DigestInfo (CKM_RSA_PKCS).
    pub sign: u64,
}

/// Deviations from PKCS#11 v2.40 that the token layer must work around.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Quirks {
    /// Form of CKA_EC_POINT.
    #[serde(default)]
    pub ec_point: EcPointFormat,
}

/// One token family's codes and quirks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`sansec`).
    pub name: String,
    /// What it is.
    pub description: String,
    /// Tested here, or only written from documentation.
    pub status: ProfileStatus,
    /// How to recognise the module.
    #[serde(rename = "match")]
    pub matcher: ModuleMatch,
    /// SM2 mechanisms, if the family has SM2.
    #[serde(default)]
    pub sm2: Option<Sm2Mechanisms>,
    /// ECDSA P-256 mechanisms, if offered.
    #[serde(default)]
    pub ecdsa: Option<EcdsaMechanisms>,
    /// RSA mechanisms, if offered.
    #[serde(default)]
    pub rsa: Option<RsaMechanisms>,
    /// Deviations.
    #[serde(default)]
    pub quirks: Quirks,
}

impl Profile {
    /// Parses a profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text)
            .map_err(|e| ProfileError::Invalid { origin: origin.to_string(), message: e.message().to_string() })?;
        p.validate(origin)?;
        Ok(p)
    }

    fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |m: &str| ProfileError::Invalid { origin: origin.into(), message: m.into() };
        if self.name.trim().is_empty() {
            return Err(invalid("name is empty"));
        }
        if self.sm2.is_none() && self.ecdsa.is_none() && self.rsa.is_none() {
            return Err(invalid("the profile offers no algorithm ([sm2], [ecdsa] or [rsa])"));
        }
        if let Some(sm2) = &self.sm2 {
            if sm2.z == ZPlace::Token && sm2.sign_sm3.is_none() {
                return Err(invalid("[sm2] z = \"token\" needs sign_sm3"));
            }
        }
        Ok(())
    }

    /// A builtin profile by name.
    pub fn builtin(name: &str) -> Result<Self, ProfileError> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Self::from_toml(text, &format!("builtin:{n}")))
            .unwrap_or_else(|| Err(ProfileError::Unknown(name.to_string())))
    }

    /// Every builtin profile.
    pub fn all_builtin() -> Result<Vec<Self>, ProfileError> {
        BUILTIN.iter().map(|(n, _)| Self::builtin(n)).collect()
    }

    /// A builtin name, or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self, ProfileError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            let path = Path::new(name_or_path);
            let text = std::fs::read_to_string(path)
                .map_err(|source| ProfileError::Io { path: path.display().to_string(), source })?;
            Self::from_toml(&text, &path.display().to_string())
        } else {
            Self::builtin(name_or_path)
        }
    }

    /// The builtin profile whose match rules fit a module's manufacturer ID or library file name.
    pub fn detect(manufacturer_id: &str, library: &Path) -> Option<Self> {
        let file = library.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let all = Self::all_builtin().ok()?;
        let by_manufacturer =
            all.iter().find(|p| manufacturer_id.trim().starts_with(p.matcher.manufacturer_id.as_str()));
        by_manufacturer.or_else(|| all.iter().find(|p| p.matcher.library_names.iter().any(|n| n == file))).cloned()
    }

    /// Whether this profile's match rules fit the module.
    pub fn matches(&self, manufacturer_id: &str, library: &Path) -> bool {
        let file = library.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        manufacturer_id.trim().starts_with(self.matcher.manufacturer_id.as_str())
            || self.matcher.library_names.iter().any(|n| n == file)
    }

    /// Every mechanism the profile relies on, with what it is for.
    pub fn required_mechanisms(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        if let Some(sm2) = &self.sm2 {
            out.push(("SM2 key-pair generation", sm2.keygen));
            match sm2.z {
                ZPlace::Host => out.push(("SM2 sign-e", sm2.sign_e)),
                ZPlace::Token => out.extend(sm2.sign_sm3.map(|c| ("SM2 with SM3", c))),
            }
        }
        if let Some(ec) = &self.ecdsa {
            out.push(("EC key-pair generation", ec.keygen));
            out.push(("ECDSA", ec.sign));
        }
        if let Some(rsa) = &self.rsa {
            out.push(("RSA key-pair generation", rsa.keygen));
            out.push(("RSA PKCS#1 v1.5", rsa.sign));
        }
        out
    }

    /// Every mechanism code the profile names, required or optional (for listing what a token has).
    pub fn all_mechanisms(&self) -> Vec<(&'static str, u64)> {
        let mut out = self.required_mechanisms();
        if let Some(sm2) = &self.sm2 {
            out.push(("SM2 sign-e", sm2.sign_e));
            out.extend(sm2.sign_sm3.map(|c| ("SM2 with SM3", c)));
            out.extend(sm2.digest_sm3.map(|c| ("SM3 digest", c)));
        }
        out.dedup_by_key(|(_, c)| *c);
        out
    }

    /// Checks the profile against the token's C_GetMechanismList; names the first missing mechanism.
    pub fn check_mechanisms(&self, available: &[u64]) -> Result<(), ProfileError> {
        for (what, code) in self.required_mechanisms() {
            if !available.contains(&code) {
                return Err(ProfileError::MissingMechanism { profile: self.name.clone(), what, code });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses_and_the_vendor_drafts_say_unverified() {
        for p in Profile::all_builtin().unwrap() {
            let unverified = ["sansec", "tass", "luna"].contains(&p.name.as_str());
            assert_eq!(p.status == ProfileStatus::UnverifiedOnHardware, unverified, "{}", p.name);
            assert!(!p.required_mechanisms().is_empty());
        }
        // The on-disk copies are the same files.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../pkcs11-profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let p = Profile::load(path.to_str().unwrap()).unwrap();
            assert!(Profile::builtin(&p.name).is_ok(), "{} is not builtin", p.name);
            n += 1;
        }
        assert_eq!(n, BUILTIN.len());
    }

    #[test]
    fn vendor_codes_are_the_published_ones() {
        let sansec = Profile::builtin("sansec").unwrap().sm2.unwrap();
        assert_eq!((sansec.key_type, sansec.keygen, sansec.sign_e), (0x8000_0004, 0x8000_8001, 0x8000_8104));
        assert_eq!(sansec.signature, SignatureFormat::Raw);
        let tass = Profile::builtin("tass").unwrap();
        assert_eq!(tass.sm2.as_ref().unwrap().sign_e, 0x8000_8000);
        assert_eq!(tass.sm2.unwrap().signature, SignatureFormat::Der);
        assert_eq!(tass.ecdsa.unwrap().signature, SignatureFormat::Der);
        let luna = Profile::builtin("luna").unwrap().sm2.unwrap();
        assert_eq!((luna.key_type, luna.keygen, luna.sign_e), (0x8000_0016, 0x8000_0B20, 0x8000_0B21));
        assert!(Profile::builtin("softhsm2").unwrap().sm2.is_none());
    }

    #[test]
    fn a_missing_mechanism_is_named() {
        let p = Profile::builtin("sansec").unwrap();
        let err = p.check_mechanisms(&[0x1040, 0x1041, 0x8000_8001]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("SM2 sign-e") && msg.contains("0x80008104") && msg.contains("sansec"), "{msg}");
        assert!(p.check_mechanisms(&[0x1040, 0x1041, 0x8000_8001, 0x8000_8104]).is_ok());
    }

    #[test]
    fn bad_profiles_are_refused_with_reasons() {
        let err = Profile::from_toml("name = \"x\"\n", "t").unwrap_err().to_string();
        assert!(err.contains("missing field"), "{err}");
        let no_alg = "name='x'\ndescription='d'\nstatus='tested'\n[match]\nmanufacturer_id='x'\n";
        assert!(Profile::from_toml(no_alg, "t").unwrap_err().to_string().contains("no algorithm"));
        let typo = format!("{no_alg}[ecdsa]\nkeygen=1\nsign=2\nsignature='raw'\nsignatur='x'\n");
        assert!(Profile::from_toml(&typo, "t").is_err());
        assert!(matches!(Profile::load("nope"), Err(ProfileError::Unknown(_))));
    }

    #[test]
    fn detection_by_manufacturer_or_file_name() {
        let p = Profile::detect("SoftHSM project", Path::new("/x/y.so")).unwrap();
        assert_eq!(p.name, "softhsm2");
        let p = Profile::detect("Unknown", Path::new("/opt/libsofttoken.so")).unwrap();
        assert_eq!(p.name, "softtoken");
        assert!(Profile::detect("Unknown", Path::new("/opt/other.so")).is_none());
    }
}
