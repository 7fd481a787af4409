//! Test fixtures: SoftHSM2 tokens in a private directory, and OpenSSL as an independent verifier.
//!
//! SoftHSM reads SOFTHSM2_CONF once per process, at C_Initialize, so each test process gets one
//! token directory and each test its own token in it; tests on SoftHSM take turns in a process. Each softtoken is a copy of the module with
//! its settings beside it, so it needs no environment. `cargo nextest` (the README's runner) gives
//! every test its own process; plain `cargo test` works too, with tests side by side in one.
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
    SOFTHSM_PATHS.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "SoftHSM2 IS NOT INSTALLED: these tests need it and do not skip. \
                 Run the README's test command (it installs softhsm2), or `apt-get install -y softhsm2`."
        )
    })
}

pub fn require_tool(tool: &str, package: &str) {
    let ok = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success());
    assert!(
        ok.unwrap_or(false),
        "{tool} IS NOT INSTALLED: `apt-get install -y {package}` (the README's test command does it)"
    );
}

static DIR: OnceLock<PathBuf> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The per-process SoftHSM token directory; sets SOFTHSM2_CONF before anything loads the module.
pub fn softhsm_dir() -> &'static Path {
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("softhsm-{}", std::process::id()));
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

/// SoftHSM keeps one instance per process, reads its token directory once at C_Initialize and is
/// finalised when its last user lets go: tests that use it take turns (`cargo test` runs tests of a
/// file side by side in one process; under nextest each has its own anyway). Re-entrant, for a test
/// that makes two tokens.
static SOFTHSM_TURN: parking_lot::ReentrantMutex<()> = parking_lot::const_reentrant_mutex(());

/// A fresh SoftHSM2 token, initialised by SoftHSM's own tool (not by our code). Holds this
/// process's SoftHSM turn while it lives: make it before opening pools on it, so that they close
/// first.
pub struct TestToken {
    pub module: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
    pub pin: String,
    _turn: parking_lot::ReentrantMutexGuard<'static, ()>,
}

impl TestToken {
    pub fn new(name: &str) -> Self {
        let turn = SOFTHSM_TURN.lock();
        let module = softhsm_module();
        let dir = softhsm_dir();
        let label = format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let pin = "24681357".to_string();
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", &label, "--so-pin", "13572468", "--pin", &pin])
            .output()
            .expect("softhsm2-util must be installed with softhsm2");
        assert!(out.status.success(), "softhsm2-util --init-token failed: {}", String::from_utf8_lossy(&out.stderr));
        let pin_file = dir.join(format!("{label}.pin"));
        std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
        TestToken { module, label, pin_file, pin, _turn: turn }
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
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The softtoken module built beside this test binary (target/<profile>/libsofttoken.so).
pub fn softtoken_module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let lib = dir.join("libsofttoken.so");
    assert!(
        lib.exists(),
        "SOFTTOKEN IS NOT BUILT at {}: run `cargo build -p softtoken` (scripts/test does it first)",
        lib.display()
    );
    lib
}

static SOFTTOKENS: AtomicU32 = AtomicU32::new(0);

/// A softtoken in a fresh directory, imitating `profile`, with a fault-control file.
/// Each is a copy of the module in its own directory with its settings beside it
/// (`libsofttoken.so.conf`): the loader keeps one instance per file, so tests running side by side
/// in one process (`cargo test`) each have their own token, and daemons started with its `module`
/// find the same settings without any environment.
pub struct SoftToken {
    pub module: PathBuf,
    pub dir: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
    pub so_pin_file: PathBuf,
    pub fault: PathBuf,
    pub profile: String,
}

impl SoftToken {
    pub fn new(profile: &str) -> Self {
        let built = softtoken_module();
        let n = SOFTTOKENS.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("softtoken-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A copy, not a link: the loader recognises a file it has loaded by device and inode.
        let module = dir.join("libsofttoken.so");
        std::fs::copy(&built, &module).unwrap();
        let fault = dir.join("fault");
        std::fs::write(&fault, "").unwrap();
        let profile_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("pkcs11-profiles/{profile}.toml"));
        std::fs::write(
            dir.join("libsofttoken.so.conf"),
            format!(
                "dir = {}\nprofile = {}\nfault = {}\n",
                dir.join("token").display(),
                profile_path.display(),
                fault.display()
            ),
        )
        .unwrap();
        let so_pin_file = dir.join("so.pin");
        let pin_file = dir.join("user.pin");
        let so = seald::token::Pin::generate_to_file(&so_pin_file).unwrap();
        let user = seald::token::Pin::generate_to_file(&pin_file).unwrap();
        let label = "softtoken-test".to_string();
        seald::token::init_token(&module, &label, &so, &user).unwrap();
        SoftToken { module, dir, label, pin_file, so_pin_file, fault, profile: profile.to_string() }
    }

    pub fn config(&self) -> TokenConfig {
        let mut c = TokenConfig::new(&self.module, &self.label, &self.pin_file);
        c.profile = Some(self.profile.clone());
        c
    }

    /// A second instance of this token, as another process (another seald node) would load it:
    /// another copy of the module whose settings name the same token directory.
    pub fn second_instance(&self) -> TokenConfig {
        let dir = self.dir.join("second");
        std::fs::create_dir_all(&dir).unwrap();
        let module = dir.join("libsofttoken.so");
        std::fs::copy(&self.module, &module).unwrap();
        std::fs::copy(self.dir.join("libsofttoken.so.conf"), dir.join("libsofttoken.so.conf")).unwrap();
        let mut c = TokenConfig::new(&module, &self.label, &self.pin_file);
        c.profile = Some(self.profile.clone());
        c
    }

    pub fn set_fault(&self, text: &str) {
        std::fs::write(&self.fault, text).unwrap();
        // softtoken re-reads the file at most every 100 ms.
        std::thread::sleep(std::time::Duration::from_millis(150));
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// OpenSSL 3 verifying an SM2 signature (DER) over `message` with the given distinguishing ID.
pub fn openssl_sm2_verify(dir: &Path, pem: &str, message: &[u8], der_sig: &[u8], distid: &str) -> (bool, String) {
    let (k, m, s) = (dir.join("sm2-oracle.pem"), dir.join("sm2-oracle.msg"), dir.join("sm2-oracle.sig"));
    std::fs::write(&k, pem).unwrap();
    std::fs::write(&m, message).unwrap();
    std::fs::write(&s, der_sig).unwrap();
    openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        k.to_str().unwrap(),
        "-rawin",
        "-in",
        m.to_str().unwrap(),
        "-sigfile",
        s.to_str().unwrap(),
        "-digest",
        "sm3",
        "-pkeyopt",
        &format!("distid:{distid}"),
    ])
}

/// OpenSSL 3 verifying a P-256 (DER) or RSA PKCS#1 v1.5 signature over a SHA-256 `digest`.
pub fn openssl_verify_digest(dir: &Path, pem: &str, digest: &[u8], sig: &[u8], rsa: bool) -> (bool, String) {
    let (k, d, s) = (dir.join("digest-oracle.pem"), dir.join("digest-oracle.dgst"), dir.join("digest-oracle.sig"));
    std::fs::write(&k, pem).unwrap();
    std::fs::write(&d, digest).unwrap();
    std::fs::write(&s, sig).unwrap();
    let mut args = vec!["pkeyutl", "-verify", "-pubin", "-inkey", k.to_str().unwrap(), "-in", d.to_str().unwrap()];
    args.extend(["-sigfile", s.to_str().unwrap()]);
    if rsa {
        args.extend(["-pkeyopt", "digest:sha256"]);
    }
    openssl(&args)
}

/// Starts `seald run --config CONFIG` (with extra environment) and waits until it logs the address
/// it serves on; panics with the daemon's log when it does not start.
pub fn spawn_seald(config: &Path, envs: &[(&str, String)]) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_seald"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("SEALD_LOG", "info")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Every line also goes to seald.log beside the config, for tests that read what was logged.
    let mut log = std::fs::File::create(config.with_file_name("seald.log")).unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut sent = false;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if !sent {
                if let Some(a) = line.split("addr=").nth(1) {
                    let _ = tx.send(Ok(a.trim().to_string()));
                    sent = true;
                }
                seen.push(line);
                if seen.len() > 200 {
                    let _ = tx.send(Err(seen.join("\n")));
                    sent = true;
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    let addr = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(a)) => a.parse().unwrap(),
        Ok(Err(log)) => panic!("seald did not start:\n{log}"),
        Err(_) => panic!("seald did not start within 60 s"),
    };
    (child, addr)
}

/// The sample OFD documents (in `$SEALD_SAMPLES/ofd`) and the verdicts SOURCES.md records for them.
#[allow(dead_code)]
pub const OFD_SAMPLES: &[(&str, &str)] = &[
    ("suwellsdk_icbc_receipt_20220101", "valid"),
    ("suwellT_ceb_receipt_raw_rs", "valid"),
    ("greenpaper_bker_certlisttype3", "valid"),
    ("gomain_tax_jiangsu_signedFile", "valid"),
    ("ofdrw_SESV4SignDoc", "invalid"),
];

/// The samples' directory (`$SEALD_SAMPLES`, default `../shared/samples`); missing, the test fails.
#[allow(dead_code)]
pub fn samples_dir() -> PathBuf {
    let dir: PathBuf = std::env::var("SEALD_SAMPLES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into())
        .into();
    assert!(dir.is_dir(), "samples not found at {}: set SEALD_SAMPLES", dir.display());
    dir
}

/// The certificates an OFD package carries in its seal signatures (signers' and seal makers'). The
/// samples come without their issuers' certificates: pinning these as anchors lets every other
/// check decide.
#[allow(dead_code)]
pub fn carried_certificates(pkg: &[u8]) -> Vec<seald::formats::x509::Cert> {
    use std::io::Read as _;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(pkg)).unwrap();
    let mut certs = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        if !f.name().ends_with("SignedValue.dat") {
            continue;
        }
        let mut b = Vec::new();
        let _ = f.read_to_end(&mut b).unwrap();
        if let Ok(sig) = seald::formats::ses::SesSignature::parse(&b) {
            for der in [&sig.signer_cert, &sig.seal.maker_cert] {
                certs.extend(seald::formats::x509::Cert::parse(der).ok());
            }
        }
    }
    certs
}

/// A PostgreSQL server of its own for a test: `initdb` in a fresh directory under /tmp (owned by
/// the `postgres` user when the test runs as root, as CI does), listening on a Unix socket there
/// only, stopped (immediately) on drop. Debian's `postgresql` must be installed: without it the
/// test fails, it never skips.
#[allow(dead_code)]
pub struct Postgres {
    pub dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
    /// The TCP port (TLS servers only).
    pub port: u16,
    opts: String,
}

#[allow(dead_code)]
impl Postgres {
    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").is_file()).collect())
            .unwrap_or_default();
        found.sort();
        found.pop().unwrap_or_else(|| {
            panic!("POSTGRESQL IS NOT INSTALLED (no /usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql")
        })
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = c.args(args).output().unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Initialises and starts a server on a Unix socket only.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Initialises and starts a server that also listens on 127.0.0.1 (`port`) and takes TCP
    /// connections in TLS only, with this certificate and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let bin = Self::bin_dir();
        let as_root = running_as_root();
        let dir = PathBuf::from(format!("/tmp/seald-pg-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let chown = |p: &Path| {
            if as_root {
                let st = Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).status().unwrap();
                assert!(st.success(), "chown postgres {}", p.display());
            }
        };
        chown(&dir);
        let mut pg = Postgres { dir: dir.clone(), bin, as_root, port: 0, opts: String::new() };
        let data = dir.join("data");
        let d = data.to_str().unwrap();
        let _ = pg.run("initdb", &["-D", d, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        // Commit timestamps: the tests' oracle for the order in which records of different nodes
        // committed.
        pg.opts =
            format!("-k {} -c max_connections=200 -c track_commit_timestamp=on -c listen_addresses=''", dir.display());
        if let Some((cert, key)) = tls {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            std::fs::write(data.join("server.crt"), cert).unwrap();
            std::fs::write(data.join("server.key"), key).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
            // TCP only in TLS: a plain TCP connection is rejected by the server itself.
            let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
            std::fs::write(data.join("pg_hba.conf"), format!("hostnossl all all 0.0.0.0/0 reject\n{hba}")).unwrap();
            chown(&data);
            pg.port = port;
            pg.opts = format!(
                "-k {} -c max_connections=200 -c listen_addresses=127.0.0.1 -p {port} -c ssl=on \
                 -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
                dir.display()
            );
        }
        pg.start_again();
        pg
    }

    /// A fresh, empty database: its URL (key=value form, no password).
    pub fn database(&self, name: &str) -> String {
        // The Unix socket's name carries the port (5432 unless the server listens on TCP too).
        let port = if self.port == 0 { 5432 } else { self.port };
        let admin = format!("host={} port={port} user=postgres dbname=postgres", self.dir.display());
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).unwrap();
        c.batch_execute(&format!("CREATE DATABASE \"{name}\"")).unwrap();
        format!("host={} port={port} user=postgres dbname={name}", self.dir.display())
    }

    /// Stops the server now, as a crash would.
    pub fn stop(&self) {
        let d = self.dir.join("data");
        let _ = self.run("pg_ctl", &["-D", d.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the server (again, after [`Postgres::stop`]: its crash recovery runs).
    pub fn start_again(&self) {
        let d = self.dir.join("data");
        let log = self.dir.join("server.log");
        let args =
            ["-D", d.to_str().unwrap(), "-o", &self.opts, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"];
        let _ = self.run("pg_ctl", &args);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.dir.join("data");
        let exe = self.bin.join("pg_ctl");
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = c.args(["-D", d.to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (read from /proc, no unsafe call).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A picture that passes the registry's check (the PNG magic), for seal applications.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-really-but-the-magic-is-right";

/// An application for an SM2 contract seal of unit `a`, valid a year, under `policy`.
pub fn application(policy: seald::seal::Policy) -> seald::seal::ApplyRequest {
    seald::seal::ApplyRequest {
        name: "某某市某某局合同专用章".into(),
        kind: seald::seal::SealKind::Contract,
        image: PNG.to_vec(),
        image_type: "png".into(),
        width_mm: 40.0,
        height_mm: 40.0,
        valid_days: 365,
        alg: seald::crypto::KeyAlg::Sm2,
        unit: Some("a".into()),
        policy,
    }
}
