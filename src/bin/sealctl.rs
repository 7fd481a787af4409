//! sealctl: the command line for security officers, administrators and auditors.
//!
//! `sealctl token ...` talks to a PKCS#11 module directly (the daemon must not hold the token's
//! only session for this to work on single-session USB keys). PINs come from a file, never from
//! the command line.
//!
//! One module per noun: this file holds the top-level command line and `main`; `remote` reaches the
//! daemon and `output` prints its answers.

#[path = "sealctl/account.rs"]
mod account;
#[path = "sealctl/audit.rs"]
mod audit;
#[path = "sealctl/backup.rs"]
mod backup;
#[path = "sealctl/ca.rs"]
mod ca;
#[path = "sealctl/filing.rs"]
mod filing;
#[path = "sealctl/keys.rs"]
mod keys;
#[path = "sealctl/ofd.rs"]
mod ofd;
#[path = "sealctl/output.rs"]
mod output;
#[path = "sealctl/remote.rs"]
mod remote;
#[path = "sealctl/seal.rs"]
mod seal;
#[path = "sealctl/ses.rs"]
mod ses;
#[path = "sealctl/sign.rs"]
mod sign;
#[path = "sealctl/status.rs"]
mod status;
#[path = "sealctl/token.rs"]
mod token;
#[path = "sealctl/unit.rs"]
mod unit;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sealctl",
    version,
    about = "seald's command line: seals and their lifecycle, filings, accounts and units (through the daemon's API), tokens and keys, the audit journal",
    after_help = "Exit status: 0 done; 1 refused by the daemon (or the audit chain has a problem); 2 bad command line or unreadable input; 3 the daemon is unreachable or failed.\nThe daemon connection comes from --server, --ca, --cert, --key (or --p12), --timeout or SEALCTL_SERVER, SEALCTL_CA, SEALCTL_CERT, SEALCTL_KEY, SEALCTL_P12, SEALCTL_TIMEOUT."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a PKCS#11 token directly: inspect, make keys, sign, self-test.
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
    /// Verify, export and query the audit journal (the daemon stopped, or an export elsewhere).
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Seals: apply, approve, make, publish, freeze, unfreeze, revoke, change, renew; policy, grants,
    /// use tickets, usage (through the daemon).
    Seal {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: seal::SealCmd,
    },
    /// Sign a document with a seal (or a plain key) as an application (through the daemon).
    Sign {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(flatten)]
        cmd: sign::SignCmd,
    },
    /// Filings (备案) for the police seal-management system (through the daemon).
    Filing {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: filing::FilingCmd,
    },
    /// Registry accounts (through the daemon; system administrator).
    Account {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: account::AccountCmd,
    },
    /// Key versions, rotation and dual control: seal keys, the issuing CA, the seal maker (through the
    /// daemon; security officers).
    Keys {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: keys::KeysCmd,
    },
    /// A backup through the daemon: the journal up to a signed checkpoint and a manifest signed by
    /// the audit key (system administrator). Keys stay in the token. It streams into FILE.part,
    /// renamed to FILE when whole.
    Backup {
        #[command(flatten)]
        conn: remote::Conn,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Go on with FILE.part, left by a download cut short: keep its whole records and fetch
        /// the rest of the same backup.
        #[arg(long)]
        resume: bool,
    },
    /// The built-in issuing CA: its certificate, and certificates for PKCS#10 requests (through the daemon).
    Ca {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: ca::CaCmd,
    },
    /// Units (through the daemon).
    Unit {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(subcommand)]
        cmd: unit::UnitCmd,
    },
    /// GB/T 38540 / GM/T 0031 seals and signatures, and OFD packages, offline: dump and verify.
    Ses {
        #[command(subcommand)]
        cmd: ses::SesCmd,
    },
    /// Seal an OFD document (GB/T 33190) with a seal, as an application (through the daemon).
    SealOfd {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(flatten)]
        args: ofd::SealOfdArgs,
    },
    /// Verify every signature of an OFD document (through the daemon): exit 0 valid, 1 not valid,
    /// 2 unusable input, 3 daemon unreachable.
    VerifyOfd {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(flatten)]
        args: ofd::VerifyOfdArgs,
    },
    /// Whether a seal was valid at a time: the daemon's signed answer, verified here against the
    /// issuing CA (or a saved answer, offline). Exit 0 verified, 1 not verified.
    SealStatus {
        #[command(flatten)]
        conn: remote::Conn,
        #[command(flatten)]
        args: status::SealStatusArgs,
    },
    /// Who the daemon takes this certificate for: account, role, unit (through the daemon).
    Whoami {
        #[command(flatten)]
        conn: remote::Conn,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (sealctl.1 and one per command) into DIR, for packaging.
    #[command(hide = true)]
    Man {
        /// The directory to write into (created if missing).
        dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    // A closed pipe (`sealctl ... | head -1`) ends sealctl quietly, as it does `cat`, instead of a
    // panic in println!.
    // SAFETY: called first in main, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        let _ = libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    seald::init_logging("warn");
    let remote = match cli.command {
        Command::Seal { conn, cmd } => seal::run(&conn, cmd),
        Command::Sign { conn, cmd } => sign::run(&conn, cmd),
        Command::Filing { conn, cmd } => filing::run(&conn, cmd),
        Command::Account { conn, cmd } => account::run(&conn, cmd),
        Command::Unit { conn, cmd } => unit::run(&conn, cmd),
        Command::Ca { conn, cmd } => ca::run(&conn, cmd),
        Command::Backup { conn, out, resume } => backup::run(&conn, &out, resume),
        Command::Keys { conn, cmd } => keys::run(&conn, cmd),
        Command::Whoami { conn } => {
            remote::call(&conn, "GET", "/v1/whoami", None).map(|v| output::out(&conn, &v, output::fields))
        }
        Command::Ses { cmd } => return ExitCode::from(ses::run(cmd)),
        Command::SealOfd { conn, args } => ofd::seal(&conn, args),
        Command::VerifyOfd { conn, args } => return ExitCode::from(ofd::verify(&conn, args)),
        Command::SealStatus { conn, args } => status::run(&conn, args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "sealctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => {
            use clap::CommandFactory as _;
            return match std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(Cli::command(), &dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sealctl: error: writing man pages into {}: {e}", dir.display());
                    ExitCode::from(1)
                }
            };
        }
        Command::Audit { action } => {
            return match audit::run(action) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("sealctl: error [audit_unreadable]: {e}");
                    ExitCode::from(audit::UNREADABLE)
                }
            };
        }
        Command::Token { action } => {
            return match token::run(action) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sealctl: error [{}]: {e}", e.code());
                    ExitCode::from(1)
                }
            };
        }
    };
    match remote {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sealctl: error {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        // Global options reach every subcommand: build each one so clashes with them show here.
        let mut cmd = super::Cli::command();
        cmd.build();
        fn walk(c: &mut clap::Command) {
            c.build();
            for s in c.get_subcommands_mut() {
                walk(s);
            }
        }
        walk(&mut cmd);
    }
}
