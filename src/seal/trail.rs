//! The audit trail as people reach it through the API: verification and export for auditors, and
//! backups for the system administrator (三员分立: neither sees the other's part). Each refusal is
//! journalled.

use super::{Ledger, SealError};
use crate::audit::{ExportRange, VerifyReport};
use crate::authz::{Principal, Role};
use std::sync::Arc;

/// The audit trail as people reach it.
pub struct Trail {
    ledger: Arc<Ledger>,
}

impl Trail {
    pub(super) fn new(ledger: Arc<Ledger>) -> Self {
        Trail { ledger }
    }
}

impl Trail {
    /// Verifies the whole journal with the audit key (auditors only).
    pub fn audit_verify(&self, p: &Principal) -> Result<VerifyReport, SealError> {
        self.ledger.require_role(p, Role::Auditor, "audit.verify", "audit", "this needs the auditor role")?;
        let journal = &self.ledger.journal;
        if let Some(db) = self.ledger.store.pg() {
            // Every node's chain and every cluster checkpoint, the finding naming its node.
            return Ok(crate::audit::verify_cluster_db(db, journal.public_key().as_ref())?.summary());
        }
        Ok(crate::audit::verify_journal_dir(journal.dir(), journal.public_key().as_ref())?)
    }

    /// A page of the journal's records matching `q` (auditors only).
    pub fn audit_records(
        &self,
        p: &Principal,
        q: &crate::audit::Query,
        cursor: &Option<String>,
        newest_first: bool,
        limit: usize,
    ) -> Result<crate::audit::Page, SealError> {
        self.ledger.require_role(p, Role::Auditor, "audit.query", "audit", "this needs the auditor role")?;
        Ok(self.ledger.journal.page(q, cursor.as_deref(), newest_first, limit)?)
    }

    /// Checks an export request (auditors only; `range` is the request's range, or why it could
    /// not be read as (code, message), checked after the role): the range to give to
    /// [`Trail::write_export`].
    pub fn audit_export(
        &self,
        p: &Principal,
        range: Result<ExportRange, (&'static str, String)>,
    ) -> Result<ExportRange, SealError> {
        self.ledger.require_role(p, Role::Auditor, "audit.export", "audit", "this needs the auditor role")?;
        let range = range.map_err(|(code, m)| SealError::Invalid(code, m))?;
        let last = self.ledger.journal.head_seq();
        if range.from == 0 || range.from > range.to {
            return Err(SealError::Invalid(
                "bad_range",
                format!("from {} to {}: from must be at least 1 and at most to", range.from, range.to),
            ));
        }
        if range.from > last {
            return Err(SealError::Invalid(
                "bad_range",
                format!("from {} is past the last record of the journal ({last})", range.from),
            ));
        }
        Ok(range)
    }

    /// Writes the records of a checked `range` as JSON Lines to `out`, one record at a time.
    pub fn write_export(&self, range: ExportRange, out: &mut dyn std::io::Write) -> Result<(), SealError> {
        if let Some(db) = self.ledger.store.pg() {
            // A cluster's export is every node's whole chain (what proves that no node's tail was
            // dropped); the range is not applied.
            // Signed at its end with the audit key, so that a tail cut from every chain shows.
            let key = self.ledger.audit_key().ok_or_else(|| SealError::Audit("no audit key".into()))?;
            let signer = crate::token::TokenKey::open(&self.ledger.pool, &key)?;
            let _ = crate::audit::export_cluster(db, out, Some(&signer))
                .map_err(|e| signer.blame(e.to_string()).map_or_else(|_| SealError::from(e), SealError::Token))?;
            return Ok(());
        }
        let _ = crate::audit::export(self.ledger.journal.dir(), range, out, Some(&self.ledger.store))?;
        Ok(())
    }

    /// Prepares a backup up to a checkpoint signed now, or the rest of one from `resume`'s
    /// `(from, head)` (or why the request's could not be read as (code, message), checked after
    /// the role), signed by the audit key in use (system administrator only), and journals it;
    /// [`Trail::write_backup`] streams it.
    pub fn backup(
        &self,
        p: &Principal,
        resume: Result<Option<(u64, u64)>, (&'static str, String)>,
    ) -> Result<crate::backup::Prepared, SealError> {
        self.ledger.require_role(p, Role::Sysadmin, "backup.make", "backup", "this needs the sysadmin role")?;
        if self.ledger.store.pg().is_some() {
            return Err(SealError::Backup(
                "a cluster's state and journal are the database's: back it up with the database's own tools \
                 (pg_basebackup, WAL archiving), and keep audit exports for the auditors"
                    .into(),
            ));
        }
        let resume = resume.map_err(|(code, m)| SealError::Invalid(code, m))?;
        let failed = |e: String| SealError::Backup(e);
        let key = self.ledger.audit_key().ok_or_else(|| failed("this appliance signs no checkpoints".into()))?;
        let signer = crate::token::TokenKey::open(&self.ledger.pool, &key)?;
        crate::backup::prepare(&self.ledger.journal, &self.ledger.store, &signer, &key, super::actor(p), resume)
            .map_err(|e| match e {
                crate::backup::MakeError::Range(m) => SealError::Invalid("bad_range", m),
                crate::backup::MakeError::Failed(e) => signer.blame(e).map_or_else(failed, SealError::Token),
            })
    }

    /// Streams a prepared backup into `out`.
    pub fn write_backup(
        &self,
        prepared: &crate::backup::Prepared,
        out: &mut dyn std::io::Write,
    ) -> Result<(), SealError> {
        crate::backup::write(&self.ledger.journal, prepared, out).map_err(|e| SealError::Backup(e.to_string()))
    }
}
