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
    /// Set up a development appliance in DIR: a software token with its PINs, keys, and a config;
    /// then sign and verify once to show it works. Running it again reuses DIR.
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

fn softhsm_module() -> Result<PathBuf, Error> {
    let p = token::Profile::builtin("softhsm2")?;
    p.matcher
        .library_paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "SoftHSM2 is not installed; run the README's first command (it installs it) or `apt-get install softhsm2`".into())
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

fn dev(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let dir = dir.canonicalize()?;
    let module = softhsm_module()?;
    let tokens = dir.join("softhsm-tokens");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    // SoftHSM reads this once, at C_Initialize; nothing has initialised it yet in this process.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let pin_file = dir.join("token.pin");
    if !pin_file.exists() {
        println!(
            "initialising token '{DEV_LABEL}' (PINs in {}/token.pin and so.pin) ...",
            dir.display()
        );
        let so = Pin::generate_to_file(&dir.join("so.pin"))?;
        let user = Pin::generate_to_file(&pin_file)?;
        let _slot = token::init_token(&module, DEV_LABEL, &so, &user)?;
    }
    let config = dir.join("seald.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `seald dev`. Development only: the token is SoftHSM2, a software token.\n\
             [token]\nmodule = \"{}\"\nprofile = \"softhsm2\"\nlabel = \"{DEV_LABEL}\"\npin_file = \"{}\"\npool_size = 4\n",
            module.display(),
            pin_file.display()
        ),
    )?;
    let cfg = Config::load(&config)?;
    let pool = TokenPool::open(&cfg.token)?;
    let keys = pool.list()?;
    let p256 = ensure_key(&pool, &keys, KeyAlg::P256, "dev-p256")?;
    let rsa = ensure_key(&pool, &keys, KeyAlg::Rsa2048, "dev-rsa2048")?;
    let message = b"hello from seald dev";
    for key in [&p256, &rsa] {
        let sig = pool.sign(
            &key.id,
            SignInput::Message {
                data: message,
                user_id: None,
            },
        )?;
        let pem = dir.join(format!("{}.pem", key.label));
        std::fs::write(&pem, key.public_key.to_spki_pem())?;
        std::fs::write(dir.join(format!("{}.sig", key.label)), &sig.der)?;
        // The token layer already verified it; check again from the outside.
        key.public_key.verify_prehashed(&sig.prehash, &sig.der)?;
        println!(
            "signed {:?} with {} key {} ({}): verified on the host",
            std::str::from_utf8(message)?,
            key.alg,
            key.id,
            key.label
        );
    }
    std::fs::write(dir.join("hello.txt"), message)?;
    let sealctl = "cargo run -q --bin sealctl --";
    println!("\nseald dev is set up in {}. Try:", dir.display());
    println!("  export SOFTHSM2_CONF={}", conf.display());
    println!(
        "  {sealctl} token info --token {DEV_LABEL} --pin-file {}",
        pin_file.display()
    );
    println!(
        "  {sealctl} token list --token {DEV_LABEL} --pin-file {}",
        pin_file.display()
    );
    println!(
        "  openssl dgst -sha256 -verify {0}/dev-p256.pem -signature {0}/dev-p256.sig {0}/hello.txt",
        dir.display()
    );
    println!(
        "(The mTLS signing API is not built yet; this sets up and exercises the token layer.)"
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SEALD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
