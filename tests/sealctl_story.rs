//! The whole story through `sealctl` against a running `seald`, as the people who run it would:
//! `seald init`, then the system administrator creates a unit and accounts, the unit administrator
//! applies, the issuer approves, makes and publishes, the unit administrator grants, the application
//! signs (OpenSSL verifies), the issuer freezes, unfreezes, changes and revokes, filings are
//! acknowledged, and the auditor verifies the journal. Exit codes and JSON output are checked.

mod common;

use common::{openssl, SoftToken};
use seald::devpki::DevCa;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn sealctl(dir: &Path, addr: &str, who: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(args)
        .env("SEALCTL_SERVER", format!("https://localhost:{}", addr.rsplit(':').next().unwrap()))
        .env("SEALCTL_CA", dir.join("ca.pem"))
        .env("SEALCTL_CERT", dir.join(format!("{who}.pem")))
        .env("SEALCTL_KEY", dir.join(format!("{who}.key")))
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// For a command expected to be refused: `{"refused": true}` when it was (exit 1).
    fn into_refused(self) -> Run {
        let refused = self.status == 1;
        Run { status: 0, stdout: format!("{{\"refused\": {refused}}}"), stderr: self.stderr }
    }
}

/// A restore target whose `[audit] key` still names the first audit key.
fn restored_cfg_stale(dir: &Path, cfg: &Path) -> PathBuf {
    let d = dir.display();
    let text = std::fs::read_to_string(cfg)
        .unwrap()
        .replace(&format!("{d}/store"), &format!("{d}/s-store"))
        .replace(&format!("{d}/journal"), &format!("{d}/s-journal"));
    let path = dir.join("stale.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Now, RFC 3339 to the millisecond.
fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.status, 0, "{what}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn json(r: Run, what: &str) -> serde_json::Value {
    serde_json::from_str(&ok(r, what)).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

#[test]
fn a_seal_lives_its_whole_life_through_sealctl() {
    let token = SoftToken::new("softtoken");
    let dir: PathBuf = token.scratch("story");
    std::fs::create_dir_all(&dir).unwrap();

    let ca = DevCa::new("story CA").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let server = ca.server(1).unwrap();
    std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    for (i, who) in ["sysadmin", "secofficer", "auditor", "issuer", "unitadmin", "app", "stranger", "secofficer2"]
        .iter()
        .enumerate()
    {
        let c = ca.client(who, 10 + i as u64, -1, 30).unwrap();
        std::fs::write(dir.join(format!("{who}.pem")), &c.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{who}.key")), &c.key_pem).unwrap();
    }
    let d = dir.display();
    let config = format!(
        "[token]\nmodule = \"{}\"\nprofile = \"softtoken\"\nlabel = \"{}\"\npin_file = \"{}\"\npool_size = 4\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n\n\
         [store]\ndir = \"{d}/store\"\n\n[audit]\ndir = \"{d}/journal\"\n# made by seald init\nkey = \"00\"\n\n\
         [verify]\ntrust_anchors = \"{d}/pinned.pem\"\n\n\
         # CI machines run no time daemon: the clock is taken as it is.\n[tsa]\nclock = \"trusted\"\n",
        token.module.display(),
        token.label,
        token.pin_file.display(),
    );
    let cfg = dir.join("seald.toml");
    std::fs::write(&cfg, config).unwrap();
    // The sample documents' issuers are not in the samples: their own certificates are pinned.
    let pinned: String = common::OFD_SAMPLES
        .iter()
        .map(|(n, _)| std::fs::read(common::samples_dir().join(format!("ofd/{n}.ofd"))).unwrap())
        .flat_map(|pkg| common::carried_certificates(&pkg))
        .map(|c| c.to_pem())
        .collect();
    std::fs::write(dir.join("pinned.pem"), pinned).unwrap();
    let pem = |n: &str| dir.join(format!("{n}.pem")).to_string_lossy().into_owned();

    // First boot.
    let init = Command::new(env!("CARGO_BIN_EXE_seald"))
        .args(["init", "--config", cfg.to_str().unwrap()])
        .args(["--sysadmin", &pem("sysadmin"), "--secofficer", &pem("secofficer"), "--auditor", &pem("auditor")])
        .arg("--new-audit-key")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(said.contains("audit key: sm2 key"), "{said}");
    assert!(
        std::fs::read_to_string(&cfg).unwrap().contains("# made by seald init\nkey = \""),
        "the config keeps its comments"
    );
    assert!(init.status.success(), "seald init: {said}{}", String::from_utf8_lossy(&init.stderr));
    assert!(said.contains("issuing CA: sm2") && said.contains("role sysadmin"), "{said}");
    let again = Command::new(env!("CARGO_BIN_EXE_seald"))
        .args(["init", "--config", cfg.to_str().unwrap()])
        .args(["--sysadmin", &pem("sysadmin"), "--secofficer", &pem("secofficer"), "--auditor", &pem("auditor")])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second init is refused");

    let (child, spawned) = common::spawn_seald(&cfg, &[]);
    let addr = spawned.to_string();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let daemon = Kill(child);
    let ctl = |who: &str, args: &[&str]| sealctl(&dir, &addr, who, args);

    // The system administrator sets up a unit and its people.
    ok(ctl("sysadmin", &["unit", "create", "gov", "--name", "某某市人民政府"]), "unit create gov");
    ok(
        ctl("sysadmin", &["unit", "create", "bureau", "--name", "某某市市场监督管理局", "--parent", "gov"]),
        "unit create bureau",
    );
    ok(ctl("sysadmin", &["account", "create", "issuer", "--role", "issuer", "--cert-file", &pem("issuer")]), "issuer");
    ok(
        ctl(
            "sysadmin",
            &[
                "account",
                "create",
                "keeper",
                "--role",
                "unit_admin",
                "--unit",
                "bureau",
                "--cert-file",
                &pem("unitadmin"),
            ],
        ),
        "unit admin",
    );
    ok(
        ctl("sysadmin", &["account", "create", "oa", "--role", "app", "--unit", "bureau", "--cert-file", &pem("app")]),
        "app",
    );
    let listed = ok(ctl("sysadmin", &["account", "list"]), "account list");
    assert!(listed.contains("keeper") && listed.contains("unit_admin"), "{listed}");
    // A PKCS#12 file works in place of --cert and --key (OpenSSL 3 makes it, with a password).
    let (p12, pw) = (dir.join("issuer.p12"), dir.join("issuer.p12.pw"));
    std::fs::write(&pw, "p12-secret\n").unwrap();
    let (made, why) = openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &pem("issuer"),
        "-inkey",
        dir.join("issuer.key").to_str().unwrap(),
        "-out",
        p12.to_str().unwrap(),
        "-passout",
        &format!("file:{}", pw.display()),
    ]);
    assert!(made, "{why}");
    let with_p12 = |pw_file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sealctl"))
            .args(["unit", "list", "--p12", p12.to_str().unwrap(), "--p12-password-file", pw_file.to_str().unwrap()])
            .env("SEALCTL_SERVER", format!("https://localhost:{}", addr.rsplit(':').next().unwrap()))
            .env("SEALCTL_CA", dir.join("ca.pem"))
            .output()
            .unwrap()
    };
    let listed_units = with_p12(&pw);
    assert!(
        listed_units.status.success() && String::from_utf8_lossy(&listed_units.stdout).contains("bureau"),
        "{}",
        String::from_utf8_lossy(&listed_units.stderr)
    );
    let wrong_pw = dir.join("wrong.pw");
    std::fs::write(&wrong_pw, "nope").unwrap();
    let wrong = with_p12(&wrong_pw);
    assert_eq!(wrong.status.code(), Some(2), "a wrong PKCS#12 password is a local error");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("MAC does not verify"));
    let refused = ctl("issuer", &["account", "list"]);
    assert_eq!(refused.status, 1, "an issuer may not list accounts: {}", refused.stderr);
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
    let unknown = ctl("stranger", &["seal", "list"]);
    assert_eq!(unknown.status, 1, "a certificate of no account: {}", unknown.stderr);
    assert!(unknown.stderr.contains("unknown_identity"));

    // Apply, approve, make, publish, grant.
    let image = dir.join("seal.svg");
    std::fs::write(&image, "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"20\"/></svg>").unwrap();
    let applied = json(
        ctl(
            "unitadmin",
            &[
                "seal",
                "--json",
                "apply",
                "--name",
                "某某市市场监督管理局合同专用章",
                "--kind",
                "合同专用章",
                "--image",
                image.to_str().unwrap(),
                "--width-mm",
                "40",
                "--height-mm",
                "40",
            ],
        ),
        "apply",
    );
    let id = applied["id"].as_str().unwrap().to_string();
    assert_eq!(applied["state"], "applied");
    let wrong = ctl("issuer", &["seal", "publish", &id]);
    assert_eq!(wrong.status, 1);
    assert!(wrong.stderr.contains("invalid_transition") && wrong.stderr.contains("state: applied"), "{}", wrong.stderr);
    for step in ["approve", "make", "publish"] {
        let out = ok(ctl("issuer", &["seal", step, &id]), step);
        assert!(out.contains(&id), "{out}");
    }
    ok(ctl("unitadmin", &["seal", "grant", &id, "oa"]), "grant");
    let table = ok(ctl("unitadmin", &["seal", "list"]), "seal list");
    assert!(table.starts_with("ID") && table.contains(&id) && table.contains("active"), "{table}");

    // The application signs; OpenSSL verifies with the seal's certificate.
    let doc = dir.join("contract.pdf");
    std::fs::write(&doc, b"%PDF-1.7 a contract").unwrap();
    let sig = dir.join("contract.sig");
    ok(ctl("app", &["sign", "--seal", &id, "--file", doc.to_str().unwrap(), "--out", sig.to_str().unwrap()]), "sign");
    let shown = json(ctl("issuer", &["seal", "--json", "show", &id]), "show");
    let cert = dir.join("seal-cert.pem");
    std::fs::write(&cert, shown["versions"][0]["cert_pem"].as_str().unwrap()).unwrap();
    let (good, why) = openssl(&[
        "pkeyutl",
        "-verify",
        "-certin",
        "-inkey",
        cert.to_str().unwrap(),
        "-rawin",
        "-in",
        doc.to_str().unwrap(),
        "-sigfile",
        sig.to_str().unwrap(),
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:1234567812345678",
    ]);
    assert!(good, "OpenSSL rejects the seal signature: {why}");
    // The certificate chains to the issuing CA (GET /v1/ca) in OpenSSL, with the SM2 default ID.
    let client = seald::client::Client::new(
        addr.parse().unwrap(),
        "localhost",
        &dir.join("ca.pem"),
        &dir.join("app.pem"),
        &dir.join("app.key"),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, body) = rt.block_on(client.request("GET", "/v1/ca", None)).unwrap();
    assert_eq!(status, 200);
    let issuing: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let issuing_pem = dir.join("issuing-ca.pem");
    std::fs::write(&issuing_pem, issuing["certificate"].as_str().unwrap()).unwrap();
    let (chained, why) = openssl(&[
        "verify",
        "-vfyopt",
        "distid:1234567812345678",
        "-CAfile",
        issuing_pem.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(chained, "OpenSSL does not chain the seal certificate to the issuing CA: {why}");
    let (parsed, text) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]);
    assert!(parsed && text.contains("SM2-with-SM3") && text.contains("Non Repudiation"), "{text}");
    // Over HTTP: seal a document as GB/T 38540 and as GM/T 0010, and have the daemon verify both.
    let post = |path: &str, body: serde_json::Value| {
        let (status, bytes) = rt.block_on(client.request("POST", path, Some(&body))).unwrap();
        (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
    };
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let xml = b"<ofd:Signature>protected</ofd:Signature>";
    let (status, sealed) = post(
        &format!("/v1/seals/{id}/sign-ses"),
        serde_json::json!({
            "data_hash": b64(&seald::crypto::sm3(xml)), "property_info": "/Doc_0/Signs/Sign_0/Signature.xml",
            "ext_datas": [{ "id": "1.2.156.10197.6.7.2.2.1", "critical": true, "value": b64(b"ext") }],
        }),
    );
    assert_eq!(status, 200, "{sealed}");
    let (status, report) =
        post("/v1/verify/ses", serde_json::json!({ "ses_signature": sealed["ses_signature"], "document": b64(xml) }));
    assert_eq!((status, report["valid"].as_bool()), (200, Some(true)), "{report}");
    let step = |r: &serde_json::Value, name: &str| {
        r["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap()["ok"].clone()
    };
    assert_eq!((step(&report, "registry_state"), step(&report, "trust_chain")), (true.into(), true.into()), "{report}");
    let ses_der = rt.block_on(client.request("GET", &format!("/v1/seals/{id}/ses"), None)).unwrap().1;
    let (_, seal_report) = post("/v1/verify/seal", serde_json::json!({ "seal": b64(&ses_der) }));
    assert_eq!(seal_report["valid"], true, "{seal_report}");
    let (status, signed) = post("/v1/sign/cms", serde_json::json!({ "seal": id, "data": b64(xml) }));
    assert_eq!(status, 200, "{signed}");
    let (_, cms_report) = post("/v1/verify/cms", serde_json::json!({ "cms": signed["cms"], "data": b64(xml) }));
    assert_eq!(cms_report["valid"], true, "{cms_report}");
    let (_, cms_wrong) = post("/v1/verify/cms", serde_json::json!({ "cms": signed["cms"], "data": b64(b"other") }));
    assert_eq!((cms_wrong["valid"].as_bool(), step(&cms_wrong, "data_hash")), (Some(false), false.into()));
    let (status, _) = post("/v1/verify/ses", serde_json::json!({ "ses_signature": "!!" }));
    assert_eq!(status, 400);
    // A plain signature with the seal verifies against the certificate the answer carries: the
    // issuing CA is an anchor of /v1/verify as of the other verifications.
    let digest = seald::crypto::sm3(xml);
    let (status, plain) = post("/v1/sign", serde_json::json!({ "seal": id, "input": "digest", "data": b64(&digest) }));
    assert_eq!(status, 200, "{plain}");
    let check = serde_json::json!({ "certificate": plain["cert"], "input": "digest", "data": b64(&digest), "signature": plain["signature"] });
    let (_, verdict) = post("/v1/verify", check);
    assert_eq!(verdict, serde_json::json!({ "valid": true, "reasons": [] }));
    // Every sample document keeps its recorded verdict through the API.
    for (name, expected) in common::OFD_SAMPLES {
        let doc = std::fs::read(common::samples_dir().join(format!("ofd/{name}.ofd"))).unwrap();
        let (status, bytes) =
            rt.block_on(client.request_bytes("POST", "/v1/verify/ofd", "application/ofd", doc)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((status, v["verdict"].as_str()), (200, Some(*expected)), "{name}: {v}");
    }
    // A receipt made elsewhere, sealed final through sealctl and verified by the daemon.
    let receipt = common::samples_dir().join("ofd/suwellsdk_icbc_receipt_20220101.ofd");
    let receipt = receipt.to_str().unwrap();
    let sealed_ofd = dir.join("receipt.sealed.ofd");
    let sealed_path = sealed_ofd.to_str().unwrap();
    let args = [
        "seal-ofd",
        "--seal",
        &id,
        "--page",
        "1",
        "--x",
        "20",
        "--y",
        "30",
        "--final",
        "--timestamp",
        "-o",
        sealed_path,
        receipt,
    ];
    ok(ctl("app", &args), "seal-ofd");
    let v = json(ctl("app", &["verify-ofd", sealed_path, "--json"]), "verify-ofd");
    assert_eq!((v["verdict"].as_str(), v["signatures"][1]["verdict"].as_str()), (Some("valid"), Some("valid")), "{v}");
    let stamp = v["signatures"][1]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "timestamp").unwrap();
    assert_eq!(stamp["ok"], true, "the seal carries a time-stamp that verifies: {stamp}");
    assert_eq!(v["signatures"][1]["final"], true);
    let registry =
        v["signatures"][1]["steps"].as_array().unwrap().iter().find(|s| s["step"] == "registry_state").unwrap();
    assert_eq!(registry["ok"], true, "{registry}");
    let table = ok(ctl("app", &["verify-ofd", sealed_path]), "verify-ofd table");
    assert!(table.starts_with("document: valid") && table.contains("ok   registry_state"), "{table}");
    // One changed byte in the bank's page: not valid (exit 1), the file named.
    let mut bytes = std::fs::read(&sealed_ofd).unwrap();
    let tampered = dir.join("tampered.ofd");
    {
        use std::io::{Read as _, Write as _};
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let name = f.name().to_string();
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b).unwrap();
            if name == "Doc_0/Pages/Page_0/Content.xml" {
                let at = b.len() / 2;
                b[at] ^= 1;
            }
            w.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(&b).unwrap();
        }
        bytes = w.finish().unwrap().into_inner();
    }
    std::fs::write(&tampered, &bytes).unwrap();
    let r = ctl("app", &["verify-ofd", tampered.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("FAIL references") && r.stdout.contains("Doc_0/Pages/Page_0/Content.xml"),
        "{}",
        r.stdout
    );
    // A final document takes no further seal: exit 1, and over HTTP a 409 with the stable code.
    let again = ctl(
        "app",
        &["seal-ofd", "--seal", &id, "--page", "1", "--x", "20", "--y", "90", "-o", sealed_path, sealed_path],
    );
    assert_eq!(again.status, 1, "{}", again.stderr);
    assert!(again.stderr.contains("[ofd_signatures_protected] HTTP 409"), "{}", again.stderr);
    let final_doc = std::fs::read(&sealed_ofd).unwrap();
    let path = format!("/v1/seals/{id}/seal-ofd?page=1&x=20&y=90");
    let (status, bytes) = rt.block_on(client.request_bytes("POST", &path, "application/ofd", final_doc)).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("ofd_signatures_protected")), "{e}");
    let (status, bytes) =
        rt.block_on(client.request_bytes("POST", "/v1/verify/ofd", "application/ofd", b"not a zip".to_vec())).unwrap();
    let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("ofd_unreadable")), "{e}");
    // Unusable input is exit 2; the usage record names the document.
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not an OFD").unwrap();
    assert_eq!(ctl("app", &["verify-ofd", notes.to_str().unwrap()]).status, 2);
    let usage = json(ctl("unitadmin", &["seal", "usage", &id, "--json"]), "usage");
    assert!(usage.to_string().contains(&hex::encode(seald::crypto::sm3(&std::fs::read(receipt).unwrap()))), "{usage}");

    // Every route the story used so far is counted under its own pattern, none as "other".
    let metrics = rt.block_on(client.request("GET", "/metrics", None)).unwrap().1;
    let metrics = String::from_utf8_lossy(&metrics);
    for route in [
        "/v1/seals/{id}/sign-ses",
        "/v1/sign/cms",
        "/v1/seals/{id}/{action}",
        "/v1/admin/accounts",
        "/v1/seals/{id}/seal-ofd",
        "/v1/verify/ofd",
    ] {
        assert!(metrics.contains(&format!("seald_requests_total{{route=\"{route}\"")), "{route}: {metrics}");
    }
    assert!(!metrics.contains("route=\"other\""), "{metrics}");

    // A CSR for the seal's key (signed in the token), certified by the built-in CA and bound back.
    let csr = dir.join("seal.csr");
    ok(ctl("issuer", &["seal", "csr", &id, "--out", csr.to_str().unwrap()]), "csr");
    let (verified, why) =
        openssl(&["req", "-verify", "-vfyopt", "distid:1234567812345678", "-in", csr.to_str().unwrap(), "-noout"]);
    assert!(verified, "OpenSSL does not verify the CSR: {why}");
    let issued = dir.join("issued.pem");
    ok(
        ctl(
            "issuer",
            &["ca", "issue", "--csr", csr.to_str().unwrap(), "--valid-days", "200", "--out", issued.to_str().unwrap()],
        ),
        "ca issue",
    );
    let refused_ca = ctl("app", &["ca", "issue", "--csr", csr.to_str().unwrap()]);
    assert_eq!(refused_ca.status, 1, "an app does not use the CA");
    ok(ctl("issuer", &["seal", "certificate", &id, "--file", issued.to_str().unwrap()]), "bind the issued certificate");
    let (chained, why) = openssl(&[
        "verify",
        "-vfyopt",
        "distid:1234567812345678",
        "-CAfile",
        issuing_pem.to_str().unwrap(),
        issued.to_str().unwrap(),
    ]);
    assert!(chained, "{why}");
    // The seal's GB/T 38540 form, verified offline with the issuing CA as trust anchor.
    let esl = dir.join("seal.esl");
    ok(ctl("issuer", &["seal", "ses", &id, "--out", esl.to_str().unwrap()]), "ses");
    let anchors = dir.join("anchors");
    std::fs::create_dir_all(&anchors).unwrap();
    std::fs::copy(&issuing_pem, anchors.join("issuing-ca.pem")).unwrap();
    let checked = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(["ses", "verify", esl.to_str().unwrap(), "--json", "--trust-anchors", anchors.to_str().unwrap()])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(checked.status.code(), Some(0), "{report}");
    assert!(
        report["steps"].as_array().unwrap().iter().any(|s| s["step"] == "trust_chain" && s["ok"] == true),
        "{report}"
    );

    let usage = json(ctl("auditor", &["seal", "--json", "usage", &id]), "usage");
    assert_eq!(usage["usage"][0]["account"], "oa");
    // The application's own usage, across seals, through GET /v1/accounts/{name}/usage.
    let by_app = json(ctl("auditor", &["account", "--json", "usage", "oa", "--all"]), "usage by account");
    let first = &by_app["usage"].as_array().unwrap()[0];
    assert_eq!((first["seal"].as_str(), first["account"].as_str()), (Some(id.as_str()), Some("oa")), "{by_app}");
    let one = ctl("auditor", &["account", "usage", "oa", "--limit", "1"]);
    assert!(one.status == 0 && one.stdout.contains(&id), "{}", one.stdout);

    // A security officer rotates the seal's key; signing switches to version 2.
    ok(ctl("secofficer", &["keys", "rotate", &format!("seal:{id}")]), "rotate");
    ok(ctl("secofficer", &["keys", "activate", &format!("seal:{id}"), "--version", "2"]), "activate");
    let signed = ctl("app", &["sign", "--seal", &id, "--file", doc.to_str().unwrap()]);
    assert!(signed.status == 0 && signed.stderr.contains("key version 2"), "{}", signed.stderr);
    let keys = ok(ctl("secofficer", &["keys", "list"]), "keys list");
    assert!(keys.contains("retired") && keys.contains("seal-maker") && keys.contains("issuing-ca"), "{keys}");
    // Times are RFC 3339, not epoch milliseconds.
    let year = time::OffsetDateTime::now_utc().year();
    assert!(
        keys.contains("T") && keys.contains("Z") && !keys.contains(&format!("{}", year / 1000 * 1000 + 1_000_000)),
        "{keys}"
    );
    assert!(
        keys.lines().any(|l| l.contains(&format!("{}-", year + 9)) || l.contains(&format!("{}-", year + 10))),
        "{keys}"
    );
    let me = ok(ctl("secofficer", &["whoami"]), "whoami");
    assert!(me.contains("secofficer") && me.contains("fingerprint"), "{me}");
    let pending = json(
        ctl("secofficer", &["keys", "--json", "activate", "seal-maker", "--version", "9"]).into_refused(),
        "refused",
    );
    assert!(pending["refused"].as_bool().unwrap());

    // Freeze stops use with a clear code; unfreeze restores it.
    let before_freeze = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(ctl("issuer", &["seal", "freeze", &id, "--reason", "印章保管人变更"]), "freeze");
    let during_freeze = now_rfc3339();
    let frozen = ctl("app", &["sign", "--seal", &id, "--file", doc.to_str().unwrap()]);
    assert_eq!(frozen.status, 1);
    assert!(frozen.stderr.contains("seal_frozen"), "{}", frozen.stderr);
    ok(ctl("issuer", &["seal", "unfreeze", &id]), "unfreeze");
    ok(ctl("app", &["sign", "--seal", &id, "--file", doc.to_str().unwrap()]), "sign after unfreeze");
    let after_unfreeze = now_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));

    // The status service (电子印章状态查询): active before the freeze, frozen inside it, active
    // after; each answer signed by the status responder and verified here against the issuing CA.
    let ca_arg = issuing_pem.to_str().unwrap();
    for (at, state) in [(&before_freeze, "active"), (&during_freeze, "frozen"), (&after_unfreeze, "active")] {
        let v = json(ctl("auditor", &["seal-status", "--json", &id, "--at", at, "--ca-cert", ca_arg]), "seal-status");
        assert_eq!((v["state"].as_str(), v["verified"].as_bool()), (Some(state), Some(true)), "at {at}: {v}");
    }
    let answer = dir.join("status.der");
    let text = ok(
        ctl("app", &["seal-status", &id, "--at", &during_freeze, "--ca-cert", ca_arg, "-o", answer.to_str().unwrap()]),
        "seal-status table",
    );
    assert!(text.contains("was frozen at") && text.contains("reason: 印章保管人变更"), "{text}");
    let offline =
        ["seal-status", &id, "--at", &during_freeze, "--ca-cert", ca_arg, "--answer", answer.to_str().unwrap()];
    assert_eq!(ctl("app", &offline).status, 0, "a saved answer verifies with no daemon");
    let mut forged = std::fs::read(&answer).unwrap();
    let at = forged.windows(id.len()).position(|w| w == id.as_bytes()).unwrap();
    forged[at + id.len() - 1] ^= 0x01;
    std::fs::write(&answer, forged).unwrap();
    let r = ctl("app", &offline);
    assert!(r.status == 1 && r.stderr.contains("status_not_verified"), "{}{}", r.stdout, r.stderr);
    let r = ctl("app", &["seal-status", "9999999999999999", "--ca-cert", ca_arg]);
    assert!(r.status == 1 && r.stderr.contains("unknown_seal"), "{}", r.stderr);

    // The TSA through HTTP with OpenSSL's query and reader; a body of another type is a 415.
    std::fs::write(dir.join("tsa-data.txt"), "关于启用电子印章的通知").unwrap();
    let (done, out) = openssl(&[
        "ts",
        "-query",
        "-data",
        dir.join("tsa-data.txt").to_str().unwrap(),
        "-sm3",
        "-cert",
        "-out",
        dir.join("q.tsq").to_str().unwrap(),
    ]);
    assert!(done, "{out}");
    let port = addr.rsplit(':').next().unwrap().to_string();
    let curl = |content_type: &str, out: &str| {
        Command::new("curl")
            .args(["-s", "-o", out, "-w", "%{http_code}", "--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["--cacert", dir.join("ca.pem").to_str().unwrap()])
            .args(["--cert", dir.join("app.pem").to_str().unwrap(), "--key", dir.join("app.key").to_str().unwrap()])
            .args(["-H", &format!("Content-Type: {content_type}"), "--data-binary"])
            .arg(format!("@{}", dir.join("q.tsq").display()))
            .arg(format!("https://localhost:{port}/v1/tsa"))
            .output()
            .unwrap()
    };
    let reply = dir.join("r.tsr");
    let r = curl("application/timestamp-query", reply.to_str().unwrap());
    assert_eq!(String::from_utf8_lossy(&r.stdout), "200");
    let (done, text) = openssl(&["ts", "-reply", "-in", reply.to_str().unwrap(), "-text"]);
    assert!(done && text.contains("Status: Granted.") && text.contains("Hash Algorithm: sm3"), "{text}");
    let r = curl("text/plain", dir.join("415.json").to_str().unwrap());
    assert_eq!(String::from_utf8_lossy(&r.stdout), "415");

    // Change makes a new seal; the old one is revoked; the grant moves along.
    let changed = json(
        ctl("issuer", &["seal", "--json", "change", &id, "--name", "某某市市场监督管理局合同专用章(2)"]),
        "change",
    );
    let new_id = changed["id"].as_str().unwrap().to_string();
    assert_eq!(changed["replaces"], id.as_str());
    let old = ctl("app", &["sign", "--seal", &id, "--file", doc.to_str().unwrap()]);
    assert!(old.status == 1 && old.stderr.contains("seal_revoked"), "{}", old.stderr);
    ok(ctl("issuer", &["seal", "publish", &new_id]), "publish the new seal");
    ok(ctl("app", &["sign", "--seal", &new_id, "--file", doc.to_str().unwrap()]), "sign with the new seal");
    ok(ctl("issuer", &["seal", "revoke", &new_id, "--reason", "单位撤销"]), "revoke");

    // Filings: make, change and revoke are pending; the issuer acknowledges them.
    let pending = json(ctl("issuer", &["filing", "--json", "list", "--state", "pending"]), "filings");
    let filings = pending["filings"].as_array().unwrap();
    assert!(filings.len() >= 3, "{pending}");
    for f in filings {
        ok(ctl("issuer", &["filing", "ack", f["id"].as_str().unwrap(), "--reference", "GA-2026-001"]), "ack");
    }
    let after = json(ctl("issuer", &["filing", "--json", "list", "--state", "pending"]), "filings after");
    assert_eq!(after["filings"].as_array().unwrap().len(), 0);
    let export = dir.join("filings.json");
    ok(ctl("issuer", &["filing", "export", "--out", export.to_str().unwrap()]), "export");
    // One JSON document (streamed a page at a time): the same filings as the list.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(doc["format"], "seald-filings-v1");
    let listed = json(ctl("issuer", &["filing", "--json", "list", "--all"]), "filings");
    assert_eq!(doc["filings"], listed["filings"]);
    assert!(doc["filings"].to_string().contains("GA-2026-001"));

    // The audit key rotates with two security officers; the chain still verifies from the first key.
    // A second security officer: the system administrator asks, an administrator of another role
    // agrees (三员分立); not the one who asked.
    let asked = json(
        ctl(
            "sysadmin",
            &["account", "--json", "create", "so2", "--role", "secofficer", "--cert-file", &pem("secofficer2")],
        ),
        "so2",
    );
    let so2_request = asked["awaiting_approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(ctl("sysadmin", &["account", "approve", &so2_request]).status, 1, "not by the one who asked");
    ok(ctl("secofficer", &["account", "approve", &so2_request]), "the security officer agrees");
    let rotated = json(ctl("secofficer", &["keys", "--json", "rotate", "audit"]), "rotate audit");
    let new_audit_key = rotated["key_id"].as_str().unwrap().to_string();
    let asked = json(ctl("secofficer", &["keys", "--json", "activate", "audit", "--version", "2"]), "activate audit");
    let request_id = asked["awaiting_approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(ctl("secofficer", &["keys", "approve", &request_id]).status, 1, "not by the same officer");
    ok(ctl("secofficer2", &["keys", "approve", &request_id]), "approve the audit key");
    ok(ctl("sysadmin", &["unit", "create", "after-rekey", "--name", "换钥后单位"]), "records after the switch");

    // The auditor verifies the whole journal through the daemon.
    let port = addr.rsplit(':').next().unwrap();
    let verify = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(["audit", "verify", "--server", &format!("https://localhost:{port}"), "--ca", &pem("ca")])
        .args(["--cert", &pem("auditor"), "--key", dir.join("auditor.key").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Backup through the daemon (system administrator only), then restore into a fresh state
    // directory with the daemon stopped: everything verifies and the chain goes on.
    let backup = dir.join("backup.json");
    assert_eq!(ctl("auditor", &["backup", "--out", backup.to_str().unwrap()]).status, 1, "only the sysadmin backs up");
    ok(ctl("sysadmin", &["backup", "--out", backup.to_str().unwrap()]), "backup");
    // On a terminal the download shows its progress (bytes, of how many, rate); in a pipe it does not.
    let piped = ctl("sysadmin", &["backup", "--out", backup.to_str().unwrap()]);
    assert!(!piped.stderr.contains("\rbackup: "), "no progress line in a pipe: {}", piped.stderr);
    let port = addr.rsplit(':').next().unwrap();
    let on_terminal = Command::new("script")
        .args(["-qec", &format!("{} backup --out {}", env!("CARGO_BIN_EXE_sealctl"), backup.display()), "/dev/null"])
        .env("SEALCTL_SERVER", format!("https://localhost:{port}"))
        .env("SEALCTL_CA", dir.join("ca.pem"))
        .env("SEALCTL_CERT", dir.join("sysadmin.pem"))
        .env("SEALCTL_KEY", dir.join("sysadmin.key"))
        .output()
        .expect("script (util-linux) runs sealctl on a terminal");
    let shown = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(on_terminal.status.success(), "{shown}");
    assert!(shown.contains("\rbackup: ") && shown.contains(" of ") && shown.contains("/s"), "{shown:?}");
    // A download cut short is resumed: the part file keeps its whole records, the daemon sends the
    // rest of the same backup (from its checkpoint in the journal), and the file is the same but
    // for a newly signed trailer. The restore below uses the resumed file.
    let whole = std::fs::read(&backup).unwrap();
    let trailer_at = whole.windows(12).rposition(|w| w == b"{\"manifest\":").expect("a trailer line");
    let resumed = dir.join("resumed.backup");
    std::fs::write(dir.join("resumed.backup.part"), &whole[..trailer_at / 2]).unwrap();
    let out = ok(ctl("sysadmin", &["backup", "--out", resumed.to_str().unwrap(), "--resume"]), "resume");
    assert!(out.is_empty() || out.contains("backup"), "{out}");
    let again = std::fs::read(&resumed).unwrap();
    assert_eq!(again[..trailer_at], whole[..trailer_at], "the header and records are the same");
    assert!(!dir.join("resumed.backup.part").exists(), "the part is renamed when whole");
    let resume_from_nothing = ctl("sysadmin", &["backup", "--out", dir.join("none").to_str().unwrap(), "--resume"]);
    assert_eq!(resume_from_nothing.status, 2, "no part file to resume: {}", resume_from_nothing.stderr);
    let backup = resumed;
    let seals_before = json(ctl("issuer", &["seal", "--json", "list"]), "seals before");
    drop(daemon);
    let restored_cfg = dir.join("restored.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("{d}/store"), &format!("{d}/r-store"))
        .replace(&format!("{d}/journal"), &format!("{d}/r-journal"));
    // After the rotation the backup is signed by the new audit key: restore checks it with that key.
    let old_key = text.split("# made by seald init\nkey = \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let text = text.replace(&old_key, &new_audit_key);
    std::fs::write(&restored_cfg, text).unwrap();
    let seald = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_seald")).args(args).output().unwrap();
    // Tampering: the signed manifest, then a record (with its checksum made good again, so that only
    // the chain can tell). Each refused restore leaves the directories as empty as it found them.
    let whole = std::fs::read(&backup).unwrap();
    let trailer_at = whole.windows(12).rposition(|w| w == b"{\"manifest\":").unwrap();
    let mut trailer: serde_json::Value = serde_json::from_slice(&whole[trailer_at..]).unwrap();
    trailer["manifest"]["head_seq"] = (trailer["manifest"]["head_seq"].as_u64().unwrap() + 1).into();
    let mut bad_manifest = whole[..trailer_at].to_vec();
    bad_manifest.extend(serde_json::to_vec(&trailer).unwrap());
    bad_manifest.push(b'\n');
    let mut bad_record = whole.clone();
    let header_len = whole.iter().position(|b| *b == b'\n').unwrap() + 1;
    let len = u32::from_le_bytes(whole[header_len..header_len + 4].try_into().unwrap()) as usize;
    let payload = header_len + 8..header_len + 8 + len;
    let at = whole[payload.clone()].windows(11).position(|w| w == b"\"time_ms\":1").unwrap() + payload.start + 10;
    bad_record[at] = b'2';
    let crc = crc32fast::hash(&bad_record[payload]).to_le_bytes();
    bad_record[header_len + 4..header_len + 8].copy_from_slice(&crc);
    for (name, bytes, why) in [
        ("bad-manifest.backup", bad_manifest, "signature does not verify"),
        ("bad-record.backup", bad_record, "prev_hash does not match"),
        ("cut.backup", whole[..whole.len() / 2].to_vec(), "incomplete"),
    ] {
        let bad = dir.join(name);
        std::fs::write(&bad, bytes).unwrap();
        let refused = seald(&["restore", bad.to_str().unwrap(), "--config", restored_cfg.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && said.contains(why), "{name}: {said}");
        for d in ["r-store", "r-journal"] {
            let left = std::fs::read_dir(dir.join(d)).map(|r| r.count()).unwrap_or(0);
            assert_eq!(left, 0, "{name} left files in {d}");
        }
    }
    let live_cfg = dir.join("live-rekeyed.toml");
    std::fs::write(&live_cfg, std::fs::read_to_string(&cfg).unwrap().replace(&old_key, &new_audit_key)).unwrap();
    let stale =
        seald(&["restore", backup.to_str().unwrap(), "--config", restored_cfg_stale(&dir, &cfg).to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("another audit key"),
        "the backup names the active audit key"
    );
    let into_live = seald(&["restore", backup.to_str().unwrap(), "--config", live_cfg.to_str().unwrap()]);
    assert!(
        !into_live.status.success() && String::from_utf8_lossy(&into_live.stderr).contains("not empty"),
        "a restore never overwrites state"
    );
    let restored = seald(&["restore", backup.to_str().unwrap(), "--config", restored_cfg.to_str().unwrap()]);
    assert!(
        restored.status.success(),
        "restore: {}{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    // Each step of the restore is shown as it starts.
    let steps = String::from_utf8_lossy(&restored.stderr);
    for step in ["checking the backup", "writing the journal", "replaying", "verifying the audit chain"] {
        assert!(steps.contains(step), "{step}: {steps}");
    }
    let (child, spawned) = common::spawn_seald(&restored_cfg, &[]);
    let addr2 = spawned.to_string();
    let restored_daemon = Kill(child);
    let ctl2 = |who: &str, args: &[&str]| sealctl(&dir, &addr2, who, args);
    let seals_after = json(ctl2("issuer", &["seal", "--json", "list"]), "seals after");
    assert_eq!(seals_after, seals_before, "the registry is the same after restore");
    let port2 = addr2.rsplit(':').next().unwrap().to_string();
    let audit_verify = |port: &str| {
        Command::new(env!("CARGO_BIN_EXE_sealctl"))
            .args(["audit", "verify", "--server", &format!("https://localhost:{port}"), "--ca", &pem("ca")])
            .args(["--cert", &pem("auditor"), "--key", dir.join("auditor.key").to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert!(audit_verify(&port2).status.success(), "the restored chain verifies");
    ok(ctl2("sysadmin", &["unit", "create", "after-restore", "--name", "恢复后新建单位"]), "the chain continues");
    assert!(audit_verify(&port2).status.success(), "and still verifies after new records");
    drop(restored_daemon);

    // Completions for operators' shells.
    let comp = Command::new(env!("CARGO_BIN_EXE_sealctl")).args(["completions", "bash"]).output().unwrap();
    assert!(comp.status.success() && String::from_utf8_lossy(&comp.stdout).contains("sealctl"));
}

/// sealctl never hangs and never panics: a daemon that accepts and never answers gives exit status 3
/// within the timeout; a closed pipe ends it quietly (TLS refusals in words: tests/daemon.rs).
#[test]
fn sealctl_gives_up_in_time_and_ends_quietly_on_a_closed_pipe() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("cli CA").unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let me = ca.client("me", 3, -1, 30).unwrap();
    std::fs::write(dir.path().join("me.pem"), &me.cert_pem).unwrap();
    std::fs::write(dir.path().join("me.key"), &me.key_pem).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(["unit", "list", "--timeout", "2"])
        .env("SEALCTL_SERVER", format!("https://localhost:{port}"))
        .env("SEALCTL_CA", dir.path().join("ca.pem"))
        .env("SEALCTL_CERT", dir.path().join("me.pem"))
        .env("SEALCTL_KEY", dir.path().join("me.key"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no answer within 2 s"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "sealctl hung for {:?}", started.elapsed());
    drop(silent);
    // A closed pipe: no panic, and the pipeline succeeds.
    let piped = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} completions zsh | head -1 >/dev/null; echo \"${{PIPESTATUS[@]}}\"",
                env!("CARGO_BIN_EXE_sealctl")
            ),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let statuses = String::from_utf8_lossy(&piped.stdout);
    assert!(statuses.trim().ends_with(" 0"), "head: {statuses}");
}
