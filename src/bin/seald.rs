//! seald: the electronic-seal signing and verification daemon.
//!
//! Today it checks a configuration against its token (`seald check`) and sets up a development
//! appliance (`seald dev`). The mTLS API server arrives with the daemon issue; until then nothing
//! here pretends to serve.

use clap::{Parser, Subcommand};
use seald::config::Config;
use seald::crypto::KeyAlg;
use seald::token::{self, KeyInfo, Pin, SignInput, TokenPool};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "seald",
    version,
    about = "Electronic-seal signing and verification appliance (签名验签服务器)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a config, open its token, check the profile's mechanisms and log in; report health.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
    },
    /// Set up a development appliance in DIR: softtoken (a software PKCS#11 token with SM2) with its
    /// PINs, an SM2 and a P-256 key, and a config; then sign and verify once (OpenSSL cross-checks).
    /// Running it again reuses DIR.
    Dev {
        /// Where the development state lives.
        #[arg(long, default_value = "./dev")]
        dir: PathBuf,
    },
}

type Error = Box<dyn std::error::Error>;

fn check(config: &Path) -> Result<(), Error> {
    let cfg = Config::load(config)?;
    let pool = TokenPool::open(&cfg.token)?;
    let info = pool.module_info()?;
    println!(
        "token '{}' in slot {} via {} (profile {})",
        info.token_label, info.slot, info.module, info.profile
    );
    println!("health: {}", serde_json::to_string(&pool.health())?);
    Ok(())
}

const DEV_LABEL: &str = "seald-dev";

/// softtoken, built beside this executable (`cargo build -p softtoken`; scripts/dev does it).
fn softtoken_module() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let lib = exe
        .parent()
        .map(|d| d.join("libsofttoken.so"))
        .ok_or("no executable directory")?;
    if lib.exists() {
        Ok(lib)
    } else {
        Err(format!("softtoken is not built at {}: run scripts/dev (or `cargo build --release -p softtoken`)", lib.display()).into())
    }
}

fn ensure_key(
    pool: &TokenPool,
    keys: &[KeyInfo],
    alg: KeyAlg,
    label: &str,
) -> Result<KeyInfo, Error> {
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
        Ok(o) => format!(
            "OpenSSL REJECTS it: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(_) => "OpenSSL not installed, not cross-checked".into(),
    }
}

fn dev(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let dir = dir.canonicalize()?;
    let module = softtoken_module()?;
    let token_dir = dir.join("softtoken");
    // softtoken reads this at C_Initialize; nothing has loaded it yet in this process.
    std::env::set_var("SOFTTOKEN_DIR", &token_dir);
    let pin_file = dir.join("token.pin");
    if !pin_file.exists() {
        println!("initialising softtoken '{DEV_LABEL}' in {} (PINs in token.pin and so.pin, mode 0600) ...", token_dir.display());
        let so = Pin::generate_to_file(&dir.join("so.pin"))?;
        let user = Pin::generate_to_file(&pin_file)?;
        let _slot = token::init_token(&module, DEV_LABEL, &so, &user)?;
    }
    let config = dir.join("seald.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `seald dev`. Development only: softtoken is a software token, not a certified module.\n\
             [token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{DEV_LABEL}\"\npin_file = \"{}\"\npool_size = 4\n\n\
             [token.environment]\nSOFTTOKEN_DIR = \"{}\"\n",
            module.display(),
            pin_file.display(),
            token_dir.display()
        ),
    )?;
    let cfg = Config::load(&config)?;
    let pool = TokenPool::open(&cfg.token)?;
    let keys = pool.list()?;
    let sm2 = ensure_key(&pool, &keys, KeyAlg::Sm2, "dev-sm2")?;
    let p256 = ensure_key(&pool, &keys, KeyAlg::P256, "dev-p256")?;
    let message = b"hello from seald dev";
    let msg_file = dir.join("hello.txt");
    std::fs::write(&msg_file, message)?;
    for key in [&sm2, &p256] {
        let sig = pool.sign(
            &key.id,
            SignInput::Message {
                data: message,
                user_id: None,
            },
        )?;
        let pem = dir.join(format!("{}.pem", key.label));
        let sig_file = dir.join(format!("{}.sig", key.label));
        std::fs::write(&pem, key.public_key.to_spki_pem())?;
        std::fs::write(&sig_file, &sig.der)?;
        // The token layer verified it before returning it; check again, here and with OpenSSL.
        key.public_key.verify_prehashed(&sig.prehash, &sig.der)?;
        let (p, m, s) = (
            pem.to_string_lossy(),
            msg_file.to_string_lossy(),
            sig_file.to_string_lossy(),
        );
        let verdict = match key.alg {
            KeyAlg::Sm2 => openssl_verdict(&[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                &p,
                "-rawin",
                "-in",
                &m,
                "-sigfile",
                &s,
                "-digest",
                "sm3",
                "-pkeyopt",
                "distid:1234567812345678",
            ]),
            _ => openssl_verdict(&["dgst", "-sha256", "-verify", &p, "-signature", &s, &m]),
        };
        println!(
            "signed {:?} with {} key {} ({}): verified on the host; {verdict}",
            std::str::from_utf8(message)?,
            key.alg,
            key.id,
            key.label
        );
    }
    let d = dir.display();
    println!("\nseald dev is set up in {d}. Try:");
    println!("  export SOFTTOKEN_DIR={}", token_dir.display());
    println!("  target/release/sealctl token info --module {} --token {DEV_LABEL} --pin-file {d}/token.pin", module.display());
    println!("  target/release/sealctl token list --module {} --token {DEV_LABEL} --pin-file {d}/token.pin", module.display());
    println!("  openssl pkeyutl -verify -pubin -inkey {d}/dev-sm2.pem -rawin -in {d}/hello.txt -sigfile {d}/dev-sm2.sig -digest sm3 -pkeyopt distid:1234567812345678");
    println!("  target/release/seald check --config {d}/seald.toml");
    println!("(The mTLS signing API is not built yet; this sets up and exercises the token layer with SM2.)");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    seald::init_logging("info");
    let result = match cli.command {
        Command::Check { config } => check(&config),
        Command::Dev { dir } => dev(&dir),
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
