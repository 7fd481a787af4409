//! Test fixtures: SoftHSM2 tokens in a private directory, and OpenSSL as an independent verifier.
//!
//! SoftHSM reads SOFTHSM2_CONF once per process, at C_Initialize, so each test process gets one
//! token directory and each test its own token in it. `cargo nextest` (the README's runner) gives
//! every test its own process; plain `cargo test` works too, with tests sharing the directory.
//! Nothing here skips: without SoftHSM2, OpenSSL or OpenSC the tests fail and say what to install.
#![allow(dead_code)]

use seald::token::TokenConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Where Debian and others install SoftHSM2's module.
const SOFTHSM_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

pub fn softhsm_module() -> PathBuf {
    SOFTHSM_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "SoftHSM2 IS NOT INSTALLED: these tests need it and do not skip. \
                 Run the README's test command (it installs softhsm2), or `apt-get install -y softhsm2`."
            )
        })
}

pub fn require_tool(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    assert!(ok.unwrap_or(false), "{tool} IS NOT INSTALLED: `apt-get install -y {package}` (the README's test command does it)");
}

static DIR: OnceLock<PathBuf> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The per-process SoftHSM token directory; sets SOFTHSM2_CONF before anything loads the module.
pub fn softhsm_dir() -> &'static Path {
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("tokens")).unwrap();
        let conf = base.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                base.join("tokens").display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        base
    })
}

/// A fresh SoftHSM2 token, initialised by SoftHSM's own tool (not by our code).
pub struct TestToken {
    pub module: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
    pub pin: String,
}

impl TestToken {
    pub fn new(name: &str) -> Self {
        let module = softhsm_module();
        let dir = softhsm_dir();
        let label = format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let pin = "24681357".to_string();
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                &label,
                "--so-pin",
                "13572468",
                "--pin",
                &pin,
            ])
            .output()
            .expect("softhsm2-util must be installed with softhsm2");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pin_file = dir.join(format!("{label}.pin"));
        std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
        TestToken {
            module,
            label,
            pin_file,
            pin,
        }
    }

    pub fn config(&self) -> TokenConfig {
        let mut c = TokenConfig::new(&self.module, &self.label, &self.pin_file);
        c.profile = Some("softhsm2".into());
        c
    }

    /// A file in the per-process scratch directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        softhsm_dir().join(format!("{}-{name}", self.label))
    }
}

/// Runs OpenSSL and returns whether it succeeded, with its output for messages.
pub fn openssl(args: &[&str]) -> (bool, String) {
    require_tool("openssl", "openssl");
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
