//! `seald dev`: a development appliance in one command. softtoken (a software PKCS#11 token with
//! SM2) with SM2, P-256 and audit keys, a dev CA with server and client certificates, a config, the
//! registry's first accounts and a development seal; then the API served on 127.0.0.1, a sign and
//! verify through it (cross-checked by OpenSSL where installed), and the curl lines to try.

use crate::init::init_registry;
use crate::{runtime, Error};
use seald::authz::{Principal, Role};
use seald::config::Config;
use seald::crypto::KeyAlg;
use seald::token::{self, KeyInfo, Pin, TokenPool};
use std::path::{Path, PathBuf};

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
    ("unitadmin", "unit_admin"),
];

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
    let missing = DEV_CLIENTS.iter().any(|(name, _)| !dir.join(format!("{name}.pem")).exists());
    if !ca_path.exists() || missing {
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

fn dev_sysadmin(clients: &[(String, String)]) -> Principal {
    let fp = clients.iter().find(|(r, _)| r == "sysadmin").map(|(_, f)| f.clone()).unwrap_or_default();
    Principal { account: "sysadmin".into(), role: Role::Sysadmin, fingerprint: fp, subject: String::new(), unit: None }
}

/// A round seal picture for the development seal.
/// The development seal's image: a red ring and star, 472 px square (42 mm at about 285 dpi), PNG so
/// that every OFD reader draws it (many draw raster seal images only).
const DEV_SEAL_PNG: &[u8] = include_bytes!("../../../assets/dev-seal.png");

/// The development seal, made once through the API the way people make seals: the unit
/// administrator applies, the issuer approves, makes and publishes, the unit administrator grants it
/// to `app`. Returns its id.
async fn dev_seal(dir: &Path, addr: std::net::SocketAddr) -> Result<String, Error> {
    let client = |n: &str| {
        seald::client::Client::new(
            addr,
            "localhost",
            &dir.join("ca.pem"),
            &dir.join(format!("{n}.pem")),
            &dir.join(format!("{n}.key")),
        )
    };
    let (issuer, unitadmin) = (client("issuer")?, client("unitadmin")?);
    let call = |c: seald::client::Client, method: &'static str, path: String, body: Option<serde_json::Value>| async move {
        let (status, reply) = c.request(method, &path, body.as_ref()).await?;
        let v: serde_json::Value = serde_json::from_slice(&reply)?;
        if status >= 300 {
            return Err(Error::from(format!("{method} {path}: {status} {v}")));
        }
        Ok::<_, Error>(v)
    };
    let name = "seald 开发测试专用章";
    let seals = call(issuer.clone(), "GET", "/v1/seals?state=active".into(), None).await?;
    if let Some(s) = seals["seals"].as_array().and_then(|a| a.iter().find(|s| s["name"] == name)) {
        return Ok(s["id"].as_str().unwrap_or_default().to_string());
    }
    println!("making the development seal '{name}': apply, approve, make (key in the token, certificate from the issuing CA), publish, grant to app ...");
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let apply = serde_json::json!({
        "name": name, "kind": "business", "image": b64(DEV_SEAL_PNG), "image_type": "png",
        "width_mm": 42.0, "height_mm": 42.0, "valid_days": 365, "alg": "sm2",
    });
    let applied = call(unitadmin.clone(), "POST", "/v1/seals".into(), Some(apply)).await?;
    let id = applied["id"].as_str().unwrap_or_default().to_string();
    for action in ["approve", "make", "publish"] {
        let _ = call(issuer.clone(), "POST", format!("/v1/seals/{id}/{action}"), None).await?;
    }
    let _ = call(unitadmin, "POST", format!("/v1/seals/{id}/grants"), Some(serde_json::json!({ "account": "app" })))
        .await?;
    Ok(id)
}

/// Runs `seald dev`: sets up DIR (or reuses it) and serves until Ctrl-C.
pub fn run(dir: &Path, listen: &str) -> Result<(), Error> {
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
    let config = format!(
        "# Written by `seald dev`. Development only: softtoken is a software token, not a certified module.\n\
         [token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{DEV_LABEL}\"\npin_file = \"{d}/token.pin\"\npool_size = 4\n\n\
         [token.environment]\nSOFTTOKEN_DIR = \"{}\"\n\n\
         [server]\nlisten = \"{listen}\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\n\
         [store]\ndir = \"{d}/store\"\n\n\
         [audit]\ndir = \"{d}/journal\"\nkey = \"{}\"\n\n\
         [[keys]]\nid = \"{}\"\nname = \"dev-sm2\"\n\n[[keys]]\nid = \"{}\"\nname = \"dev-p256\"\n\n\
         # A development machine's clock is taken as it is; an appliance asks the kernel (the default).\n\
         [tsa]\nclock = \"trusted\"\n",
        module.display(),
        token_dir.display(),
        audit.id,
        sm2.id,
        p256.id,
    );
    let config_path = dir.join("seald.toml");
    std::fs::write(&config_path, config)?;
    let cfg = Config::load(&config_path)?;
    {
        // The registry's first accounts: what `seald init` and then the system administrator do.
        let offline = seald::server::open_offline(&cfg)?;
        if offline.registry.directory().accounts(&dev_sysadmin(&clients)).map(|a| a.is_empty()).unwrap_or(true) {
            println!("initialising the registry: three administrators, the issuing CA, unit 'dev', accounts issuer, unitadmin, app ...");
            let cert = |n: &str| dir.join(format!("{n}.pem"));
            let (sa, so, au) = (cert("sysadmin"), cert("secofficer"), cert("auditor"));
            let admin = init_registry(
                &offline.registry,
                [
                    (Role::Sysadmin, "sysadmin", &sa),
                    (Role::Secofficer, "secofficer", &so),
                    (Role::Auditor, "auditor", &au),
                ],
                "seald dev issuing CA",
                3650,
            )?;
            let unit = seald::seal::UnitSpec { id: "dev".into(), name: "seald 开发单位".into(), parent: None };
            let _ = offline.registry.directory().create_unit(&admin, unit)?;
            for (name, role) in [("issuer", Role::Issuer), ("unitadmin", Role::UnitAdmin), ("app", Role::App)] {
                let fp = clients
                    .iter()
                    .find(|(r, _)| r == name || (name == "unitadmin" && r == "unit_admin"))
                    .map(|(_, f)| f.clone())
                    .unwrap_or_default();
                let spec = seald::seal::AccountSpec {
                    name: name.into(),
                    role,
                    unit: matches!(role, Role::UnitAdmin | Role::App).then(|| "dev".to_string()),
                    fingerprints: vec![fp],
                    certificates: Vec::new(),
                    keys: if role == Role::App { vec!["dev-sm2".into(), "dev-p256".into()] } else { Vec::new() },
                };
                let _ = offline.registry.directory().create_account(&admin, spec)?.done()?;
            }
        }
        // Stores made before the seal maker existed get one now (idempotent).
        let _ = offline.registry.pki().ensure_issuing_ca("seald dev issuing CA", 3650)?;
        let _ = offline.registry.pki().ensure_seal_maker("seald dev seal maker", 3650)?;
        offline.journal.close();
    }

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
        let seal = dev_seal(&dir, addr).await?;
        let body = serde_json::json!({ "seal": seal, "input": "message", "data": b64(message) });
        let (status, reply) = app.request("POST", "/v1/sign", Some(&body)).await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        if status != 200 {
            return Err(format!("self-check: sealing answered {status}: {reply}").into());
        }
        let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, reply["signature"].as_str().unwrap_or_default())?;
        std::fs::write(dir.join("hello.seal.sig"), &sig)?;
        std::fs::write(dir.join("dev-seal.pem"), reply["cert"].as_str().unwrap_or_default())?;
        let (c, s) = (dir.join("dev-seal.pem"), dir.join("hello.seal.sig"));
        let (c, s) = (c.to_string_lossy(), s.to_string_lossy());
        let openssl = openssl_verdict(&[
            "pkeyutl", "-verify", "-certin", "-inkey", &c, "-rawin", "-in", &m, "-sigfile", &s, "-digest", "sm3", "-pkeyopt",
            "distid:1234567812345678",
        ]);
        println!("self-check: sealed it with seal {seal} (key version {}, certificate from the issuing CA in the token); {openssl}", reply["key_version"]);
        let curl = format!("curl --cacert {d}/ca.pem --cert {d}/app.pem --key {d}/app.key");
        println!("\nseald dev is serving at https://{addr} (Ctrl-C stops it). Try:");
        println!("  {curl} https://localhost:{}/v1/keys", addr.port());
        println!("  {curl} https://localhost:{}/v1/sign -d '{{\"key\":\"dev-sm2\",\"input\":\"message\",\"data\":\"aGVsbG8=\"}}'", addr.port());
        println!("  {curl} https://localhost:{}/v1/sign -d '{{\"seal\":\"{seal}\",\"input\":\"message\",\"data\":\"aGVsbG8=\"}}'", addr.port());
        println!("  curl --cacert {d}/ca.pem --cert {d}/unitadmin.pem --key {d}/unitadmin.key https://localhost:{}/v1/seals/{seal}/usage", addr.port());
        println!("  curl --cacert {d}/ca.pem --cert {d}/issuer.pem --key {d}/issuer.key https://localhost:{}/v1/filings?state=pending", addr.port());
        println!("  {curl} https://localhost:{}/readyz", addr.port());
        println!("  curl --cacert {d}/ca.pem --cert {d}/auditor.pem --key {d}/auditor.key https://localhost:{}/v1/audit/verify", addr.port());
        println!("  target/release/sealctl audit verify --journal {d}/journal --pubkey {d}/audit.pem   # with the daemon stopped");
        println!(
            "\nThe web console: https://localhost:{}/console/ in a browser that trusts {d}/ca.pem and holds one \
             of {d}/issuer.p12, unitadmin.p12, auditor.p12, secofficer.p12, sysadmin.p12 (empty password).",
            addr.port()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        match server.await {
            Ok(r) => r.map_err(|e| Error::from(e.to_string())),
            Err(e) => Err(e.to_string().into()),
        }
    })
}
