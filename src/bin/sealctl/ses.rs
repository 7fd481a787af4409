//! `sealctl ses dump|verify`: GB/T 38540 and GM/T 0031 seals and signatures, and the signatures in
//! OFD packages, offline. Exit status of `verify`: 0 valid, 1 not valid, 2 the input cannot be read.

use clap::Subcommand;
use seald::formats::ses::{self, CertList, Report, SesObject, SesSeal, SesSignature, VerifyOptions};
use seald::formats::x509::{Cert, Crl, TrustStore};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `sealctl ses ...`.
#[derive(Subcommand, Debug)]
pub enum SesCmd {
    /// Print a seal's or a signature's structure with the standard's field names.
    Dump {
        /// A SESeal or SES_Signature (DER).
        file: PathBuf,
    },
    /// Verify a seal (GB/T 38540 §6.3), a signature (§7.3), or every signature in an OFD package,
    /// step by step. Exit status: 0 valid, 1 not valid, 2 the input cannot be read.
    Verify {
        /// A SESeal or SES_Signature (DER).
        #[arg(required_unless_present = "ofd", conflicts_with = "ofd")]
        file: Option<PathBuf>,
        /// The protected original (its SM3 is compared with dataHash).
        #[arg(long)]
        doc: Option<PathBuf>,
        /// An .ofd package instead.
        #[arg(long)]
        ofd: Option<PathBuf>,
        /// Print `{ valid, steps, warnings }` (for an OFD: `{ valid, signatures: [...] }`).
        #[arg(long)]
        json: bool,
        /// A directory of trust anchors (PEM or DER certificates): makes `trust_chain` run.
        #[arg(long)]
        trust_anchors: Option<PathBuf>,
        /// CRLs (PEM or DER): makes `revocation` run.
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// A check that could not run (no anchors, no CRL) counts as failed.
        #[arg(long)]
        require_trust: bool,
        /// Judge a seal alone at this time (2024-01-31T00:00:00Z or Unix seconds; default now).
        #[arg(long, value_parser = parse_time)]
        at: Option<SystemTime>,
    },
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let f = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &f)
        .map(|t| UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
        .map_err(|e| format!("'{s}' is not an RFC 3339 time or Unix seconds: {e}"))
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn trust(dir: &Option<PathBuf>, crls: &[PathBuf]) -> Result<Option<TrustStore>, String> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let mut anchors = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file() {
            let bytes = read(&path)?;
            if bytes.starts_with(b"-----") {
                anchors.extend(Cert::parse_bundle(&bytes).map_err(|e| format!("{}: {e}", path.display()))?);
            } else if let Ok(c) = Cert::parse(&bytes) {
                anchors.push(c);
            }
        }
    }
    let crls = crls
        .iter()
        .map(|p| read(p).and_then(|b| Crl::parse(&b).map_err(|e| format!("{}: {e}", p.display()))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TrustStore::new(anchors, crls)))
}

fn print_report(r: &Report, indent: &str) {
    println!("{indent}{}", if r.valid { "VALID" } else { "NOT VALID" });
    for s in &r.steps {
        crate::output::step_line(indent, s.ok, s.step, &s.detail);
    }
    for w in &r.warnings {
        println!("{indent}  warning: {w}");
    }
}

/// Runs `sealctl ses ...`; returns the exit status.
pub fn run(cmd: SesCmd) -> u8 {
    match cmd {
        SesCmd::Dump { file } => match read(&file).and_then(|b| SesObject::parse(&b).map_err(|e| e.to_string())) {
            Ok(SesObject::Seal(s)) => {
                dump_seal(&s, "");
                0
            }
            Ok(SesObject::Signature(s)) => {
                dump_signature(&s);
                0
            }
            Err(e) => {
                eprintln!("sealctl: error [ses_unreadable]: {e}");
                2
            }
        },
        SesCmd::Verify { file, doc, ofd, json, trust_anchors, crl, require_trust, at } => {
            let store = match trust(&trust_anchors, &crl) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sealctl: error [ses_unreadable]: {e}");
                    return 2;
                }
            };
            let document_sm3 = match doc.as_ref().map(read) {
                Some(Ok(b)) => Some(seald::crypto::sm3(&b)),
                Some(Err(e)) => {
                    eprintln!("sealctl: error [ses_unreadable]: {e}");
                    return 2;
                }
                None => None,
            };
            let opts = VerifyOptions {
                trust: store.as_ref(),
                have_crls: !crl.is_empty(),
                require_trust,
                at,
                document_sm3,
                registry_state: None,
                registry: None,
            };
            if let Some(path) = ofd {
                let result =
                    read(&path).and_then(|b| seald::formats::ofd::verify(&b, &opts).map_err(|e| e.to_string()));
                return match result {
                    Ok(report) => {
                        let valid = report.valid();
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({
                                    "valid": valid,
                                    "signatures": report.signatures,
                                    "unlisted_signatures": report.unlisted_signatures,
                                    "added_after_final": report.added_after_final,
                                })
                            );
                        } else {
                            for s in &report.signatures {
                                println!("signature {} (Type={}, {})", s.id, s.kind, s.base_loc);
                                print_report(&s.report, "  ");
                            }
                            for f in &report.unlisted_signatures {
                                println!("unlisted signature: {f} (no Signatures.xml lists it)");
                            }
                            for f in &report.added_after_final {
                                println!("added after a final signature: {f}");
                            }
                        }
                        u8::from(!valid)
                    }
                    Err(e) => {
                        eprintln!("sealctl: error [ses_unreadable]: {e}");
                        2
                    }
                };
            }
            let Some(file) = file else { return 2 };
            let bytes = match read(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("sealctl: error [ses_unreadable]: {e}");
                    return 2;
                }
            };
            let (report, status) = match SesObject::parse(&bytes) {
                Ok(SesObject::Seal(s)) => {
                    let r = ses::verify_seal(&s, &opts);
                    let st = u8::from(!r.valid);
                    (r, st)
                }
                Ok(SesObject::Signature(s)) => {
                    let r = ses::verify_signature(&s, &opts);
                    let st = u8::from(!r.valid);
                    (r, st)
                }
                Err(e) => (ses::unreadable(&e), 2),
            };
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print_report(&report, "");
            }
            status
        }
    }
}

fn cert_line(der: &[u8]) -> String {
    match Cert::parse(der) {
        Ok(c) => {
            let (from, to) = c.validity();
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            format!(
                "{} (serial {}, valid {}..{} Unix s, sha256 {})",
                c.subject_text(),
                c.serial_hex(),
                secs(from),
                secs(to),
                c.fingerprint()
            )
        }
        Err(e) => format!("{} bytes that do not parse as a certificate: {e}", der.len()),
    }
}

fn when(t: ses::SesTime) -> String {
    let s = t.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(s)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| s.to_string())
}

fn dump_seal(s: &SesSeal, i: &str) {
    let info = &s.info;
    println!("{i}SESeal ({:?}, {} bytes)", s.version, s.raw.len());
    println!("{i}  eSealInfo.header          ID {} version {} Vid {}", info.header_id, info.version, info.vid);
    println!("{i}  eSealInfo.esID            {}", info.es_id);
    println!("{i}  property.type             {}", info.seal_type);
    println!("{i}  property.name             {}", info.name);
    if let Some(t) = info.cert_list_type {
        println!("{i}  property.certListType     {t}");
    }
    match &info.cert_list {
        CertList::Certs(c) => {
            for (n, der) in c.iter().enumerate() {
                println!("{i}  property.certList[{n}]      {}", cert_line(der));
            }
        }
        CertList::Digests(d) => {
            for (n, (kind, v)) in d.iter().enumerate() {
                println!("{i}  property.certList[{n}]      {kind} {}", hex::encode(v));
            }
        }
    }
    println!("{i}  property.createDate       {}", when(info.create_date));
    println!("{i}  property.validStart       {}", when(info.valid_start));
    println!("{i}  property.validEnd         {}", when(info.valid_end));
    println!(
        "{i}  picture                   {} {} bytes, {} x {} mm",
        info.picture.kind,
        info.picture.data.len(),
        info.picture.width,
        info.picture.height
    );
    println!("{i}  extDatas                  {}", if info.has_ext_datas { "present" } else { "absent" });
    println!("{i}  cert (maker)              {}", cert_line(&s.maker_cert));
    println!("{i}  signAlgID                 {}", s.sign_alg);
    println!("{i}  signedValue               {} ({} bytes)", hex::encode(&s.signed_value), s.signed_value.len());
    for w in &s.warnings {
        println!("{i}  warning: {w}");
    }
}

fn dump_signature(s: &SesSignature) {
    println!("SES_Signature ({:?}, {} bytes)", s.version, s.raw.len());
    dump_seal(&s.seal, "  toSign.eseal: ");
    match s.time_info {
        Some(t) => println!("  toSign.timeInfo           {}", when(t)),
        None => println!("  toSign.timeInfo           (a time-stamp)"),
    }
    println!("  toSign.dataHash           {}", hex::encode(&s.data_hash));
    println!("  toSign.propertyInfo       {}", s.property_info);
    println!("  cert (signer)             {}", cert_line(&s.signer_cert));
    println!("  signatureAlgID            {}", s.sign_alg);
    println!("  signature                 {} ({} bytes)", hex::encode(&s.signature), s.signature.len());
    println!(
        "  timeStamp                 {}",
        s.timestamp.as_ref().map(|t| format!("{} bytes", t.len())).unwrap_or_else(|| "absent".into())
    );
    for w in &s.warnings {
        println!("  warning: {w}");
    }
}
