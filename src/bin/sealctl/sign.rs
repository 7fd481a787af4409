//! `sealctl sign ...`: an application signs a document with a seal (or a plain key), through the
//! daemon's API.

use crate::output::{cell, out};
use crate::remote::{b64, body, call, local, read, Conn, Failure};
use base64::Engine as _;
use clap::Args;
use seald::contract::{Encoding, SignBody};
use seald::signing::InputMode;
use std::path::PathBuf;

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

/// Runs `sealctl sign ...`.
pub fn run(c: &Conn, cmd: SignCmd) -> Result<(), Failure> {
    let (input, data) = match (&cmd.file, &cmd.digest) {
        (Some(f), _) => (InputMode::Message, read(f)?),
        (None, Some(d)) => (InputMode::Digest, hex::decode(d.trim()).map_err(|_| local("--digest is not hex"))?),
        (None, None) => return Err(local("give --file or --digest")),
    };
    let request = SignBody {
        key: cmd.key.clone(),
        seal: cmd.seal.clone(),
        ticket: cmd.ticket.clone(),
        input,
        data: b64(&data),
        digest_alg: None,
        user_id: None,
        encoding: Encoding::Der,
    };
    let v = call(c, "POST", "/v1/sign", Some(body(&request)))?;
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
