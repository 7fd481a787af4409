//! `seald check`: a preflight an operator runs before starting the appliance (and after changing
//! anything). Each check prints one line: `ok`, `WARN` (it will run, but look) or `FAIL` (it will not
//! run as configured), and a FAIL or WARN line says what to do. Exit status: 0 every check passed
//! (warnings allowed), 1 a check failed, 2 the configuration cannot be read.

use seald::config::Config;
use seald::token::{KeyId, TokenPool};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// The checks' lines, as they are printed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, v: Verdict, what: &str, detail: impl std::fmt::Display) {
        let tag = match v {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        println!("{tag}  {what}: {detail}");
    }
}

/// Runs every check; the exit status.
pub fn run(config: &Path, pin_file: Option<&Path>) -> u8 {
    let cfg = match Config::load(config) {
        Ok(c) => c.with_pin_file(pin_file),
        Err(e) => {
            println!("FAIL  config {}: {e}: fix the file (unknown fields are errors)", config.display());
            return 2;
        }
    };
    let mut r = Report::default();
    r.line(Verdict::Ok, "config", config.display());
    file_mode(&mut r, "config", config, false);
    server(&mut r, &cfg);
    match &cfg.token.pin_file {
        Some(pin) if seald::token::PinSource::is_stdin(pin) => r.line(Verdict::Ok, "token.pin_file", "standard input"),
        Some(pin) => {
            let _ = file_mode(&mut r, "token.pin_file", pin, true);
        }
        None => {}
    }
    let pool = token(&mut r, &cfg);
    if let Some(pool) = &pool {
        keys(&mut r, &cfg, pool);
    }
    state(&mut r, &cfg, pool.as_ref());
    clock(&mut r, cfg.tsa.clock);
    if r.failed {
        println!("not ready: fix each FAIL above, then run `seald check` again");
        1
    } else {
        println!("ready");
        0
    }
}

/// A file that exists, is owned by the user running the check (the one the daemon runs as) or by
/// root, and, when `secret`, is readable by nobody else: no access for others, and group read only
/// for this process's group or the group `seald` (a key root:seald 0640).
fn file_mode(r: &mut Report, what: &str, path: &Path, secret: bool) -> bool {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.line(Verdict::Fail, what, format!("{}: {e}: create it or fix the path in the config", path.display()));
            return false;
        }
    };
    if let Err(e) = std::fs::File::open(path) {
        r.line(Verdict::Fail, what, format!("{}: {e}: give the seald user read access", path.display()));
        return false;
    }
    let me = unsafe_free_euid();
    if meta.uid() != me && meta.uid() != 0 {
        r.line(
            Verdict::Warn,
            what,
            format!("{} belongs to uid {}, not to this user ({me}) or root", path.display(), meta.uid()),
        );
    }
    let group_ok =
        meta.mode() & 0o030 == 0 && (meta.gid() == egid() || group_name(meta.gid()).as_deref() == Some("seald"));
    if secret && (meta.mode() & 0o007 != 0 || (meta.mode() & 0o070 != 0 && !group_ok)) {
        r.line(
            Verdict::Fail,
            what,
            format!(
                "{} is readable by others (mode {:o}): chmod 600 (or 640 root:seald)",
                path.display(),
                meta.mode() & 0o777
            ),
        );
        return false;
    }
    true
}

/// The effective uid, read from /proc (no unsafe code).
fn unsafe_free_euid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// This process's effective group, as /proc shows it.
fn egid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.gid()).unwrap_or(u32::MAX)
}

/// A group's name, from /etc/group.
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

fn server(r: &mut Report, cfg: &Config) {
    let Some(s) = &cfg.server else {
        r.line(Verdict::Fail, "[server]", "missing: the daemon needs a listener (see appliance/seald.toml)");
        return;
    };
    let files = file_mode(r, "server.cert", &s.cert, false)
        & file_mode(r, "server.key", &s.key, true)
        & file_mode(r, "server.client_ca", &s.client_ca, false);
    let mut crls_ok = true;
    for c in &s.crl {
        crls_ok &= file_mode(r, "server.crl", c, false);
    }
    if !(files && crls_ok) {
        return;
    }
    match seald::tls::load(s) {
        Ok(loaded) => {
            r.line(Verdict::Ok, "server TLS", "certificate and key match; client CA bundle and CRLs load");
            let now = seald::seal::now_ms() / 1000;
            for c in &loaded.crls {
                if c.stale_at(now) {
                    r.line(
                        Verdict::Fail,
                        "server.crl",
                        format!(
                            "{} of {} is past its nextUpdate: fetch a fresh CRL from its CA",
                            c.path.display(),
                            c.issuer
                        ),
                    );
                } else {
                    r.line(Verdict::Ok, "server.crl", format!("{} of {} is fresh", c.path.display(), c.issuer));
                }
            }
        }
        Err(e) => r.line(Verdict::Fail, "server TLS", format!("{e}: the key must be the certificate's, both PEM")),
    }
    if let Ok(Some(der)) = seald::tls::load_certs(&s.cert).map(|c| c.into_iter().next()) {
        match seald::formats::x509::Cert::parse(der.as_ref()) {
            Ok(cert) => {
                let now = std::time::SystemTime::now();
                let (from, to) = cert.validity();
                if now < from || now > to {
                    r.line(Verdict::Fail, "server.cert", "outside its validity: issue a new server certificate");
                } else if to.duration_since(now).map(|d| d.as_secs() < 30 * 86400).unwrap_or(true) {
                    r.line(Verdict::Warn, "server.cert", "ends within 30 days: renew it, then SIGHUP");
                } else {
                    r.line(Verdict::Ok, "server.cert", format!("valid, {}", cert.subject_text()));
                }
            }
            Err(e) => r.line(Verdict::Fail, "server.cert", format!("does not parse: {e}")),
        }
    }
}

fn token(r: &mut Report, cfg: &Config) -> Option<TokenPool> {
    match TokenPool::open(&cfg.token) {
        Ok(pool) => {
            match pool.module_info() {
                Ok(info) => {
                    r.line(
                        Verdict::Ok,
                        "token",
                        format!(
                            "'{}' in slot {} via {} (profile {})",
                            info.token_label, info.slot, info.module, info.profile
                        ),
                    );
                    if !info.profile_matches {
                        r.line(
                            Verdict::Warn,
                            "token profile",
                            "does not match this module's identity: check [token] profile",
                        );
                    }
                }
                Err(e) => r.line(Verdict::Fail, "token", format!("{e}")),
            }
            Some(pool)
        }
        Err(e) => {
            r.line(Verdict::Fail, "token", format!("{e}: check [token] module, label and PIN file or credential"));
            None
        }
    }
}

fn keys(r: &mut Report, cfg: &Config, pool: &TokenPool) {
    for k in &cfg.keys {
        match KeyId::from_hex(&k.id).map(|id| pool.key(&id)) {
            Ok(Ok(info)) => r.line(Verdict::Ok, "key", format!("{} ({}) is in the token", k.name, info.alg)),
            Ok(Err(e)) => {
                r.line(Verdict::Fail, "key", format!("{} ({}): {e}: generate it or fix [[keys]] id", k.name, k.id))
            }
            Err(e) => r.line(Verdict::Fail, "key", format!("{}: id '{}': {e}", k.name, k.id)),
        }
    }
    let Some(audit) = &cfg.audit else { return };
    match KeyId::from_hex(&audit.key).map(|id| pool.key(&id)) {
        Ok(Ok(info)) => r.line(Verdict::Ok, "audit key", format!("{} ({}) is in the token", audit.key, info.alg)),
        Ok(Err(e)) => r.line(
            Verdict::Fail,
            "audit key",
            format!(
                "{}: {e}: run `seald init --new-audit-key` or put the audit key's CKA_ID in [audit] key",
                audit.key
            ),
        ),
        Err(e) => r.line(Verdict::Fail, "audit key", format!("'{}': {e}: [audit] key is a CKA_ID in hex", audit.key)),
    }
}

/// The store and the journal: directories owned by this user and writable, and in step (the store
/// has applied at least the journal's last signed head).
fn state(r: &mut Report, cfg: &Config, pool: Option<&TokenPool>) {
    let (Some(store), Some(audit)) = (&cfg.store, &cfg.audit) else {
        r.line(Verdict::Fail, "[store] / [audit]", "missing: the daemon needs both (see appliance/seald.toml)");
        return;
    };
    let mut dirs_ok = true;
    for (what, dir) in [("store", &store.dir), ("journal", &audit.dir)] {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                r.line(Verdict::Warn, what, format!("{} does not exist yet: `seald init` creates it", dir.display()));
                dirs_ok = false;
            }
            Err(e) => {
                r.line(Verdict::Fail, what, format!("{}: {e}", dir.display()));
                dirs_ok = false;
            }
            Ok(m) if m.uid() != unsafe_free_euid() => {
                r.line(
                    Verdict::Fail,
                    what,
                    format!(
                        "{} belongs to uid {}, not to this user ({}): chown -R seald:seald it",
                        dir.display(),
                        m.uid(),
                        unsafe_free_euid()
                    ),
                );
                dirs_ok = false;
            }
            Ok(_) => {
                let probe = dir.join(".seald-check");
                match std::fs::write(&probe, b"check").and_then(|()| std::fs::remove_file(&probe)) {
                    Ok(()) => r.line(Verdict::Ok, what, format!("{} is writable", dir.display())),
                    Err(e) => {
                        r.line(Verdict::Fail, what, format!("{}: cannot write: {e}", dir.display()));
                        dirs_ok = false;
                    }
                }
            }
        }
    }
    if !dirs_ok {
        return;
    }
    let head = match seald::audit::signed_head(&audit.dir) {
        Ok(h) => h,
        Err(e) => {
            r.line(Verdict::Fail, "journal", format!("{e}"));
            return;
        }
    };
    if let (Some(h), Some(pool)) = (&head, pool) {
        let checked =
            KeyId::from_hex(&audit.key).ok().and_then(|id| pool.key(&id).ok()).map(|k| h.verify(&k.public_key).is_ok());
        match checked {
            Some(true) => r.line(Verdict::Ok, "journal", format!("signed head at seq {} verifies with the audit key", h.seq)),
            Some(false) => r.line(
                Verdict::Warn,
                "journal",
                "the signed head does not verify with [audit] key (after a rotation the store names the active key; `sealctl audit verify` tells)",
            ),
            None => {}
        }
    }
    match seald::store::Store::open(&store.dir) {
        Ok(s) => match (s.applied_seq(), &head) {
            (Ok(applied), Some(h)) if applied < h.seq => r.line(
                Verdict::Warn,
                "store",
                format!(
                    "applied to seq {applied}, the journal is signed to {}: seald replays the rest at start",
                    h.seq
                ),
            ),
            (Ok(applied), _) => {
                r.line(Verdict::Ok, "store", format!("in step with the journal (applied to seq {applied})"))
            }
            (Err(e), _) => r.line(Verdict::Fail, "store", format!("{e}")),
        },
        Err(e) => r.line(
            Verdict::Warn,
            "store",
            format!("cannot open it ({e}): is seald running? Then this check is done by it"),
        ),
    }
}

/// The clock, as the TSA judges it (`[tsa] clock`): the kernel's synchronisation state, or trusted.
fn clock(r: &mut Report, source: seald::clock::ClockSource) {
    let c = seald::clock::state(source);
    if c.synchronised {
        r.line(Verdict::Ok, "clock", c.detail);
    } else {
        r.line(
            Verdict::Warn,
            "clock",
            format!("{}; signing times depend on it, and the TSA stamps nothing until then", c.detail),
        );
    }
}
