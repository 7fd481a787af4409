//! `sealctl token ...` and `seald check` as an operator runs them, against SoftHSM2, with OpenSSL
//! checking what comes out.

mod common;

use common::{openssl, TestToken};
use std::process::{Command, Output};

fn sealctl(t: &TestToken, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealctl"));
    cmd.args(args);
    if !args.contains(&"--help") {
        cmd.args(["--module", t.module.to_str().unwrap(), "--token", &t.label]);
        if !args.contains(&"--pin-file") {
            cmd.args(["--pin-file", t.pin_file.to_str().unwrap()]);
        }
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn keygen_pubkey_sign_list_selftest_and_openssl_agrees() {
    let t = TestToken::new("cli");
    let out = stdout(&sealctl(&t, &["token", "keygen", "--alg", "p256", "--label", "cli-key", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let pem = stdout(&sealctl(&t, &["token", "pubkey", "--id", &id]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(pem, v["public_key_pem"].as_str().unwrap());
    let pem_file = t.scratch("cli.pem");
    std::fs::write(&pem_file, &pem).unwrap();

    let digest = seald::crypto::sha256(b"sealctl end to end");
    let sig_hex = stdout(&sealctl(&t, &["token", "sign", "--id", &id, "--digest", &hex::encode(digest)]));
    let sig_file = t.scratch("cli.sig");
    std::fs::write(&sig_file, hex::decode(sig_hex.trim()).unwrap()).unwrap();
    let dgst_file = t.scratch("cli.dgst");
    std::fs::write(&dgst_file, digest).unwrap();
    let (ok, text) = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        pem_file.to_str().unwrap(),
        "-in",
        dgst_file.to_str().unwrap(),
        "-sigfile",
        sig_file.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");

    let list = stdout(&sealctl(&t, &["token", "list"]));
    assert!(list.contains(&id) && list.contains("p256") && list.contains("cli-key"), "{list}");
    let info = stdout(&sealctl(&t, &["token", "info", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["info"]["profile"], "softhsm2");
    assert_eq!(info["info"]["token_label"], t.label.as_str());
    let st = stdout(&sealctl(&t, &["token", "selftest", "--json"]));
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["ok"], true);
    assert_eq!(st["keys"][0]["id"], id.as_str());
}

#[test]
fn operator_mistakes_get_clear_errors_and_exit_1() {
    let t = TestToken::new("cli-err");
    let bad_pin = t.scratch("bad.pin");
    std::fs::write(&bad_pin, "0000-secret-0000\n").unwrap();
    let o = sealctl(&t, &["token", "list", "--pin-file", bad_pin.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("pin_rejected") && !err.contains("0000-secret"), "{err}");

    let o = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args([
            "token",
            "list",
            "--module",
            "/no/such/lib.so",
            "--token",
            "x",
            "--pin-file",
            t.pin_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/lib.so"));

    let o = sealctl(&t, &["token", "sign", "--id", "00", "--digest", "abcd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("32 bytes"));

    let o = sealctl(&t, &["token", "keygen", "--alg", "dsa", "--label", "x"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown algorithm");
    // There is no way to give a PIN on the command line.
    let o = sealctl(&t, &["token", "list", "--pin", "1234"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["token", "--help"],
        vec!["token", "info", "--help"],
        vec!["token", "keygen", "--help"],
        vec!["token", "list", "--help"],
        vec!["token", "pubkey", "--help"],
        vec!["token", "sign", "--help"],
        vec!["token", "selftest", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "export", "--help"],
        vec!["audit", "archive", "--help"],
        vec!["audit", "query", "--help"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_sealctl")).args(&args).output().unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "sealctl {args:?}");
    }
    for args in [vec!["--help"], vec!["dev", "--help"], vec!["check", "--help"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_seald")).args(&args).output().unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "seald {args:?}");
    }
}

#[test]
fn seald_check_reads_a_config_and_logs_in() {
    let t = TestToken::new("check");
    // A config with only [token], and the given PIN line.
    let config = |name: &str, pin_line: String| {
        let path = t.scratch(name);
        let text = format!("[token]\nmodule = \"{}\"\nlabel = \"{}\"\n{pin_line}\n", t.module.display(), t.label);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cfg = config("seald.toml", format!("pin_file = \"{}\"", t.pin_file.display()));
    let o =
        Command::new(env!("CARGO_BIN_EXE_seald")).args(["check", "--config", cfg.to_str().unwrap()]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // The token checks pass; a config with only [token] is not an appliance (exit status 1).
    assert!(out.contains(&format!("ok    token: '{}'", t.label)), "{out}");
    assert!(o.status.code() == Some(1) && out.contains("FAIL  [server]"), "{out}");
    // A config that takes the PIN from a systemd credential, run by hand: --pin-file instead.
    let cred = config("credential.toml", "pin_credential = \"token-pin\"".into());
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_seald"))
            .args(["check", "--config", cred.to_str().unwrap()])
            .args(extra)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let without = run(&[]);
    assert!(without.contains("FAIL  token") && without.contains("CREDENTIALS_DIRECTORY"), "{without}");
    let with = run(&["--pin-file", t.pin_file.to_str().unwrap()]);
    assert!(with.contains(&format!("ok    token: '{}'", t.label)), "{with}");
    // sealctl token reads the same [token] section.
    let o = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(["token", "info", "--config", cfg.to_str().unwrap()])
        .env_remove("SEALD_PKCS11_MODULE")
        .env_remove("SEALD_PIN_FILE")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success() && out.contains(&t.label), "{out}{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&cfg, "[token]\nlabel = \"x\"\npinfile = \"/p\"\n").unwrap();
    let o =
        Command::new(env!("CARGO_BIN_EXE_seald")).args(["check", "--config", cfg.to_str().unwrap()]).output().unwrap();
    // A config that cannot be read: exit status 2, and the line names the unknown field.
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("pinfile"));
}

/// Runs `seald dev` until it says it serves; returns its output so far, then stops it with SIGTERM
/// and checks that it exits cleanly.
fn run_dev(dir: &std::path::Path) -> String {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_seald"))
        .args(["dev", "--dir", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env_remove("SOFTTOKEN_DIR")
        .env_remove("SOFTTOKEN_PROFILE")
        .env_remove("SOFTTOKEN_FAULT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) => {
                out.push_str(&l);
                out.push('\n');
                if l.contains("target/release/sealctl audit verify") {
                    break;
                }
            }
            _ => break,
        }
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "seald dev did not exit cleanly on SIGTERM: {status:?}\n{out}");
    out
}

#[test]
fn seald_dev_sets_up_serves_signs_over_mtls_and_openssl_agrees_twice() {
    common::softtoken_module();
    common::require_tool("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    let first = run_dev(&dev);
    assert!(first.contains("initialising softtoken") && first.contains("making a development CA"), "{first}");
    assert!(first.contains("valid=true; OpenSSL 3 verifies it"), "{first}");
    assert!(first.contains("seald dev is serving at https://127.0.0.1:"), "{first}");
    for f in [
        "ca.pem",
        "app.pem",
        "app.key",
        "auditor.pem",
        "auditor.key",
        "secofficer.pem",
        "sysadmin.pem",
        "issuer.pem",
        "seald.toml",
        "app.p12",
    ] {
        assert!(dev.join(f).exists(), "dev/{f} is missing");
    }
    let key_mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dev.join("app.key")).unwrap().permissions());
    assert_eq!(key_mode & 0o077, 0, "client keys are private");
    // Running it again reuses the token, keys, PKI and journal.
    let second = run_dev(&dev);
    assert!(
        !second.contains("initialising") && !second.contains("generating") && !second.contains("making"),
        "{second}"
    );
    assert!(second.contains("valid=true; OpenSSL 3 verifies it"), "{second}");
    // The journal it kept verifies with the audit key, offline, with the daemon stopped.
    let o = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args([
            "audit",
            "verify",
            "--journal",
            dev.join("journal").to_str().unwrap(),
            "--pubkey",
            dev.join("audit.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("signatures checked") && !text.contains("no signed head"),
        "the stop checkpoint signs the end: {text}"
    );
}
