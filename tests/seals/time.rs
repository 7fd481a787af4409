//! Proofs of time through the registry's services: the TSA's tokens read by OpenSSL (`ts -reply`,
//! `ts -verify` for P-256, `pkeyutl` over the signed attributes for SM2), its refusals, the
//! seal-status service across a freeze and an unfreeze with answers verified offline (and forged
//! ones refused), and seals that carry a time-stamp judged at its time.

use super::*;
use seald::formats::oid::{SHA256, SM3};
use seald::formats::{cms, seal_status, ses, tsp, x509};

fn tsa_cert(w: &World) -> x509::Cert {
    x509::Cert::parse(w.registry.pki().tsa().unwrap().unwrap().cert_pem.as_bytes()).unwrap()
}

fn ca_pem(w: &World) -> String {
    w.registry.pki().issuing_ca().unwrap().unwrap().cert_pem
}

fn anchors(w: &World) -> x509::TrustStore {
    x509::TrustStore::new(vec![x509::Cert::parse(ca_pem(w).as_bytes()).unwrap()], Vec::new())
}

/// `openssl ts ARGS`, in the world's scratch directory: (success, stdout and stderr).
fn ts(w: &World, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl").arg("ts").args(args).current_dir(&w.scratch).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// An `openssl ts -query` for `data` with `digest` (sm3, sha256, sha1 ...), as DER.
fn query(w: &World, data: &[u8], digest: &str) -> Vec<u8> {
    std::fs::write(w.scratch.join("data.bin"), data).unwrap();
    let (ok, out) = ts(w, &["-query", "-data", "data.bin", &format!("-{digest}"), "-cert", "-out", "q.tsq"]);
    assert!(ok, "openssl ts -query: {out}");
    std::fs::read(w.scratch.join("q.tsq")).unwrap()
}

fn reply_text(w: &World, resp: &[u8]) -> String {
    std::fs::write(w.scratch.join("r.tsr"), resp).unwrap();
    let (ok, out) = ts(w, &["-reply", "-in", "r.tsr", "-text"]);
    assert!(ok, "openssl ts -reply -text: {out}");
    out
}

fn stamps_journalled(w: &World) -> usize {
    let q = Query { action: Some("tsa.stamp".into()), ..Default::default() };
    w.journal.query(&q).unwrap().len()
}

#[test]
fn the_sm2_tsa_answers_rfc_3161_and_openssl_reads_its_tokens_and_checks_their_signatures() {
    let w = world();
    let data = "关于启用电子印章的通知".as_bytes();
    let resp = w.registry.tsa().respond(&w.app_a, &query(&w, data, "sm3")).unwrap();
    let text = reply_text(&w, &resp);
    assert!(text.contains("Status: Granted."), "{text}");
    assert!(text.contains("Hash Algorithm: sm3"), "{text}");
    assert!(text.contains(seald::formats::oid::SEALD_TSA_POLICY), "{text}");
    assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
    assert!(text.contains("seald time-stamp authority"), "the TSA name: {text}");
    assert!(text.contains("Nonce: 0x"), "the nonce is echoed: {text}");

    // OpenSSL's SM2 verify over the signed attributes, with the TSA certificate's key.
    let token = tsp::parse_response(&resp).unwrap();
    let sd = cms::parse(&token).unwrap();
    assert_eq!(sd.content_type, seald::formats::oid::CT_TST_INFO);
    assert_eq!(sd.signers[0].digest_alg, SM3);
    let attrs = sd.signers[0].signed_attrs.clone().expect("signed attributes");
    let cert = tsa_cert(&w);
    let pem = cert.public_key().unwrap().to_spki_pem();
    let (ok, out) = common::openssl_sm2_verify(&w.scratch, &pem, &attrs, &sd.signers[0].signature, "1234567812345678");
    assert!(ok, "openssl pkeyutl -verify over the signed attributes: {out}");
    assert_eq!(cert.extended_key_usage(), Some((vec![seald::formats::oid::KP_TIME_STAMPING.to_string()], true)));

    // Our verifier: over the data it holds; not over other data; not without the issuing CA.
    let trust = anchors(&w);
    let opts = ses::VerifyOptions { trust: Some(&trust), ..Default::default() };
    let check = tsp::verify_token(&token, data, &opts);
    assert!(check.ok, "{}", check.detail);
    assert!(!tsp::verify_token(&token, b"other", &opts).ok);
    assert!(!tsp::verify_token(&token, data, &ses::VerifyOptions::default()).ok, "no anchor, no proof");

    // Serial numbers differ; every token is journalled.
    let second = tsp::parse_response(&w.registry.tsa().respond(&w.app_a, &query(&w, data, "sha256")).unwrap()).unwrap();
    let serial = |t: &[u8]| tsp::parse_tst_info(&cms::parse(t).unwrap().content.unwrap()).unwrap().serial;
    assert_ne!(serial(&token), serial(&second));
    assert_eq!(stamps_journalled(&w), 2);
}

#[test]
fn the_tsa_refuses_what_rfc_3161_says_to_refuse_and_stamps_nothing_then() {
    let w = world();
    let tsa = w.registry.tsa();
    let refused = |req: &[u8], why: &str| {
        let resp = tsa.respond(&w.app_a, req).unwrap();
        let text = reply_text(&w, &resp);
        assert!(text.contains("Status: Rejected."), "{text}");
        assert!(text.contains(why), "expected '{why}': {text}");
    };
    refused(&query(&w, b"x", "sha1"), "unrecognized or unsupported algorithm identifier");
    // A SHA-256 imprint of 31 bytes.
    let short = tsp::request(SHA256, &[7u8; 31], 1).unwrap();
    refused(&short, "transaction not permitted or supported");
    // Another policy.
    // OpenSSL's query: SEQUENCE { version 1, messageImprint, ... } (short lengths).
    let q = query(&w, b"x", "sha256");
    let imprint = &q[5..7 + q[6] as usize];
    let sequence = |parts: &[&[u8]]| {
        let body = parts.concat();
        [&[0x30, body.len() as u8][..], &body].concat()
    };
    let policy = [0x06, 0x03, 0x2a, 0x03, 0x04]; // 1.2.3.4
    refused(&sequence(&[&[0x02, 0x01, 0x01], imprint, &policy]), "policy is not supported");
    refused(&sequence(&[&[0x02, 0x01, 0x01], imprint, &[0xa0, 0x02, 0x30, 0x00]]), "extension is not supported");
    refused(&sequence(&[&[0x02, 0x01, 0x02], imprint]), "transaction not permitted or supported");
    refused(&sequence(&[&[0x02, 0x01, 0x01]]), "the data submitted has the wrong format");
    // Not DER at all: no TimeStampResp, an error for a 400.
    assert!(tsa.respond(&w.app_a, b"hello, TSA").is_err());
    assert!(tsa.respond(&w.app_a, &[0x30, 0x80, 0x00, 0x00]).is_err());
    assert_eq!(stamps_journalled(&w), 0, "nothing refused is stamped or journalled as a stamp");
}

#[test]
fn an_unsynchronised_clock_stamps_nothing_and_the_kernel_decides() {
    let w = world();
    let kernel = seald::seal::TsaSettings { clock: seald::clock::ClockSource::Kernel, ..Default::default() };
    let tsa = w.registry.tsa().with_settings(kernel);
    let resp = tsa.respond(&w.app_a, &query(&w, b"x", "sm3")).unwrap();
    let text = reply_text(&w, &resp);
    if seald::clock::state(seald::clock::ClockSource::Kernel).synchronised {
        assert!(text.contains("Status: Granted."), "a synchronised clock stamps: {text}");
    } else {
        assert!(text.contains("Status: Rejected.") && text.contains("time source is not available"), "{text}");
    }
}

/// The issuing CA here is SM2 (the token offers it), and OpenSSL 3.0's `ts -verify` cannot pass an
/// SM2 distinguishing ID to the certificate check. So OpenSSL proves the two halves: `ts -verify`
/// the token (signature, signingCertificateV2, imprint, nonce, timeStamping purpose) with the TSA
/// certificate as the anchor, and `verify -purpose timestampsign` the TSA certificate against the
/// issuing CA with the SM2 ID.
#[test]
fn a_p256_tsa_token_passes_openssl_ts_verify_and_its_certificate_chains_to_the_issuing_ca() {
    let w = world_full(SealSettings::default(), Some(KeyAlg::P256));
    let cert = tsa_cert(&w);
    assert!(matches!(cert.public_key().unwrap(), seald::crypto::PublicKey::P256(_)));
    let data = b"the contract, page 1";
    let req = query(&w, data, "sha256");
    std::fs::write(w.scratch.join("q.tsq"), &req).unwrap();
    let resp = w.registry.tsa().respond(&w.app_a, &req).unwrap();
    std::fs::write(w.scratch.join("r.tsr"), &resp).unwrap();
    std::fs::write(w.scratch.join("ca.pem"), ca_pem(&w)).unwrap();
    std::fs::write(w.scratch.join("tsa.pem"), cert.to_pem()).unwrap();
    let anchored = ["-in", "r.tsr", "-CAfile", "tsa.pem", "-partial_chain"];
    let (ok, out) = ts(&w, &[&["-verify", "-queryfile", "q.tsq"][..], &anchored].concat());
    assert!(ok && out.contains("Verification: OK"), "openssl ts -verify -queryfile: {out}");
    let (ok, out) = ts(&w, &[&["-verify", "-data", "data.bin"][..], &anchored].concat());
    assert!(ok && out.contains("Verification: OK"), "openssl ts -verify -data: {out}");
    let (ok, out) = openssl(&[
        "verify",
        "-purpose",
        "timestampsign",
        "-vfyopt",
        "distid:1234567812345678",
        "-CAfile",
        w.scratch.join("ca.pem").to_str().unwrap(),
        w.scratch.join("tsa.pem").to_str().unwrap(),
    ]);
    assert!(ok, "openssl verify of the TSA certificate against the issuing CA: {out}");
    std::fs::write(w.scratch.join("data.bin"), b"another contract").unwrap();
    let (ok, _) = ts(&w, &[&["-verify", "-data", "data.bin"][..], &anchored].concat());
    assert!(!ok, "a token does not verify over other data");
}

#[test]
fn the_status_service_answers_frozen_inside_the_freeze_and_its_signed_answers_verify_offline() {
    let w = world();
    let id = w.usable(Policy::default());
    let tr = |a: Action| {
        let req = TransitionRequest { reason: Some(format!("{a:?} for the audit")), ..Default::default() };
        w.registry.lifecycle().transition(&w.issuer, &id, a, req).unwrap()
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    let _ = tr(Action::Freeze);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let _ = tr(Action::Unfreeze);
    let history = w.registry.lifecycle().seal(&id).unwrap().history;
    let time_of = |state: SealState| history.iter().rev().find(|h| h.state == state).unwrap().time_ms;
    let (t1, t2) = (history[history.len() - 2].time_ms, history[history.len() - 1].time_ms);
    assert_eq!(time_of(SealState::Frozen), t1);
    let status = w.registry.status();
    let trust = anchors(&w);
    for (at, state) in
        [(t1 - 1, "active"), (t1, "frozen"), (t2 - 1, "frozen"), (t2, "active"), (seald::seal::now_ms(), "active")]
    {
        let a = status.answer(&id, at).unwrap();
        assert_eq!(a.state, state, "at {at} (frozen {t1} to {t2})");
        let (_, signed) = status.signed(&id, at).unwrap();
        let tbs = seal_status::verify(&signed.der, &trust).unwrap();
        assert_eq!((tbs.es_id.as_str(), tbs.state_name()), (id.as_str(), state));
        assert!(tbs.covers(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at)), "{tbs:?} covers {at}");
    }
    let frozen = status.answer(&id, t1).unwrap();
    assert_eq!((frozen.since_ms, frozen.until_ms), (t1, Some(t2)));
    assert_eq!(frozen.reason.as_deref(), Some("Freeze for the audit"));
    assert_eq!(status.answer(&id, 0).unwrap().state, "not_yet_applied");
    assert!(matches!(status.answer("no-such-seal", 0), Err(seald::seal::SealError::NotFound("unknown_seal", _))));

    // Pre-signed: every question inside the closed stretch gets the same answer, signed once.
    let (_, a) = status.signed(&id, t1).unwrap();
    let (_, b) = status.signed(&id, t2 - 1).unwrap();
    assert!(Arc::ptr_eq(&a, &b));

    // A forged answer: one byte of what it says changed, or signed by a key the CA never certified.
    let mut altered = a.der.to_vec();
    let at = altered.windows(id.len()).position(|win| win == id.as_bytes()).unwrap();
    altered[at] ^= 0x01;
    assert!(seal_status::verify(&altered, &trust).unwrap_err().contains("altered or forged"));
    let other = x509::TrustStore::new(
        vec![x509::Cert::parse(seald::devpki::DevCa::new("another CA").unwrap().cert_pem().as_bytes()).unwrap()],
        Vec::new(),
    );
    assert!(seal_status::verify(&a.der, &other).is_err(), "an answer is checked against the issuing CA");
    let tbs =
        seal_status::parse_tbs(&seal_status::tbs(&seal_status::verify(&a.der, &trust).unwrap()).unwrap()).unwrap();
    let cert = x509::Cert::parse(w.registry.pki().status_responder().unwrap().unwrap().cert_pem.as_bytes()).unwrap();
    let forged = seal_status::assemble(
        &seal_status::tbs(&seal_status::StatusTbs { state: 4, ..tbs }).unwrap(),
        seald::formats::oid::SM2_SM3,
        &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        &cert,
    );
    assert!(seal_status::verify(&forged, &trust).is_err(), "a frozen stretch cannot be claimed active");
}

#[test]
fn a_seal_with_a_time_stamp_is_judged_at_its_time_and_one_without_at_timeinfo() {
    let w = world();
    let id = w.usable(Policy::default());
    let hash = seald::crypto::sm3(b"<ofd:Signature/>");
    let how = seald::signing::SealUse { ticket: None, timestamp: true };
    let stamped = w.signing.sign_ses(&w.app_a, &id, &hash, "/Doc_0/Signs/Sign_0/Signature.xml", &[], how).unwrap();
    let sig = ses::SesSignature::parse(&stamped.der).unwrap();
    assert!(sig.timestamp.is_some(), "timeStamp [0] is written");
    assert_eq!(stamped.der[stamped.der.len() - sig.timestamp.as_ref().unwrap().len() - 1..][..1], [0x00]);
    let judged = w.registry.verification().verify_ses(&stamped.der, Some(hash), &Default::default());
    let step = |r: &ses::Report, n: &str| r.steps.iter().find(|s| s.step == n).cloned().unwrap();
    let t = step(&judged, "timestamp");
    assert_eq!(t.ok, Some(true), "{judged:#?}");
    assert!(step(&judged, "seal_validity").detail.contains("by its time-stamp"), "{judged:#?}");
    assert!(judged.valid, "{judged:#?}");

    // (Another propertyInfo: the token signs deterministically, and the same TBS_Sign in the same
    // second would give the same signature value.)
    let plain =
        w.signing.sign_ses(&w.app_a, &id, &hash, "/Doc_0/Signs/Sign_1/Signature.xml", &[], Default::default()).unwrap();
    let judged = w.registry.verification().verify_ses(&plain.der, Some(hash), &Default::default());
    assert_eq!(step(&judged, "timestamp").ok, None);
    assert!(step(&judged, "seal_validity").detail.contains("by timeInfo"), "{judged:#?}");

    // A token over another signature value is named, and fails the signature.
    let other = ses::SesSignature::parse(&plain.der).unwrap();
    let swapped = ses::build_signature(
        &other.tbs,
        &other.signer_cert,
        &other.sign_alg,
        &other.signature,
        sig.timestamp.as_deref(),
    )
    .unwrap();
    let judged = w.registry.verification().verify_ses(&swapped, Some(hash), &Default::default());
    let t = step(&judged, "timestamp");
    assert_eq!(t.ok, Some(false), "{judged:#?}");
    assert!(t.detail.contains("imprint"), "{}", t.detail);
    assert!(!judged.valid);
    assert_eq!(stamps_journalled(&w), 1, "one stamp, journalled");
}

/// An RFC 3161 server made of OpenSSL (`openssl ts -reply`) behind Python's HTTP server, with a
/// P-256 TSA certificate from its own CA: a TSA seald did not write.
struct OpensslTsa {
    child: std::process::Child,
    url: String,
    ca_pem: String,
}

impl Drop for OpensslTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl_tsa(dir: &std::path::Path) -> OpensslTsa {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key"]
        .iter()
        .chain(&["-out", "ca.pem", "-days", "30", "-subj", "/CN=OpenSSL TSA test CA"])
        .chain(&["-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .copied()
        .collect::<Vec<_>>());
    run(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key", "-out"]
        .iter()
        .chain(&["tsa.csr", "-subj", "/CN=OpenSSL TSA"])
        .copied()
        .collect::<Vec<_>>());
    std::fs::write(dir.join("tsa.ext"), "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n")
        .unwrap();
    run(&["x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30"]
        .iter()
        .chain(&["-out", "tsa.pem", "-extfile", "tsa.ext"])
        .copied()
        .collect::<Vec<_>>());
    std::fs::write(
        dir.join("tsa.cnf"),
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = .\nserial = ./tsaserial\ncrypto_device = builtin\n\
         signer_cert = ./tsa.pem\ncerts = ./tsa.pem\nsigner_key = ./tsa.key\nsigner_digest = sha256\n\
         default_policy = 1.2.3.4.1\ndigests = sm3, sha256, sha384, sha512\naccuracy = secs:1\nordering = no\n\
         tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n\
         [ tsa_v1 ]\ndir = .\nserial = ./tsaserial\ncrypto_device = builtin\n\
         signer_cert = ./tsa.pem\ncerts = ./tsa.pem\nsigner_key = ./tsa.key\nsigner_digest = sha256\n\
         default_policy = 1.2.3.4.1\ndigests = sm3, sha256\naccuracy = secs:1\ntsa_name = yes\n",
    )
    .unwrap();
    std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
    let server = r#"
import http.server, subprocess, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        open('q.tsq', 'wb').write(body)
        # /v1: the section whose signingCertificate is the SHA-1 one (OpenSSL's default).
        section = 'tsa_v1' if self.path.endswith('/v1') else 'tsa1'
        r = subprocess.run(['openssl', 'ts', '-reply', '-config', 'tsa.cnf', '-section', section, '-queryfile', 'q.tsq', '-out', 'r.tsr'], capture_output=True)
        data = open('r.tsr', 'rb').read() if r.returncode == 0 else b''
        self.send_response(200 if data else 500)
        self.send_header('Content-Type', 'application/timestamp-reply')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", server])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the OpenSSL TSA");
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the TSA server said '{line}'"));
    OpensslTsa {
        child,
        url: format!("http://127.0.0.1:{port}/tsa"),
        ca_pem: std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
    }
}

#[test]
fn a_token_from_an_openssl_tsa_is_fetched_verified_and_judged_in_a_seal() {
    let w = world();
    let tsa = openssl_tsa(&w.scratch.join("openssl-tsa"));
    let id = w.usable(Policy::default());
    let hash = seald::crypto::sm3(b"<ofd:Signature/>");
    let plain =
        w.signing.sign_ses(&w.app_a, &id, &hash, "/Doc_0/Signs/Sign_0/Signature.xml", &[], Default::default()).unwrap();
    let sig = ses::SesSignature::parse(&plain.der).unwrap();
    let token = seald::seal::external_stamp(
        &tsa.url,
        SM3,
        &seald::crypto::sm3(&sig.signature),
        std::time::Duration::from_secs(10),
    )
    .expect("a token from the OpenSSL TSA");
    let theirs = x509::Cert::parse(tsa.ca_pem.as_bytes()).unwrap();
    let trust = x509::TrustStore::new(vec![theirs.clone()], Vec::new());
    let opts = ses::VerifyOptions { trust: Some(&trust), ..Default::default() };
    let check = tsp::verify_token(&token, &sig.signature, &opts);
    assert!(check.ok, "{}", check.detail);
    assert!(check.detail.contains("OpenSSL TSA"), "{}", check.detail);
    // OpenSSL's default signingCertificate (v1, SHA-1) is read and checked too.
    let v1 = seald::seal::external_stamp(
        &format!("{}/v1", tsa.url),
        SM3,
        &seald::crypto::sm3(&sig.signature),
        std::time::Duration::from_secs(10),
    )
    .expect("a token with an ESS v1 signingCertificate");
    assert!(cms::parse(&v1).unwrap().signers[0].signing_certificate.as_ref().is_some_and(|(v2, _)| !v2));
    let check = tsp::verify_token(&v1, &sig.signature, &opts);
    assert!(check.ok, "{}", check.detail);

    // In a seal: trusted through the configured anchors, the signature is judged at the stamp's time.
    let stamped =
        ses::build_signature(&sig.tbs, &sig.signer_cert, &sig.sign_alg, &sig.signature, Some(&token)).unwrap();
    let judged = w.registry.verification().verify_ses(&stamped, Some(hash), &trust);
    let t = judged.steps.iter().find(|s| s.step == "timestamp").unwrap();
    assert_eq!(t.ok, Some(true), "{judged:#?}");
    assert!(judged.valid, "{judged:#?}");
    // Without their CA among the anchors, the stamp proves nothing: false, never null.
    let judged = w.registry.verification().verify_ses(&stamped, Some(hash), &Default::default());
    let t = judged.steps.iter().find(|s| s.step == "timestamp").unwrap();
    assert_eq!(t.ok, Some(false), "{judged:#?}");
    assert!(t.detail.contains("trust anchor"), "{}", t.detail);

    // A TSA that does not answer in time is an error, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let e = seald::seal::external_stamp(&url, SM3, &[0; 32], std::time::Duration::from_millis(300)).unwrap_err();
    assert!(e.contains("did not answer"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_signed_data_with_a_time_stamp_over_its_signature_is_judged_at_its_time() {
    let w = world();
    let id = w.usable(Policy::default());
    let signed = w.signing.sign_cms(&w.app_a, &id, b"the contract, page 1", false, None).unwrap().der;
    let value = cms::parse(&signed).unwrap().signers[0].signature.clone();
    let token = w.registry.tsa().stamp(&w.app_a, SM3, &seald::crypto::sm3(&value)).unwrap();
    let stamped = cms::with_time_stamp(&signed, &token).unwrap();
    assert_eq!(cms::parse(&stamped).unwrap().signers[0].time_stamp.as_deref(), Some(&token[..]));
    let judged = w.registry.verification().verify_cms(&stamped, None, &Default::default());
    let t = judged.steps.iter().find(|s| s.step == "timestamp").unwrap();
    assert_eq!(t.ok, Some(true), "{judged:#?}");
    assert!(judged.valid, "{judged:#?}");
    // A token over something else fails the SignedData; none at all is no step.
    let other = w.registry.tsa().stamp(&w.app_a, SM3, &seald::crypto::sm3(b"other")).unwrap();
    let judged = w.registry.verification().verify_cms(
        &cms::with_time_stamp(&signed, &other).unwrap(),
        None,
        &Default::default(),
    );
    assert_eq!(judged.steps.iter().find(|s| s.step == "timestamp").unwrap().ok, Some(false));
    assert!(!judged.valid);
    let judged = w.registry.verification().verify_cms(&signed, None, &Default::default());
    assert!(judged.steps.iter().all(|s| s.step != "timestamp"));
    assert!(cms::with_time_stamp(&stamped, &token).is_err(), "one time-stamp attribute per signer");
}
