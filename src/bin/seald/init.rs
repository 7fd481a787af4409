//! `seald init`: the first boot, with the daemon stopped. The three administrators (三员), the
//! issuing CA and the seal maker in the token, and optionally a new audit key written into the
//! config. `seald dev` makes its registry the same way.

use crate::Error;
use seald::authz::{Principal, Role};
use seald::config::Config;
use seald::crypto::KeyAlg;
use seald::token::{self, TokenPool};
use std::path::Path;

/// The first three administrators and the issuing CA. Returns the sysadmin's principal.
pub fn init_registry(
    registry: &seald::seal::Registry,
    admins: [(Role, &str, &Path); 3],
    ca_name: &str,
    ca_days: u32,
) -> Result<Principal, Error> {
    let mut list = Vec::new();
    for (role, name, cert) in admins {
        let certs = seald::tls::load_certs(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let first = certs.first().ok_or_else(|| format!("{}: no certificate", cert.display()))?;
        list.push((role, name.to_string(), seald::tls::fingerprint(first)));
    }
    let accounts = registry.directory().bootstrap(&list)?;
    for a in &accounts {
        println!(
            "account {:<10} role {:<10} certificate sha256 {}",
            a.name,
            format!("{:?}", a.role).to_lowercase(),
            a.fingerprints[0]
        );
    }
    let ca = registry.pki().ensure_issuing_ca(ca_name, ca_days)?;
    let cert = seald::formats::x509::Cert::parse(ca.cert_pem.as_bytes())?;
    println!("issuing CA: {} key {} in the token, certificate sha256 {}", ca.alg, ca.key_id, cert.fingerprint());
    let maker = registry.pki().ensure_seal_maker("seald seal maker", ca_days)?;
    let cert = seald::formats::x509::Cert::parse(maker.cert_pem.as_bytes())?;
    println!("seal maker: {} key {} in the token, certificate sha256 {}", maker.alg, maker.key_id, cert.fingerprint());
    if let Some((tsa, status)) = registry.pki().ensure_time_keys(registry.tsa().settings())? {
        for (what, k) in [("time-stamp authority", tsa), ("seal-status responder", status)] {
            let cert = seald::formats::x509::Cert::parse(k.cert_pem.as_bytes())?;
            println!("{what}: {} key {} in the token, certificate sha256 {}", k.alg, k.key_id, cert.fingerprint());
        }
    }
    let sysadmin = &accounts[0];
    Ok(Principal {
        account: sysadmin.name.clone(),
        role: Role::Sysadmin,
        fingerprint: sysadmin.fingerprints[0].clone(),
        subject: String::new(),
        unit: None,
    })
}

/// Replaces `key = ...` in the `[audit]` section of a config file, keeping everything else.
fn set_audit_key(config: &Path, id: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(config)?;
    let mut in_audit = false;
    let mut done = false;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_audit = t.starts_with("[audit]");
        }
        if in_audit && !done && t.starts_with("key") && t[3..].trim_start().starts_with('=') {
            out.push_str(&format!("key = \"{id}\"\n"));
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        return Err(format!("{}: no `key = ...` line in [audit] to set", config.display()).into());
    }
    let tmp = config.with_extension("toml.tmp");
    std::fs::write(&tmp, out)?;
    if let Ok(meta) = std::fs::metadata(config) {
        std::fs::set_permissions(&tmp, meta.permissions())?;
    }
    std::fs::rename(&tmp, config)?;
    Ok(())
}

/// Runs `seald init`.
pub fn run(
    config: &Path,
    pin_file: Option<&Path>,
    admins: [(Role, &str, &Path); 3],
    ca_name: &str,
    ca_days: u32,
    new_audit_key: bool,
) -> Result<(), Error> {
    let mut cfg = Config::load(config)?.with_pin_file(pin_file);
    if new_audit_key {
        let audit = cfg.audit.clone().ok_or("the config has no [audit] section")?;
        let pool = TokenPool::open(&cfg.token)?;
        if pool.key(&token::KeyId::from_hex(&audit.key)?).is_ok() {
            return Err(format!("[audit] key {} is in the token already; drop --new-audit-key", audit.key).into());
        }
        let alg = if pool.profile().sm2.is_some() { KeyAlg::Sm2 } else { KeyAlg::P256 };
        let key = pool.generate(alg, "seald-audit")?;
        drop(pool);
        let id = key.id.to_hex();
        match set_audit_key(config, &id) {
            Ok(()) => {
                println!("audit key: {alg} key {id} generated in the token and written to {}", config.display());
                cfg = Config::load(config)?.with_pin_file(pin_file);
            }
            // Run as the seald user, which reads the config but may not write it (root:seald 0640):
            // go on with the new key and say which line root must set before the daemon starts.
            Err(e) => {
                println!(
                    "audit key: {alg} key {id} generated in the token; {} was not rewritten ({e}).\n\
                     As root, set this line in its [audit] section before starting seald:\n    key = \"{id}\"",
                    config.display()
                );
                if let Some(a) = cfg.audit.as_mut() {
                    a.key = id;
                }
            }
        }
        println!(
            "give the auditors its public key (SPKI sha256 {}):\n{}",
            key.public_key.fingerprint(),
            key.public_key.to_spki_pem()
        );
    }
    let offline = seald::server::open_offline(&cfg)?;
    let _ = init_registry(&offline.registry, admins, ca_name, ca_days)?;
    if let Some(k) = offline.journal.public_key() {
        println!("audit key fingerprint (SPKI sha256) {}", k.fingerprint());
    }
    offline.journal.close();
    println!("initialised: start the daemon; from now on the system administrator manages accounts through sealctl");
    Ok(())
}
