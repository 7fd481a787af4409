//! The session pool: logged-in sessions shared by many callers, and recovery when they are lost.
//!
//! Borrowers wait at most `borrow_timeout` for a session and then get `TokenBusy`. Calls block, so
//! callers on an async runtime run them on blocking threads (`spawn_blocking`), never on the
//! executor. Recovery (../shared/ARCHITECTURE.md, "Token layer"): a session-level failure drops the session and retries
//! once on a fresh, freshly logged-in one; a device-level failure (or a second failure) drains the
//! pool, finalizes and re-initializes the module with backoff, finds the token again and retries.
//! A rejected PIN latches: no further C_Login is attempted, so a wrong PIN never locks the token.

use super::keys::{self, p11};
use super::profile::{Profile, SignatureFormat};
use super::{Health, KeyAttributes, KeyId, KeyInfo, Pin, SignInput, Signature, TokenConfig, TokenError};
use crate::crypto::{self, KeyAlg};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Limit, Slot};
use cryptoki::types::AuthPin;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The session is gone or logged out: a fresh session fixes it.
    Session,
    /// The module or device is gone: re-initialize.
    Device,
    /// The PIN was refused: never retry.
    Pin,
    /// The request itself failed (bad mechanism, bad data): report it.
    Request,
}

fn classify(e: &CkError) -> Failure {
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::ObjectHandleInvalid
            | RvError::KeyHandleInvalid
            | RvError::OperationActive => Failure::Session,
            RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized
            | RvError::GeneralError
            | RvError::SlotIdInvalid => Failure::Device,
            RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange => Failure::Pin,
            _ => Failure::Request,
        },
        _ => Failure::Request,
    }
}

/// A request failure that says something about the request (its data, mechanism or key), not about
/// the token: it leaves readiness alone.
fn caller_error(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::ArgumentsBad
                | RvError::AttributeTypeInvalid
                | RvError::AttributeValueInvalid
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::CurveNotSupported
                | RvError::KeySizeRange
                | RvError::KeyTypeInconsistent
                | RvError::KeyFunctionNotPermitted
                | RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::SignatureInvalid
                | RvError::SignatureLenRange
                | RvError::TemplateIncomplete
                | RvError::TemplateInconsistent
                | RvError::DomainParamsInvalid
                | RvError::BufferTooSmall,
            _
        )
    )
}

fn pin_reason(e: &CkError) -> &'static str {
    match e {
        CkError::Pkcs11(RvError::PinLocked, _) => "CKR_PIN_LOCKED",
        CkError::Pkcs11(RvError::PinExpired, _) => "CKR_PIN_EXPIRED",
        CkError::Pkcs11(RvError::PinInvalid | RvError::PinLenRange, _) => "CKR_PIN_INVALID",
        _ => "CKR_PIN_INCORRECT",
    }
}

/// A logged-in session and the object handles found through it.
struct Pooled {
    session: Session,
    generation: u64,
    handles: HashMap<KeyId, ObjectHandle>,
}

struct State {
    ctx: Pkcs11,
    slot: Slot,
    /// Bumped by every re-initialization; sessions of older generations are never reused.
    generation: u64,
    idle: Vec<Pooled>,
    /// Sessions that exist (idle, lent out, or being opened).
    open: usize,
    capacity: usize,
    /// Set while the module is being re-initialized: nobody borrows.
    draining: bool,
    pin_rejected: Option<&'static str>,
    waiting: usize,
    /// Bumped whenever device loss is seen: a call that began before cannot vouch for the token.
    epoch: u64,
}

/// Backoff between re-initialization attempts, kept across callers.
struct Recovery {
    next_attempt: Option<Instant>,
    backoff: Duration,
    last_reason: String,
}

/// Counters for /metrics.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    /// Sessions lent out now.
    pub in_use: usize,
    /// Callers waiting for a session now.
    pub waiting: usize,
    /// Sessions that exist now.
    pub open: usize,
    /// Session limit in force.
    pub capacity: usize,
    /// Sessions replaced after a session-level failure.
    pub session_recoveries: u64,
    /// Module re-initializations that succeeded.
    pub reinitializations: u64,
    /// Token failures seen (any class).
    pub errors: u64,
    /// Callers that gave up waiting (`TokenBusy`).
    pub busy: u64,
}

/// What the module and token say about themselves, for `sealctl token info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleInfo {
    /// Library path.
    pub module: String,
    /// CK_INFO.manufacturerID.
    pub library_manufacturer: String,
    /// CK_INFO.libraryDescription.
    pub library_description: String,
    /// Slot id.
    pub slot: u64,
    /// Token label.
    pub token_label: String,
    /// Token manufacturer.
    pub token_manufacturer: String,
    /// Token model.
    pub token_model: String,
    /// Token serial.
    pub token_serial: String,
    /// ulMaxSessionCount, if the token states one.
    pub max_sessions: Option<u64>,
    /// Profile in use.
    pub profile: String,
    /// Whether the profile's match rules fit this module.
    pub profile_matches: bool,
    /// Profile status.
    pub profile_status: String,
    /// Mechanism codes the token lists (standard ones) plus the profile's vendor codes it answers for.
    pub mechanisms: Vec<u64>,
}

struct Inner {
    module: PathBuf,
    selector: Selector,
    profile: Profile,
    pin: std::sync::RwLock<Pin>,
    pin_source: super::PinSource,
    configured: usize,
    borrow_timeout: Duration,
    recovery_timeout: Duration,
    state: Mutex<State>,
    freed: Condvar,
    recovery: Mutex<Recovery>,
    health: Mutex<Health>,
    /// The key whose operation last failed for a reason of the token's own (readiness is down
    /// until an operation with it works again; the probe tries it).
    suspect: Mutex<std::collections::HashSet<KeyId>>,
    /// When the probe last signed with the suspect keys: at most once a second, however often
    /// `/readyz` is asked.
    last_probe: Mutex<Option<Instant>>,
    keys: Mutex<HashMap<KeyId, Arc<KeyInfo>>>,
    session_recoveries: AtomicU64,
    reinitializations: AtomicU64,
    errors: AtomicU64,
    busy: AtomicU64,
}

/// A pool of logged-in sessions on one token. Cheap to clone; all clones share the pool.
#[derive(Clone)]
pub struct TokenPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPool")
            .field("module", &self.inner.module)
            .field("profile", &self.inner.profile.name)
            .finish_non_exhaustive()
    }
}

/// Which token to use.
#[derive(Debug, Clone, Default)]
struct Selector {
    label: Option<String>,
    serial: Option<String>,
    slot_id: Option<u64>,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(l) = &self.label {
            parts.push(format!("label '{l}'"));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial '{s}'"));
        }
        if let Some(s) = self.slot_id {
            parts.push(format!("slot {s}"));
        }
        if parts.is_empty() {
            parts.push("any initialized token".into());
        }
        f.write_str(&parts.join(", "))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads and initialises a module (an already-initialised one is fine); errors name the path.
pub(super) fn load_module(path: &Path) -> Result<Pkcs11, TokenError> {
    let module_err = |message: String| TokenError::Module { path: path.display().to_string(), message };
    if !path.exists() {
        return Err(module_err("no such file".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| module_err(e.to_string()))?;
    initialize(&ctx).map_err(|e| module_err(format!("C_Initialize: {e}")))?;
    Ok(ctx)
}

fn initialize(ctx: &Pkcs11) -> Result<(), CkError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

fn find_slot(ctx: &Pkcs11, sel: &Selector) -> Result<Result<Slot, TokenError>, CkError> {
    let mut present = Vec::new();
    for slot in ctx.get_slots_with_token()? {
        let info = match ctx.get_token_info(slot) {
            Ok(i) => i,
            Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::TokenNotRecognized, _)) => continue,
            Err(e) => return Err(e),
        };
        if !info.token_initialized() {
            continue;
        }
        let label = info.label().trim_end().to_string();
        let ok = sel.label.as_ref().is_none_or(|l| *l == label)
            && sel.serial.as_ref().is_none_or(|s| s == info.serial_number().trim_end())
            && sel.slot_id.is_none_or(|id| id == slot.id());
        if ok {
            return Ok(Ok(slot));
        }
        present.push(format!("'{label}'"));
    }
    Ok(Err(TokenError::TokenNotFound {
        wanted: sel.to_string(),
        present: if present.is_empty() { "none".into() } else { present.join(", ") },
    }))
}

/// The module path: configured, from the URI, or the first of the profile's known paths that exists.
fn module_path(cfg: &TokenConfig, profile: Option<&Profile>) -> Result<PathBuf, TokenError> {
    if let Some(m) = &cfg.module {
        return Ok(m.clone());
    }
    if let Some(m) = cfg.parsed_uri()?.and_then(|u| u.module_path) {
        return Ok(PathBuf::from(m));
    }
    let candidates = match profile {
        Some(p) => vec![p.clone()],
        None => Profile::all_builtin()?,
    };
    candidates.iter().flat_map(|p| p.matcher.library_paths.iter()).map(PathBuf::from).find(|p| p.exists()).ok_or_else(
        || TokenError::BadInput("no PKCS#11 module given (--module) and none of the known library paths exists".into()),
    )
}

fn selector(cfg: &TokenConfig) -> Result<Selector, TokenError> {
    let uri = cfg.parsed_uri()?.unwrap_or_default();
    let pick = |a: &Option<String>, b: Option<String>, what: &str| match (a, b) {
        (Some(x), Some(y)) if *x != y => Err(TokenError::BadInput(format!("token {what} given twice, differently"))),
        (Some(x), _) => Ok(Some(x.clone())),
        (None, y) => Ok(y),
    };
    Ok(Selector {
        label: pick(&cfg.label, uri.token, "label")?,
        serial: pick(&cfg.serial, uri.serial, "serial")?,
        slot_id: uri.slot_id,
    })
}

impl TokenPool {
    /// Loads the module, finds the token, checks the profile against the token's mechanisms, reads
    /// the PIN and logs in one session (so a wrong PIN shows at start, not at the first request).
    pub fn open(cfg: &TokenConfig) -> Result<Self, TokenError> {
        let named_profile = cfg.profile.as_deref().map(Profile::load).transpose()?;
        let module = module_path(cfg, named_profile.as_ref())?;
        for (k, v) in &cfg.environment {
            // Before the module is loaded and initialised, which is when vendor modules read these.
            std::env::set_var(k, v);
        }
        let ctx = load_module(&module)?;
        let info = ctx.get_library_info().map_err(p11("C_GetInfo"))?;
        let profile = match named_profile {
            Some(p) => p,
            None => Profile::detect(info.manufacturer_id(), &module).ok_or_else(|| {
                TokenError::BadInput(format!(
                    "no builtin profile matches module {} (manufacturer '{}'); give one with --profile",
                    module.display(),
                    info.manufacturer_id().trim()
                ))
            })?,
        };
        let sel = selector(cfg)?;
        let slot = find_slot(&ctx, &sel).map_err(p11("find token"))??;
        let available = mechanism_codes(&ctx, slot, &profile).map_err(p11("C_GetMechanismList"))?;
        profile.check_mechanisms(&available)?;
        let token = ctx.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        let token_max = match token.max_session_count() {
            Limit::Max(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let capacity = cfg.pool_size.max(1).min(token_max);
        let pin_source = cfg.pin_source()?;
        let pin = Pin::load(&pin_source)?;
        let pool = TokenPool {
            inner: Arc::new(Inner {
                module,
                selector: sel,
                profile,
                pin: std::sync::RwLock::new(pin),
                pin_source,
                configured: cfg.pool_size.max(1),
                borrow_timeout: Duration::from_millis(cfg.borrow_timeout_ms),
                recovery_timeout: Duration::from_millis(cfg.recovery_timeout_ms),
                state: Mutex::new(State {
                    ctx,
                    slot,
                    generation: 0,
                    idle: Vec::new(),
                    open: 0,
                    capacity,
                    draining: false,
                    pin_rejected: None,
                    waiting: 0,
                    epoch: 0,
                }),
                freed: Condvar::new(),
                recovery: Mutex::new(Recovery {
                    next_attempt: None,
                    backoff: Duration::from_millis(50),
                    last_reason: String::new(),
                }),
                health: Mutex::new(Health::Ready),
                suspect: Mutex::new(std::collections::HashSet::new()),
                last_probe: Mutex::new(None),
                keys: Mutex::new(HashMap::new()),
                session_recoveries: AtomicU64::new(0),
                reinitializations: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                busy: AtomicU64::new(0),
            }),
        };
        if capacity < pool.inner.configured {
            pool.set_health(Health::Degraded(format!(
                "token allows {capacity} sessions, {} configured",
                pool.inner.configured
            )));
        }
        // Log in now: a wrong PIN stops start-up with a clear message.
        pool.run("login", |_| Ok(()))?;
        tracing::info!(
            module = %pool.inner.module.display(),
            profile = %pool.inner.profile.name,
            slot = slot.id(),
            capacity,
            "token ready"
        );
        Ok(pool)
    }

    /// The profile in use.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Current health.
    pub fn health(&self) -> Health {
        lock(&self.inner.health).clone()
    }

    fn set_health(&self, h: Health) {
        let mut cur = lock(&self.inner.health);
        if *cur != h {
            match &h {
                Health::Ready => tracing::info!("token ready"),
                Health::Degraded(r) => tracing::warn!(reason = %r, "token degraded"),
                Health::Down(r) => tracing::error!(reason = %r, "token down"),
            }
            *cur = h;
        }
    }

    /// Pool counters.
    pub fn stats(&self) -> PoolStats {
        let st = lock(&self.inner.state);
        PoolStats {
            in_use: st.open - st.idle.len(),
            waiting: st.waiting,
            open: st.open,
            capacity: st.capacity,
            session_recoveries: self.inner.session_recoveries.load(Ordering::Relaxed),
            reinitializations: self.inner.reinitializations.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            busy: self.inner.busy.load(Ordering::Relaxed),
        }
    }

    /// Checks the token answers (recovering it if it can) and returns the health after that.
    pub fn probe(&self) -> Health {
        // After an operation with a key failed, only a signature with that key says it works again:
        // over a fixed message, verified on the host and dropped (at most once a second). A key
        // that is gone (destroyed) is no longer suspect.
        let suspects: Vec<KeyId> = lock(&self.inner.suspect).iter().cloned().collect();
        if !suspects.is_empty() {
            let mut last = lock(&self.inner.last_probe);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return self.health();
            }
            *last = Some(Instant::now());
        }
        for id in suspects {
            match self.sign(&id, SignInput::Message { data: b"seald readiness probe", user_id: None }) {
                Ok(_) | Err(TokenError::KeyNotFound(_)) => {
                    let _ = lock(&self.inner.suspect).remove(&id);
                }
                Err(e) => {
                    let h = Health::Down(e.to_string());
                    self.set_health(h.clone());
                    return h;
                }
            }
        }
        match self.run("probe", |s| s.get_session_info().map(|_| ())) {
            Ok(()) => self.health(),
            Err(e) => {
                let h = Health::Down(e.to_string());
                self.set_health(h.clone());
                h
            }
        }
    }

    /// Module, token and mechanism facts.
    pub fn module_info(&self) -> Result<ModuleInfo, TokenError> {
        let (ctx, slot) = {
            let st = lock(&self.inner.state);
            (st.ctx.clone(), st.slot)
        };
        let lib = ctx.get_library_info().map_err(p11("C_GetInfo"))?;
        let tok = ctx.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        let mechanisms = mechanism_codes(&ctx, slot, &self.inner.profile).map_err(p11("C_GetMechanismList"))?;
        let p = &self.inner.profile;
        Ok(ModuleInfo {
            module: self.inner.module.display().to_string(),
            library_manufacturer: lib.manufacturer_id().trim().to_string(),
            library_description: lib.library_description().trim().to_string(),
            slot: slot.id(),
            token_label: tok.label().trim().to_string(),
            token_manufacturer: tok.manufacturer_id().trim().to_string(),
            token_model: tok.model().trim().to_string(),
            token_serial: tok.serial_number().trim().to_string(),
            max_sessions: match tok.max_session_count() {
                Limit::Max(n) => Some(n),
                _ => None,
            },
            profile: p.name.clone(),
            profile_matches: p.matches(lib.manufacturer_id(), &self.inner.module),
            profile_status: format!("{:?}", p.status),
            mechanisms,
        })
    }

    /// Generates a key pair inside the token with a random 16-byte CKA_ID, then signs a known digest
    /// with it and verifies the result on the host (a self-test) before reporting it.
    pub fn generate(&self, alg: KeyAlg, label: &str) -> Result<KeyInfo, TokenError> {
        let supported = match alg {
            KeyAlg::Sm2 => self.inner.profile.sm2.is_some(),
            KeyAlg::P256 => self.inner.profile.ecdsa.is_some(),
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 => self.inner.profile.rsa.is_some(),
        };
        if !supported {
            return Err(TokenError::Unsupported(format!("profile '{}' offers no {alg} keys", self.inner.profile.name)));
        }
        if label.is_empty() || label.len() > 128 {
            return Err(TokenError::BadInput("label must be 1 to 128 bytes".into()));
        }
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(|e| TokenError::Unavailable(format!("no randomness: {e}")))?;
        let id = KeyId(raw.to_vec());
        let profile = self.inner.profile.clone();
        self.run("C_GenerateKeyPair", |s| keys::generate(s, &profile, alg, &id, label))?;
        let info = self.key(&id)?;
        if let Err(e) = self.sign(&id, SignInput::Message { data: b"seald key self-test", user_id: None }) {
            let _ = self.destroy(&id);
            return Err(e);
        }
        tracing::info!(key = %id, alg = %alg, "key generated in token");
        Ok((*info).clone())
    }

    /// Changes the user PIN in the token (C_SetPIN in a logged-in session), then uses the new PIN for
    /// every later login. Where the PIN comes from a file seald may write, the file is rewritten
    /// atomically; returns `false` when it could not be (a systemd credential, a read-only file):
    /// the operator must then update it before the next start.
    pub fn change_pin(&self, new: Pin) -> Result<bool, TokenError> {
        let old =
            AuthPin::from(self.inner.pin.read().unwrap_or_else(|p| p.into_inner()).secret().expose_secret().to_owned());
        let fresh = AuthPin::from(new.secret().expose_secret().to_owned());
        // The token's refusal (a PIN too short, too long, or of the wrong kind) is the caller's
        // error, not a reason to stop using the current PIN: keep it out of the pool's PIN handling.
        let outcome = self.run("C_SetPIN", |s| Ok(s.set_pin(&old, &fresh).map_err(|e| e.to_string())))?;
        outcome.map_err(|e| TokenError::BadInput(format!("the token refused the PIN change: {e}")))?;
        let written = self.inner.pin_source.rewritable_file().is_some_and(|path| new.write_to_file(path).is_ok());
        *self.inner.pin.write().unwrap_or_else(|p| p.into_inner()) = new;
        tracing::warn!(pin_file_updated = written, "token user PIN changed");
        Ok(written)
    }

    /// The key with this CKA_ID: algorithm and public key (cached after the first read).
    pub fn key(&self, id: &KeyId) -> Result<Arc<KeyInfo>, TokenError> {
        if let Some(k) = lock(&self.inner.keys).get(id) {
            return Ok(k.clone());
        }
        let profile = self.inner.profile.clone();
        let info = Arc::new(self.run("read public key", |s| keys::read_public(s, &profile, id))??);
        let _ = lock(&self.inner.keys).insert(id.clone(), info.clone());
        Ok(info)
    }

    /// Every key pair in the token that the profile can use.
    pub fn list(&self) -> Result<Vec<KeyInfo>, TokenError> {
        let ids = self.run("list keys", keys::list_ids)?;
        let mut out = Vec::new();
        for id in ids {
            match self.key(&id) {
                Ok(k) => out.push((*k).clone()),
                Err(TokenError::KeyNotFound(_) | TokenError::Unsupported(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Security attributes of the private key with this CKA_ID.
    pub fn attributes(&self, id: &KeyId) -> Result<KeyAttributes, TokenError> {
        self.run_keyed("C_GetAttributeValue", id, keys::attributes)
    }

    /// Destroys both halves of a key pair (for rotation; callers enforce dual control).
    pub fn destroy(&self, id: &KeyId) -> Result<(), TokenError> {
        self.run("C_DestroyObject", |s| {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                if let Some(h) = keys::find(s, class, id)? {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        })?;
        let _ = lock(&self.inner.keys).remove(id);
        let _ = lock(&self.inner.suspect).remove(id);
        let mut st = lock(&self.inner.state);
        for p in st.idle.iter_mut() {
            let _ = p.handles.remove(id);
        }
        Ok(())
    }

    /// Signs with the key `id`. The token's output is normalised to raw and DER, and verified on the
    /// host with the key's public key; a signature that does not verify is an error, never a result.
    pub fn sign(&self, id: &KeyId, input: SignInput<'_>) -> Result<Signature, TokenError> {
        if let SignInput::Prehashed(d) = input {
            // Every supported algorithm signs a 32-byte prehash; say so before touching the token.
            if d.len() != 32 {
                return Err(TokenError::BadInput(format!("digest must be 32 bytes, got {}", d.len())));
            }
        }
        let key = self.key(id)?;
        // Every signature this key makes is verified on the host before it is returned: give the key
        // its verification table (built once; afterwards this is a lookup). Listing or reading keys
        // does not, so only keys that sign hold a table.
        key.public_key.prepare();
        let plan = keys::plan(&self.inner.profile, &key, input)?;
        let mech = keys::mechanism(plan.mechanism)?;
        let out = self.run_keyed("C_Sign", id, |s, h| s.sign(&mech, h, &plan.data))?;
        let (raw, der) = match (plan.format, key.public_key.field_len()) {
            (Some(SignatureFormat::Raw), Some(n)) => {
                if out.len() != 2 * n {
                    return Err(TokenError::Crypto(crypto::CryptoError::MalformedSignature(
                        "token returned r||s of the wrong length",
                    )));
                }
                let der = crypto::raw_to_der(&out)?;
                (out, der)
            }
            (Some(SignatureFormat::Der), Some(n)) => (crypto::der_to_raw(&out, n)?, out),
            _ => (out.clone(), out),
        };
        if key.public_key.verify_prehashed(&plan.prehash, &raw).is_err() {
            let _ = self.inner.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(key = %id, "token signature failed host verification; refused");
            self.failed(Some(id), format!("a signature by key {id} failed host verification"));
            return Err(TokenError::SignatureMismatch(id.clone()));
        }
        // A host-verified signature: this key works (again).
        let cleared = {
            let mut suspect = lock(&self.inner.suspect);
            suspect.remove(id) && suspect.is_empty()
        };
        if cleared {
            let epoch = lock(&self.inner.state).epoch;
            self.after_success(epoch);
        }
        Ok(Signature { key_id: id.clone(), alg: key.alg, raw, der, prehash: plan.prehash })
    }

    /// Runs `op` on a pooled session (with the private key's handle when `key` is given), recovering
    /// from session and device loss as the module doc says.
    fn run<T>(&self, what: &'static str, op: impl Fn(&Session) -> Result<T, CkError>) -> Result<T, TokenError> {
        self.run_inner(what, None, |s, _| op(s))
    }

    /// `run` for an operation on the private key `id`.
    fn run_keyed<T>(
        &self,
        what: &'static str,
        id: &KeyId,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, TokenError> {
        self.run_inner(what, Some(id), |s, h| op(s, h.ok_or(CkError::InvalidValue)?))
    }

    fn run_inner<T>(
        &self,
        what: &'static str,
        key: Option<&KeyId>,
        op: impl Fn(&Session, Option<ObjectHandle>) -> Result<T, CkError>,
    ) -> Result<T, TokenError> {
        let give_up = Instant::now() + self.inner.recovery_timeout + self.inner.borrow_timeout;
        let mut attempt = 0u32;
        loop {
            let (failure, err, generation) = match self.borrow() {
                Err(Borrow::Refused(e)) => return Err(e),
                Err(Borrow::Failed(e, generation)) => (classify(&e), e, generation),
                Ok(mut lease) => {
                    let (generation, epoch) = (lease.generation, lease.epoch);
                    let result = lease_handle(&mut lease, key).and_then(|h| match h {
                        Ok(h) => op(&lease.session, h).map(Ok),
                        Err(missing) => Ok(Err(missing)),
                    });
                    match result {
                        Ok(v) => {
                            self.release(lease, true);
                            if attempt > 0 || self.health() != Health::Ready {
                                self.after_success(epoch);
                            }
                            return v;
                        }
                        Err(e) => {
                            let f = classify(&e);
                            self.release(lease, f == Failure::Request);
                            (f, e, generation)
                        }
                    }
                }
            };
            let _ = self.inner.errors.fetch_add(1, Ordering::Relaxed);
            match failure {
                Failure::Request => {
                    if !caller_error(&err) {
                        // Readiness follows the first failure, not the next probe.
                        self.failed(key, format!("{what}: {err}"));
                    }
                    return Err(TokenError::Pkcs11 { op: what, rv: err.to_string() });
                }
                Failure::Pin => {
                    let reason = pin_reason(&err);
                    lock(&self.inner.state).pin_rejected = Some(reason);
                    self.inner.freed.notify_all();
                    self.set_health(Health::Down(format!("PIN rejected ({reason})")));
                    return Err(TokenError::PinRejected(reason));
                }
                Failure::Session if attempt == 0 => {
                    tracing::warn!(op = what, error = %err, "token session lost; retrying on a fresh session");
                    self.drop_idle(generation);
                    let _ = self.inner.session_recoveries.fetch_add(1, Ordering::Relaxed);
                }
                Failure::Session | Failure::Device => {
                    if attempt >= 3 || Instant::now() >= give_up {
                        self.failed(key, format!("{what}: {err}"));
                        return Err(TokenError::Unavailable(format!("{what}: {err}")));
                    }
                    tracing::warn!(op = what, error = %err, "token device lost; re-initializing the module");
                    self.reinitialize(generation, &err.to_string(), give_up)?;
                }
            }
            attempt += 1;
        }
    }

    /// An operation failed for a reason of the token's own: readiness goes down at once, and the
    /// probe tries the key again before it comes back.
    fn failed(&self, key: Option<&KeyId>, reason: String) {
        if let Some(k) = key {
            let _ = lock(&self.inner.suspect).insert(k.clone());
        }
        self.set_health(Health::Down(reason));
    }

    /// A call that borrowed its session in `epoch` succeeded: the token is ready again, unless device
    /// loss was seen since that call began (then its success proves nothing about the token now).
    fn after_success(&self, epoch: u64) {
        let st = lock(&self.inner.state);
        if st.epoch != epoch || !lock(&self.inner.suspect).is_empty() {
            return;
        }
        let h = if st.capacity < self.inner.configured {
            Health::Degraded(format!("token allows {} sessions, {} configured", st.capacity, self.inner.configured))
        } else {
            Health::Ready
        };
        drop(st);
        lock(&self.inner.recovery).backoff = Duration::from_millis(50);
        self.set_health(h);
    }

    fn borrow(&self) -> Result<Lease, Borrow> {
        let deadline = Instant::now() + self.inner.borrow_timeout;
        let mut st = lock(&self.inner.state);
        loop {
            if let Some(reason) = st.pin_rejected {
                return Err(Borrow::Refused(TokenError::PinRejected(reason)));
            }
            if !st.draining {
                if let Some(p) = st.idle.pop() {
                    return Ok(Lease {
                        session: p.session,
                        generation: p.generation,
                        epoch: st.epoch,
                        handles: p.handles,
                    });
                }
                if st.open < st.capacity {
                    st.open += 1;
                    let (ctx, slot, generation, epoch) = (st.ctx.clone(), st.slot, st.generation, st.epoch);
                    drop(st);
                    match self.open_session(&ctx, slot) {
                        Ok(session) => return Ok(Lease { session, generation, epoch, handles: HashMap::new() }),
                        Err(e) => {
                            st = lock(&self.inner.state);
                            st.open -= 1;
                            self.inner.freed.notify_one();
                            if matches!(e, CkError::Pkcs11(RvError::SessionCount, _)) && st.open > 0 {
                                // The token allows fewer sessions than it said: live with what we have.
                                st.capacity = st.open;
                                let msg =
                                    format!("token allows {} sessions, {} configured", st.open, self.inner.configured);
                                drop(st);
                                self.set_health(Health::Degraded(msg));
                                st = lock(&self.inner.state);
                                continue;
                            }
                            return Err(Borrow::Failed(e, generation));
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = self.inner.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Borrow::Refused(if st.draining {
                    TokenError::Unavailable("token is being re-initialized".into())
                } else {
                    TokenError::TokenBusy(self.inner.borrow_timeout)
                }));
            }
            st.waiting += 1;
            st = self.inner.freed.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            st.waiting -= 1;
        }
    }

    fn open_session(&self, ctx: &Pkcs11, slot: Slot) -> Result<Session, CkError> {
        let session = ctx.open_rw_session_no_drop(slot)?;
        let pin =
            AuthPin::from(self.inner.pin.read().unwrap_or_else(|p| p.into_inner()).secret().expose_secret().to_owned());
        let mut outcome = session.login(UserType::User, Some(&pin));
        if let Err(CkError::Pkcs11(RvError::PinIncorrect, _)) = outcome {
            // Another appliance sharing the token (a cluster node) may have changed the PIN, and
            // the operator this node's PIN file: read it again, and try once with what it says now.
            if let Ok(fresh) = Pin::load(&self.inner.pin_source) {
                let changed = fresh.secret().expose_secret() != pin.expose_secret();
                if changed {
                    let again = AuthPin::from(fresh.secret().expose_secret().to_owned());
                    outcome = session.login(UserType::User, Some(&again));
                    if outcome.is_ok() {
                        tracing::warn!("the token's PIN changed elsewhere; the PIN file's new PIN is in use");
                        *self.inner.pin.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    }
                }
            }
        }
        match outcome {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => {
                let _ = session.close();
                Err(e)
            }
        }
    }

    fn release(&self, lease: Lease, healthy: bool) {
        let mut st = lock(&self.inner.state);
        if healthy && lease.generation == st.generation && !st.draining {
            st.idle.push(Pooled { session: lease.session, generation: lease.generation, handles: lease.handles });
        } else {
            st.open -= 1;
            if lease.generation == st.generation {
                let _ = lease.session.close();
            }
            // A session of an older generation died with its module instance: nothing to close.
        }
        drop(st);
        self.inner.freed.notify_all();
    }

    /// Closes the idle sessions of `generation`: after one session failed, they are suspect too.
    fn drop_idle(&self, generation: u64) {
        let mut st = lock(&self.inner.state);
        if st.generation != generation {
            return;
        }
        let idle = std::mem::take(&mut st.idle);
        st.open -= idle.len();
        drop(st);
        for p in idle {
            let _ = p.session.close();
        }
        self.inner.freed.notify_all();
    }

    /// C_Finalize + C_Initialize with backoff, then find the token again. Only one caller does it;
    /// the others see the generation change and retry on the new instance.
    fn reinitialize(&self, seen: u64, reason: &str, give_up: Instant) -> Result<(), TokenError> {
        let mut rec = lock(&self.inner.recovery);
        if lock(&self.inner.state).generation != seen {
            return Ok(());
        }
        if let Some(next) = rec.next_attempt {
            if Instant::now() < next {
                return Err(TokenError::Unavailable(format!("recovering from: {}", rec.last_reason)));
            }
        }
        rec.last_reason = reason.to_string();
        lock(&self.inner.state).epoch += 1;
        self.set_health(Health::Down(reason.to_string()));
        // Stop lending, forget idle sessions, and wait for lent ones to come back: finalizing under a
        // thread that is inside the module is not safe with every vendor library.
        {
            let mut st = lock(&self.inner.state);
            st.draining = true;
            let idle = std::mem::take(&mut st.idle);
            st.open -= idle.len();
            while st.open > 0 && Instant::now() < give_up {
                let left = give_up.saturating_duration_since(Instant::now());
                st = self.inner.freed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            if st.open > 0 {
                st.draining = false;
                drop(st);
                self.inner.freed.notify_all();
                rec.next_attempt = Some(Instant::now() + rec.backoff);
                return Err(TokenError::Unavailable(format!("{reason}; sessions still busy in the module")));
            }
        }
        let ctx = lock(&self.inner.state).ctx.clone();
        let result = loop {
            let _ = ctx.clone().finalize();
            let attempt = initialize(&ctx)
                .map_err(|e| e.to_string())
                .and_then(|()| find_slot(&ctx, &self.inner.selector).map_err(|e| e.to_string()))
                .and_then(|r| r.map_err(|e| e.to_string()));
            match attempt {
                Ok(slot) => break Ok(slot),
                Err(e) => {
                    rec.last_reason = e;
                    let wait = rec.backoff;
                    rec.backoff = (rec.backoff * 2).min(Duration::from_secs(2));
                    if Instant::now() + wait >= give_up {
                        break Err(());
                    }
                    std::thread::sleep(wait);
                }
            }
        };
        let mut st = lock(&self.inner.state);
        st.draining = false;
        match result {
            Ok(slot) => {
                st.slot = slot;
                st.generation += 1;
                drop(st);
                rec.next_attempt = None;
                let _ = self.inner.reinitializations.fetch_add(1, Ordering::Relaxed);
                self.inner.freed.notify_all();
                tracing::info!(slot = slot.id(), "token module re-initialized");
                Ok(())
            }
            Err(()) => {
                st.epoch += 1;
                drop(st);
                rec.next_attempt = Some(Instant::now() + rec.backoff);
                self.inner.freed.notify_all();
                let msg = format!("re-initialization failed: {}", rec.last_reason);
                self.set_health(Health::Down(msg.clone()));
                Err(TokenError::Unavailable(msg))
            }
        }
    }
}

enum Borrow {
    /// Not worth retrying (busy, PIN latched).
    Refused(TokenError),
    /// Opening or logging in failed; classified like any token failure.
    Failed(CkError, u64),
}

struct Lease {
    session: Session,
    generation: u64,
    epoch: u64,
    handles: HashMap<KeyId, ObjectHandle>,
}

/// The private key's handle through this session, found once per session and cached.
fn lease_handle(lease: &mut Lease, key: Option<&KeyId>) -> Result<Result<Option<ObjectHandle>, TokenError>, CkError> {
    let Some(id) = key else {
        return Ok(Ok(None));
    };
    if let Some(h) = lease.handles.get(id) {
        return Ok(Ok(Some(*h)));
    }
    match keys::find(&lease.session, ObjectClass::PRIVATE_KEY, id)? {
        Some(h) => {
            let _ = lease.handles.insert(id.clone(), h);
            Ok(Ok(Some(h)))
        }
        None => Ok(Err(TokenError::KeyNotFound(id.clone()))),
    }
}

/// Mechanism codes the token offers. cryptoki's list drops vendor-defined codes, so the profile's
/// vendor codes are asked about one by one with C_GetMechanismInfo.
fn mechanism_codes(ctx: &Pkcs11, slot: Slot, profile: &Profile) -> Result<Vec<u64>, CkError> {
    let mut codes: Vec<u64> = ctx.get_mechanism_list(slot)?.into_iter().map(u64::from).collect();
    for (_, code) in profile.all_mechanisms() {
        if codes.contains(&code) {
            continue;
        }
        if let Ok(t) = MechanismType::new_vendor_defined(code) {
            match ctx.get_mechanism_info(slot, t) {
                Ok(_) => codes.push(code),
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}
