//! Token PINs: read from a file or a systemd credential, held in memory that is wiped on drop, and
//! never formatted. `Debug` prints a placeholder; errors name the file, never its content.

use secrecy::SecretString;
use std::path::{Path, PathBuf};

/// Where a PIN comes from. There is deliberately no variant for a PIN given on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one line; a trailing newline is ignored). `-` is standard input, read
    /// once per process: root can pipe the PIN file into a command run as the seald user.
    File(PathBuf),
    /// A systemd credential name, read from `$CREDENTIALS_DIRECTORY/<name>` (LoadCredential=).
    Credential(String),
}

impl PinSource {
    /// Whether `path` names standard input (`-`) rather than a file.
    pub fn is_stdin(path: &Path) -> bool {
        path == Path::new("-")
    }

    /// The PIN file to rewrite after a PIN change: a real file, not standard input or a credential.
    pub fn rewritable_file(&self) -> Option<&Path> {
        match self {
            PinSource::File(path) if !Self::is_stdin(path) => Some(path),
            PinSource::File(_) | PinSource::Credential(_) => None,
        }
    }
}

/// The PIN could not be read. Never carries the PIN itself.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The file could not be read.
    #[error("cannot read PIN file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is empty or not UTF-8.
    #[error("PIN file {0} is empty or not UTF-8 text")]
    Empty(String),
    /// A new PIN that the appliance does not accept.
    #[error("the new PIN is refused: {0}")]
    Unacceptable(&'static str),
    /// `$CREDENTIALS_DIRECTORY` is not set.
    #[error(
        "systemd credential '{0}' requested but $CREDENTIALS_DIRECTORY is not set (is LoadCredential= in the unit?)"
    )]
    NoCredentialsDirectory(String),
}

/// A token PIN, zeroized on drop.
pub struct Pin(SecretString);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl Pin {
    /// Reads the PIN from its source.
    pub fn load(source: &PinSource) -> Result<Self, PinError> {
        match source {
            PinSource::File(path) => Self::from_file(path),
            PinSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| PinError::NoCredentialsDirectory(name.clone()))?;
                Self::from_file(&Path::new(&dir).join(name))
            }
        }
    }

    fn from_file(path: &Path) -> Result<Self, PinError> {
        let shown = path.display().to_string();
        let bytes = if PinSource::is_stdin(path) {
            Self::stdin().map_err(|source| PinError::Io { path: "standard input".into(), source })?
        } else {
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| PinError::Io { path: shown.clone(), source })?)
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| PinError::Empty(shown.clone()))?;
        let pin = text.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            return Err(PinError::Empty(shown));
        }
        Ok(Pin(SecretString::from(pin.to_owned())))
    }

    /// Standard input, read to its end the first time and kept for the process's later logins.
    fn stdin() -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
        use std::io::Read as _;
        static READ: std::sync::Mutex<Option<zeroize::Zeroizing<Vec<u8>>>> = std::sync::Mutex::new(None);
        let mut kept = READ.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            let mut buf = zeroize::Zeroizing::new(Vec::new());
            let _ = std::io::stdin().lock().take(4096).read_to_end(&mut buf)?;
            *kept = Some(buf);
        }
        Ok(kept.clone().unwrap_or_default())
    }

    /// Makes a random PIN (24 hex digits) and writes it to a new file readable by the owner only.
    /// For first boot and `seald dev`; refuses to overwrite an existing file.
    pub fn generate_to_file(path: &Path) -> Result<Self, PinError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let shown = path.display().to_string();
        let io = |source| PinError::Io { path: shown.clone(), source };
        let mut raw = zeroize::Zeroizing::new([0u8; 12]);
        getrandom::getrandom(raw.as_mut()).map_err(|e| io(std::io::Error::other(e)))?;
        let text = zeroize::Zeroizing::new(hex::encode(raw.as_ref()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        Ok(Pin(SecretString::from(text.as_str().to_owned())))
    }

    /// A new PIN given as text (for a PIN change): 4 to 255 bytes, no control characters (no NUL,
    /// no line break: it must survive being written to a PIN file and read back). The error never
    /// shows the PIN.
    pub fn from_text(text: &str) -> Result<Self, PinError> {
        let pin = text.trim_end_matches(['\r', '\n']);
        if pin.chars().any(char::is_control) {
            return Err(PinError::Unacceptable("it contains a control character (NUL, line break, tab ...)"));
        }
        if pin.len() < 4 {
            return Err(PinError::Unacceptable("it is shorter than 4 bytes"));
        }
        if pin.len() > 255 {
            return Err(PinError::Unacceptable("it is longer than 255 bytes"));
        }
        Ok(Pin(SecretString::from(pin.to_owned())))
    }

    /// Writes the PIN to `path` atomically (temp file, fsync, rename), readable by the owner only.
    pub fn write_to_file(&self, path: &Path) -> Result<(), PinError> {
        use secrecy::ExposeSecret as _;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let shown = path.display().to_string();
        let io = |source| PinError::Io { path: shown.clone(), source };
        let tmp = path.with_extension("new");
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(self.0.expose_secret().as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The secret, for handing to C_Login only.
    pub(crate) fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn reads_a_file_and_never_shows_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "s3cret-123456\n").unwrap();
        let pin = Pin::load(&PinSource::File(path.clone())).unwrap();
        assert_eq!(pin.secret().expose_secret(), "s3cret-123456");
        assert!(!format!("{pin:?}").contains("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        let err = Pin::load(&PinSource::File(path)).unwrap_err().to_string();
        assert!(err.contains("empty"));
        let err = Pin::load(&PinSource::File(dir.path().join("missing"))).unwrap_err();
        assert!(err.to_string().contains("missing"));
    }
}
