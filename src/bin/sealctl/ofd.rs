//! `sealctl seal-ofd` and `sealctl verify-ofd`: OFD documents sealed and verified by the daemon.
//!
//! Exit status of `verify-ofd`: 0 valid, 1 not valid (invalid or incomplete), 2 unusable input (an
//! unreadable file, or a package the daemon refuses to read), 3 the daemon is unreachable or failed.
//! `seal-ofd` follows every other command: 0 sealed, 1 refused, 2 local input, 3 unreachable.

use super::output::{step_line, table};
use super::remote::{self, local, read, Conn, Failure};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;

/// `sealctl seal-ofd`.
#[derive(Args, Debug)]
pub struct SealOfdArgs {
    /// The seal (its id).
    #[arg(long)]
    seal: String,
    /// The page, from 1 (not for --riding).
    #[arg(long, required_unless_present = "riding")]
    page: Option<u32>,
    /// The seal's left edge, in mm from the page's left (not for --riding).
    #[arg(long, required_unless_present = "riding")]
    x: Option<f64>,
    /// The seal's top edge, in mm from the page's top.
    #[arg(long)]
    y: f64,
    /// A riding seal (骑缝章): the image sliced over the right edge of every page.
    #[arg(long)]
    riding: bool,
    /// Protect the signature list too: no further seal can be added.
    #[arg(long = "final")]
    final_seal: bool,
    /// Put a time-stamp over the signature value into the seal's signature.
    #[arg(long)]
    timestamp: bool,
    /// The approval ticket, where the seal's policy needs one.
    #[arg(long)]
    ticket: Option<String>,
    /// The document's name for the usage record (default: the file's name).
    #[arg(long)]
    name: Option<String>,
    /// Where to write the sealed document.
    #[arg(long, short)]
    out: PathBuf,
    /// The OFD document.
    document: PathBuf,
}

/// `sealctl verify-ofd`.
#[derive(Args, Debug)]
pub struct VerifyOfdArgs {
    /// The OFD document.
    document: PathBuf,
}

/// Seals the document; writes it to `--out`.
pub fn seal(c: &Conn, a: SealOfdArgs) -> Result<(), Failure> {
    let doc = read(&a.document)?;
    let name = a.name.or_else(|| a.document.file_name().map(|n| n.to_string_lossy().into_owned()));
    let num = |v: Option<f64>| v.map(|v| v.to_string());
    let flag = |b: bool| b.then(|| "true".to_string());
    let query = remote::query(&[
        ("page", &a.page.map(|p| p.to_string())),
        ("x", &num(a.x)),
        ("y", &Some(a.y.to_string())),
        ("riding", &flag(a.riding)),
        ("final", &flag(a.final_seal)),
        ("timestamp", &flag(a.timestamp)),
        ("ticket", &a.ticket),
        ("name", &name),
    ]);
    let path = format!("/v1/seals/{}/seal-ofd{query}", remote::escape(&a.seal));
    let (status, bytes) = c.endpoint.send_bytes("POST", &path, "application/ofd", doc)?;
    if status >= 400 {
        return Err(remote::refused(status, &serde_json::from_slice(&bytes).unwrap_or_default(), ""));
    }
    let size = bytes.len();
    std::fs::write(&a.out, bytes).map_err(|e| local(format!("{}: {e}", a.out.display())))?;
    let v = json!({ "out": a.out.display().to_string(), "bytes": size });
    if c.json {
        println!("{v}");
    } else {
        println!("sealed: {} ({size} bytes)", a.out.display());
    }
    Ok(())
}

/// Verifies the document; the exit status says the verdict.
pub fn verify(c: &Conn, a: VerifyOfdArgs) -> u8 {
    let doc = match read(&a.document) {
        Ok(d) => d,
        Err(f) => return fail(f),
    };
    let (status, bytes) = match c.endpoint.send_bytes("POST", "/v1/verify/ofd", "application/ofd", doc) {
        Ok(a) => a,
        Err(f) => return fail(f),
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status >= 400 {
        let f = remote::refused(status, &v, "");
        // A document the daemon cannot read is unusable input, not a verdict.
        return fail(Failure { status: if status >= 500 { 3 } else { 2 }, ..f });
    }
    if c.json {
        println!("{v}");
    } else {
        print_verdict(&v);
    }
    u8::from(v["verdict"] != "valid")
}

fn fail(f: Failure) -> u8 {
    eprintln!("sealctl: error {}", f.message);
    f.status
}

fn print_verdict(v: &Value) {
    println!("document: {}", v["verdict"].as_str().unwrap_or("?"));
    let sigs = v["signatures"].as_array().cloned().unwrap_or_default();
    table(
        &sigs,
        &[("id", "ID"), ("type", "TYPE"), ("verdict", "VERDICT"), ("final", "FINAL"), ("base_loc", "SIGNATURE")],
    );
    for s in &sigs {
        println!();
        println!("signature {} ({})", s["id"].as_str().unwrap_or("?"), s["base_loc"].as_str().unwrap_or("?"));
        for step in s["steps"].as_array().into_iter().flatten() {
            let (name, detail) = (step["step"].as_str().unwrap_or(""), step["detail"].as_str().unwrap_or(""));
            step_line("", step["ok"].as_bool(), name, detail);
        }
        for w in s["warnings"].as_array().into_iter().flatten() {
            println!("  warning: {}", w.as_str().unwrap_or(""));
        }
    }
    for (key, what) in [
        ("unlisted_signatures", "a signature no Signatures.xml lists"),
        ("added_after_final", "added after a final seal"),
    ] {
        for f in v[key].as_array().into_iter().flatten() {
            println!("FAIL {}: {what}", f.as_str().unwrap_or(""));
        }
    }
}
