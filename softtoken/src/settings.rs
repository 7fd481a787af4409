//! Where softtoken finds its settings: a file beside the module, else the environment.
//!
//! A module loaded from `X/libsofttoken.so` first looks for `X/libsofttoken.so.conf`, lines of
//! `key = value` (`dir`, `profile`, `fault`; `#` starts a comment). Without that file it reads
//! `SOFTTOKEN_DIR`, `SOFTTOKEN_PROFILE` and `SOFTTOKEN_FAULT`. The file lets several tokens live in
//! one process (each a copy of the module in its own directory: the loader keeps one instance per
//! file), which the environment, shared by the whole process, cannot.

use std::path::PathBuf;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The token's directory (required).
    pub dir: Option<PathBuf>,
    /// A profile name or a path to a profile TOML.
    pub profile: Option<String>,
    /// The fault-control file.
    pub fault: Option<PathBuf>,
    /// Where these came from, for messages.
    pub source: String,
}

impl Settings {
    /// The file beside this module if there is one, else the environment.
    pub fn load() -> Result<Self, String> {
        if let Some(conf) = own_path().map(|p| {
            let mut s = p.into_os_string();
            s.push(".conf");
            PathBuf::from(s)
        }) {
            match std::fs::read_to_string(&conf) {
                Ok(text) => return Self::parse(&text).map_err(|e| format!("{}: {e}", conf.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", conf.display())),
            }
        }
        Ok(Settings {
            dir: std::env::var_os("SOFTTOKEN_DIR").map(PathBuf::from),
            profile: std::env::var("SOFTTOKEN_PROFILE").ok(),
            fault: std::env::var_os("SOFTTOKEN_FAULT").map(PathBuf::from),
            source: "the environment (SOFTTOKEN_DIR)".into(),
        })
    }

    /// `key = value` lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut s = Settings { source: "the file beside the module".into(), ..Settings::default() };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected key = value", n + 1));
            };
            let v = v.trim().to_string();
            match k.trim() {
                "dir" => s.dir = Some(v.into()),
                "profile" => s.profile = Some(v),
                "fault" => s.fault = Some(v.into()),
                other => return Err(format!("line {}: unknown key '{other}' (dir, profile, fault)", n + 1)),
            }
        }
        Ok(s)
    }
}

/// The path this module was loaded from, as the loader recorded it.
fn own_path() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    static ANCHOR: u8 = 0;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`; dli_fname, when set, points at the
    // loader's NUL-terminated copy of the file name, valid while the module stays loaded.
    let found = unsafe { libc::dladdr(&ANCHOR as *const u8 as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    // Linked into an executable (the rlib in unit tests), dladdr names the program: no module file.
    path.extension().is_some_and(|e| e == "so").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_comments_and_refuses_unknown_ones() {
        let s = Settings::parse("# a token\ndir = /t/token\nprofile = sansec # imitate\n\nfault=/t/fault\n").unwrap();
        assert_eq!(s.dir, Some(PathBuf::from("/t/token")));
        assert_eq!(s.profile.as_deref(), Some("sansec"));
        assert_eq!(s.fault, Some(PathBuf::from("/t/fault")));
        assert!(Settings::parse("dri = /x").unwrap_err().contains("unknown key 'dri'"));
        assert!(Settings::parse("dir").unwrap_err().contains("line 1"));
    }
}
