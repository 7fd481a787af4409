//! The appliance: the systemd unit passes `systemd-analyze verify` and rates at most 2.5 with
//! `systemd-analyze security --offline=yes`; `appliance/install.sh` installs into a staging root,
//! idempotently, without touching an operator's edited config.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_unit_verifies_and_rates_at_most_2_5() {
    common::require_tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary this test was built with.
    let unit = std::fs::read_to_string(repo().join("systemd/seald.service")).unwrap();
    let copy = dir.path().join("seald.service");
    std::fs::write(&copy, unit.replace("/usr/bin/seald", env!("CARGO_BIN_EXE_seald"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify: {text}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(repo().join("systemd/seald.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no score in: {text}"));
    let score: f64 =
        line.split(':').nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(score <= 2.5, "exposure {score} > 2.5: {line}");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "LoadCredential=token-pin:",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "UMask=0077",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn install_sh_installs_into_a_staging_root_and_keeps_an_edited_config() {
    let root = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_seald")).parent().unwrap().to_path_buf();
    let run = || {
        let out = Command::new("sh")
            .arg(repo().join("appliance/install.sh"))
            .env("DESTDIR", root.path())
            .env("BIN_DIR", &bin)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let _ = run();
    for f in [
        "usr/bin/seald",
        "usr/bin/sealctl",
        "usr/lib/systemd/system/seald.service",
        "usr/lib/sysusers.d/seald.conf",
        "usr/lib/tmpfiles.d/seald.conf",
        "usr/share/seald/pkcs11-profiles/sansec.toml",
        "usr/share/doc/seald/OPERATORS.md",
        "etc/seald/seald.toml",
    ] {
        assert!(root.path().join(f).exists(), "{f} not installed");
    }
    assert!(!root.path().join("usr/lib/libsofttoken.so").exists(), "softtoken is never installed");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("etc/seald"), 0o750);
    assert_eq!(mode("etc/seald/seald.toml"), 0o640);
    // The default config is a valid one once its placeholders are filled.
    let cfg = std::fs::read_to_string(root.path().join("etc/seald/seald.toml")).unwrap();
    seald::config::Config::parse(&cfg, "default config").unwrap();
    // Running it again keeps what the operator edited.
    std::fs::write(root.path().join("etc/seald/seald.toml"), "# edited\n").unwrap();
    let second = run();
    assert!(second.contains("keeping the existing"), "{second}");
    assert_eq!(std::fs::read_to_string(root.path().join("etc/seald/seald.toml")).unwrap(), "# edited\n");
}
