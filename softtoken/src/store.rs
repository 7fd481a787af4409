//! What softtoken keeps on disk, and how.
//!
//! `SOFTTOKEN_DIR/token.json` holds the label, serial, PIN failure counters and the token master key
//! (MK) wrapped twice: under a key derived from the SO PIN and under one derived from the user PIN
//! (Argon2id, memory-hard). Either PIN unwraps the same MK, so C_InitPIN by the SO keeps every key
//! usable. Each object is `objects/<name>.json`; a private key's scalar is sealed under the MK with
//! AES-256-GCM, its file name as associated data. Every write is temp file + fsync + rename + fsync of
//! the directory, so a crash leaves the old file or the new one, never half of one.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The token master key.
pub type MasterKey = Zeroizing<[u8; 32]>;

/// A secret sealed with AES-256-GCM.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    nonce: String,
    ct: String,
}

/// The MK wrapped under a PIN-derived key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrappedKey {
    salt: String,
    sealed: Sealed,
}

/// token.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenFile {
    /// CKA token label (≤ 32 bytes).
    pub label: String,
    /// Serial number (16 hex digits).
    pub serial: String,
    /// MK under the SO PIN.
    pub so: WrappedKey,
    /// MK under the user PIN, once C_InitPIN has run.
    pub user: Option<WrappedKey>,
    /// Consecutive wrong user PINs.
    pub user_failures: u32,
    /// Consecutive wrong SO PINs.
    pub so_failures: u32,
}

/// One object file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectFile {
    /// Attribute type -> value, hex.
    pub attrs: Vec<(u64, String)>,
    /// The private scalar, for private keys.
    pub secret: Option<Sealed>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not something a token can recover from.
    getrandom::getrandom(&mut b).expect("OS random number generator");
    b
}

/// A fresh random master key.
pub fn new_master_key() -> MasterKey {
    Zeroizing::new(random::<32>())
}

/// Random bytes for C_GenerateRandom, serial numbers and file names.
pub fn random_bytes(out: &mut [u8]) -> bool {
    getrandom::getrandom(out).is_ok()
}

fn kdf(pin: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    // OWASP's Argon2id minimum (19 MiB, 2 passes): slow enough per guess, fast enough per login.
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).expect("static argon2 params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(pin, salt, out.as_mut()).expect("argon2 with valid params");
    out
}

/// Seals `plain` under `key` with `aad`.
pub fn seal(key: &[u8; 32], plain: &[u8], aad: &[u8]) -> Sealed {
    let nonce = random::<12>();
    let cipher = Aes256Gcm::new(key.into());
    let ct =
        cipher.encrypt(&Nonce::from(nonce), Payload { msg: plain, aad }).expect("AES-GCM encryption of a small buffer");
    Sealed { nonce: hex::encode(nonce), ct: hex::encode(ct) }
}

/// Opens a sealed secret; `None` if the key is wrong or the data was changed.
pub fn open(key: &[u8; 32], sealed: &Sealed, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let nonce: [u8; 12] = hex::decode(&sealed.nonce).ok()?.try_into().ok()?;
    let ct = hex::decode(&sealed.ct).ok()?;
    let cipher = Aes256Gcm::new(key.into());
    cipher.decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad }).ok().map(Zeroizing::new)
}

/// Wraps the MK under a PIN.
pub fn wrap(mk: &MasterKey, pin: &[u8], role: &[u8]) -> WrappedKey {
    let salt = random::<16>();
    let kek = kdf(pin, &salt);
    WrappedKey { salt: hex::encode(salt), sealed: seal(&kek, mk.as_ref(), role) }
}

/// Unwraps the MK with a PIN; `None` for a wrong PIN.
pub fn unwrap(w: &WrappedKey, pin: &[u8], role: &[u8]) -> Option<MasterKey> {
    let salt = hex::decode(&w.salt).ok()?;
    let kek = kdf(pin, &salt);
    let plain = open(&kek, &w.sealed, role)?;
    let arr: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// Writes a file atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The token's directory layout.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the directory.
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("objects"))?;
        Ok(Store { dir })
    }

    /// token.json, if the token was ever initialised.
    pub fn load_token(&self) -> Result<Option<TokenFile>, String> {
        let path = self.dir.join("token.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Saves token.json.
    pub fn save_token(&self, t: &TokenFile) -> std::io::Result<()> {
        write_atomic(&self.dir.join("token.json"), &serde_json::to_vec_pretty(t).map_err(std::io::Error::other)?)
    }

    /// Every object file; unreadable ones are reported, not loaded.
    pub fn load_objects(&self) -> (Vec<(String, ObjectFile)>, Vec<String>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let entries = match std::fs::read_dir(self.dir.join("objects")) {
            Ok(e) => e,
            Err(e) => return (ok, vec![format!("objects directory: {e}")]),
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_stem().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if path.extension().and_then(|e| e.to_str()) != Some("json") || name.starts_with('.') {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<ObjectFile>(&b).map_err(|e| e.to_string()))
            {
                Ok(o) => ok.push((name, o)),
                Err(e) => bad.push(format!("{}: {e}", path.display())),
            }
        }
        (ok, bad)
    }

    /// The names of the object files there now (another process sharing the directory may have
    /// added or removed some).
    /// (None: the directory could not be read, which says nothing about the objects.)
    pub fn object_names(&self) -> Option<std::collections::BTreeSet<String>> {
        std::fs::read_dir(self.dir.join("objects"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let p = e.path();
                        let name = p.file_stem()?.to_str()?.to_string();
                        (p.extension()?.to_str()? == "json" && !name.starts_with('.')).then_some(name)
                    })
                    .collect()
            })
            .ok()
    }

    /// One object by name.
    pub fn load_object(&self, name: &str) -> Result<ObjectFile, String> {
        let path = self.dir.join("objects").join(format!("{name}.json"));
        std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ObjectFile>(&b).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Saves one object.
    pub fn save_object(&self, name: &str, o: &ObjectFile) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(o).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("objects").join(format!("{name}.json")), &bytes)
    }

    /// Removes one object.
    pub fn remove_object(&self, name: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.dir.join("objects").join(format!("{name}.json")))?;
        std::fs::File::open(self.dir.join("objects"))?.sync_all()
    }

    /// Removes every object (C_InitToken).
    pub fn clear_objects(&self) -> std::io::Result<()> {
        let (objs, _) = self.load_objects();
        for (name, _) in objs {
            self.remove_object(&name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_pin_unwraps_the_same_master_key_and_a_wrong_one_does_not() {
        let mk = new_master_key();
        let so = wrap(&mk, b"so-pin", b"so");
        let user = wrap(&mk, b"user-pin", b"user");
        assert_eq!(*unwrap(&so, b"so-pin", b"so").unwrap(), *mk);
        assert_eq!(*unwrap(&user, b"user-pin", b"user").unwrap(), *mk);
        assert!(unwrap(&user, b"wrong", b"user").is_none());
        assert!(unwrap(&user, b"user-pin", b"so").is_none(), "role is bound");
    }

    #[test]
    fn sealed_secrets_are_bound_to_their_name() {
        let mk = new_master_key();
        let s = seal(&mk, b"scalar", b"obj-1");
        assert_eq!(open(&mk, &s, b"obj-1").unwrap().as_slice(), b"scalar");
        assert!(open(&mk, &s, b"obj-2").is_none());
    }

    #[test]
    fn corrupt_object_files_are_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf()).unwrap();
        store.save_object("a", &ObjectFile { attrs: vec![(1, "01".into())], secret: None }).unwrap();
        std::fs::write(dir.path().join("objects/b.json"), b"{ not json").unwrap();
        let (ok, bad) = store.load_objects();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("b.json"));
    }
}
