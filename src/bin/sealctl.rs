//! sealctl: the command line for security officers, administrators and auditors.
//!
//! `sealctl token ...` talks to a PKCS#11 module directly (the daemon must not hold the token's
//! only session for this to work on single-session USB keys). PINs come from a file, never from
//! the command line.

#[path = "sealctl/admin.rs"]
mod admin;
#[path = "sealctl/ses.rs"]
mod ses;

use clap::{Args, Parser, Subcommand};
use seald::crypto::KeyAlg;
use seald::token::{KeyId, SignInput, TokenConfig, TokenError, TokenPool};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sealctl",
    version,
    about = "seald's command line: seals and their lifecycle, filings, accounts and units (through the daemon's API), tokens and keys, the audit journal",
    after_help = "Exit status: 0 done; 1 refused by the daemon (or the audit chain has a problem); 2 bad command line or unreadable input; 3 the daemon is unreachable or failed.\nThe daemon connection comes from --server, --ca, --cert, --key or SEALCTL_SERVER, SEALCTL_CA, SEALCTL_CERT, SEALCTL_KEY."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a PKCS#11 token directly: inspect, make keys, sign, self-test.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Verify, export and query the audit journal (the daemon stopped, or an export elsewhere).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Seals: apply, approve, make, publish, freeze, unfreeze, revoke, change, renew; policy, grants,
    /// use tickets, usage (through the daemon).
    Seal {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::SealCmd,
    },
    /// Sign a document with a seal (or a plain key) as an application (through the daemon).
    Sign {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(flatten)]
        cmd: admin::SignCmd,
    },
    /// Filings (备案) for the police seal-management system (through the daemon).
    Filing {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::FilingCmd,
    },
    /// Registry accounts (through the daemon; system administrator).
    Account {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::AccountCmd,
    },
    /// Key versions, rotation and dual control: seal keys, the issuing CA, the seal maker (through the
    /// daemon; security officers).
    Keys {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::KeysCmd,
    },
    /// A backup through the daemon: the journal up to a signed checkpoint and a manifest signed by
    /// the audit key (system administrator). Keys stay in the token.
    Backup {
        #[command(flatten)]
        conn: admin::Conn,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// The built-in issuing CA: its certificate, and certificates for PKCS#10 requests (through the daemon).
    Ca {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::CaCmd,
    },
    /// Units (through the daemon).
    Unit {
        #[command(flatten)]
        conn: admin::Conn,
        #[command(subcommand)]
        cmd: admin::UnitCmd,
    },
    /// GB/T 38540 / GM/T 0031 seals and signatures, and OFD packages, offline: dump and verify.
    Ses {
        #[command(subcommand)]
        cmd: ses::SesCmd,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Talking to a running daemon over mutual TLS.
#[derive(Args, Clone, Debug)]
struct Remote {
    /// The daemon, e.g. https://seal.example.gov.cn:8443 (instead of --journal).
    #[arg(long)]
    server: Option<String>,
    /// CA bundle that the server certificate chains to (PEM).
    #[arg(long, requires = "server")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) of an auditor account.
    #[arg(long, requires = "server")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "server")]
    key: Option<PathBuf>,
}

impl Remote {
    fn client(&self) -> Result<Option<seald::client::Client>, String> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let rest = url.strip_prefix("https://").ok_or("--server must be an https:// URL")?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let host = hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport).trim_matches(['[', ']']);
        let with_port = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:443") };
        use std::net::ToSocketAddrs as _;
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{with_port}: {e}"))?
            .next()
            .ok_or("--server resolves to no address")?;
        let need = |p: &Option<PathBuf>, what: &str| p.clone().ok_or(format!("--server needs --{what}"));
        seald::client::Client::new(
            addr,
            host,
            &need(&self.ca, "ca")?,
            &need(&self.cert, "cert")?,
            &need(&self.key, "key")?,
        )
        .map(Some)
        .map_err(|e| e.to_string())
    }
}

fn remote_get(client: &seald::client::Client, path: &str) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let (status, body) = rt.block_on(client.request("GET", path, None)).map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body)
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the chain and check every checkpoint; name the first seq where anything is wrong.
    /// Exit status: 0 intact, 1 a problem found, 2 the input cannot be read.
    Verify {
        /// A journal directory (the daemon stopped).
        #[arg(long, conflicts_with_all = ["export", "server"], required_unless_present_any = ["export", "server"])]
        journal: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
        /// An export file (from `sealctl audit export`).
        #[arg(long, requires = "pubkey")]
        export: Option<PathBuf>,
        /// The audit public key (PEM). Without it a journal's chain is checked but not its signatures.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write records as JSON Lines with the covering checkpoints, for verification elsewhere.
    Export {
        /// The journal directory (the daemon stopped).
        #[arg(long, conflicts_with = "server", required_unless_present = "server")]
        journal: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
        /// First seq.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last seq (extended to the next checkpoint).
        #[arg(long, default_value_t = u64::MAX)]
        to: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move the oldest whole segments that a signed checkpoint covers into an export (daemon stopped).
    /// The journal keeps verifying from the archive's last hash. Nothing is ever deleted otherwise.
    Archive {
        /// The journal directory.
        #[arg(long)]
        journal: PathBuf,
        /// The audit public key (PEM): the whole journal is verified before anything moves.
        #[arg(long)]
        pubkey: PathBuf,
        /// Where the archive export goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Who did what to which object, when: records matching every given filter, as JSON Lines.
    Query {
        /// The journal directory.
        #[arg(long)]
        journal: PathBuf,
        /// Account.
        #[arg(long)]
        actor: Option<String>,
        /// Action, e.g. `sign`.
        #[arg(long)]
        action: Option<String>,
        /// Object, e.g. `seal:123`.
        #[arg(long)]
        object: Option<String>,
        /// Earliest time, ms since the epoch.
        #[arg(long)]
        from_ms: Option<u64>,
        /// Latest time, ms since the epoch.
        #[arg(long)]
        to_ms: Option<u64>,
    },
}

#[derive(Args, Clone)]
struct TokenArgs {
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

#[derive(Subcommand)]
enum TokenAction {
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
    let cfg = TokenConfig {
        module: t.module.clone(),
        profile: t.profile.clone(),
        uri: t.uri.clone(),
        label: t.token_label.clone(),
        serial: None,
        pin_file: t.pin_file.clone(),
        pin_credential: t.pin_credential.clone(),
        pool_size: 2,
        borrow_timeout_ms: 10_000,
        recovery_timeout_ms: 5_000,
        environment: Default::default(),
    };
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

/// Exit statuses of `sealctl audit verify`.
const INTACT: u8 = 0;
const DAMAGED: u8 = 1;
const UNREADABLE: u8 = 2;

fn audit(action: AuditAction) -> Result<u8, String> {
    use seald::audit;
    match action {
        AuditAction::Verify { journal, remote, export, pubkey, json } => {
            let key = match &pubkey {
                Some(p) => {
                    let pem = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Some(seald::crypto::PublicKey::from_spki_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))?)
                }
                None => None,
            };
            let report = match (journal, export) {
                _ if remote.server.is_some() => {
                    let client = remote.client()?.ok_or("no server")?;
                    let body = remote_get(&client, "/v1/audit/verify")?;
                    serde_json::from_slice::<audit::VerifyReport>(&body)
                        .map_err(|e| format!("the daemon's report: {e}"))?
                }
                (Some(dir), _) => audit::verify_journal_dir(&dir, key.as_ref()).map_err(|e| e.to_string())?,
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                    let export = audit::read_export(&text).map_err(|e| e.to_string())?;
                    export.verify(key.as_ref().ok_or("--pubkey is required for an export")?)
                }
                (None, None) => return Err("give --journal DIR or --export FILE".into()),
            };
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else if let Some(f) = &report.finding {
                println!("FAILED at seq {}: {:?}: {}", f.seq, f.kind, f.detail);
            } else {
                let signed = report
                    .signed_through
                    .map(|s| format!("signed through seq {s}"))
                    .unwrap_or_else(|| "no signed head".into());
                let sigs = if report.signatures_checked {
                    "signatures checked"
                } else {
                    "signatures NOT checked (no --pubkey)"
                };
                println!(
                    "OK: {} records to seq {}, {} checkpoints, {signed}; {sigs}",
                    report.records, report.last_seq, report.checkpoints
                );
            }
            Ok(if report.ok() { INTACT } else { DAMAGED })
        }
        AuditAction::Export { journal, remote, from, to, out } => {
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
                None => Box::new(std::io::stdout().lock()),
            };
            if let Some(client) = remote.client()? {
                let to_param = if to == u64::MAX { String::new() } else { format!("&to={to}") };
                let body = remote_get(&client, &format!("/v1/audit/export?from={from}{to_param}"))?;
                sink.write_all(&body).map_err(|e| e.to_string())?;
                eprintln!("exported {} lines from the daemon", body.iter().filter(|b| **b == b'\n').count());
                return Ok(INTACT);
            }
            let journal = journal.ok_or("give --journal DIR or --server URL")?;
            let (f, t) =
                audit::export(&journal, audit::ExportRange { from, to }, &mut sink).map_err(|e| e.to_string())?;
            eprintln!("exported seq {f} to {t}");
            Ok(INTACT)
        }
        AuditAction::Archive { journal, pubkey, out } => {
            let pem = std::fs::read_to_string(&pubkey).map_err(|e| format!("{}: {e}", pubkey.display()))?;
            let key =
                seald::crypto::PublicKey::from_spki_pem(&pem).map_err(|e| format!("{}: {e}", pubkey.display()))?;
            match audit::archive(&journal, &key, &out).map_err(|e| e.to_string())? {
                Some((from, to)) => println!("archived seq {from} to {to} into {}", out.display()),
                None => println!("nothing to archive: no whole segment is covered by a signed checkpoint yet"),
            }
            Ok(INTACT)
        }
        AuditAction::Query { journal, actor, action, object, from_ms, to_ms } => {
            let records = audit::read_journal(&journal).map_err(|e| e.to_string())?;
            let q = audit::Query { from_ms, to_ms, actor, action, object };
            for r in records.iter().filter(|r| q.matches(r)) {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
            Ok(INTACT)
        }
    }
}

fn run(cmd: Command) -> Result<(), TokenError> {
    let action = match cmd {
        Command::Token { action } => action,
        _ => unreachable!("handled in main"),
    };
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

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    seald::init_logging("warn");
    let command = std::mem::replace(&mut cli.command, Command::Completions { shell: clap_complete::Shell::Bash });
    let remote = match command {
        Command::Seal { conn, cmd } => Some(admin::seal(&conn, cmd)),
        Command::Sign { conn, cmd } => Some(admin::sign(&conn, cmd)),
        Command::Filing { conn, cmd } => Some(admin::filing(&conn, cmd)),
        Command::Account { conn, cmd } => Some(admin::account(&conn, cmd)),
        Command::Unit { conn, cmd } => Some(admin::unit(&conn, cmd)),
        Command::Ca { conn, cmd } => Some(admin::ca(&conn, cmd)),
        Command::Backup { conn, out } => Some(admin::backup(&conn, &out)),
        Command::Keys { conn, cmd } => Some(admin::keys(&conn, cmd)),
        Command::Ses { cmd } => return ExitCode::from(ses::run(cmd)),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "sealctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        other => {
            cli.command = other;
            None
        }
    };
    if let Some(result) = remote {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("sealctl: error {}", f.message);
                ExitCode::from(f.status)
            }
        };
    }
    if let Command::Audit { action } = cli.command {
        return match audit(action) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("sealctl: error [audit_unreadable]: {e}");
                ExitCode::from(UNREADABLE)
            }
        };
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealctl: error [{}]: {e}", e.code());
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
        // Global options reach every subcommand: build each one so clashes with them show here.
        let mut cmd = super::Cli::command();
        cmd.build();
        fn walk(c: &mut clap::Command) {
            c.build();
            for s in c.get_subcommands_mut() {
                walk(s);
            }
        }
        walk(&mut cmd);
    }
}
