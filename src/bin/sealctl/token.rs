//! `sealctl token ...`: a PKCS#11 token, directly (not through the daemon): module and token
//! information, key generation, listing, public keys, signing a digest, and a self-test.
//!
//! The daemon must not hold the token's only session for this to work on single-session USB keys.
//! PINs come from a file, never from the command line.

use clap::{Args, Subcommand};
use seald::crypto::KeyAlg;
use seald::token::{KeyId, SignInput, TokenConfig, TokenError, TokenPool};
use serde_json::json;
use std::path::PathBuf;

/// Which token, and how to log in to it: from the daemon's config (`--config`, its `[token]`
/// section, pool size aside), or from the flags (a flag given with --config overrides it).
#[derive(Args, Clone)]
pub struct TokenArgs {
    /// seald's config file: take the token settings (module, profile, token, PIN file or credential,
    /// environment) from its [token] section.
    #[arg(long, env = "SEALD_CONFIG")]
    config: Option<PathBuf>,
    /// PKCS#11 library (default: the profile's usual install path).
    #[arg(long, env = "SEALD_PKCS11_MODULE")]
    module: Option<PathBuf>,
    /// Token label.
    #[arg(long = "token", id = "token", conflicts_with = "uri")]
    token_label: Option<String>,
    /// PKCS#11 URI selecting the token, e.g. pkcs11:token=seald (pin-value is refused).
    #[arg(long)]
    uri: Option<String>,
    /// File holding the user PIN (one line). PINs are never taken on the command line.
    #[arg(long, env = "SEALD_PIN_FILE")]
    pin_file: Option<PathBuf>,
    /// systemd credential name holding the user PIN.
    #[arg(long, conflicts_with = "pin_file")]
    pin_credential: Option<String>,
    /// Token profile: softhsm2, softtoken, sansec, tass, luna, or a path to a .toml (default: detect).
    #[arg(long)]
    profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

/// `sealctl token ...`.
#[derive(Subcommand)]
pub enum TokenAction {
    /// Module, slot, token, profile match and mechanisms.
    Info(TokenArgs),
    /// Generate a key pair inside the token; prints its CKA_ID (hex) and public key.
    Keygen {
        #[command(flatten)]
        t: TokenArgs,
        /// sm2, p256, rsa2048 or rsa3072.
        #[arg(long)]
        alg: KeyAlg,
        /// CKA_LABEL.
        #[arg(long)]
        label: String,
    },
    /// List the key pairs in the token.
    List(TokenArgs),
    /// Print a key's public key as SubjectPublicKeyInfo PEM.
    Pubkey {
        #[command(flatten)]
        t: TokenArgs,
        /// CKA_ID in hex.
        #[arg(long)]
        id: String,
    },
    /// Sign a 32-byte digest (for SM2: e = SM3(Z||M)); prints the DER signature in hex.
    Sign {
        #[command(flatten)]
        t: TokenArgs,
        /// CKA_ID in hex.
        #[arg(long)]
        id: String,
        /// The digest in hex (SHA-256 for P-256 and RSA; e for SM2).
        #[arg(long)]
        digest: String,
    },
    /// Log in, check the profile's mechanisms, and sign-and-verify with every key.
    Selftest(TokenArgs),
}

fn open(t: &TokenArgs) -> Result<TokenPool, TokenError> {
    let mut cfg = TokenConfig {
        module: None,
        profile: None,
        uri: None,
        label: None,
        serial: None,
        pin_file: None,
        pin_credential: None,
        pool_size: 2,
        borrow_timeout_ms: 10_000,
        recovery_timeout_ms: 5_000,
        environment: Default::default(),
    };
    if let Some(path) = &t.config {
        let from = seald::config::Config::load(path)
            .map_err(|e| TokenError::BadInput(format!("{}: {e}", path.display())))?
            .token;
        cfg = TokenConfig { pool_size: 2, ..from };
    }
    if t.module.is_some() {
        cfg.module = t.module.clone();
    }
    if t.profile.is_some() {
        cfg.profile = t.profile.clone();
    }
    if t.uri.is_some() || t.token_label.is_some() {
        (cfg.uri, cfg.label, cfg.serial) = (t.uri.clone(), t.token_label.clone(), None);
    }
    if t.pin_file.is_some() || t.pin_credential.is_some() {
        (cfg.pin_file, cfg.pin_credential) = (t.pin_file.clone(), t.pin_credential.clone());
    }
    TokenPool::open(&cfg)
}

fn key_json(k: &seald::token::KeyInfo) -> serde_json::Value {
    json!({
        "id": k.id.to_hex(),
        "label": k.label,
        "alg": k.alg,
        "public_key_pem": k.public_key.to_spki_pem(),
        "fingerprint_sha256": k.public_key.fingerprint(),
    })
}

/// Runs `sealctl token ...`.
pub fn run(action: TokenAction) -> Result<(), TokenError> {
    match action {
        TokenAction::Info(t) => {
            let pool = open(&t)?;
            let info = pool.module_info()?;
            if t.json {
                println!("{}", json!({ "info": info, "health": pool.health() }));
            } else {
                println!("module:     {}", info.module);
                println!("library:    {} ({})", info.library_description, info.library_manufacturer);
                println!("slot:       {}", info.slot);
                println!(
                    "token:      '{}' {} {} serial {}",
                    info.token_label, info.token_manufacturer, info.token_model, info.token_serial
                );
                println!(
                    "sessions:   {}",
                    info.max_sessions.map(|n| n.to_string()).unwrap_or_else(|| "no limit stated".into())
                );
                println!(
                    "profile:    {} ({}, {})",
                    info.profile,
                    if info.profile_matches { "matches this module" } else { "does NOT match this module's identity" },
                    info.profile_status
                );
                println!("health:     {:?}", pool.health());
                let names: Vec<String> = info.mechanisms.iter().map(|m| format!("{m:#x}")).collect();
                println!("mechanisms: {}", names.join(" "));
            }
        }
        TokenAction::Keygen { t, alg, label } => {
            let pool = open(&t)?;
            let k = pool.generate(alg, &label)?;
            if t.json {
                println!("{}", key_json(&k));
            } else {
                println!("id:    {}", k.id);
                println!("alg:   {}", k.alg);
                println!("label: {}", k.label);
                print!("{}", k.public_key.to_spki_pem());
            }
        }
        TokenAction::List(t) => {
            let pool = open(&t)?;
            let keys = pool.list()?;
            if t.json {
                println!("{}", serde_json::Value::Array(keys.iter().map(key_json).collect()));
            } else if keys.is_empty() {
                println!("no keys");
            } else {
                for k in keys {
                    println!("{}  {:8}  {}", k.id, k.alg.name(), k.label);
                }
            }
        }
        TokenAction::Pubkey { t, id } => {
            let pool = open(&t)?;
            let k = pool.key(&KeyId::from_hex(&id)?)?;
            if t.json {
                println!("{}", key_json(&k));
            } else {
                print!("{}", k.public_key.to_spki_pem());
            }
        }
        TokenAction::Sign { t, id, digest } => {
            let digest = hex::decode(digest.trim()).map_err(|_| TokenError::BadInput("--digest is not hex".into()))?;
            let pool = open(&t)?;
            let sig = pool.sign(&KeyId::from_hex(&id)?, SignInput::Prehashed(&digest))?;
            if t.json {
                println!(
                    "{}",
                    json!({ "key_id": sig.key_id.to_hex(), "alg": sig.alg, "der": hex::encode(&sig.der), "raw": hex::encode(&sig.raw) })
                );
            } else {
                println!("{}", hex::encode(&sig.der));
            }
        }
        TokenAction::Selftest(t) => {
            let pool = open(&t)?;
            let keys = pool.list()?;
            let mut results = Vec::new();
            let mut failed = 0;
            for k in &keys {
                let r = pool.sign(&k.id, SignInput::Message { data: b"sealctl selftest", user_id: None });
                if r.is_err() {
                    failed += 1;
                }
                results.push(json!({ "id": k.id.to_hex(), "alg": k.alg, "ok": r.is_ok(), "error": r.err().map(|e| e.to_string()) }));
            }
            if t.json {
                println!(
                    "{}",
                    json!({ "login": true, "profile_mechanisms": true, "keys": results, "ok": failed == 0 })
                );
            } else {
                println!("login: ok");
                println!("profile '{}' mechanisms: ok", pool.profile().name);
                for r in &results {
                    println!(
                        "key {} ({}): {}",
                        r["id"].as_str().unwrap_or(""),
                        r["alg"].as_str().unwrap_or(""),
                        if r["ok"] == true { "sign+verify ok".to_string() } else { format!("FAILED: {}", r["error"]) }
                    );
                }
                if keys.is_empty() {
                    println!("no keys in the token to test");
                }
            }
            if failed > 0 {
                return Err(TokenError::Unavailable(format!("{failed} key(s) failed the self-test")));
            }
        }
    }
    Ok(())
}
