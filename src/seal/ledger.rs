//! The ledger every registry service works over: the store (the current state), the journal (the
//! truth), and the one way to change them: check, then commit one journal record that carries every
//! change, or refuse and journal the refusal. It also holds the per-seal locks (uses share a seal's
//! lock; transitions take it alone), the admin lock that serialises account, unit, grant and filing
//! changes, and the audit key in use.

use super::*;

/// The most values one page of a registry list reads (see [`Ledger::page_of`]).
pub const PAGE_BUDGET: usize = 5_000;

/// The store and journal, with the locks and the settings the services share.
pub struct Ledger {
    pub(super) store: Arc<Store>,
    pub(super) journal: Arc<Journal>,
    pub(super) pool: TokenPool,
    pub(super) settings: SealSettings,
    slots: Mutex<HashMap<String, Arc<SealSlot>>>,
    admin: Mutex<()>,
    audit_key: Mutex<Option<KeyId>>,
}

impl Ledger {
    /// Journals a refusal: the one way every refused request is recorded. The request is refused
    /// either way; a record the journal cannot take is logged, never dropped silently.
    pub(super) fn journal_refusal(&self, ev: AuditEvent) {
        if let Err(e) = self.journal.append(ev) {
            tracing::warn!(error = %e, "a refusal could not be journalled");
        }
    }

    pub(super) fn new(store: Arc<Store>, journal: Arc<Journal>, pool: TokenPool, settings: SealSettings) -> Self {
        Ledger {
            store,
            journal,
            pool,
            settings,
            slots: Mutex::new(HashMap::new()),
            admin: Mutex::new(()),
            audit_key: Mutex::new(None),
        }
    }
}

/// A lock held here (`L`) and, on a cluster, on every node; the cluster's goes first.
pub(super) struct Held<L> {
    _cluster: Option<crate::store::ClusterLock>,
    _local: L,
}

impl Ledger {
    /// Tells the registry which token key signs the journal's checkpoints now (for rotation and
    /// backups).
    pub fn set_audit_key(&self, id: KeyId) {
        *self.audit_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    /// The token key that signs checkpoints now.
    pub fn audit_key(&self) -> Option<KeyId> {
        self.audit_key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The seal's coordination slot. Only seals that exist get a lasting one, so requests naming
    /// made-up ids cannot grow the map.
    pub(super) fn slot(&self, id: &str) -> Arc<SealSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(id) {
            return s.clone();
        }
        if !self.store.get::<Seal>(tree::SEALS, id).is_ok_and(|s| s.is_some()) {
            return Arc::default();
        }
        slots.entry(id.to_string()).or_default().clone()
    }

    /// The registry's administration (accounts, units, grants, filings, appliance keys) held alone:
    /// here, and on a cluster on every node.
    pub(super) fn admin_lock(&self) -> Result<Held<std::sync::MutexGuard<'_, ()>>, SealError> {
        let local = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let cluster = self.store.pg().map(|pg| pg.lock("admin")).transpose()?;
        Ok(Held { _cluster: cluster, _local: local })
    }

    /// Seal `id` held alone for a transition (uses wait, or on other nodes fail their guard): here,
    /// and on a cluster on every node.
    pub(super) fn exclusive(
        &self,
        id: &str,
    ) -> Result<Held<parking_lot::lock_api::ArcRwLockWriteGuard<parking_lot::RawRwLock, ()>>, SealError> {
        let local = self.slot(id).lock.write_arc();
        let cluster = self.store.pg().map(|pg| pg.lock(&format!("seal:{id}"))).transpose()?;
        Ok(Held { _cluster: cluster, _local: local })
    }

    /// Journals an event (durable, and applied to the store) and returns its seq.
    pub(super) fn commit(&self, ev: AuditEvent) -> Result<u64, SealError> {
        Ok(self.journal.append(ev)?.seq)
    }

    /// Journals a refusal and returns the error (a refusal that cannot be journalled is still refused).
    pub(super) fn refuse(&self, p: &Principal, action: &str, object: &str, err: SealError) -> SealError {
        self.refuse_with(p, action, object, err, &[])
    }

    /// Journals a refusal with `details` beside its message, and returns the error. A refusal the
    /// journal cannot take is still refused, and logged.
    pub(super) fn refuse_with(
        &self,
        p: &Principal,
        action: &str,
        object: &str,
        err: SealError,
        details: &[(&str, serde_json::Value)],
    ) -> SealError {
        let mut ev = AuditEvent::new(actor(p), action, object, &format!("refused:{}", err.code()))
            .detail("message", err.to_string());
        for (k, v) in details {
            ev = ev.detail(k, v.clone());
        }
        self.journal_refusal(ev);
        err
    }

    /// `Ok` when `p` has `role`; otherwise a journalled refusal saying `why`.
    pub(super) fn require_role(
        &self,
        p: &Principal,
        role: Role,
        action: &str,
        object: &str,
        why: impl Into<String>,
    ) -> Result<(), SealError> {
        if p.role == role {
            return Ok(());
        }
        Err(self.refuse(p, action, object, SealError::Forbidden(why.into())))
    }

    /// Whether `account` holds a grant on seal `seal`.
    pub(super) fn granted(&self, seal: &str, account: &str) -> Result<bool, SealError> {
        Ok(self.store.get::<super::Grant>(tree::GRANTS, &format!("{seal}/{account}"))?.is_some())
    }

    /// A seal by id.
    pub fn seal(&self, id: &str) -> Result<Seal, SealError> {
        self.store
            .get::<Seal>(tree::SEALS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_seal", format!("no seal '{id}'")))
    }

    /// A page of a tree's values, in key order, that `keep` accepts: at most `limit`, after `cursor`
    /// (the page before's `next`, the last key read, hex). A page reads at most
    /// [`PAGE_BUDGET`] values, so its cost does not grow with the tree; a page cut short by that
    /// still has a cursor.
    pub(super) fn page_of<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        cursor: Option<&str>,
        limit: usize,
        keep: impl FnMut(&T) -> Result<bool, SealError>,
    ) -> Result<(Vec<T>, Option<String>), SealError> {
        self.page_of_prefix(tree, "", cursor, limit, keep)
    }

    /// As [`Ledger::page_of`], deciding on a light reading of each value (`P`, which skips every
    /// field it does not name: a seal's picture, certificates and history) and decoding only the
    /// values kept whole. A filtered list then costs a scan of small reads, not of whole seals.
    pub(super) fn page_of_peeked<P: serde::de::DeserializeOwned, T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        cursor: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&P) -> Result<bool, SealError>,
    ) -> Result<(Vec<T>, Option<String>), SealError> {
        let undecodable = |e: serde_json::Error| {
            SealError::from(crate::store::StoreError::Decode {
                tree: tree.into(),
                key: String::new(),
                message: e.to_string(),
            })
        };
        let (raw, next) = self.page_of_prefix::<Box<serde_json::value::RawValue>>(tree, "", cursor, limit, |v| {
            keep(&serde_json::from_str::<P>(v.get()).map_err(undecodable)?)
        })?;
        let whole: Result<Vec<T>, SealError> =
            raw.iter().map(|v| serde_json::from_str::<T>(v.get()).map_err(undecodable)).collect();
        Ok((whole?, next))
    }

    /// As [`Ledger::page_of`], among the keys that start with `prefix` (a seal's grants).
    pub(super) fn page_of_prefix<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&T) -> Result<bool, SealError>,
    ) -> Result<(Vec<T>, Option<String>), SealError> {
        Self::page_by(
            cursor,
            limit,
            |after| Ok(self.store.scan_prefix_after::<T>(tree, prefix, after, 256)?),
            |_, v| Ok(keep(&v)?.then_some(v)),
        )
    }

    /// A page of a keyed source read in batches after a key (`batch`: up to 256 (key, value), and
    /// whether more follow): the values `keep` turns into items, at most `limit`, after `cursor`
    /// (a key, hex). It reads at most [`PAGE_BUDGET`] values; a page cut short by that still has
    /// a cursor.
    pub(super) fn page_by<R, T>(
        cursor: Option<&str>,
        limit: usize,
        mut batch: impl FnMut(Option<&str>) -> Result<(Vec<(String, R)>, bool), SealError>,
        mut keep: impl FnMut(&str, R) -> Result<Option<T>, SealError>,
    ) -> Result<(Vec<T>, Option<String>), SealError> {
        let mut after = match cursor {
            None => None,
            Some(c) => Some(
                hex::decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| SealError::Invalid("bad_cursor", "the cursor is not one this list gave".into()))?,
            ),
        };
        let (mut out, mut read) = (Vec::new(), 0usize);
        loop {
            let (values, more) = batch(after.as_deref())?;
            let n = values.len();
            for (i, (key, v)) in values.into_iter().enumerate() {
                read += 1;
                let kept = keep(&key, v)?;
                after = Some(key);
                if let Some(item) = kept {
                    out.push(item);
                    if out.len() == limit {
                        let left = more || i + 1 < n;
                        return Ok((out, if left { after.map(hex::encode) } else { None }));
                    }
                }
            }
            if !more {
                return Ok((out, None));
            }
            if read >= PAGE_BUDGET {
                return Ok((out, after.map(hex::encode)));
            }
        }
    }

    /// Every page of a paged list, in order (`page` is asked with each page's cursor): for the
    /// callers that want the whole list.
    pub(super) fn every_page<T>(
        mut page: impl FnMut(Option<&str>) -> Result<(Vec<T>, Option<String>), SealError>,
    ) -> Result<Vec<T>, SealError> {
        let (mut out, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let (items, next) = page(cursor.as_deref())?;
            out.extend(items);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }
}
