//! `sealctl unit ...`: units, through the daemon's API.

use crate::output::{cell, out, out_table};
use crate::remote::{call, pages, Conn, Failure, PageArgs};
use clap::Subcommand;
use serde_json::json;

/// `sealctl unit ...`.
#[derive(Subcommand, Debug)]
pub enum UnitCmd {
    /// The units, by id (a page, or every page with --all).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
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
        UnitCmd::List { page } => {
            let v = pages(c, "/v1/admin/units", &[], &page, "units")?;
            out_table(c, &v, "units", &[("id", "ID"), ("parent", "PARENT"), ("name", "NAME")]);
        }
        UnitCmd::Create { id, name, parent } => {
            let v = call(c, "POST", "/v1/admin/units", Some(json!({ "id": id, "name": name, "parent": parent })))?;
            out(c, &v, |v| println!("unit {} created", cell(&v["id"])));
        }
    }
    Ok(())
}
