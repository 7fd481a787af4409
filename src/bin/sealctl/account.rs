//! `sealctl account ...`: registry accounts, through the daemon's API (system administrator).

use crate::output::{cell, fields, out, out_table};
use crate::remote::{call, escape, pages, read, Conn, Failure, PageArgs};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

/// `sealctl account ...`.
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// The registry's accounts, by name (a page, or every page with --all).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// An application's usage records, of every seal, a page at a time (the account itself, its
    /// unit's administrator, issuers and auditors); every page with --all.
    Usage {
        /// The account.
        name: String,
        /// oldest (the default) or newest first.
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
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
    /// Approve a pending change to an administrator's account (an administrator of another role
    /// than the one who asked, and not the account changed).
    Approve {
        /// The request id (from `create`, `disable` or `enable`, or `sealctl keys requests`).
        id: String,
    },
}

/// What a change answered: done, or a request waiting for another administrator (202).
fn changed(v: &serde_json::Value, done: impl Fn(&serde_json::Value)) {
    match v.get("awaiting_approval") {
        Some(r) => println!(
            "request {} opened: an administrator of another role runs `sealctl account approve {}`",
            cell(&r["id"]),
            cell(&r["id"])
        ),
        None => done(v),
    }
}

/// Runs `sealctl account ...`.
pub fn run(c: &Conn, cmd: AccountCmd) -> Result<(), Failure> {
    let columns: &[(&str, &str)] =
        &[("name", "NAME"), ("role", "ROLE"), ("unit", "UNIT"), ("disabled", "DISABLED"), ("created_by", "CREATED_BY")];
    match cmd {
        AccountCmd::List { page } => {
            let v = pages(c, "/v1/admin/accounts", &[], &page, "accounts")?;
            out_table(c, &v, "accounts", columns);
        }
        AccountCmd::Usage { name, order, page } => {
            let v = pages(c, &format!("/v1/accounts/{}/usage", escape(&name)), &[("order", &order)], &page, "usage")?;
            out_table(
                c,
                &v,
                "usage",
                &[
                    ("seq", "SEQ"),
                    ("time_ms", "TIME"),
                    ("seal", "SEAL"),
                    ("outcome", "OUTCOME"),
                    ("input", "INPUT"),
                    ("digest", "DIGEST"),
                    ("document_name", "DOCUMENT"),
                ],
            );
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
            out(c, &v, |v| changed(v, |v| println!("account {} ({}) created", cell(&v["name"]), cell(&v["role"]))));
        }
        AccountCmd::Disable { name } => {
            let v = call(c, "DELETE", &format!("/v1/admin/accounts/{name}"), None)?;
            out(c, &v, |v| changed(v, |_| println!("account {name} disabled")));
        }
        AccountCmd::Enable { name } => {
            let v = call(c, "POST", &format!("/v1/admin/accounts/{name}"), Some(json!({ "disabled": false })))?;
            out(c, &v, |v| changed(v, |_| println!("account {name} enabled")));
        }
        AccountCmd::Approve { id } => {
            let v = call(c, "POST", &format!("/v1/admin/requests/{id}/approve"), None)?;
            out(c, &v, |v| println!("request {} approved: account {} changed", cell(&v["id"]), cell(&v["key"])));
        }
    }
    Ok(())
}
