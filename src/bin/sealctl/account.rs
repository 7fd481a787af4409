//! `sealctl account ...`: registry accounts, through the daemon's API (system administrator).

use crate::output::{cell, fields, out, out_table};
use crate::remote::{call, read, Conn, Failure};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

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

/// Runs `sealctl account ...`.
pub fn run(c: &Conn, cmd: AccountCmd) -> Result<(), Failure> {
    let columns: &[(&str, &str)] =
        &[("name", "NAME"), ("role", "ROLE"), ("unit", "UNIT"), ("disabled", "DISABLED"), ("created_by", "CREATED_BY")];
    match cmd {
        AccountCmd::List => {
            let v = call(c, "GET", "/v1/admin/accounts", None)?;
            out_table(c, &v, "accounts", columns);
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
