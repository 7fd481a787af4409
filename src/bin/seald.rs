//! seald: the electronic-seal signing and verification daemon.
//!
//! `seald run` serves the mTLS API; `seald check` checks a configuration against its token;
//! `seald init` creates the first three administrators and the issuing CA (daemon stopped);
//! `seald dev` sets up a development appliance (softtoken, a dev CA and certificates) and runs it.
//!
//! This file holds the command line, `run`, `check` and `main`; `init`, `restore` and `dev` have a
//! module each.

#[path = "seald/check.rs"]
mod check;
#[path = "seald/dev.rs"]
mod dev;
#[path = "seald/history.rs"]
mod history;
#[path = "seald/init.rs"]
mod init;
#[path = "seald/migrate.rs"]
mod migrate;
#[path = "seald/restore.rs"]
mod restore;

use clap::{Parser, Subcommand};
use seald::authz::Role;
use seald::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "seald", version, about = "Electronic-seal signing and verification appliance (签名验签服务器)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the signing and verification API over mutual TLS until SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
    },
    /// Preflight: the config, its files (owners, modes), the server certificate and key, the client CA
    /// and CRLs (fresh), the token (reachable, its profile, login), every configured key and the
    /// audit key, the store and journal (writable, in step), the clock. One line per check; exit
    /// status 0 ready, 1 a check failed, 2 the config cannot be read.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
        /// Read the token PIN from this file instead of the config's pin_file or pin_credential
        /// (run by hand, where the service's credential is not there); `-` reads standard input.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// First boot, with the daemon stopped: create the three administrator accounts (三员: system
    /// administrator, security officer, auditor) from their client certificates, and generate the
    /// issuing CA key in the token with its self-signed certificate. Prints the fingerprints to
    /// record. Refuses when accounts exist already.
    Init {
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
        /// The system administrator's client certificate (PEM).
        #[arg(long)]
        sysadmin: PathBuf,
        /// The security officer's client certificate (PEM).
        #[arg(long)]
        secofficer: PathBuf,
        /// The auditor's client certificate (PEM).
        #[arg(long)]
        auditor: PathBuf,
        /// Common name of the issuing CA certificate.
        #[arg(long, default_value = "seald issuing CA")]
        ca_name: String,
        /// Validity of the issuing CA certificate, days.
        #[arg(long, default_value_t = 3650)]
        ca_days: u32,
        /// Generate the audit key in the token first (SM2 where the token has it, P-256 otherwise)
        /// and write its CKA_ID into the config's `[audit] key`.
        #[arg(long)]
        new_audit_key: bool,
        /// Read the token PIN from this file instead of the config's pin_file or pin_credential; `-`
        /// reads standard input.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Move an appliance onto a cluster's PostgreSQL, with the daemon stopped: replay the embedded
    /// journal (`[audit] dir`) into the database named by the config (`[store] backend =
    /// "postgres"`, `[store.postgres]`, `[cluster] node_id`), verifying the chain and its
    /// checkpoints as it goes. The history becomes that node's chain; an interrupted run continues.
    Migrate {
        /// Where to: `postgres`.
        #[arg(long, value_parser = ["postgres"])]
        to: String,
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
        /// Read the token PIN from this file instead of the config's pin_file or pin_credential; `-`
        /// reads standard input.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Restore a backup (from `sealctl backup`) with the daemon stopped, into the configuration's
    /// store and journal directories, which must be empty. Refuses a backup whose manifest does not
    /// verify with the audit key, whose parts do not match, or whose keys the token lacks.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Configuration file.
        #[arg(long, default_value = "/etc/seald/seald.toml")]
        config: PathBuf,
        /// Read the token PIN from this file instead of the config's pin_file or pin_credential; `-`
        /// reads standard input.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Set up a development appliance in DIR and run it: softtoken (a software PKCS#11 token with SM2),
    /// SM2 and P-256 keys and an audit key, a dev CA with server and client certificates (PEM and
    /// PKCS#12), a config; then serve the API on 127.0.0.1, sign and verify once through it, print the
    /// curl lines to try, and keep serving until Ctrl-C. Running it again reuses DIR.
    Dev {
        /// Where the development state lives.
        #[arg(long, default_value = "./dev")]
        dir: PathBuf,
        /// Where the daemon listens (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
    },
    /// A large history for benchmarks (daemon stopped): copies of the first seal and usage records,
    /// through the real journal and store.
    #[command(hide = true)]
    DevHistory {
        /// Configuration file (a `seald dev` directory's seald.toml).
        #[arg(long)]
        config: PathBuf,
        /// Seals in all (the first and its copies).
        #[arg(long, default_value_t = 100_000)]
        seals: u64,
        /// Usage records.
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (seald.1 and one per command) into DIR, for packaging.
    #[command(hide = true)]
    Man {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

/// Why a command failed: `main` prints it and exits with status 1.
type Error = Box<dyn std::error::Error>;

/// The runtime the daemon serves on (`seald run`, `seald dev`).
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(config: &Path) -> Result<(), Error> {
    let cfg = Config::load(config)?;
    runtime()?.block_on(seald::server::run(cfg, None))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    seald::init_logging("info");
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Migrate { to: _, config, pin_file } => migrate::run(&config, pin_file.as_deref()),
        Command::Restore { file, config, pin_file } => restore::run(&file, &config, pin_file.as_deref()),
        Command::Init { config, sysadmin, secofficer, auditor, ca_name, ca_days, new_audit_key, pin_file } => {
            init::run(
                &config,
                pin_file.as_deref(),
                [
                    (Role::Sysadmin, "sysadmin", sysadmin.as_path()),
                    (Role::Secofficer, "secofficer", secofficer.as_path()),
                    (Role::Auditor, "auditor", auditor.as_path()),
                ],
                &ca_name,
                ca_days,
                new_audit_key,
            )
        }
        Command::Check { config, pin_file } => return ExitCode::from(check::run(&config, pin_file.as_deref())),
        Command::Dev { dir, listen } => dev::run(&dir, &listen),
        Command::DevHistory { config, seals, records } => history::run(&config, seals, records),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "seald", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => {
            use clap::CommandFactory as _;
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                .map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seald: error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
