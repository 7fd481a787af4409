//! seald: an electronic-seal signing and verification appliance (签名验签服务器).
//!
//! Seal private keys live in PKCS#11 tokens and never leave them. This crate holds the library that
//! the `seald` daemon and the `sealctl` CLI share. Dependencies point downwards only:
//! `token` (the only code that calls `cryptoki`) and `crypto` (host-side checks, no private keys) are
//! the foundation everything else builds on.
#![deny(missing_docs, unused_results, trivial_casts, unused_must_use)]
// No unsafe code, with one exception allowed where it stands: `clock::kernel_report` reads the
// kernel's clock state through adjtimex(2), which no safe crate wraps.
#![deny(unsafe_code)]

pub mod api;
pub mod audit;
pub mod authz;
pub mod backup;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod contract;
pub mod crypto;
pub mod devpki;
pub mod formats;
pub mod listener;
pub mod notify;
pub mod seal;
pub mod server;
pub mod signing;
pub mod store;
pub mod tls;
pub mod token;

/// Logs through `tracing`, filtered by `$SEALD_LOG` (default: `default_level`): to journald with
/// structured fields when systemd runs the process (it sets `$JOURNAL_STREAM`); otherwise to stderr,
/// as JSON lines when `$SEALD_LOG_FORMAT=json` (for log shippers), text otherwise. Shared by the
/// binaries so that every tool logs alike. Nothing logged carries a PIN or key material.
pub fn init_logging(default_level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALD_LOG").unwrap_or_else(|_| default_level.into());
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            let journald = journald.with_syslog_identifier("seald".into());
            tracing_subscriber::registry().with(filter).with(journald).init();
            return;
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("SEALD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
