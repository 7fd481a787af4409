//! Seed inputs for each target: the samples of other producers under $SEALD_SAMPLES, and structures
//! built here with seald's own builders, so that every field is well formed before it is damaged.

use seald::crypto::{DerSignature, KeyAlg, PublicKey};
use seald::formats::{cms, seal_status, ses, tsp, x509};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A P-256 key in memory: the signer of the built certificates, requests and SignedData.
struct SoftKey(p256::ecdsa::SigningKey, PublicKey);

impl SoftKey {
    fn new() -> Self {
        let k = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a valid scalar");
        let point = k.verifying_key().to_encoded_point(false);
        let public = PublicKey::from_ec_point(KeyAlg::P256, point.as_bytes()).expect("a valid point");
        SoftKey(k, public)
    }
}

impl signature::Signer<DerSignature> for SoftKey {
    fn try_sign(&self, message: &[u8]) -> Result<DerSignature, signature::Error> {
        let sig: p256::ecdsa::Signature = signature::Signer::try_sign(&self.0, message)?;
        Ok(DerSignature::new(sig.to_der().as_bytes().to_vec()))
    }
}

impl signature::Keypair for SoftKey {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.1.clone()
    }
}

/// The DER inside a PEM text.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default()
}

/// Every file under `dir` (recursively) whose name passes `keep`.
fn files(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(files(&p, keep));
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
            out.extend(std::fs::read(&p).ok());
        }
    }
    out
}

/// Built structures: a certificate, a CRL, a request, SignedData attached and detached, a seal and a
/// signature.
struct Built {
    x509: Vec<Vec<u8>>,
    cms: Vec<Vec<u8>>,
    ses: Vec<Vec<u8>>,
    tsp: Vec<Vec<u8>>,
}

fn built() -> Built {
    let key = SoftKey::new();
    let now = SystemTime::now();
    let template = x509::CertTemplate {
        subject: vec![("CN", "fuzz signer".into()), ("O", "seald".into()), ("C", "CN".into())],
        public_key: &key.1,
        not_before: now - Duration::from_secs(60),
        not_after: now + Duration::from_secs(86400),
        ca: false,
        purpose: None,
    };
    let cert = x509::issue(&template, None, &key).expect("a self-signed certificate");
    let ca = seald::devpki::DevCa::new("fuzz CA").expect("a development CA");
    let mut x = vec![cert.der().to_vec(), pem_der(&ca.cert_pem())];
    x.extend(ca.crl(&[2, 3], 1).ok().map(|p| pem_der(&p)));
    x.extend(x509::build_csr(&[("CN", "fuzz".into())], &key.1, &key).ok().map(|p| pem_der(&p)));
    let c: Vec<Vec<u8>> =
        [false, true].iter().filter_map(|&d| cms::sign(b"content", d, now, &cert, &key).ok()).collect();
    let t = ses::SealTemplate {
        vid: "seald",
        es_id: "fuzz-1",
        seal_type: 1,
        name: "测试章",
        certs: vec![cert.der()],
        create_date: now,
        valid_start: now,
        valid_end: now + Duration::from_secs(86400),
        picture_type: "PNG",
        picture: b"\x89PNG\r\n\x1a\n",
        width_mm: 40,
        height_mm: 40,
    };
    let mut s = Vec::new();
    let sign = |m: &[u8]| signature::Signer::<DerSignature>::sign(&key, m).into_vec();
    // Time-stamp requests, responses (granted and refused) and signed seal-status answers.
    let mut ts = Vec::new();
    ts.extend(tsp::request(seald::formats::oid::SM3, &[1; 32], 7).ok());
    let request = tsp::Request {
        hash_alg: seald::formats::oid::SHA256.into(),
        hashed: vec![2; 32],
        imprint_der: None,
        policy: None,
        nonce: Some(vec![0x02, 0x01, 0x05]),
        cert_req: true,
    };
    let stamp = tsp::Stamp {
        request: &request,
        policy: seald::formats::oid::SEALD_TSA_POLICY,
        serial: 1,
        time: now,
        accuracy_ms: 1500,
        tsa_cert: &cert,
    };
    let token = tsp::token(&stamp, &key).ok();
    ts.extend(token.as_deref().map(tsp::granted));
    ts.push(tsp::rejection(&tsp::Rejected::new(tsp::FailInfo::BadAlg, "SHA-1")));
    let status = seal_status::StatusTbs {
        es_id: "fuzz-1".into(),
        state: 5,
        since: now - Duration::from_secs(60),
        until: Some(now),
        reason: Some("冻结".into()),
        produced_at: now,
        next_update: None,
    };
    ts.extend(seal_status::tbs(&status).ok().and_then(|t| seal_status::sign(&t, &cert, &key).ok()));
    if let Ok(info) = ses::build_seal_info(&t) {
        if let Ok(seal) = ses::build_seal(&info, cert.der(), seald::formats::oid::ECDSA_SHA256, &sign(&info)) {
            let ext = [ses::ExtData { id: "1.2.156.10197.6.7.2.2.1".into(), critical: true, value: b"ext".to_vec() }];
            if let Ok(tbs) = ses::build_tbs_sign(&seal, now, &[0u8; 32], "/Doc_0/Signs/Sign_0/Signature.xml", &ext) {
                let value = sign(&tbs);
                let alg = seald::formats::oid::ECDSA_SHA256;
                s.extend(ses::build_signature(&tbs, cert.der(), alg, &value, None).ok());
                s.extend(ses::build_signature(&tbs, cert.der(), alg, &value, token.as_deref()).ok());
            }
            s.push(seal);
        }
    }
    Built { x509: x, cms: c, ses: s, tsp: ts }
}

/// The XML files of a package as `xml` inputs: a selector byte (0 `OFD.xml`, 1 a signature list, 2 a
/// `Signature.xml`), then the file.
fn xml_inputs(package: &[u8]) -> Vec<Vec<u8>> {
    use std::io::Read as _;
    let Ok(mut z) = zip::ZipArchive::new(std::io::Cursor::new(package)) else { return Vec::new() };
    let mut out = Vec::new();
    for i in 0..z.len() {
        let Ok(mut f) = z.by_index(i) else { continue };
        let which = match f.name().rsplit('/').next().unwrap_or_default() {
            "OFD.xml" => 0u8,
            "Signatures.xml" => 1,
            "Signature.xml" => 2,
            _ => continue,
        };
        let mut doc = vec![which];
        if f.read_to_end(&mut doc).is_ok() {
            out.push(doc);
        }
    }
    out
}

/// The seed inputs of `target`, from `samples` (when given) and built here. Never empty.
pub fn seeds(target: &str, samples: Option<&Path>) -> Vec<Vec<u8>> {
    let from = |sub: &str, keep: &dyn Fn(&str) -> bool| samples.map(|d| files(&d.join(sub), keep)).unwrap_or_default();
    let ofd_files = || {
        let mut v = from("ofd", &|n| n.ends_with(".ofd"));
        v.extend(from("gmt0010", &|n| n.ends_with(".ofd")));
        v
    };
    let package = crate::zip_of(&crate::PACKAGE);
    let mut out = match target {
        "ses" => {
            let mut v = from("seals", &|_| true);
            v.extend(from("signatures", &|n| n.ends_with(".dat")));
            v.extend(built().ses);
            v
        }
        "cms" => {
            let mut v = from("gmt0010", &|n| n.ends_with(".dat"));
            v.extend(built().cms);
            v
        }
        "x509" => {
            let mut v = from("certs", &|n| n.ends_with(".der"));
            v.extend(built().x509);
            v
        }
        "tsp" => built().tsp,
        "ofd" => {
            let mut v = ofd_files();
            v.push(package);
            v
        }
        "xml" => {
            let mut v: Vec<Vec<u8>> = ofd_files().iter().flat_map(|p| xml_inputs(p)).collect();
            v.extend(xml_inputs(&package));
            v
        }
        _ => Vec::new(),
    };
    if out.is_empty() {
        out.push(vec![0x30, 0x00]);
    }
    out
}
