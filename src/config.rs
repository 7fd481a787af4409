//! The daemon's configuration: one TOML file whose sections mirror the modules. Every field is
//! validated when it is read, and an unknown field is an error, so a typo never silently falls back
//! to a default.

use crate::token::TokenConfig;
use serde::Deserialize;
use std::path::Path;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[token]`: which PKCS#11 module and token, and how to log in.
    pub token: TokenConfig,
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
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        };
        let cfg: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let _ = cfg
            .token
            .pin_source()
            .map_err(|e| invalid(format!("[token] {e}")))?;
        let _ = cfg
            .token
            .parsed_uri()
            .map_err(|e| invalid(format!("[token] uri: {e}")))?;
        if cfg.token.pool_size == 0 || cfg.token.pool_size > 1024 {
            return Err(invalid("[token] pool_size must be 1 to 1024".into()));
        }
        if cfg.token.borrow_timeout_ms == 0 {
            return Err(invalid("[token] borrow_timeout_ms must be above 0".into()));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_config_reads_and_typos_are_refused() {
        let good = "[token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\nlabel = \"seald\"\npin_file = \"/etc/seald/pin\"\n";
        let cfg = Config::parse(good, "t").unwrap();
        assert_eq!(cfg.token.pool_size, 8);
        let typo = good.replace("pin_file", "pinfile");
        assert!(Config::parse(&typo, "t")
            .unwrap_err()
            .to_string()
            .contains("pinfile"));
        let no_pin = "[token]\nlabel = \"seald\"\n";
        assert!(Config::parse(no_pin, "t")
            .unwrap_err()
            .to_string()
            .contains("PIN"));
        let pin_in_uri = "[token]\nuri = \"pkcs11:token=a?pin-value=1\"\npin_file = \"/p\"\n";
        assert!(Config::parse(pin_in_uri, "t")
            .unwrap_err()
            .to_string()
            .contains("PIN"));
        let zero = format!("{good}pool_size = 0\n");
        assert!(Config::parse(&zero, "t").is_err());
    }
}
