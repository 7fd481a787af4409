//! The daemon's configuration: one TOML file whose sections mirror the modules. Every field is
//! validated when it is read, and an unknown field is an error, so a typo never silently falls back
//! to a default.

use crate::authz::Account;
use crate::signing::KeyConfig;
use crate::tls::ServerConfigFile;
use crate::token::TokenConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[token]`: which PKCS#11 module and token, and how to log in.
    pub token: TokenConfig,
    /// `[server]`: the mTLS listener (needed by `seald run`).
    #[serde(default)]
    pub server: Option<ServerConfigFile>,
    /// `[store]`: where the current state (a redb file, `view.redb`) is kept.
    #[serde(default)]
    pub store: Option<StoreSection>,
    /// `[audit]`: the journal and its checkpoint key.
    #[serde(default)]
    pub audit: Option<AuditSection>,
    /// `[verify]`: trust anchors and CRLs for certificates given to /v1/verify.
    #[serde(default)]
    pub verify: VerifySection,
    /// `[[keys]]`: plain token keys the API offers beside the seals (for systems that sign with a key).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// `[[accounts]]`: fixed accounts for business systems that sign with plain `[[keys]]`. Every
    /// other account lives in the seal registry (`seald init`, then the sysadmin through the API).
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// `[seals]`: the registry's time zone, limits and reminders.
    #[serde(default)]
    pub seals: crate::seal::SealSettings,
    /// `[tsa]`: the time-stamp authority (RFC 3161) and where seals' time-stamps come from.
    #[serde(default)]
    pub tsa: crate::seal::TsaSettings,
    /// `[status]`: the seal-status service.
    #[serde(default)]
    pub status: crate::seal::StatusSettings,
    /// `[cluster]`: this node's place among the nodes sharing one PostgreSQL (with
    /// `[store] backend = "postgres"`).
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// This node's id, unique in the cluster (1 to 32767): its journal chain is the node's own.
    pub node_id: u16,
}

/// Where the state and the journal live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded view (`dir`) over the file journal (`[audit] dir`): one appliance.
    #[default]
    Embedded,
    /// A PostgreSQL database (`[store.postgres]`) that several nodes share.
    Postgres,
}

/// `[store.postgres]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// `postgresql://user@host:port/db?sslmode=disable` or `host=... user=... dbname=...`; no password.
    pub url: String,
    /// A file holding the password (one line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A systemd credential holding the password (`LoadCredential=`).
    #[serde(default)]
    pub password_credential: Option<String>,
    /// The CA (PEM) the database server's certificate must chain to: connections are then in TLS
    /// (as the URL's `sslmode` says: `prefer` by default, `require` to refuse plain connections).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Connections in the pool (default 16).
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    /// How long to wait for a connection, ms (default 3000).
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// The longest a statement or a lock wait may take, ms (default 5000).
    #[serde(default = "default_statement_ms")]
    pub statement_timeout_ms: u64,
}

fn default_pool() -> u32 {
    16
}
fn default_connect_ms() -> u64 {
    3000
}
fn default_statement_ms() -> u64 {
    5000
}

impl Config {
    /// The cluster's database settings, when `[store] backend = "postgres"`: the password read from
    /// its file or credential, and the node id from `[cluster]`.
    pub fn postgres(&self) -> Result<Option<crate::store::PgSettings>, String> {
        let Some(store) = &self.store else { return Ok(None) };
        if store.backend != StoreBackend::Postgres {
            return Ok(None);
        }
        let pg = store.postgres.as_ref().ok_or("[store] backend = \"postgres\" needs a [store.postgres] section")?;
        let node = self.cluster.as_ref().ok_or("[store] backend = \"postgres\" needs [cluster] node_id")?.node_id;
        if node == 0 || node > 32767 {
            return Err("[cluster] node_id must be from 1 to 32767".into());
        }
        // Read as the token's PIN is (a file, standard input or a systemd credential; wiped on drop).
        let source = match (&pg.password_file, &pg.password_credential) {
            (Some(f), None) => Some(crate::token::PinSource::File(f.clone())),
            (None, Some(c)) => Some(crate::token::PinSource::Credential(c.clone())),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err("[store.postgres]: give password_file or password_credential, not both".into())
            }
        };
        let password = match source {
            None => None,
            Some(source) => {
                use secrecy::ExposeSecret as _;
                let read = crate::token::Pin::load(&source).map_err(|e| format!("[store.postgres] password: {e}"))?;
                Some(secrecy::SecretString::from(read.secret().expose_secret().to_owned()))
            }
        };
        Ok(Some(crate::store::PgSettings {
            url: pg.url.clone(),
            password,
            pool_size: pg.pool_size,
            connect_timeout: std::time::Duration::from_millis(pg.connect_timeout_ms.max(100)),
            statement_timeout: std::time::Duration::from_millis(pg.statement_timeout_ms.max(100)),
            node,
            ca: pg.ca.clone(),
        }))
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store's directory (the embedded backend's).
    pub dir: PathBuf,
    /// `embedded` (the default) or `postgres`.
    #[serde(default)]
    pub backend: StoreBackend,
    /// `[store.postgres]`: the cluster's database.
    #[serde(default)]
    pub postgres: Option<PostgresSection>,
}

/// `[verify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    /// PEM bundle of trust anchors (CAs, intermediates) for signer certificates.
    #[serde(default)]
    pub trust_anchors: Option<PathBuf>,
    /// PEM bundle of intermediate CAs that paths from signer certificates to the anchors may pass
    /// through (they are not anchors themselves). Documents may carry more.
    #[serde(default)]
    pub intermediates: Option<PathBuf>,
    /// CRLs (PEM or DER) for certificates those anchors issued.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
}

impl VerifySection {
    /// Loads the trust store (empty when nothing is configured: every certificate is then untrusted).
    pub fn trust_store(&self) -> Result<crate::formats::x509::TrustStore, String> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let anchors = match &self.trust_anchors {
            Some(p) => {
                crate::formats::x509::Cert::parse_bundle(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Vec::new(),
        };
        let crls = self
            .crl
            .iter()
            .map(|p| {
                read(p).and_then(|b| crate::formats::x509::Crl::parse(&b).map_err(|e| format!("{}: {e}", p.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let intermediates = match &self.intermediates {
            Some(p) => {
                crate::formats::x509::Cert::parse_bundle(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Vec::new(),
        };
        Ok(crate::formats::x509::TrustStore::new(anchors, crls).with_intermediates(intermediates))
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The journal directory.
    pub dir: PathBuf,
    /// CKA_ID (hex) of the audit key in the token that signs checkpoints.
    pub key: String,
    /// Checkpoint after this many records.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ... or after this many seconds.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_s: u64,
}

fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_interval() -> u64 {
    60
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is invalid or a field is wrong.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field.
        message: String,
    },
}

impl Config {
    /// The PIN from `pin_file` instead of the config's `pin_file` or `pin_credential`: for
    /// `seald check`, `init` and `restore` run by hand, where the systemd credential is not there.
    pub fn with_pin_file(mut self, pin_file: Option<&Path>) -> Self {
        if let Some(p) = pin_file {
            self.token.pin_file = Some(p.to_path_buf());
            self.token.pin_credential = None;
        }
        self
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: origin.to_string(), message };
        let cfg: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let _ = cfg.token.pin_source().map_err(|e| invalid(format!("[token] {e}")))?;
        let _ = cfg.token.parsed_uri().map_err(|e| invalid(format!("[token] uri: {e}")))?;
        if cfg.token.pool_size == 0 || cfg.token.pool_size > 1024 {
            return Err(invalid("[token] pool_size must be 1 to 1024".into()));
        }
        if cfg.token.borrow_timeout_ms == 0 {
            return Err(invalid("[token] borrow_timeout_ms must be above 0".into()));
        }
        if let Some(server) = &cfg.server {
            if server.listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(format!("[server] listen '{}' is not an address:port", server.listen)));
            }
            if server.max_body_bytes < 1024 || server.max_message_bytes == 0 {
                return Err(invalid(
                    "[server] max_body_bytes must be at least 1024 and max_message_bytes above 0".into(),
                ));
            }
        }
        if let Some(audit) = &cfg.audit {
            if crate::token::KeyId::from_hex(&audit.key).is_err() {
                return Err(invalid(format!("[audit] key '{}' is not a hex CKA_ID", audit.key)));
            }
            if audit.checkpoint_every == 0 || audit.checkpoint_interval_s == 0 {
                return Err(invalid("[audit] checkpoint_every and checkpoint_interval_s must be above 0".into()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for k in &cfg.keys {
            if crate::token::KeyId::from_hex(&k.id).is_err() {
                return Err(invalid(format!("[[keys]] '{}': id '{}' is not hex", k.name, k.id)));
            }
            if !names.insert(k.name.clone()) {
                return Err(invalid(format!("[[keys]] name '{}' is used twice", k.name)));
            }
        }
        let _ = crate::authz::Accounts::new(cfg.accounts.clone()).map_err(|e| invalid(e.to_string()))?;
        let s = &cfg.seals;
        if !(-12..=14).contains(&s.utc_offset_hours) {
            return Err(invalid("[seals] utc_offset_hours must be -12 to 14".into()));
        }
        if s.max_image_bytes == 0 || s.filing_deadline_hours == 0 || s.ticket_max_s == 0 {
            return Err(invalid(
                "[seals] max_image_bytes, filing_deadline_hours and ticket_max_s must be above 0".into(),
            ));
        }
        cfg.tsa.check().map_err(invalid)?;
        if cfg.status.refresh_s == 0 || cfg.status.refresh_s > 86_400 {
            return Err(invalid("[status] refresh_s must be 1 to 86400".into()));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_config_reads_and_typos_are_refused() {
        let good =
            "[token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\nlabel = \"seald\"\npin_file = \"/etc/seald/pin\"\n";
        let cfg = Config::parse(good, "t").unwrap();
        assert_eq!(cfg.token.pool_size, 8);
        let typo = good.replace("pin_file", "pinfile");
        assert!(Config::parse(&typo, "t").unwrap_err().to_string().contains("pinfile"));
        let no_pin = "[token]\nlabel = \"seald\"\n";
        assert!(Config::parse(no_pin, "t").unwrap_err().to_string().contains("PIN"));
        let pin_in_uri = "[token]\nuri = \"pkcs11:token=a?pin-value=1\"\npin_file = \"/p\"\n";
        assert!(Config::parse(pin_in_uri, "t").unwrap_err().to_string().contains("PIN"));
        let zero = format!("{good}pool_size = 0\n");
        assert!(Config::parse(&zero, "t").is_err());
    }
}
