//! `sealctl seal ...`: seals and their lifecycle (apply, approve, make, publish, freeze, unfreeze,
//! revoke, change, renew), outside certificates and CSRs, use policy, grants, use tickets and usage,
//! through the daemon's API.

use crate::output::{cell, fields, out, out_table, write_or_print};
use crate::remote::{b64, body, call, call_bytes, escape, local, pages, read, Conn, Failure, PageArgs};
use clap::{Args, Subcommand};
use seald::contract::{CertificateBody, GrantBody, TransitionBody};
use seald::seal::Policy;
use serde_json::json;
use std::path::PathBuf;

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
    fn policy(&self) -> Policy {
        Policy {
            require_approval: self.require_approval,
            daily_limit: self.daily_limit,
            total_limit: self.total_limit,
            hours: self.hours,
        }
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
        #[command(flatten)]
        page: PageArgs,
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
    /// The applications granted a seal (a page, or every page with --all).
    Grants {
        /// Seal id.
        id: String,
        #[command(flatten)]
        page: PageArgs,
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
    /// Who used a seal when, on which digest (unit administrator, issuer, auditor): a page of its
    /// usage records, or every page with --all.
    Usage {
        /// Seal id.
        id: String,
        /// oldest (the default) or newest first.
        #[arg(long)]
        order: Option<String>,
        #[command(flatten)]
        page: PageArgs,
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

fn transition(c: &Conn, action: &str, t: &Transition, change: TransitionBody) -> Result<(), Failure> {
    let b = TransitionBody { reason: t.reason.clone(), ..change };
    let v = call(c, "POST", &format!("/v1/seals/{}/{action}", t.id), Some(body(&b)))?;
    out(c, &v, |v| {
        println!("seal {} is {} (key version {})", cell(&v["id"]), cell(&v["state"]), cell(&v["key_version"]))
    });
    Ok(())
}

/// Runs `sealctl seal ...`.
pub fn run(c: &Conn, cmd: SealCmd) -> Result<(), Failure> {
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
        SealCmd::List { state, unit, expiring, page } => {
            let params = [("state", &state), ("unit", &unit), ("expiring", &expiring)];
            let v = pages(c, "/v1/seals", &params, &page, "seals")?;
            out_table(c, &v, "seals", seal_columns);
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
                "height_mm": height_mm, "valid_days": valid_days, "alg": alg, "unit": unit, "policy": policy.policy(),
            });
            let v = call(c, "POST", "/v1/seals", Some(body))?;
            out(c, &v, |v| println!("applied: seal {} is {}", cell(&v["id"]), cell(&v["state"])));
        }
        SealCmd::Approve(t) => transition(c, "approve", &t, TransitionBody::default())?,
        SealCmd::Reject(t) => transition(c, "reject", &t, TransitionBody::default())?,
        SealCmd::Make(t) => transition(c, "make", &t, TransitionBody::default())?,
        SealCmd::Publish(t) => transition(c, "publish", &t, TransitionBody::default())?,
        SealCmd::Freeze(t) => transition(c, "freeze", &t, TransitionBody::default())?,
        SealCmd::Unfreeze(t) => transition(c, "unfreeze", &t, TransitionBody::default())?,
        SealCmd::Revoke(t) => transition(c, "revoke", &t, TransitionBody::default())?,
        SealCmd::Renew(t) => transition(c, "renew", &t, TransitionBody::default())?,
        SealCmd::Change { t, name, image, width_mm, height_mm } => {
            let mut change = TransitionBody { name, ..Default::default() };
            if let Some(path) = image {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
                change = TransitionBody {
                    image: Some(b64(&read(&path)?)),
                    image_type: Some(ext),
                    width_mm,
                    height_mm,
                    ..change
                };
            }
            transition(c, "change", &t, change)?;
        }
        SealCmd::Certificate { id, file } => {
            let pem = String::from_utf8_lossy(&read(&file)?).into_owned();
            let v = call(
                c,
                "POST",
                &format!("/v1/seals/{id}/certificate"),
                Some(body(&CertificateBody { certificate: pem })),
            )?;
            out(c, &v, |v| println!("seal {} now uses the imported certificate", cell(&v["id"])));
        }
        SealCmd::Csr { id, out: path } => {
            let v = call(c, "GET", &format!("/v1/seals/{id}/csr"), None)?;
            write_or_print(path, v["csr"].as_str().unwrap_or_default())?;
        }
        SealCmd::Ses { id, out: path } => {
            let der = call_bytes(c, &format!("/v1/seals/{id}/ses"), "seal")?;
            std::fs::write(&path, der).map_err(|e| local(format!("{}: {e}", path.display())))?;
        }
        SealCmd::Policy { id, policy } => {
            let v = call(c, "POST", &format!("/v1/seals/{id}/policy"), Some(body(&policy.policy())))?;
            out(c, &v, |v| println!("policy of seal {}: {}", cell(&v["id"]), v["policy"]));
        }
        SealCmd::Grant { id, account } => {
            let v = call(
                c,
                "POST",
                &format!("/v1/seals/{id}/grants"),
                Some(body(&GrantBody { account: account.clone() })),
            )?;
            out(c, &v, |_| println!("'{account}' may use seal {id}"));
        }
        SealCmd::Ungrant { id, account } => {
            let v = call(c, "DELETE", &format!("/v1/seals/{id}/grants/{account}"), None)?;
            out(c, &v, |_| println!("'{account}' may no longer use seal {id}"));
        }
        SealCmd::Grants { id, page } => {
            let v = pages(c, &format!("/v1/seals/{}/grants", escape(&id)), &[], &page, "grants")?;
            out_table(c, &v, "grants", &[("account", "ACCOUNT"), ("granted_by", "BY"), ("time_ms", "TIME")]);
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
        SealCmd::Usage { id, order, page } => {
            let path = format!("/v1/seals/{}/usage", escape(&id));
            let v = pages(c, &path, &[("order", &order)], &page, "usage")?;
            out_table(
                c,
                &v,
                "usage",
                &[
                    ("seq", "SEQ"),
                    ("time_ms", "TIME"),
                    ("account", "ACCOUNT"),
                    ("outcome", "OUTCOME"),
                    ("key_version", "KEY"),
                    ("digest", "DIGEST"),
                ],
            );
        }
    }
    Ok(())
}
