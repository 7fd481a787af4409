//! seald: the electronic-seal signing and verification daemon.
//!
//! `seald run` serves the mTLS API; `seald check` checks a configuration against its token;
//! `seald dev` sets up a development appliance (softtoken, a dev CA and certificates) and runs it.

use clap::{Parser, Subcommand};
use seald::config::Config;
use seald::crypto::KeyAlg;
use seald::token::{self, KeyInfo, Pin, TokenPool};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "seald", version, about = "Electronic-seal signing and verification appliance (签名验签服务器)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the signing and verification API over mutual TLS until SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
    },
    /// Read a config, open its token, check the profile's mechanisms and log in; report health.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
    },
    /// Set up a development appliance in DIR and run it: softtoken (a software PKCS#11 token with SM2),
    /// SM2 and P-256 keys and an audit key, a dev CA with server and client certificates (PEM and
    /// PKCS#12), a config; then serve the API on 127.0.0.1, sign and verify once through it, print the
    /// curl lines to try, and keep serving until Ctrl-C. Running it again reuses DIR.
    Dev {
        /// Where the development state lives.
        #[arg(long, default_value = "./dev")]
        dir: PathBuf,
        /// Where the daemon listens (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
    },
}

type Error = Box<dyn std::error::Error>;

fn check(config: &Path) -> Result<(), Error> {
    let cfg = Config::load(config)?;
    let pool = TokenPool::open(&cfg.token)?;
    let info = pool.module_info()?;
    println!("token '{}' in slot {} via {} (profile {})", info.token_label, info.slot, info.module, info.profile);
    println!("health: {}", serde_json::to_string(&pool.health())?);
    Ok(())
}

const DEV_LABEL: &str = "seald-dev";

/// softtoken, built beside this executable (`cargo build -p softtoken`; scripts/dev does it).
fn softtoken_module() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let lib = exe.parent().map(|d| d.join("libsofttoken.so")).ok_or("no executable directory")?;
    if lib.exists() {
        Ok(lib)
    } else {
        Err(format!(
            "softtoken is not built at {}: run scripts/dev (or `cargo build --release -p softtoken`)",
            lib.display()
        )
        .into())
    }
}

fn ensure_key(pool: &TokenPool, keys: &[KeyInfo], alg: KeyAlg, label: &str) -> Result<KeyInfo, Error> {
    if let Some(k) = keys.iter().find(|k| k.label == label && k.alg == alg) {
        return Ok(k.clone());
    }
    println!("generating {alg} key '{label}' inside the token ...");
    Ok(pool.generate(alg, label)?)
}

/// Asks OpenSSL 3, if it is installed, to verify a signature we made: an independent opinion.
fn openssl_verdict(args: &[&str]) -> String {
    match std::process::Command::new("openssl").args(args).output() {
        Ok(o) if o.status.success() => "OpenSSL 3 verifies it".into(),
        Ok(o) => format!("OpenSSL REJECTS it: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(_) => "OpenSSL not installed, not cross-checked".into(),
    }
}

/// The roles `seald dev` makes client certificates for, with fixed file names.
const DEV_CLIENTS: &[(&str, &str)] = &[
    ("app", "app"),
    ("auditor", "auditor"),
    ("secofficer", "secofficer"),
    ("sysadmin", "sysadmin"),
    ("issuer", "issuer"),
];

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(config: &Path) -> Result<(), Error> {
    let cfg = Config::load(config)?;
    runtime()?.block_on(seald::server::run(cfg, None))?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The dev PKI: made once, reused after. Returns the client fingerprints by role.
fn dev_pki(dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let ca_path = dir.join("ca.pem");
    if !ca_path.exists() {
        println!("making a development CA, a server certificate for localhost and client certificates ...");
        let ca = seald::devpki::DevCa::new("seald dev CA")?;
        let server = ca.server(1)?;
        std::fs::write(dir.join("server.pem"), &server.cert_pem)?;
        write_private(&dir.join("server.key"), &server.key_pem)?;
        for (i, (name, _)) in DEV_CLIENTS.iter().enumerate() {
            let c = ca.client(name, 100 + i as u64, -1, 730)?;
            std::fs::write(dir.join(format!("{name}.pem")), &c.cert_pem)?;
            write_private(&dir.join(format!("{name}.key")), &c.key_pem)?;
            // PKCS#12 for browsers and tools that want one file; OpenSSL makes it (empty password).
            let _ = std::process::Command::new("openssl")
                .args(["pkcs12", "-export", "-passout", "pass:", "-name", name])
                .arg("-in")
                .arg(dir.join(format!("{name}.pem")))
                .arg("-inkey")
                .arg(dir.join(format!("{name}.key")))
                .arg("-out")
                .arg(dir.join(format!("{name}.p12")))
                .output();
        }
        std::fs::write(&ca_path, ca.cert_pem())?;
    }
    let mut out = Vec::new();
    for (name, role) in DEV_CLIENTS {
        let certs = seald::tls::load_certs(&dir.join(format!("{name}.pem")))?;
        out.push((role.to_string(), seald::tls::fingerprint(&certs[0])));
    }
    Ok(out)
}

fn dev(dir: &Path, listen: &str) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let dir = dir.canonicalize()?;
    let module = softtoken_module()?;
    let token_dir = dir.join("softtoken");
    // softtoken reads this at C_Initialize; nothing has loaded it yet in this process.
    std::env::set_var("SOFTTOKEN_DIR", &token_dir);
    let pin_file = dir.join("token.pin");
    if !pin_file.exists() {
        println!(
            "initialising softtoken '{DEV_LABEL}' in {} (PINs in token.pin and so.pin, mode 0600) ...",
            token_dir.display()
        );
        let so = Pin::generate_to_file(&dir.join("so.pin"))?;
        let user = Pin::generate_to_file(&pin_file)?;
        let _slot = token::init_token(&module, DEV_LABEL, &so, &user)?;
    }
    let (sm2, p256, audit) = {
        let mut tcfg = seald::token::TokenConfig::new(&module, DEV_LABEL, &pin_file);
        tcfg.profile = Some("softtoken".into());
        let pool = TokenPool::open(&tcfg)?;
        let keys = pool.list()?;
        (
            ensure_key(&pool, &keys, KeyAlg::Sm2, "dev-sm2")?,
            ensure_key(&pool, &keys, KeyAlg::P256, "dev-p256")?,
            ensure_key(&pool, &keys, KeyAlg::Sm2, "dev-audit")?,
        )
    };
    let clients = dev_pki(&dir)?;
    std::fs::write(dir.join("dev-sm2.pem"), sm2.public_key.to_spki_pem())?;
    std::fs::write(dir.join("dev-p256.pem"), p256.public_key.to_spki_pem())?;
    std::fs::write(dir.join("audit.pem"), audit.public_key.to_spki_pem())?;
    let d = dir.display();
    let mut config = format!(
        "# Written by `seald dev`. Development only: softtoken is a software token, not a certified module.\n\
         [token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{DEV_LABEL}\"\npin_file = \"{d}/token.pin\"\npool_size = 4\n\n\
         [token.environment]\nSOFTTOKEN_DIR = \"{}\"\n\n\
         [server]\nlisten = \"{listen}\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\n\
         [store]\ndir = \"{d}/store\"\n\n\
         [audit]\ndir = \"{d}/journal\"\nkey = \"{}\"\n\n\
         [[keys]]\nid = \"{}\"\nname = \"dev-sm2\"\n\n[[keys]]\nid = \"{}\"\nname = \"dev-p256\"\n",
        module.display(),
        token_dir.display(),
        audit.id,
        sm2.id,
        p256.id,
    );
    for (role, fp) in &clients {
        let keys = if role == "app" { "[\"dev-sm2\", \"dev-p256\"]" } else { "[]" };
        config.push_str(&format!(
            "\n[[accounts]]\nname = \"{role}\"\nrole = \"{role}\"\nfingerprints = [\"{fp}\"]\nkeys = {keys}\n"
        ));
    }
    let config_path = dir.join("seald.toml");
    std::fs::write(&config_path, config)?;
    let cfg = Config::load(&config_path)?;

    let rt = runtime()?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(seald::server::run(cfg, Some(tx)));
        let addr = match rx.await {
            Ok(a) => a,
            Err(_) => {
                return match server.await {
                    Ok(Err(e)) => Err(Error::from(e.to_string())),
                    _ => Err("the daemon stopped before it served".into()),
                }
            }
        };
        let app = seald::client::Client::new(addr, "localhost", &dir.join("ca.pem"), &dir.join("app.pem"), &dir.join("app.key"))?;
        // Sign a digest over the API, verify it over the API, and let OpenSSL judge it too.
        let message = b"hello from seald dev";
        std::fs::write(dir.join("hello.txt"), message)?;
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let body = serde_json::json!({ "key": "dev-sm2", "input": "message", "data": b64(message) });
        let (status, reply) = app.request("POST", "/v1/sign", Some(&body)).await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        if status != 200 {
            return Err(format!("self-check: /v1/sign answered {status}: {reply}").into());
        }
        let sig_b64 = reply["signature"].as_str().unwrap_or_default().to_string();
        let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &sig_b64)?;
        std::fs::write(dir.join("hello.sig"), &sig)?;
        let verify = serde_json::json!({ "key": "dev-sm2", "input": "message", "data": b64(message), "signature": sig_b64 });
        let (_, v) = app.request("POST", "/v1/verify", Some(&verify)).await?;
        let v: serde_json::Value = serde_json::from_slice(&v)?;
        let (p, m, s) = (dir.join("dev-sm2.pem"), dir.join("hello.txt"), dir.join("hello.sig"));
        let (p, m, s) = (p.to_string_lossy(), m.to_string_lossy(), s.to_string_lossy());
        let openssl = openssl_verdict(&[
            "pkeyutl", "-verify", "-pubin", "-inkey", &p, "-rawin", "-in", &m, "-sigfile", &s, "-digest", "sm3", "-pkeyopt",
            "distid:1234567812345678",
        ]);
        println!("self-check: signed {:?} over mTLS with dev-sm2 (audit seq recorded); /v1/verify says valid={}; {openssl}", std::str::from_utf8(message)?, v["valid"]);
        let curl = format!("curl --cacert {d}/ca.pem --cert {d}/app.pem --key {d}/app.key");
        println!("\nseald dev is serving at https://{addr} (Ctrl-C stops it). Try:");
        println!("  {curl} https://localhost:{}/v1/keys", addr.port());
        println!("  {curl} https://localhost:{}/v1/sign -d '{{\"key\":\"dev-sm2\",\"input\":\"message\",\"data\":\"aGVsbG8=\"}}'", addr.port());
        println!("  {curl} https://localhost:{}/readyz", addr.port());
        println!("  curl --cacert {d}/ca.pem --cert {d}/auditor.pem --key {d}/auditor.key https://localhost:{}/v1/audit/verify", addr.port());
        println!("  target/release/sealctl audit verify --journal {d}/journal --pubkey {d}/audit.pem   # with the daemon stopped");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        match server.await {
            Ok(r) => r.map_err(|e| Error::from(e.to_string())),
            Err(e) => Err(e.to_string().into()),
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    seald::init_logging("info");
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Dev { dir, listen } => dev(&dir, &listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seald: error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
