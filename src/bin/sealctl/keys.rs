//! `sealctl keys ...`: key versions, rotation and dual control for seal keys, the issuing CA and the
//! seal maker, through the daemon's API (security officers).

use crate::output::{cell, out, out_table, table};
use crate::remote::{body, call, pages, read, Conn, Failure, PageArgs};
use clap::Subcommand;
use seald::contract::VersionBody;
use serde_json::json;
use std::path::PathBuf;

/// `sealctl keys ...`: key versions, rotation and dual control (security officers).
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Every key (seal:<id>, issuing-ca, seal-maker) with its versions, states and certificate ends;
    /// EXPIRING marks those ending within the reminder period. A page (the appliance keys first,
    /// then the seals' by id), or every page with --all.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
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
pub fn run(c: &Conn, cmd: KeysCmd) -> Result<(), Failure> {
    match cmd {
        KeysCmd::List { page } => {
            let v = pages(c, "/v1/admin/keys", &[], &page, "keys")?;
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
                        ("not_after_ms", "NOT_AFTER"),
                        ("expiring", ""),
                        ("key_id", "CKA_ID"),
                    ],
                );
                crate::output::more(v);
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
            let v = call(c, "POST", &format!("/v1/admin/keys/{name}/activate"), Some(body(&VersionBody { version })))?;
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
            let v = call(c, "POST", &format!("/v1/admin/keys/{name}/destroy"), Some(body(&VersionBody { version })))?;
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
            out_table(
                c,
                &v,
                "requests",
                &[
                    ("id", "ID"),
                    ("action", "ACTION"),
                    ("key", "KEY"),
                    ("version", "VERSION"),
                    ("state", "STATE"),
                    ("requested_by", "BY"),
                    ("approved_by", "APPROVED_BY"),
                    ("expires_ms", "EXPIRES"),
                ],
            );
        }
        KeysCmd::Approve { id } => {
            let v = call(c, "POST", &format!("/v1/admin/requests/{id}/approve"), None)?;
            out(c, &v, |v| println!("request {} approved and carried out", cell(&v["id"])));
        }
    }
    Ok(())
}
