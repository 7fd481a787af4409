//! End to end: the real `seald run` on 127.0.0.1 with softtoken, talked to over mutual TLS by our
//! client and by curl; signatures checked by OpenSSL; the TLS refusal matrix; bad input; the token
//! going down and coming back; SIGHUP reload; the audit trail of every signature.

mod common;

use base64::Engine as _;
use common::{openssl_sm2_verify, SoftToken};
use seald::client::Client;
use seald::crypto::{self, KeyAlg};
use seald::devpki::{DevCa, Issued};
use seald::token::TokenPool;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap()).unwrap()
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    ca: DevCa,
    token: SoftToken,
    sm2_pem: String,
    p256_pem: String,
    audit_pem: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_identity(dir: &Path, name: &str, i: &Issued) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, &i.cert_pem).unwrap();
    std::fs::write(&k, &i.key_pem).unwrap();
    (c, k)
}

/// Starts `seald run` with an SM2 and a P-256 key, an audit key, and accounts `app` (both keys) and
/// `auditor`; `crl` revokes client serials.
fn start(crl: &[u64]) -> Daemon {
    start_with(crl, "")
}

/// `start`, with extra `[server]` lines.
fn start_with(crl: &[u64], server_extra: &str) -> Daemon {
    start_full(crl, server_extra, &[])
}

/// `start_with`, with extra environment for the daemon.
fn start_full(crl: &[u64], server_extra: &str, envs: &[(&str, String)]) -> Daemon {
    let token = SoftToken::new("softtoken");
    let dir = token.scratch("daemon");
    std::fs::create_dir_all(&dir).unwrap();
    let (sm2, p256, audit) = {
        let pool = TokenPool::open(&token.config()).unwrap();
        (
            pool.generate(KeyAlg::Sm2, "seal-sm2").unwrap(),
            pool.generate(KeyAlg::P256, "seal-p256").unwrap(),
            pool.generate(KeyAlg::Sm2, "audit").unwrap(),
        )
    };
    let ca = DevCa::new("test CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let server = ca.server(1).unwrap();
    let _ = write_identity(&dir, "server", &server);
    let app = ca.client("app", 10, -1, 30).unwrap();
    let auditor = ca.client("auditor", 11, -1, 30).unwrap();
    let _ = write_identity(&dir, "app", &app);
    let _ = write_identity(&dir, "auditor", &auditor);
    std::fs::write(dir.join("crl.pem"), ca.crl(crl, 1).unwrap()).unwrap();
    let d = dir.display();
    let config = format!(
        "[token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{}\"\npin_file = \"{}\"\npool_size = 4\nborrow_timeout_ms = 1000\nrecovery_timeout_ms = 500\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\ncrl = [\"{d}/crl.pem\"]\nmax_body_bytes = 65536\nmax_message_bytes = 4096\n{server_extra}\n\n\
         [verify]\ntrust_anchors = \"{d}/ca.pem\"\ncrl = [\"{d}/crl.pem\"]\n\n\
         [store]\ndir = \"{d}/store\"\n\n[audit]\ndir = \"{d}/journal\"\nkey = \"{}\"\ncheckpoint_every = 10\n\n\
         [[keys]]\nid = \"{}\"\nname = \"seal-sm2\"\n\n[[keys]]\nid = \"{}\"\nname = \"seal-p256\"\n\n\
         [[accounts]]\nname = \"oa-system\"\nrole = \"app\"\nfingerprints = [\"{}\"]\nkeys = [\"seal-sm2\", \"seal-p256\"]\n\n\
         [[accounts]]\nname = \"auditor\"\nrole = \"auditor\"\nfingerprints = [\"{}\"]\n",
        token.module.display(),
        token.label,
        token.pin_file.display(),
        audit.id,
        sm2.id,
        p256.id,
        app.fingerprint,
        auditor.fingerprint,
    );
    std::fs::write(dir.join("seald.toml"), config).unwrap();
    let (child, addr) = common::spawn_seald(&dir.join("seald.toml"), envs);
    Daemon {
        child,
        addr,
        dir,
        ca,
        token,
        sm2_pem: sm2.public_key.to_spki_pem(),
        p256_pem: p256.public_key.to_spki_pem(),
        audit_pem: audit.public_key.to_spki_pem(),
    }
}

impl Daemon {
    /// Sends SIGHUP (reload the TLS files).
    fn hup(&self) {
        let _ = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
    }

    /// What the daemon logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("seald.log")).unwrap_or_default()
    }

    fn client(&self, name: &str) -> Client {
        Client::new(
            self.addr,
            "localhost",
            &self.dir.join("ca.pem"),
            &self.dir.join(format!("{name}.pem")),
            &self.dir.join(format!("{name}.key")),
        )
        .unwrap()
    }
}

async fn call(c: &Client, method: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let body = if body.is_null() { None } else { Some(&body) };
    let (status, bytes) = c.request(method, path, body).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn openssl_p256(dir: &Path, pem: &str, digest: &[u8], der: &[u8]) -> bool {
    common::openssl_verify_digest(dir, pem, digest, der, false).0
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sign_mode_round_trips_and_openssl_verifies_what_each_mode_claims() {
    let d = start(&[]);
    let app = d.client("app");
    let m = "营业执照 document bytes".as_bytes();
    let dir = &d.dir;

    // SM2, message: the server computes Z and e over M.
    let (s, r) =
        call(&app, "POST", "/v1/sign", serde_json::json!({"key": "seal-sm2", "input": "message", "data": b64(m)}))
            .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["alg"].as_str(), r["key_version"].as_u64(), r["encoding"].as_str()),
        (Some("SM2-with-SM3"), Some(1), Some("der"))
    );
    let sig = unb64(&r["signature"]);
    assert!(openssl_sm2_verify(dir, &d.sm2_pem, m, &sig, "1234567812345678").0, "SM2 message");
    let (_, v) = call(
        &app,
        "POST",
        "/v1/verify",
        serde_json::json!({"key": "seal-sm2", "input": "message", "data": b64(m), "signature": r["signature"]}),
    )
    .await;
    assert_eq!(v, serde_json::json!({"valid": true, "reasons": []}));
    let (_, v) = call(&app, "POST", "/v1/verify", serde_json::json!({"public_key": d.sm2_pem, "input": "message", "data": b64(b"other"), "signature": r["signature"]})).await;
    assert_eq!(v, serde_json::json!({"valid": false, "reasons": ["signature_invalid"]}));

    // SM2, digest: the 32-byte digest D is signed as the message, so OpenSSL verifies over D.
    let dgst = crypto::sm3(m);
    let (s, r) = call(&app, "POST", "/v1/sign", serde_json::json!({"key": "seal-sm2", "input": "digest", "data": b64(&dgst), "digest_alg": "sm3", "encoding": "raw"})).await;
    assert_eq!(s, 200, "{r}");
    let raw = unb64(&r["signature"]);
    assert_eq!(raw.len(), 64, "raw r||s");
    assert!(
        openssl_sm2_verify(dir, &d.sm2_pem, &dgst, &crypto::raw_to_der(&raw).unwrap(), "1234567812345678").0,
        "SM2 digest"
    );

    // SM2, e: the client computed e itself, with the Z that GET /v1/keys/{id} gives it.
    let (s, k) = call(&app, "GET", "/v1/keys/seal-sm2", serde_json::Value::Null).await;
    assert_eq!(s, 200);
    let z = hex::decode(k["sm2_z_default_id"].as_str().unwrap()).unwrap();
    let e = crypto::sm3(&[z.as_slice(), m].concat());
    let (s, r) =
        call(&app, "POST", "/v1/sign", serde_json::json!({"key": "seal-sm2", "input": "e", "data": b64(&e)})).await;
    assert_eq!(s, 200, "{r}");
    assert!(openssl_sm2_verify(dir, &d.sm2_pem, m, &unb64(&r["signature"]), "1234567812345678").0, "SM2 e");

    // SM2 with another signer ID.
    let (_, r) = call(
        &app,
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "seal-sm2", "input": "message", "data": b64(m), "user_id": "ALICE123@YAHOO.COM"}),
    )
    .await;
    assert!(openssl_sm2_verify(dir, &d.sm2_pem, m, &unb64(&r["signature"]), "ALICE123@YAHOO.COM").0, "SM2 user_id");

    // P-256, message and digest.
    let (_, r) =
        call(&app, "POST", "/v1/sign", serde_json::json!({"key": "seal-p256", "input": "message", "data": b64(m)}))
            .await;
    assert!(openssl_p256(dir, &d.p256_pem, &crypto::sha256(m), &unb64(&r["signature"])), "P-256 message");
    let (_, r) = call(
        &app,
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&crypto::sha256(m))}),
    )
    .await;
    assert!(openssl_p256(dir, &d.p256_pem, &crypto::sha256(m), &unb64(&r["signature"])), "P-256 digest");

    // Batch: order kept, per-item errors.
    let items: Vec<_> = (0..20u8)
        .map(|i| {
            if i == 7 {
                serde_json::json!({"key": "nope", "input": "digest", "data": b64(&[i; 32])})
            } else {
                serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&[i; 32])})
            }
        })
        .collect();
    let (s, r) = call(&app, "POST", "/v1/sign/batch", serde_json::json!({ "items": items })).await;
    assert_eq!(s, 200);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 20);
    for (i, item) in results.iter().enumerate() {
        if i == 7 {
            assert_eq!((&item["status"], &item["error"]["code"]), (&"error".into(), &"unknown_key".into()));
        } else {
            assert_eq!(item["status"], "ok", "{item}");
            assert!(openssl_p256(dir, &d.p256_pem, &[i as u8; 32], &unb64(&item["signature"])), "batch item {i}");
        }
    }
    let checks: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(i, it)| serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&[i as u8; 32]), "signature": it["signature"]}))
        .collect();
    let (_, r) = call(&app, "POST", "/v1/verify/batch", serde_json::json!({ "items": checks })).await;
    assert!(r["results"].as_array().unwrap().iter().all(|v| v["valid"] == true && v["status"] == "ok"), "{r}");

    // Every signature is in the journal, with the digest of what was signed; only the auditor reads it.
    let (s, _) = call(&app, "GET", "/v1/audit/export", serde_json::Value::Null).await;
    assert_eq!(s, 403);
    let auditor = d.client("auditor");
    let (s, text) = call(&auditor, "GET", "/v1/audit/export", serde_json::Value::Null).await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap().to_string();
    let signs = text.lines().filter(|l| l.contains("\"action\":\"sign\"") && l.contains("\"outcome\":\"ok\"")).count();
    assert_eq!(signs, 6 + 19, "one usage record per signature");
    assert!(text.contains(&hex::encode(crypto::sm3(m))), "SM2 message: SM3(M) is recorded");
    assert!(text.contains(&hex::encode(crypto::sha256(m))), "P-256 message: SHA-256(M) is recorded");
    assert!(text.contains(&hex::encode(e)), "e mode: the posted e is recorded");
    let export = seald::audit::read_export(&text).unwrap();
    let key = crypto::PublicKey::from_spki_pem(&d.audit_pem).unwrap();
    assert!(export.verify(&key).ok(), "{:?}", export.verify(&key));
    let (s, report) = call(&auditor, "GET", "/v1/audit/verify", serde_json::Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!(report["finding"], serde_json::Value::Null);
    assert_eq!(report["signatures_checked"], true);

    // The same records a page at a time through the journal's indexes: pages of 7 chained by their
    // cursors give the export's signatures, in order; newest first gives them reversed; a cursor
    // belongs to its query; only the auditor may ask.
    let signed: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("\"action\":\"sign\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .collect();
    let account = signed[0]["actor"]["account"].as_str().unwrap().to_string();
    let exported: Vec<u64> = signed
        .iter()
        .filter(|r| r["actor"]["account"] == account.as_str())
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let walk = |order: &'static str| {
        let (auditor, account) = (&auditor, account.clone());
        async move {
            let (mut seqs, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let mut path = format!("/v1/audit/records?action=sign&actor={account}&limit=7&order={order}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let (s, r) = call(auditor, "GET", &path, serde_json::Value::Null).await;
                assert_eq!(s, 200, "{r}");
                pages += 1;
                let recs = r["records"].as_array().unwrap();
                assert!(recs.len() <= 7);
                assert!(recs.iter().all(|x| x["action"] == "sign" && x["actor"]["account"] == account.as_str()));
                seqs.extend(recs.iter().map(|x| x["seq"].as_u64().unwrap()));
                match r["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => return (seqs, pages, cursor),
                }
            }
        }
    };
    let (seqs, pages, _) = walk("oldest").await;
    assert_eq!(seqs, exported);
    assert!(pages >= exported.len() / 7, "{pages} pages for {} records", exported.len());
    let (mut back, _, _) = walk("newest").await;
    back.reverse();
    assert_eq!(back, exported);
    let (_, first) =
        call(&auditor, "GET", &format!("/v1/audit/records?actor={account}&limit=2"), serde_json::Value::Null).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (s, r) =
        call(&auditor, "GET", &format!("/v1/audit/records?actor=auditor&cursor={cursor}"), serde_json::Value::Null)
            .await;
    assert_eq!((s, &r["error"]["code"]), (400, &"bad_cursor".into()), "{r}");
    let (s, r) = call(&auditor, "GET", "/v1/audit/records?limit=0", serde_json::Value::Null).await;
    assert_eq!((s, &r["error"]["code"]), (400, &"bad_input".into()), "{r}");
    let (s, _) = call(&app, "GET", "/v1/audit/records", serde_json::Value::Null).await;
    assert_eq!(s, 403);
}

fn curl<S: AsRef<std::ffi::OsStr>>(d: &Daemon, args: &[S], path: &str) -> (bool, String) {
    common::require_tool("curl", "curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", d.dir.join("ca.pem").to_str().unwrap()])
        .args(args)
        .arg(format!("https://localhost:{}{path}", d.addr.port()))
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tls_refusal_matrix() {
    let d = start(&[66]);
    let dir = &d.dir;
    let id = |name: &str| {
        [
            "--cert".to_string(),
            dir.join(format!("{name}.pem")).display().to_string(),
            "--key".to_string(),
            dir.join(format!("{name}.key")).display().to_string(),
        ]
    };
    // A good client works.
    let (ok, out) = curl(&d, &id("app"), "/v1/keys");
    assert!(ok && out.contains("seal-sm2"), "{out}");
    let (ok, headers) = curl(
        &d,
        &[&id("app")[..], &["-D".to_string(), "-".to_string(), "-o".to_string(), "/dev/null".to_string()]].concat(),
        "/healthz",
    );
    assert!(ok && headers.to_ascii_lowercase().contains("x-request-id: "), "{headers}");
    // HEAD over HTTP/2 (curl's default with ALPN) gets headers and no body: no protocol error.
    let (ok, head) = curl(&d, &[&id("app")[..], &["-I".to_string()]].concat(), "/v1/keys");
    assert!(ok && head.starts_with("HTTP/2 405"), "{head}");
    // No client certificate: the handshake fails.
    let (ok, out) = curl::<&str>(&d, &[], "/v1/keys");
    assert!(!ok, "no client certificate was accepted: {out}");
    // A certificate from another CA.
    let other = DevCa::new("other CA").unwrap();
    let _ = write_identity(dir, "stranger", &other.client("app", 10, -1, 30).unwrap());
    let (ok, out) = curl(&d, &id("stranger"), "/v1/keys");
    assert!(!ok, "another CA's certificate was accepted: {out}");
    // Expired, and not yet valid.
    let _ = write_identity(dir, "expired", &d.ca.client("expired", 20, -30, -1).unwrap());
    assert!(!curl(&d, &id("expired"), "/v1/keys").0, "an expired certificate was accepted");
    let _ = write_identity(dir, "future", &d.ca.client("future", 21, 2, 30).unwrap());
    assert!(!curl(&d, &id("future"), "/v1/keys").0, "a not-yet-valid certificate was accepted");
    // Revoked (serial 66 is on the CRL).
    let _ = write_identity(dir, "revoked", &d.ca.client("revoked", 66, -1, 30).unwrap());
    assert!(!curl(&d, &id("revoked"), "/v1/keys").0, "a revoked certificate was accepted");
    // sealctl says in words why each was refused (exit status 3: no answer from the daemon).
    let sealctl = |who: &str, ca: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sealctl"))
            .args(["unit", "list", "--timeout", "5"])
            .env("SEALCTL_SERVER", format!("https://localhost:{}", d.addr.port()))
            .env("SEALCTL_CA", dir.join(ca))
            .env("SEALCTL_CERT", dir.join(format!("{who}.pem")))
            .env("SEALCTL_KEY", dir.join(format!("{who}.key")))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (who, says) in [
        ("revoked", "it is revoked"),
        ("expired", "it has expired or is not valid yet"),
        ("stranger", "does not chain to the daemon's client CA"),
    ] {
        let (code, err) = sealctl(who, "ca.pem");
        assert!(code == Some(3) && err.contains(says), "{who}: {code:?} {err}");
    }
    std::fs::write(dir.join("other-ca.pem"), other.cert_pem()).unwrap();
    let (code, err) = sealctl("app", "other-ca.pem");
    assert!(code == Some(3) && err.contains("does not chain to the CA given with --ca"), "{code:?} {err}");
    // A good certificate that belongs to no account: 403.
    let _ = write_identity(dir, "unknown", &d.ca.client("unknown", 30, -1, 30).unwrap());
    let (ok, out) =
        curl(&d, &[&id("unknown")[..], &["-w".to_string(), " %{http_code}".to_string()]].concat(), "/v1/keys");
    assert!(ok && out.contains("unknown_identity") && out.ends_with(" 403"), "{out}");
    // The app may not read the audit log; the auditor may not sign.
    let (_, out) = curl(
        &d,
        &[&id("auditor")[..], &["-d".into(), r#"{"key":"seal-sm2","input":"message","data":"aGk="}"#.into()]].concat(),
        "/v1/sign",
    );
    assert!(out.contains("\"forbidden\""), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_ten_thousand_random_bodies_do_not_take_the_daemon_down() {
    let d = start(&[]);
    let app = d.client("app");
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (serde_json::json!({"key": "seal-sm2", "input": "message", "data": "***"}), 400, "bad_base64"),
        (serde_json::json!({"key": "seal-sm2", "input": "digest", "data": b64(&[1; 31])}), 400, "bad_input"),
        (serde_json::json!({"key": "seal-p256", "input": "e", "data": b64(&[1; 32])}), 400, "bad_input"),
        (
            serde_json::json!({"key": "seal-sm2", "input": "digest", "data": b64(&[1; 32]), "digest_alg": "sha256"}),
            400,
            "bad_input",
        ),
        (serde_json::json!({"key": "nope", "input": "message", "data": "aGk="}), 404, "unknown_key"),
        (serde_json::json!({"key": "seal-sm2", "input": "message", "data": b64(&[0; 5000])}), 413, "too_large"),
        (serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk=", "stamp": "x"}), 400, "bad_json"),
        (serde_json::json!({"key": "seal-sm2", "seal": "x", "input": "message", "data": "aGk="}), 400, "bad_input"),
        (serde_json::json!({"key": "seal-sm2", "input": "pdf", "data": "aGk="}), 400, "bad_json"),
    ];
    for (body, status, code) in cases {
        let (s, r) = call(&app, "POST", "/v1/sign", body.clone()).await;
        assert_eq!((s, r["error"]["code"].as_str()), (status, Some(code)), "{body} -> {r}");
        assert!(r["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (s, r) = call(&app, "POST", "/v1/sign", serde_json::Value::String("x".repeat(70_000))).await;
    assert_eq!((s, r["error"]["code"].as_str()), (413, Some("too_large")));
    let (s, _) = call(&app, "DELETE", "/v1/sign", serde_json::Value::Null).await;
    assert_eq!(s, 405);
    let (s, _) = call(&app, "GET", "/v2/anything", serde_json::Value::Null).await;
    assert_eq!(s, 404);
    let (s, r) = call(&app, "POST", "/v1/sign/batch", serde_json::json!({"items": []})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (400, Some("bad_input")));

    // 10 000 random bodies on random routes, over 8 connections' worth of concurrency.
    let routes = ["/v1/sign", "/v1/verify", "/v1/sign/batch", "/v1/verify/batch"];
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ t;
            let mut statuses = Vec::new();
            for i in 0..1250u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % 300) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|j| (x.rotate_left(j as u32 % 64) >> 3) as u8).collect();
                if i % 3 == 0 {
                    // Mostly-valid JSON with wrong pieces.
                    bytes = format!(
                        r#"{{"key":"seal-sm2","input":"{}","data":"{}"}}"#,
                        ["message", "digest", "e", "x"][(x % 4) as usize],
                        b64(&bytes)
                    )
                    .into_bytes();
                }
                let route = routes[(x % 4) as usize];
                let body: serde_json::Value = serde_json::from_slice(&bytes)
                    .unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
                let (s, _) = app.request("POST", route, Some(&body)).await.unwrap();
                statuses.push(s);
            }
            statuses
        }));
    }
    for t in tasks {
        for s in t.await.unwrap() {
            assert!((200..500).contains(&s), "a random body got {s}");
        }
    }
    let (s, _) =
        call(&app, "POST", "/v1/sign", serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk="}))
            .await;
    assert_eq!(s, 200, "the daemon still serves");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_going_down_gives_503_and_coming_back_gives_200_without_a_restart() {
    let d = start(&[]);
    let app = d.client("app");
    let sign = serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk="});
    assert_eq!(call(&app, "POST", "/v1/sign", sign.clone()).await.0, 200);
    d.token.set_fault("removed\n");
    let (s, r) = call(&app, "POST", "/v1/sign", sign.clone()).await;
    assert_eq!((s, r["error"]["code"].as_str()), (503, Some("token_unavailable")), "{r}");
    let (s, r) = call(&app, "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(s, 503, "{r}");
    assert_eq!(r["ready"], false);
    d.token.set_fault("");
    let mut ok = false;
    for _ in 0..50 {
        if call(&app, "GET", "/readyz", serde_json::Value::Null).await.0 == 200
            && call(&app, "POST", "/v1/sign", sign.clone()).await.0 == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the daemon did not come back after the token did");
    let (_, metrics) = call(&app, "GET", "/metrics", serde_json::Value::Null).await;
    let m = metrics.as_str().unwrap();
    assert!(m.contains("seald_requests_total{route=\"/v1/sign\",status=\"503\"}"), "{m}");
    assert!(m.contains("seald_signatures_total{key=\"seal-sm2\"}"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_server_certificate_while_a_connection_stays_open() {
    use hyper_util::rt::TokioIo;
    let d = start(&[]);
    let server_fp = |pem: &str| {
        let der =
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_slice(pem.as_bytes())
                .unwrap();
        hex::encode(crypto::sha256(der.as_ref()))
    };
    let old_fp = server_fp(&std::fs::read_to_string(d.dir.join("server.pem")).unwrap());
    // Keep one HTTP/1.1 connection open across the reload.
    let cfg = seald::tls::client_config(&d.dir.join("ca.pem"), &d.dir.join("app.pem"), &d.dir.join("app.key")).unwrap();
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    let seen_fp = hex::encode(crypto::sha256(tls.get_ref().1.peer_certificates().unwrap()[0].as_ref()));
    assert_eq!(seen_fp, old_fp);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    drop(tokio::spawn(conn));
    let get = |sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>| {
        let req = hyper::Request::get("/healthz")
            .header("host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        sender.send_request(req)
    };
    assert_eq!(get(&mut sender).await.unwrap().status(), 200);
    // A new server certificate, then SIGHUP.
    let fresh = d.ca.server(2).unwrap();
    std::fs::write(d.dir.join("server.pem"), &fresh.cert_pem).unwrap();
    std::fs::write(d.dir.join("server.key"), &fresh.key_pem).unwrap();
    assert!(Command::new("kill").args(["-HUP", &d.child.id().to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The old connection still works; a new one sees the new certificate.
    assert_eq!(get(&mut sender).await.unwrap().status(), 200, "the open connection survived the reload");
    let cfg = seald::tls::client_config(&d.dir.join("ca.pem"), &d.dir.join("app.pem"), &d.dir.join("app.key")).unwrap();
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    let new_fp = hex::encode(crypto::sha256(tls.get_ref().1.peer_certificates().unwrap()[0].as_ref()));
    assert_eq!(new_fp, fresh.fingerprint);
    assert_ne!(new_fp, old_fp);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_and_leaves_a_journal_that_verifies_offline() {
    let mut d = start(&[]);
    let app = d.client("app");
    for i in 0..25u8 {
        let (s, _) = call(
            &app,
            "POST",
            "/v1/sign",
            serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&[i; 32])}),
        )
        .await;
        assert_eq!(s, 200);
    }
    assert!(Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap().success());
    let status = d.child.wait().unwrap();
    assert!(status.success(), "seald exits 0 on SIGTERM: {status:?}");
    let pem = d.dir.join("audit-key.pem");
    std::fs::write(&pem, &d.audit_pem).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args([
            "audit",
            "verify",
            "--json",
            "--journal",
            d.dir.join("journal").to_str().unwrap(),
            "--pubkey",
            pem.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["finding"], serde_json::Value::Null, "{report}");
    assert_eq!(
        report["signed_through"].as_u64(),
        report["last_seq"].as_u64().map(|s| s - 1),
        "the stop checkpoint covers everything: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sealctl_verifies_and_exports_the_audit_log_through_the_daemon() {
    let d = start(&[]);
    let app = d.client("app");
    for i in 0..12u8 {
        assert_eq!(
            call(
                &app,
                "POST",
                "/v1/sign",
                serde_json::json!({"key": "seal-sm2", "input": "digest", "data": b64(&[i; 32])})
            )
            .await
            .0,
            200
        );
    }
    let server = format!("https://localhost:{}", d.addr.port());
    let who = |name: &str| {
        vec![
            "--server".to_string(),
            server.clone(),
            "--ca".into(),
            d.dir.join("ca.pem").display().to_string(),
            "--cert".into(),
            d.dir.join(format!("{name}.pem")).display().to_string(),
            "--key".into(),
            d.dir.join(format!("{name}.key")).display().to_string(),
        ]
    };
    let sealctl = |args: Vec<String>| Command::new(env!("CARGO_BIN_EXE_sealctl")).args(args).output().unwrap();
    let o = sealctl([vec!["audit".into(), "verify".into()], who("auditor")].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("OK:") && out.contains("signatures checked"), "{out}");
    let file = d.dir.join("remote-export.jsonl");
    let o = sealctl(
        [vec!["audit".into(), "export".into(), "--out".into(), file.display().to_string()], who("auditor")].concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pem = d.dir.join("audit-pub.pem");
    std::fs::write(&pem, &d.audit_pem).unwrap();
    let o = sealctl(vec![
        "audit".into(),
        "verify".into(),
        "--export".into(),
        file.display().to_string(),
        "--pubkey".into(),
        pem.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    // Only the auditor role may: the app's certificate gets 403, which sealctl reports (exit 2).
    let o = sealctl([vec!["audit".into(), "verify".into()], who("app")].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("403"));
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_with_a_signer_certificate_names_every_failed_check() {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let d = start(&[72]);
    let app = d.client("app");
    let crypto::PublicKey::P256(pk) = crypto::PublicKey::from_spki_pem(&d.p256_pem).unwrap() else { unreachable!() };
    let point = pk.to_encoded_point(false);
    let good = d.ca.certify_p256("seal-p256", point.as_bytes(), 70, -1, 365).unwrap();
    let expired = d.ca.certify_p256("seal-p256", point.as_bytes(), 71, -400, -1).unwrap();
    let revoked = d.ca.certify_p256("seal-p256", point.as_bytes(), 72, -1, 365).unwrap();
    let stranger = DevCa::new("not trusted").unwrap().certify_p256("seal-p256", point.as_bytes(), 70, -1, 365).unwrap();
    let digest = crypto::sha256(b"a contract");
    let (_, r) = call(
        &app,
        "POST",
        "/v1/sign",
        serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&digest)}),
    )
    .await;
    let verify = |cert: &str, data: &[u8]| serde_json::json!({"certificate": cert, "input": "digest", "data": b64(data), "signature": r["signature"]});
    let cases = [
        (verify(&good.cert_pem, &digest), serde_json::json!([])),
        (verify(&expired.cert_pem, &digest), serde_json::json!(["certificate_expired"])),
        (verify(&revoked.cert_pem, &digest), serde_json::json!(["certificate_revoked"])),
        (verify(&stranger.cert_pem, &digest), serde_json::json!(["certificate_untrusted"])),
        (verify(&expired.cert_pem, &[0u8; 32]), serde_json::json!(["signature_invalid", "certificate_expired"])),
    ];
    for (body, reasons) in cases {
        let (s, v) = call(&app, "POST", "/v1/verify", body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["reasons"], reasons);
        assert_eq!(v["valid"], reasons.as_array().unwrap().is_empty());
    }
    let (s, v) = call(&app, "POST", "/v1/verify", serde_json::json!({"certificate": "not a cert", "input": "digest", "data": b64(&digest), "signature": r["signature"]})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_certificate")));
    let (s, v) = call(&app, "POST", "/v1/verify", serde_json::json!({"key": "seal-p256", "certificate": good.cert_pem, "input": "digest", "data": b64(&digest), "signature": r["signature"]})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_input")),
        "exactly one of key, public_key, certificate"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_gets_its_413_even_from_a_client_that_writes_it_all_first() {
    use tokio::io::AsyncWriteExt as _;
    // max_body_bytes is 65536 here. Clients such as Python's http.client write the whole body before
    // they read: if the daemon answers at the limit and closes with the rest unread, the kernel
    // resets the connection and the client sees "EOF occurred in violation of protocol", not the 413.
    let d = start(&[]);
    for size in [3 * 65_536, 8 << 20] {
        let mut tls = connect_from(&d, "127.0.0.1", "app").await.unwrap();
        let head = format!(
            "POST /v1/sign/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&vec![b' '; size]).await.expect("the daemon reads the body it refuses");
        tls.flush().await.unwrap();
        let answer = http1_answer(&mut tls).await.unwrap_or_else(|e| panic!("{size}: no answer: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("\"too_large\""), "{size}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_given_before_the_body_was_read_closes_the_connection_and_says_so() {
    use tokio::io::AsyncWriteExt as _;
    // HTTP/1.1: a request refused before its body is read (here 405) leaves that body on the
    // connection, which then cannot carry another request. Without `connection: close` a client
    // that keeps connections sends its next request into one that is closing, and sees an EOF.
    let d = start(&[]);
    let ask = |head: &'static str, body: &'static str| {
        let d = &d;
        async move {
            let mut tls = connect_from(d, "127.0.0.1", "app").await.unwrap();
            let request = format!("{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            tls.write_all(request.as_bytes()).await.unwrap();
            http1_answer(&mut tls).await.expect("an answer").to_ascii_lowercase()
        }
    };
    let refused = ask("PUT /v1/sign HTTP/1.1", "{\"key\": \"seal-sm2\"}").await;
    assert!(refused.starts_with("http/1.1 405") && refused.contains("\r\nconnection: close\r\n"), "{refused}");
    let served =
        ask("POST /v1/sign HTTP/1.1", "{\"key\": \"seal-sm2\", \"input\": \"message\", \"data\": \"aGk=\"}").await;
    assert!(served.starts_with("http/1.1 200") && !served.contains("connection: close"), "{served}");
    let bad = ask("POST /v1/sign HTTP/1.1", "{}").await;
    assert!(
        bad.starts_with("http/1.1 400") && !bad.contains("connection: close"),
        "a body read to its end keeps the connection: {bad}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_slow_clients_are_cut_off_and_the_connection_cap_holds() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let d = start_with(&[], "handshake_timeout_s = 2\nheader_timeout_s = 2\nmax_connections = 20");
    let app = d.client("app");
    let ok = serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk="});
    // Fifteen silent TCP clients: the daemon still serves others at once.
    let mut silent = Vec::new();
    for _ in 0..15 {
        silent.push(tokio::net::TcpStream::connect(d.addr).await.unwrap());
    }
    assert_eq!(call(&app, "POST", "/v1/sign", ok.clone()).await.0, 200);
    // A client that finishes TLS but dribbles its headers.
    let cfg = seald::tls::client_config(&d.dir.join("ca.pem"), &d.dir.join("app.pem"), &d.dir.join("app.key")).unwrap();
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let mut slow = tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    slow.write_all(b"POST /v1/sign HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    // Both kinds are cut off within the limits (2 s), and their places are freed.
    let started = std::time::Instant::now();
    for mut s in silent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(6), s.read(&mut buf))
            .await
            .expect("silent client not cut off")
            .unwrap_or(0);
        assert!(n == 0 || buf[0] == 0x15, "the server closes (or alerts) the silent connection");
    }
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(6), slow.read(&mut buf))
        .await
        .expect("slow client not cut off")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // The cap: with 20 connections held, a 21st is closed; once they go, service resumes.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(d.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.request("POST", "/v1/sign", Some(&ok)).await.is_err(), "a connection beyond the cap was served");
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        if matches!(app.request("POST", "/v1/sign", Some(&ok)).await, Ok((200, _))) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "service did not resume after the held connections went away");
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_then_the_watchdog_while_the_token_answers_then_stopping() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock_path = sockdir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let envs = [("NOTIFY_SOCKET", sock_path.display().to_string()), ("WATCHDOG_USEC", "400000".to_string())];
    let d = start_full(&[], "", &envs);
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification from seald");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.starts_with("READY=1"), "{first}");
    assert_eq!(recv(), "WATCHDOG=1");
    // A token that does not answer: no more watchdog pings, the status says why.
    d.token.set_fault("removed\n");
    let mut saw_down = false;
    for _ in 0..6 {
        let m = recv();
        assert_ne!(m, "WATCHDOG=1", "the watchdog was fed while the token was down");
        saw_down |= m.starts_with("STATUS=token down");
        if saw_down {
            break;
        }
    }
    assert!(saw_down);
    d.token.set_fault("");
    let mut fed = false;
    for _ in 0..20 {
        if recv() == "WATCHDOG=1" {
            fed = true;
            break;
        }
    }
    assert!(fed, "the watchdog is fed again once the token is back");
    assert!(Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap().success());
    let mut stopping = false;
    for _ in 0..10 {
        if recv() == "STOPPING=1" {
            stopping = true;
            break;
        }
    }
    assert!(stopping);
}

/// One HTTP/1.1 answer read by hand from a connection that may stay open: the head, then as many
/// body bytes as its `content-length` says (within 10 s).
async fn http1_answer(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().parse::<usize>()))
                .and_then(Result::ok)
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(text);
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut chunk)).await {
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no complete answer in 10 s")),
            Ok(Ok(0)) => return Ok(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// One request on a connection from `source` (a loopback address other than 127.0.0.1 stands for
/// another machine), with `name`'s certificate, over a connection the caller keeps.
async fn connect_from(
    d: &Daemon,
    source: &str,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let cfg = seald::tls::client_config(
        &d.dir.join("ca.pem"),
        &d.dir.join(format!("{name}.pem")),
        &d.dir.join(format!("{name}.key")),
    )
    .unwrap();
    let tcp = tcp_from(d.addr, source).await?;
    tokio_rustls::TlsConnector::from(cfg).connect("localhost".try_into().unwrap(), tcp).await
}

async fn tcp_from(addr: SocketAddr, source: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(addr).await
}

/// `GET path` on an open HTTP/1.1 connection; `None` when the connection is gone.
async fn get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.ok()?.ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attacker_holding_every_connection_it_can_does_not_keep_a_client_from_signing() {
    // Small budgets so that the attack fills them; the well-behaved client comes from 127.0.0.1, the
    // attackers from 127.0.0.2 (no certificate: raw TCP) and 127.0.0.3 (a valid certificate, silent).
    let d = start_with(
        &[],
        "max_connections = 48\nmax_handshakes = 24\nmax_connections_per_address = 16\nmax_handshakes_per_address = 8\nhandshake_timeout_s = 4\nidle_timeout_s = 2",
    );
    let app = d.client("app");
    let ok = serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk="});
    let mut normal = Vec::new();
    for _ in 0..10 {
        let t = std::time::Instant::now();
        assert_eq!(call(&app, "POST", "/v1/sign", ok.clone()).await.0, 200);
        normal.push(t.elapsed());
    }
    normal.sort();
    let median = normal[normal.len() / 2];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Attacker 1: as many raw TCP connections as it can, re-opened as soon as they are closed.
    let raw = {
        let (stop, addr) = (stop.clone(), d.addr);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = tcp_from(addr, "127.0.0.2").await {
                    held.push(s);
                }
                if held.len() > 200 {
                    let _ = held.remove(0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            held.len()
        })
    };
    // Attacker 2: handshakes with a valid certificate and never speaks, again and again.
    let silent = {
        let stop = stop.clone();
        let dir = d.dir.clone();
        let addr = d.addr;
        tokio::spawn(async move {
            let cfg =
                seald::tls::client_config(&dir.join("ca.pem"), &dir.join("auditor.pem"), &dir.join("auditor.key"))
                    .unwrap();
            let mut held = Vec::new();
            let mut established = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(tcp) = tcp_from(addr, "127.0.0.3").await {
                    let c = tokio_rustls::TlsConnector::from(cfg.clone());
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(1), c.connect("localhost".try_into().unwrap(), tcp))
                            .await
                    {
                        established += 1;
                        held.push(s);
                    }
                }
                if held.len() > 200 {
                    let _ = held.remove(0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            established
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Under attack, the client still signs, each time about as fast as before.
    let mut attacked = Vec::new();
    for i in 0..30 {
        let t = std::time::Instant::now();
        let (status, body) = call(&app, "POST", "/v1/sign", ok.clone()).await;
        assert_eq!(status, 200, "signature {i} under attack: {body}");
        attacked.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attacked.sort();
    let (worst, attacked_median) = (attacked[attacked.len() - 1], attacked[attacked.len() / 2]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (raw_held, silent_established) = (raw.await.unwrap(), silent.await.unwrap());
    eprintln!(
        "under attack: normal median {median:?}; under attack median {attacked_median:?}, worst of 30 {worst:?}; the silent attacker \
         completed {silent_established} handshakes, the raw one held {raw_held} sockets"
    );
    assert!(
        worst < Duration::from_secs(1).max(median * 20),
        "a signature under attack took {worst:?} (normally {median:?})"
    );
    // The door, not luck, kept the attackers out: their connections were refused and cut off.
    let (_, m) = call(&app, "GET", "/metrics", serde_json::Value::Null).await;
    let m = m.as_str().unwrap().to_string();
    assert!(metric(&m, "seald_connections_closed_total{reason=\"address_handshakes\"}") > 0, "{m}");
    assert!(
        metric(&m, "seald_connections_closed_total{reason=\"address_connections\"}")
            + metric(&m, "seald_connections_closed_total{reason=\"idle\"}")
            > 0,
        "{m}"
    );
    assert!(silent_established > 16, "the silent attacker got {silent_established} connections");
    assert!(raw_held > 8, "the raw attacker held {raw_held} connections");
    // Refusals are counted, not logged one by one.
    let log = d.log();
    let lines = log.lines().filter(|l| l.contains("connection closed")).count();
    let closed: u64 = m
        .lines()
        .filter(|l| l.starts_with("seald_connections_closed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    eprintln!("{closed} connections refused or closed, {lines} log lines about them");
    assert!(lines < 40, "{lines} log lines for refused connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_certificate_closes_its_open_connections_and_connections_age_out() {
    let d = start_with(&[], "max_connection_age_s = 3");
    let mut open = connect_from(&d, "127.0.0.1", "app").await.unwrap();
    assert!(get_on(&mut open, "/v1/keys").await.unwrap().starts_with("HTTP/1.1 200"));
    let mut other = connect_from(&d, "127.0.0.1", "auditor").await.unwrap();
    assert!(get_on(&mut other, "/v1/keys").await.unwrap().starts_with("HTTP/1.1 200"));
    // Revoke the app's certificate (serial 10) and reload.
    std::fs::write(d.dir.join("crl.pem"), d.ca.crl(&[10], 2).unwrap()).unwrap();
    d.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(get_on(&mut open, "/v1/keys").await.is_none(), "the revoked client kept its connection");
    assert!(
        connect_from(&d, "127.0.0.1", "app").await.is_err()
            || d.client("app").request("GET", "/v1/keys", None).await.is_err()
    );
    // The other client's connection stays, until it is older than max_connection_age_s.
    assert!(get_on(&mut other, "/v1/keys").await.unwrap().starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(get_on(&mut other, "/v1/keys").await.is_none(), "a connection outlived max_connection_age_s");
    let (_, m) = call(&d.client("auditor"), "GET", "/metrics", serde_json::Value::Null).await;
    let m = m.as_str().unwrap();
    assert_eq!(metric(m, "seald_connections_closed_total{reason=\"revoked\"}"), 1, "{m}");
    assert!(metric(m, "seald_connections_closed_total{reason=\"max_age\"}") >= 1, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn crls_are_decided_per_ca_and_a_stale_crl_makes_the_appliance_unready() {
    let d = start(&[]);
    // A second client CA without a CRL: its clients reach the API (403 here: they have no account),
    // they are not locked out by the first CA's CRL.
    let other = DevCa::new("second client CA").unwrap();
    let stranger = other.client("stranger", 5, -1, 30).unwrap();
    let _ = write_identity(&d.dir, "stranger", &stranger);
    let bundle = format!("{}{}", d.ca.cert_pem(), other.cert_pem());
    std::fs::write(d.dir.join("ca.pem"), &bundle).unwrap();
    d.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, r) = call(&d.client("stranger"), "GET", "/v1/keys", serde_json::Value::Null).await;
    assert_eq!((s, r["error"]["code"].as_str()), (403, Some("unknown_identity")), "{r}");
    let (s, _) = call(&d.client("app"), "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(s, 200);
    // The first CA's CRL goes stale: not ready, and said so; clients are still served.
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    std::fs::write(d.dir.join("crl.pem"), d.ca.crl_until(&[], 3, past).unwrap()).unwrap();
    d.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = d.client("app");
    let (s, r) = call(&app, "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(s, 503, "{r}");
    assert!(r["reasons"].to_string().contains("past its nextUpdate"), "{r}");
    let (_, m) = call(&app, "GET", "/metrics", serde_json::Value::Null).await;
    assert_eq!(metric(m.as_str().unwrap(), "seald_crl_stale"), 1);
    assert_eq!(call(&app, "GET", "/v1/keys", serde_json::Value::Null).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_stale_crl_refuse_a_stale_crl_refuses_its_clients_until_a_fresh_one_comes() {
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let strict = start_with(&[], "stale_crl = \"refuse\"");
    assert_eq!(call(&strict.client("app"), "GET", "/v1/keys", serde_json::Value::Null).await.0, 200);
    std::fs::write(strict.dir.join("crl.pem"), strict.ca.crl_until(&[], 3, past).unwrap()).unwrap();
    strict.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(strict.client("app").request("GET", "/v1/keys", None).await.is_err(), "served on a stale CRL");
    std::fs::write(strict.dir.join("crl.pem"), strict.ca.crl(&[], 4).unwrap()).unwrap();
    strict.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(call(&strict.client("app"), "GET", "/v1/keys", serde_json::Value::Null).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_tell_a_certificate_of_no_account_only_whether_the_appliance_is_ready() {
    let d = start(&[]);
    let stranger = d.ca.client("stranger", 20, -1, 30).unwrap();
    let _ = write_identity(&d.dir, "stranger", &stranger);
    let s = d.client("stranger");
    let (status, r) = call(&s, "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!((status, r.clone()), (200, serde_json::json!({"ready": true})), "{r}");
    let (status, r) = call(&s, "GET", "/metrics", serde_json::Value::Null).await;
    assert_eq!((status, r["error"]["code"].as_str()), (403, Some("unknown_identity")), "{r}");
    let (status, r) = call(&s, "GET", "/healthz", serde_json::Value::Null).await;
    assert_eq!((status, r), (200, serde_json::json!({"status": "alive"})));
    // Known accounts get the detail.
    let (status, r) = call(&d.client("app"), "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(status, 200);
    assert!(r.get("details").is_some() && r.get("audit_head").is_some(), "{r}");
    // The connection of a certificate of no account is closed after its refusal.
    let mut conn = connect_from(&d, "127.0.0.1", "stranger").await.unwrap();
    let answer = get_on(&mut conn, "/v1/keys").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(get_on(&mut conn, "/v1/keys").await.is_none(), "the refused connection stayed open");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_first_failure_of_signing() {
    let d = start(&[]);
    let app = d.client("app");
    let sign = serde_json::json!({"key": "seal-sm2", "input": "message", "data": "aGk="});
    assert_eq!(call(&app, "POST", "/v1/sign", sign.clone()).await.0, 200);
    // The token answers everything but C_Sign.
    d.token.set_fault("sign_fails\n");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (s, r) = call(&app, "POST", "/v1/sign", sign.clone()).await;
    assert_eq!((s, r["error"]["code"].as_str()), (503, Some("token_unavailable")), "{r}");
    let (s, r) = call(&app, "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(s, 503, "signing fails but the appliance says it is ready: {r}");
    let (s, _) = call(&app, "GET", "/readyz", serde_json::Value::Null).await;
    assert_eq!(s, 503, "a probe that does not sign must not make it ready again");
    d.token.set_fault("");
    // The probe signs with the key that failed (at most once a second) and then says ready.
    let mut ready = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if call(&app, "GET", "/readyz", serde_json::Value::Null).await.0 == 200 {
            ready = true;
            break;
        }
    }
    assert!(ready, "the appliance did not become ready again");
    assert_eq!(call(&app, "POST", "/v1/sign", sign).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_405_names_the_allowed_methods_request_ids_are_kept_and_audit_export_refuses_nonsense_ranges() {
    let d = start(&[]);
    let id = |name: &str| {
        vec![
            "--cert".to_string(),
            d.dir.join(format!("{name}.pem")).display().to_string(),
            "--key".to_string(),
            d.dir.join(format!("{name}.key")).display().to_string(),
        ]
    };
    let (_, out) = curl(&d, &[&id("app")[..], &["-i".to_string()]].concat(), "/v1/sign");
    let lower = out.to_ascii_lowercase();
    assert!(lower.starts_with("http/") && lower.contains(" 405") && lower.contains("\nallow: post\r"), "{out}");
    // The caller's request id comes back and is in the access log line; a bad one is replaced.
    let headers = |extra: &[&str]| {
        let mut a: Vec<String> = id("app");
        a.extend(["-D", "-", "-o", "/dev/null"].map(String::from));
        for e in extra {
            a.extend(["-H".to_string(), e.to_string()]);
        }
        curl(&d, &a, "/v1/keys").1.to_ascii_lowercase()
    };
    assert!(headers(&["x-request-id: oa-7f3e.42"]).contains("x-request-id: oa-7f3e.42\r"));
    let replaced = headers(&["x-request-id: no spaces <allowed>"]);
    assert!(replaced.contains("x-request-id: ") && !replaced.contains("allowed"), "{replaced}");
    let (a, b) = (headers(&[]), headers(&[]));
    assert_ne!(a, b, "request ids repeat");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = d.log();
    let line = log.lines().find(|l| l.contains("oa-7f3e.42")).expect("an access log line");
    for want in ["route=\"/v1/keys\"", "status=200", "account=\"oa-system\"", "method=GET", "INFO"] {
        assert!(line.contains(want), "{want} in {line}");
    }
    let auditor = d.client("auditor");
    for q in ["from=999999", "from=5&to=2", "from=0", "from=abc", "to=-1"] {
        let (s, r) = call(&auditor, "GET", &format!("/v1/audit/export?{q}"), serde_json::Value::Null).await;
        assert_eq!((s, r["error"]["code"].as_str()), (400, Some("bad_range")), "{q}: {r}");
    }
    let (s, _) = call(&auditor, "GET", "/v1/audit/export?from=1&to=2", serde_json::Value::Null).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn seald_check_names_each_planted_fault_on_its_own_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut d = start(&[]);
    let _ = d.child.kill();
    let _ = d.child.wait();
    let cfg = d.dir.join("seald.toml");
    for secret in [d.dir.join("server.key"), d.token.pin_file.clone()] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let check = || {
        let o = Command::new(env!("CARGO_BIN_EXE_seald"))
            .args(["check", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let fails: Vec<String> = out.lines().filter(|l| l.starts_with("FAIL")).map(String::from).collect();
        (o.status.code(), fails, out)
    };
    let (code, fails, out) = check();
    assert_eq!((code, fails.len()), (Some(0), 0), "a sound appliance: {out}");
    assert!(out.contains("ok    token") && out.contains("ok    audit key") && out.ends_with("ready\n"), "{out}");
    let one = |what: &str| {
        let (code, fails, out) = check();
        assert_eq!(code, Some(1), "{what}: {out}");
        assert!(fails.len() == 1 && fails[0].starts_with(&format!("FAIL  {what}")), "{what}: {fails:?}\n{out}");
    };
    // A missing server certificate.
    std::fs::rename(d.dir.join("server.pem"), d.dir.join("server.pem.away")).unwrap();
    one("server.cert");
    std::fs::rename(d.dir.join("server.pem.away"), d.dir.join("server.pem")).unwrap();
    // A key that is not the certificate's.
    let key = std::fs::read(d.dir.join("server.key")).unwrap();
    std::fs::write(d.dir.join("server.key"), d.ca.client("other", 99, -1, 30).unwrap().key_pem).unwrap();
    one("server TLS");
    std::fs::write(d.dir.join("server.key"), key).unwrap();
    // A server key others can read.
    std::fs::set_permissions(d.dir.join("server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    one("server.key");
    std::fs::set_permissions(d.dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // The audit key absent from the token.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let audit_id = text
        .split("[audit]")
        .nth(1)
        .and_then(|t| t.split("key = \"").nth(1))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&cfg, text.replace(&format!("key = \"{audit_id}\""), "key = \"00\"")).unwrap();
    one("audit key");
    std::fs::write(&cfg, &text).unwrap();
    // The store owned by another user.
    let chown = |uid: &str| {
        assert!(Command::new("chown")
            .args(["-R", uid, d.dir.join("store").to_str().unwrap()])
            .status()
            .unwrap()
            .success())
    };
    chown("65534");
    one("store");
    chown(&std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap().to_string());
    // A stale CRL.
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    std::fs::write(d.dir.join("crl.pem"), d.ca.crl_until(&[], 5, past).unwrap()).unwrap();
    one("server.crl");
    std::fs::write(d.dir.join("crl.pem"), d.ca.crl(&[], 6).unwrap()).unwrap();
    assert_eq!(check().0, Some(0));
}

/// A streamed audit export read slowly (curl at 256 KB/s, about 14 s, against an idle limit of
/// 1 s) arrives whole and verifies: the writer waits on the reader through the stream's bounded
/// buffer. (The listener also counts a stream as a request in flight until its body ends; without
/// that, the 10-million-record export was cut 10 s after the idle limit. This test's export fits
/// in the sockets' buffers, so it does not show that cut.)
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_gets_the_whole_streamed_export() {
    let d = start_with(&[], "idle_timeout_s = 1");
    let app = d.client("app");
    // Batches small enough for the test's 64 KiB body limit.
    for round in 0..20u32 {
        let items: Vec<_> = (0..300u32)
            .map(|i| {
                let digest = crypto::sha256(&(round * 300 + i).to_be_bytes());
                serde_json::json!({"key": "seal-p256", "input": "digest", "data": b64(&digest)})
            })
            .collect();
        let (s, r) = call(&app, "POST", "/v1/sign/batch", serde_json::json!({ "items": items })).await;
        assert_eq!(s, 200, "{r}");
    }
    common::require_tool("curl", "curl");
    let dir = &d.dir;
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--limit-rate", "256K", "--cacert", dir.join("ca.pem").to_str().unwrap()])
        .args(["--cert", dir.join("auditor.pem").to_str().unwrap(), "--key", dir.join("auditor.key").to_str().unwrap()])
        .arg(format!("https://localhost:{}/v1/audit/export", d.addr.port()))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.len() > 3 << 20, "{} bytes: more than the stream's buffer", text.len());
    let export = seald::audit::read_export(&text).unwrap();
    let key = crypto::PublicKey::from_spki_pem(&d.audit_pem).unwrap();
    let report = export.verify(&key);
    assert!(report.ok(), "{report:?}");
    assert!(export.records.len() > 6000, "every signature's record is there");
}
