//! `sealctl unit ...`: units, through the daemon's API.

use crate::output::{cell, out, out_table};
use crate::remote::{call, Conn, Failure};
use clap::Subcommand;
use serde_json::json;

/// `sealctl unit ...`.
#[derive(Subcommand, Debug)]
pub enum UnitCmd {
    /// Every unit.
    List,
    /// Create a unit (system administrator).
    Create {
        /// Stable code.
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// The unit above.
        #[arg(long)]
        parent: Option<String>,
    },
}

/// Runs `sealctl unit ...`.
pub fn run(c: &Conn, cmd: UnitCmd) -> Result<(), Failure> {
    match cmd {
        UnitCmd::List => {
            let v = call(c, "GET", "/v1/admin/units", None)?;
            out_table(c, &v, "units", &[("id", "ID"), ("parent", "PARENT"), ("name", "NAME")]);
        }
        UnitCmd::Create { id, name, parent } => {
            let v = call(c, "POST", "/v1/admin/units", Some(json!({ "id": id, "name": name, "parent": parent })))?;
            out(c, &v, |v| println!("unit {} created", cell(&v["id"])));
        }
    }
    Ok(())
}
