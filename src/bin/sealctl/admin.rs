//! `sealctl` as a client of the daemon's registry API: seals, signing with a seal, filings, accounts
//! and units. Each subcommand is one API call (or a few), printed as a table or, with `--json`, as
//! the API's JSON.
//!
//! Exit status: 0 done; 1 the daemon refused (a 4xx answer: the code is printed); 2 bad command line
//! or an unreadable local file; 3 the daemon is unreachable or failed (5xx).

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

/// How to reach the daemon: mTLS with an account's certificate and key.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The daemon, e.g. https://seal.example.gov.cn:8443.
    #[arg(long, env = "SEALCTL_SERVER", global = true)]
    server: Option<String>,
    /// CA bundle that the server certificate chains to (PEM).
    #[arg(long, env = "SEALCTL_CA", global = true)]
    ca: Option<PathBuf>,
    /// This account's client certificate (PEM).
    #[arg(long, env = "SEALCTL_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "SEALCTL_KEY", global = true)]
    key: Option<PathBuf>,
    /// Or the certificate and key in one PKCS#12 file (instead of --cert and --key).
    #[arg(long, env = "SEALCTL_P12", global = true)]
    p12: Option<PathBuf>,
    /// File holding the PKCS#12 password (default: none).
    #[arg(long, env = "SEALCTL_P12_PASSWORD_FILE", global = true)]
    p12_password_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// A failed command, with its exit status.
pub struct Failure {
    /// 1 refused, 2 local input, 3 unreachable or server failure.
    pub status: u8,
    /// The message (with the API's code).
    pub message: String,
}

fn local(e: impl std::fmt::Display) -> Failure {
    Failure { status: 2, message: e.to_string() }
}

fn connect(c: &Conn) -> Result<seald::client::Client, Failure> {
    let url = c.server.as_deref().ok_or_else(|| local("--server (or SEALCTL_SERVER) is needed"))?;
    let rest = url.strip_prefix("https://").ok_or_else(|| local("--server must be an https:// URL"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let host = hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport).trim_matches(['[', ']']);
    let with_port = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:443") };
    use std::net::ToSocketAddrs as _;
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| Failure { status: 3, message: format!("{with_port}: {e}") })?
        .next()
        .ok_or_else(|| local("--server resolves to no address"))?;
    let need = |p: &Option<PathBuf>, what: &str| {
        p.clone().ok_or_else(|| local(format!("--{what} (or SEALCTL_{}) is needed", what.to_uppercase())))
    };
    if let Some(p12) = &c.p12 {
        let password = match &c.p12_password_file {
            Some(f) => {
                zeroize::Zeroizing::new(String::from_utf8_lossy(&read(f)?).trim_end_matches(['\r', '\n']).to_string())
            }
            None => zeroize::Zeroizing::new(String::new()),
        };
        return seald::client::Client::with_p12(addr, host, &need(&c.ca, "ca")?, p12, &password).map_err(local);
    }
    seald::client::Client::new(addr, host, &need(&c.ca, "ca")?, &need(&c.cert, "cert")?, &need(&c.key, "key")?)
        .map_err(local)
}

/// One API call: the JSON answer, or a failure with the right exit status.
fn call(c: &Conn, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
    let client = connect(c)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(local)?;
    let (status, bytes) = rt
        .block_on(client.request(method, path, body.as_ref()))
        .map_err(|e| Failure { status: 3, message: format!("{}: {e}", c.server.as_deref().unwrap_or_default()) })?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    if status >= 400 {
        let code = v["error"]["code"].as_str().unwrap_or("error");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        let state = v["error"]["state"].as_str().map(|s| format!(" (state: {s})")).unwrap_or_default();
        return Err(Failure {
            status: if status >= 500 { 3 } else { 1 },
            message: format!("[{code}] HTTP {status}: {message}{state}"),
        });
    }
    Ok(v)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows of objects as an aligned table of `columns`.
fn table(rows: &[Value], columns: &[(&str, &str)]) {
    let mut grid: Vec<Vec<String>> = vec![columns.iter().map(|(_, h)| h.to_string()).collect()];
    for r in rows {
        grid.push(columns.iter().map(|(k, _)| cell(k.split('.').fold(r, |v, part| &v[part]))).collect());
    }
    let widths: Vec<usize> =
        (0..columns.len()).map(|i| grid.iter().map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for row in grid {
        let line: Vec<String> =
            row.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count()))).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Prints an object's fields, one per line (long values shortened).
fn fields(v: &Value) {
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            let mut s = cell(val);
            if s.chars().count() > 100 {
                s = format!("{}... ({} chars)", s.chars().take(60).collect::<String>(), s.chars().count());
            }
            println!("{k:<14} {s}");
        }
    }
}

fn out(c: &Conn, v: &Value, human: impl FnOnce(&Value)) {
    if c.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v);
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| local(format!("{}: {e}", path.display())))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A seal's use policy, from flags.
#[derive(Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// Each use needs a single-use approval ticket from the unit administrator.
    #[arg(long)]
    require_approval: bool,
    /// Most uses per day.
    #[arg(long)]
    daily_limit: Option<u64>,
    /// Most uses ever.
    #[arg(long)]
    total_limit: Option<u64>,
    /// Allowed hours, e.g. 8-18 (appliance time zone).
    #[arg(long, value_parser = parse_hours)]
    hours: Option<[u8; 2]>,
}

fn parse_hours(s: &str) -> Result<[u8; 2], String> {
    let (a, b) = s.split_once('-').ok_or("hours look like 8-18")?;
    Ok([a.trim().parse().map_err(|_| "hours look like 8-18")?, b.trim().parse().map_err(|_| "hours look like 8-18")?])
}

impl PolicyArgs {
    fn json(&self) -> Value {
        json!({ "require_approval": self.require_approval, "daily_limit": self.daily_limit,
                "total_limit": self.total_limit, "hours": self.hours })
    }
}

/// `sealctl seal ...`.
#[derive(Subcommand, Debug)]
pub enum SealCmd {
    /// List the seals this account may see.
    List {
        /// Only this state (applied, approved, rejected, made, active, frozen, revoked).
        #[arg(long)]
        state: Option<String>,
        /// Only this unit.
        #[arg(long)]
        unit: Option<String>,
        /// Only those whose certificate ends within this many days (e.g. 90d).
        #[arg(long)]
        expiring: Option<String>,
    },
    /// Show one seal with its versions and history.
    Show {
        /// Seal id.
        id: String,
    },
    /// Apply for a seal (unit administrator).
    Apply {
        /// The name on file with the police.
        #[arg(long)]
        name: String,
        /// official, finance, contract, invoice, business, legal_representative, personal (or the Chinese name).
        #[arg(long)]
        kind: String,
        /// The seal picture (PNG, GIF, JPG or SVG).
        #[arg(long)]
        image: PathBuf,
        /// Width in mm.
        #[arg(long)]
        width_mm: f64,
        /// Height in mm.
        #[arg(long)]
        height_mm: f64,
        /// Certificate validity in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// sm2 or p256.
        #[arg(long, default_value = "sm2")]
        alg: String,
        /// Unit (default: this administrator's).
        #[arg(long)]
        unit: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Approve an application (issuer).
    Approve(Transition),
    /// Reject an application (issuer).
    Reject(Transition),
    /// Make the seal: key in the token, certificate from the issuing CA, filing queued (issuer).
    Make(Transition),
    /// Publish a made seal to its unit (issuer).
    Publish(Transition),
    /// Freeze an active seal (issuer).
    Freeze(Transition),
    /// Unfreeze a frozen seal (issuer).
    Unfreeze(Transition),
    /// Revoke a seal for good (issuer).
    Revoke(Transition),
    /// A new certificate and key version, same image (issuer).
    Renew(Transition),
    /// Replace the seal by a new one (new name or image); the old one is revoked (issuer).
    Change {
        #[command(flatten)]
        t: Transition,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New picture.
        #[arg(long, requires_all = ["width_mm", "height_mm"])]
        image: Option<PathBuf>,
        /// Width in mm of the new picture.
        #[arg(long)]
        width_mm: Option<f64>,
        /// Height in mm of the new picture.
        #[arg(long)]
        height_mm: Option<f64>,
    },
    /// Bind a certificate from an outside CA to the seal's current key (issuer; its key must match).
    Certificate {
        /// Seal id.
        id: String,
        /// The certificate (PEM).
        #[arg(long)]
        file: PathBuf,
    },
    /// A PKCS#10 request for the seal's current key, signed in the token, for an outside CA (issuer).
    Csr {
        /// Seal id.
        id: String,
        /// Write it here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The seal's GB/T 38540 SESeal (DER), for `sealctl ses dump|verify`.
    Ses {
        /// Seal id.
        id: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Set the use policy (unit administrator or issuer).
    Policy {
        /// Seal id.
        id: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Grant an application the use of a seal (unit administrator).
    Grant {
        /// Seal id.
        id: String,
        /// The application's account.
        account: String,
    },
    /// Withdraw a grant (unit administrator).
    Ungrant {
        /// Seal id.
        id: String,
        /// The application's account.
        account: String,
    },
    /// The applications granted a seal.
    Grants {
        /// Seal id.
        id: String,
    },
    /// Approve one use: a single-use ticket for one application and one document (unit administrator).
    Ticket {
        /// Seal id.
        id: String,
        /// The application's account.
        #[arg(long)]
        app: String,
        /// The document digest the use will name, hex (SM3 of the document for SM2 seals).
        #[arg(long, required_unless_present = "file")]
        digest: Option<String>,
        /// Or the document itself (SM2 seals: its SM3 is taken).
        #[arg(long, conflicts_with = "digest")]
        file: Option<PathBuf>,
        /// Seconds until it expires.
        #[arg(long)]
        valid_s: Option<u64>,
    },
    /// Who used a seal when, on which digest (unit administrator, issuer, auditor).
    Usage {
        /// Seal id.
        id: String,
    },
}

/// A transition's arguments.
#[derive(Args, Debug)]
pub struct Transition {
    /// Seal id.
    id: String,
    /// Why (kept in the history and the audit journal).
    #[arg(long)]
    reason: Option<String>,
}

/// `sealctl filing ...`.
#[derive(Subcommand, Debug)]
pub enum FilingCmd {
    /// Filings for the police seal-management system.
    List {
        /// pending or acked.
        #[arg(long)]
        state: Option<String>,
    },
    /// Record that the police system acknowledged a filing (issuer).
    Ack {
        /// Filing id.
        id: String,
        /// The police system's reference number.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Every filing as one JSON document, to hand over.
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `sealctl account ...`.
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Every registry account (system administrator).
    List,
    /// One account.
    Show {
        /// Name.
        name: String,
    },
    /// Create an account bound to client certificates (system administrator).
    Create {
        /// Name.
        name: String,
        /// sysadmin, secofficer, auditor, issuer, unit_admin or app.
        #[arg(long)]
        role: String,
        /// Unit (unit_admin and app).
        #[arg(long)]
        unit: Option<String>,
        /// Client certificate files (PEM).
        #[arg(long = "cert-file")]
        cert_files: Vec<PathBuf>,
        /// Or certificate SHA-256 fingerprints.
        #[arg(long = "fingerprint")]
        fingerprints: Vec<String>,
        /// Plain keys an app may sign with.
        #[arg(long = "sign-key")]
        keys: Vec<String>,
    },
    /// Disable an account (system administrator).
    Disable {
        /// Name.
        name: String,
    },
    /// Enable a disabled account (system administrator).
    Enable {
        /// Name.
        name: String,
    },
}

/// `sealctl unit ...`.
#[derive(Subcommand, Debug)]
pub enum UnitCmd {
    /// Every unit.
    List,
    /// Create a unit (system administrator).
    Create {
        /// Stable code.
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// The unit above.
        #[arg(long)]
        parent: Option<String>,
    },
}

/// `sealctl sign ...`: sign a document with a seal (or a plain key) as an application.
#[derive(Args, Debug)]
pub struct SignCmd {
    /// Seal id.
    #[arg(long, required_unless_present = "with_key", conflicts_with = "with_key")]
    seal: Option<String>,
    /// Or a plain key name (from the daemon's `[[keys]]`).
    #[arg(long = "with-key", id = "with_key")]
    key: Option<String>,
    /// The document (the daemon hashes it).
    #[arg(long, required_unless_present = "digest", conflicts_with = "digest")]
    file: Option<PathBuf>,
    /// Or its 32-byte digest, hex (SM2: SM3 of the document, signed as the message).
    #[arg(long)]
    digest: Option<String>,
    /// Approval ticket, where the seal's policy needs one.
    #[arg(long)]
    ticket: Option<String>,
    /// Write the DER signature here (default: print it as base64).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn transition(c: &Conn, action: &str, t: &Transition, extra: Value) -> Result<(), Failure> {
    let mut body = json!({ "reason": t.reason });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let v = call(c, "POST", &format!("/v1/seals/{}/{action}", t.id), Some(body))?;
    out(c, &v, |v| {
        println!("seal {} is {} (key version {})", cell(&v["id"]), cell(&v["state"]), cell(&v["key_version"]))
    });
    Ok(())
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.replace(' ', "%20")))).collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Runs `sealctl seal ...`.
pub fn seal(c: &Conn, cmd: SealCmd) -> Result<(), Failure> {
    let seal_columns: &[(&str, &str)] = &[
        ("id", "ID"),
        ("state", "STATE"),
        ("expired", "EXPIRED"),
        ("unit", "UNIT"),
        ("kind", "KIND"),
        ("key_version", "KEY"),
        ("name", "NAME"),
    ];
    match cmd {
        SealCmd::List { state, unit, expiring } => {
            let v = call(
                c,
                "GET",
                &format!("/v1/seals{}", query(&[("state", &state), ("unit", &unit), ("expiring", &expiring)])),
                None,
            )?;
            out(c, &v, |v| table(v["seals"].as_array().map(Vec::as_slice).unwrap_or_default(), seal_columns));
        }
        SealCmd::Show { id } => {
            let mut v = call(c, "GET", &format!("/v1/seals/{id}"), None)?;
            out(c, &v.clone(), |_| {
                if let Some(img) = v["image"].as_object_mut() {
                    let _ = img.remove("data");
                }
                fields(&v);
            });
        }
        SealCmd::Apply { name, kind, image, width_mm, height_mm, valid_days, alg, unit, policy } => {
            let bytes = read(&image)?;
            let image_type = image.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            let body = json!({
                "name": name, "kind": kind, "image": b64(&bytes), "image_type": image_type, "width_mm": width_mm,
                "height_mm": height_mm, "valid_days": valid_days, "alg": alg, "unit": unit, "policy": policy.json(),
            });
            let v = call(c, "POST", "/v1/seals", Some(body))?;
            out(c, &v, |v| println!("applied: seal {} is {}", cell(&v["id"]), cell(&v["state"])));
        }
        SealCmd::Approve(t) => transition(c, "approve", &t, json!({}))?,
        SealCmd::Reject(t) => transition(c, "reject", &t, json!({}))?,
        SealCmd::Make(t) => transition(c, "make", &t, json!({}))?,
        SealCmd::Publish(t) => transition(c, "publish", &t, json!({}))?,
        SealCmd::Freeze(t) => transition(c, "freeze", &t, json!({}))?,
        SealCmd::Unfreeze(t) => transition(c, "unfreeze", &t, json!({}))?,
        SealCmd::Revoke(t) => transition(c, "revoke", &t, json!({}))?,
        SealCmd::Renew(t) => transition(c, "renew", &t, json!({}))?,
        SealCmd::Change { t, name, image, width_mm, height_mm } => {
            let mut extra = json!({ "name": name });
            if let Some(path) = image {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
                extra = json!({ "name": extra["name"], "image": b64(&read(&path)?), "image_type": ext,
                                "width_mm": width_mm, "height_mm": height_mm });
            }
            transition(c, "change", &t, extra)?;
        }
        SealCmd::Certificate { id, file } => {
            let pem = String::from_utf8_lossy(&read(&file)?).into_owned();
            let v = call(c, "POST", &format!("/v1/seals/{id}/certificate"), Some(json!({ "certificate": pem })))?;
            out(c, &v, |v| println!("seal {} now uses the imported certificate", cell(&v["id"])));
        }
        SealCmd::Csr { id, out: path } => {
            let v = call(c, "GET", &format!("/v1/seals/{id}/csr"), None)?;
            write_or_print(path, v["csr"].as_str().unwrap_or_default())?;
        }
        SealCmd::Ses { id, out: path } => {
            let der = call_bytes(c, &format!("/v1/seals/{id}/ses"))?;
            std::fs::write(&path, der).map_err(|e| local(format!("{}: {e}", path.display())))?;
        }
        SealCmd::Policy { id, policy } => {
            let v = call(c, "POST", &format!("/v1/seals/{id}/policy"), Some(policy.json()))?;
            out(c, &v, |v| println!("policy of seal {}: {}", cell(&v["id"]), v["policy"]));
        }
        SealCmd::Grant { id, account } => {
            let v = call(c, "POST", &format!("/v1/seals/{id}/grants"), Some(json!({ "account": account })))?;
            out(c, &v, |_| println!("'{account}' may use seal {id}"));
        }
        SealCmd::Ungrant { id, account } => {
            let v = call(c, "DELETE", &format!("/v1/seals/{id}/grants/{account}"), None)?;
            out(c, &v, |_| println!("'{account}' may no longer use seal {id}"));
        }
        SealCmd::Grants { id } => {
            let v = call(c, "GET", &format!("/v1/seals/{id}/grants"), None)?;
            out(c, &v, |v| {
                table(
                    v["grants"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[("account", "ACCOUNT"), ("granted_by", "BY"), ("time_ms", "TIME_MS")],
                )
            });
        }
        SealCmd::Ticket { id, app, digest, file, valid_s } => {
            let digest = match (digest, file) {
                (Some(d), _) => d,
                (None, Some(f)) => hex::encode(seald::crypto::sm3(&read(&f)?)),
                (None, None) => return Err(local("give --digest or --file")),
            };
            let v = call(
                c,
                "POST",
                &format!("/v1/seals/{id}/approvals"),
                Some(json!({ "app": app, "digest": digest, "valid_s": valid_s })),
            )?;
            out(c, &v, |v| println!("{}", cell(&v["id"])));
        }
        SealCmd::Usage { id } => {
            let v = call(c, "GET", &format!("/v1/seals/{id}/usage"), None)?;
            out(c, &v, |v| {
                table(
                    v["usage"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("seq", "SEQ"),
                        ("time_ms", "TIME_MS"),
                        ("account", "ACCOUNT"),
                        ("outcome", "OUTCOME"),
                        ("key_version", "KEY"),
                        ("digest", "DIGEST"),
                    ],
                )
            });
        }
    }
    Ok(())
}

fn write_or_print(path: Option<PathBuf>, text: &str) -> Result<(), Failure> {
    match path {
        Some(p) => std::fs::write(&p, text).map_err(|e| local(format!("{}: {e}", p.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// A GET whose answer is bytes, not JSON.
fn call_bytes(c: &Conn, path: &str) -> Result<Vec<u8>, Failure> {
    let client = connect(c)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(local)?;
    let (status, bytes) = rt
        .block_on(client.request("GET", path, None))
        .map_err(|e| Failure { status: 3, message: format!("{}: {e}", c.server.as_deref().unwrap_or_default()) })?;
    if status >= 400 {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = v["error"]["code"].as_str().unwrap_or("error");
        return Err(Failure {
            status: if status >= 500 { 3 } else { 1 },
            message: format!("[{code}] HTTP {status}: {}", v["error"]["message"].as_str().unwrap_or_default()),
        });
    }
    Ok(bytes)
}

/// `sealctl backup --out FILE` (system administrator): a signed backup through the daemon.
pub fn backup(c: &Conn, out_path: &PathBuf) -> Result<(), Failure> {
    let bytes = call_bytes(c, "/v1/admin/backup")?;
    std::fs::write(out_path, &bytes).map_err(|e| local(format!("{}: {e}", out_path.display())))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    eprintln!(
        "backup of records {}..{} written to {} ({} bytes; restore with `seald restore` while the daemon is stopped)",
        cell(&v["manifest"]["first_seq"]),
        cell(&v["manifest"]["head_seq"]),
        out_path.display(),
        bytes.len()
    );
    Ok(())
}

/// `sealctl ca ...`: the built-in issuing CA.
#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// The issuing CA certificate (PEM).
    Show {
        /// Write it here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Certify a PKCS#10 request with the issuing CA in the token (issuer).
    Issue {
        /// The request (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// Write the certificate here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `sealctl ca ...`.
pub fn ca(c: &Conn, cmd: CaCmd) -> Result<(), Failure> {
    match cmd {
        CaCmd::Show { out: path } => {
            let v = call(c, "GET", "/v1/ca", None)?;
            write_or_print(path, v["certificate"].as_str().unwrap_or_default())
        }
        CaCmd::Issue { csr, valid_days, out: path } => {
            let pem = String::from_utf8_lossy(&read(&csr)?).into_owned();
            let v = call(c, "POST", "/v1/ca/issue", Some(json!({ "csr": pem, "valid_days": valid_days })))?;
            write_or_print(path, v["certificate"].as_str().unwrap_or_default())
        }
    }
}

/// `sealctl keys ...`: key versions, rotation and dual control (security officers).
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Every key (seal:<id>, issuing-ca, seal-maker) with its versions, states and certificate ends;
    /// EXPIRING marks those ending within the reminder period.
    List,
    /// Make a new, pending version in the token (for a seal: with a certificate and a CSR).
    Rotate {
        /// seal:<id>, issuing-ca or seal-maker.
        #[arg(value_name = "KEY")]
        name: String,
    },
    /// Switch signing to a pending version (the issuing CA and the seal maker: a second officer must approve).
    Activate {
        /// The key.
        #[arg(value_name = "KEY")]
        name: String,
        /// The version.
        #[arg(long)]
        version: u32,
    },
    /// Ask to destroy a retired or pending version in the token (a second officer must approve).
    Destroy {
        /// The key.
        #[arg(value_name = "KEY")]
        name: String,
        /// The version.
        #[arg(long)]
        version: u32,
    },
    /// Ask to change the token's user PIN (a second officer must approve). The new PIN is read from a
    /// file, never from the command line.
    ChangePin {
        /// File holding the new PIN (one line).
        #[arg(long)]
        new_pin_file: PathBuf,
    },
    /// Dual-control requests.
    Requests,
    /// Approve another officer's request (it is then carried out).
    Approve {
        /// Request id.
        id: String,
    },
}

/// Runs `sealctl keys ...`.
pub fn keys(c: &Conn, cmd: KeysCmd) -> Result<(), Failure> {
    match cmd {
        KeysCmd::List => {
            let v = call(c, "GET", "/v1/admin/keys", None)?;
            out(c, &v, |v| {
                let mut rows = Vec::new();
                for k in v["keys"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    for ver in k["versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
                        let mut row = ver.clone();
                        row["key"] = k["key"].clone();
                        row["alg"] = k["alg"].clone();
                        row["expiring"] = if ver["expiring"] == true { "EXPIRING".into() } else { "".into() };
                        rows.push(row);
                    }
                }
                table(
                    &rows,
                    &[
                        ("key", "KEY"),
                        ("version", "VERSION"),
                        ("state", "STATE"),
                        ("alg", "ALG"),
                        ("not_after_ms", "NOT_AFTER_MS"),
                        ("expiring", ""),
                        ("key_id", "CKA_ID"),
                    ],
                );
            });
        }
        KeysCmd::Rotate { name } => {
            let v = call(c, "POST", &format!("/v1/admin/keys/{name}/rotate"), None)?;
            out(c, &v, |v| {
                println!(
                    "{} version {} is pending (CKA_ID {})",
                    cell(&v["key"]),
                    cell(&v["version"]),
                    cell(&v["key_id"])
                )
            });
        }
        KeysCmd::Activate { name, version } => {
            let v = call(c, "POST", &format!("/v1/admin/keys/{name}/activate"), Some(json!({ "version": version })))?;
            out(c, &v, |v| match v.get("awaiting_approval") {
                Some(r) => println!(
                    "request {} opened: a second security officer runs `sealctl keys approve {}`",
                    cell(&r["id"]),
                    cell(&r["id"])
                ),
                None => println!("{} now signs with version {}", cell(&v["key"]), cell(&v["version"])),
            });
        }
        KeysCmd::Destroy { name, version } => {
            let v = call(c, "POST", &format!("/v1/admin/keys/{name}/destroy"), Some(json!({ "version": version })))?;
            out(c, &v, |v| {
                println!(
                    "request {} opened: a second security officer must approve it",
                    cell(&v["awaiting_approval"]["id"])
                )
            });
        }
        KeysCmd::ChangePin { new_pin_file } => {
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&read(&new_pin_file)?).into_owned());
            let v = call(c, "POST", "/v1/admin/token/pin", Some(json!({ "new_pin": text.trim_end() })))?;
            out(c, &v, |v| {
                println!("request {} opened: a second security officer must approve it; then update the PIN file or credential before the next start", cell(&v["awaiting_approval"]["id"]))
            });
        }
        KeysCmd::Requests => {
            let v = call(c, "GET", "/v1/admin/requests", None)?;
            out(c, &v, |v| {
                table(
                    v["requests"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("id", "ID"),
                        ("action", "ACTION"),
                        ("key", "KEY"),
                        ("version", "VERSION"),
                        ("state", "STATE"),
                        ("requested_by", "BY"),
                        ("approved_by", "APPROVED_BY"),
                        ("expires_ms", "EXPIRES_MS"),
                    ],
                )
            });
        }
        KeysCmd::Approve { id } => {
            let v = call(c, "POST", &format!("/v1/admin/requests/{id}/approve"), None)?;
            out(c, &v, |v| println!("request {} approved and carried out", cell(&v["id"])));
        }
    }
    Ok(())
}

/// Runs `sealctl filing ...`.
pub fn filing(c: &Conn, cmd: FilingCmd) -> Result<(), Failure> {
    match cmd {
        FilingCmd::List { state } => {
            let v = call(c, "GET", &format!("/v1/filings{}", query(&[("state", &state)])), None)?;
            out(c, &v, |v| {
                table(
                    v["filings"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("id", "ID"),
                        ("action", "ACTION"),
                        ("seal", "SEAL"),
                        ("state", "STATE"),
                        ("overdue", "OVERDUE"),
                        ("reference", "REFERENCE"),
                        ("seal_name", "NAME"),
                    ],
                )
            });
        }
        FilingCmd::Ack { id, reference } => {
            let v = call(c, "POST", &format!("/v1/filings/{id}/ack"), Some(json!({ "reference": reference })))?;
            out(c, &v, |v| println!("filing {} acknowledged", cell(&v["id"])));
        }
        FilingCmd::Export { out: path } => {
            let v = call(c, "GET", "/v1/filings/export", None)?;
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            match path {
                Some(p) => std::fs::write(&p, text).map_err(|e| local(format!("{}: {e}", p.display())))?,
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}

/// Runs `sealctl account ...`.
pub fn account(c: &Conn, cmd: AccountCmd) -> Result<(), Failure> {
    let columns: &[(&str, &str)] =
        &[("name", "NAME"), ("role", "ROLE"), ("unit", "UNIT"), ("disabled", "DISABLED"), ("created_by", "CREATED_BY")];
    match cmd {
        AccountCmd::List => {
            let v = call(c, "GET", "/v1/admin/accounts", None)?;
            out(c, &v, |v| table(v["accounts"].as_array().map(Vec::as_slice).unwrap_or_default(), columns));
        }
        AccountCmd::Show { name } => {
            let v = call(c, "GET", &format!("/v1/admin/accounts/{name}"), None)?;
            out(c, &v, fields);
        }
        AccountCmd::Create { name, role, unit, cert_files, fingerprints, keys } => {
            let certificates = cert_files
                .iter()
                .map(|p| read(p).map(|b| String::from_utf8_lossy(&b).into_owned()))
                .collect::<Result<Vec<_>, _>>()?;
            let body = json!({ "name": name, "role": role, "unit": unit, "certificates": certificates,
                               "fingerprints": fingerprints, "keys": keys });
            let v = call(c, "POST", "/v1/admin/accounts", Some(body))?;
            out(c, &v, |v| println!("account {} ({}) created", cell(&v["name"]), cell(&v["role"])));
        }
        AccountCmd::Disable { name } => {
            let v = call(c, "DELETE", &format!("/v1/admin/accounts/{name}"), None)?;
            out(c, &v, |_| println!("account {name} disabled"));
        }
        AccountCmd::Enable { name } => {
            let v = call(c, "POST", &format!("/v1/admin/accounts/{name}"), Some(json!({ "disabled": false })))?;
            out(c, &v, |_| println!("account {name} enabled"));
        }
    }
    Ok(())
}

/// Runs `sealctl unit ...`.
pub fn unit(c: &Conn, cmd: UnitCmd) -> Result<(), Failure> {
    match cmd {
        UnitCmd::List => {
            let v = call(c, "GET", "/v1/admin/units", None)?;
            out(c, &v, |v| {
                table(
                    v["units"].as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[("id", "ID"), ("parent", "PARENT"), ("name", "NAME")],
                )
            });
        }
        UnitCmd::Create { id, name, parent } => {
            let v = call(c, "POST", "/v1/admin/units", Some(json!({ "id": id, "name": name, "parent": parent })))?;
            out(c, &v, |v| println!("unit {} created", cell(&v["id"])));
        }
    }
    Ok(())
}

/// Runs `sealctl sign ...`.
pub fn sign(c: &Conn, cmd: SignCmd) -> Result<(), Failure> {
    let (input, data) = match (&cmd.file, &cmd.digest) {
        (Some(f), _) => ("message", read(f)?),
        (None, Some(d)) => ("digest", hex::decode(d.trim()).map_err(|_| local("--digest is not hex"))?),
        (None, None) => return Err(local("give --file or --digest")),
    };
    let body = json!({ "seal": cmd.seal, "key": cmd.key, "ticket": cmd.ticket, "input": input, "data": b64(&data) });
    let body = Value::Object(
        body.as_object().cloned().unwrap_or_default().into_iter().filter(|(_, v)| !v.is_null()).collect(),
    );
    let v = call(c, "POST", "/v1/sign", Some(body))?;
    if let Some(path) = &cmd.out {
        let der = base64::engine::general_purpose::STANDARD
            .decode(v["signature"].as_str().unwrap_or_default())
            .map_err(|e| Failure { status: 3, message: format!("the daemon's signature is not base64: {e}") })?;
        std::fs::write(path, der).map_err(|e| local(format!("{}: {e}", path.display())))?;
    }
    out(c, &v, |v| {
        if cmd.out.is_none() {
            println!("{}", cell(&v["signature"]));
        }
        eprintln!(
            "signed with {} key version {} (audit seq {})",
            cell(&v["seal"]),
            cell(&v["key_version"]),
            cell(&v["audit_seq"])
        );
    });
    Ok(())
}
