//! The token itself: one slot, its objects, sessions, login state and operations. Every method
//! returns a CK_RV on failure; `lib.rs` turns C calls into these and never holds the lock while it
//! signs.

use crate::attrs::{self, b, get_bool, get_ulong, ul, Attrs};
use crate::fault::FaultControl;
use crate::settings::Settings;
use crate::store::{self, MasterKey, ObjectFile, Store, TokenFile};
use cryptoki_sys::*;
use seald_gm::profile::{Profile, SignatureFormat};
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod objects;
mod operations;
pub use operations::compute;

/// The one slot softtoken offers.
pub const SLOT_ID: CK_SLOT_ID = 1;
/// Wrong PINs before the PIN locks.
pub const MAX_PIN_TRIES: u32 = 5;
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const SM2_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
const SIG_MAX_DER: usize = 72;

/// What a mechanism code means under the loaded profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// SM2 key-pair generation (vendor code).
    Sm2KeyGen,
    /// SM2 sign/verify of a 32-byte e.
    Sm2SignE,
    /// SM2 with SM3, Z computed here with the default ID.
    Sm2SignSm3,
    /// SM3 digest.
    Sm3,
    /// CKM_EC_KEY_PAIR_GEN (P-256 only).
    EcKeyGen,
    /// CKM_ECDSA over a host-computed digest.
    Ecdsa,
    /// CKM_SHA256.
    Sha256,
}

/// The mechanisms the profile gives codes for, with their codes.
pub fn mechanisms(p: &Profile) -> Vec<(CK_MECHANISM_TYPE, Mech)> {
    let mut out = vec![(CKM_SHA256, Mech::Sha256)];
    if let Some(s) = &p.sm2 {
        out.push((s.keygen, Mech::Sm2KeyGen));
        out.push((s.sign_e, Mech::Sm2SignE));
        out.extend(s.sign_sm3.map(|c| (c, Mech::Sm2SignSm3)));
        out.extend(s.digest_sm3.map(|c| (c, Mech::Sm3)));
    }
    if let Some(e) = &p.ecdsa {
        out.push((e.keygen, Mech::EcKeyGen));
        out.push((e.sign, Mech::Ecdsa));
    }
    out
}

/// A private key's scalar, available while the user is logged in.
pub enum KeyMaterial {
    /// SM2.
    Sm2(sm2::dsa::SigningKey),
    /// P-256.
    P256(p256::ecdsa::SigningKey),
}

impl KeyMaterial {
    fn from_scalar(sm2: bool, scalar: &[u8]) -> Option<Self> {
        if sm2 {
            sm2::dsa::SigningKey::from_slice("1234567812345678", scalar).ok().map(KeyMaterial::Sm2)
        } else {
            p256::ecdsa::SigningKey::from_slice(scalar).ok().map(KeyMaterial::P256)
        }
    }
}

/// A public key to verify with.
#[derive(Clone)]
pub enum VerifyKey {
    /// SM2.
    Sm2(sm2::PublicKey),
    /// P-256.
    P256(p256::PublicKey),
}

struct Object {
    attrs: Attrs,
    secret: Option<store::Sealed>,
    key: Option<Arc<KeyMaterial>>,
    /// File name for token objects.
    file: Option<String>,
    /// Owning session for session objects.
    session: Option<CK_SESSION_HANDLE>,
}

impl Object {
    fn class(&self) -> CK_OBJECT_CLASS {
        get_ulong(&self.attrs, CKA_CLASS).unwrap_or(CK_UNAVAILABLE_INFORMATION)
    }
    fn private(&self) -> bool {
        get_bool(&self.attrs, CKA_PRIVATE).unwrap_or(true)
    }
}

/// A sign operation: taken out of the session while the signature is computed without the lock.
pub struct SignOp {
    mech: Mech,
    key: Arc<KeyMaterial>,
    data: Vec<u8>,
    format: SignatureFormat,
}

struct VerifyOp {
    mech: Mech,
    key: VerifyKey,
    data: Vec<u8>,
    format: SignatureFormat,
}

struct DigestOp {
    mech: Mech,
    data: Vec<u8>,
}

#[derive(Default)]
struct Session {
    rw: bool,
    find: Option<Vec<CK_OBJECT_HANDLE>>,
    sign: Option<SignOp>,
    verify: Option<VerifyOp>,
    digest: Option<DigestOp>,
}

/// What C_Sign/C_SignFinal should do next.
pub enum SignStep {
    /// The caller asked for the length only.
    Length(usize),
    /// Compute this outside the lock, after the given delay and with or without corruption.
    Compute(SignOp, Option<Duration>, bool),
}

/// The whole token.
pub struct Token {
    profile: Profile,
    store: Store,
    fault: FaultControl,
    file: Option<TokenFile>,
    objects: BTreeMap<CK_OBJECT_HANDLE, Object>,
    next_object: CK_OBJECT_HANDLE,
    sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    next_session: CK_SESSION_HANDLE,
    login: Option<(CK_USER_TYPE, MasterKey)>,
    removed: bool,
    /// Object files found corrupt (or not opening with the master key): not loaded again when the
    /// directory is followed.
    rejected: std::collections::BTreeSet<String>,
}

fn report(msg: &str) {
    eprintln!("softtoken: {msg}");
}

fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, c) in out.iter_mut().zip(s.bytes()) {
        *o = c;
    }
    out
}

impl Token {
    /// Loads the token from the directory its settings name (see `settings.rs`), with their profile.
    pub fn from_settings() -> Result<Self, CK_RV> {
        let settings = Settings::load().map_err(|e| {
            report(&e);
            CKR_GENERAL_ERROR
        })?;
        let Some(dir) = settings.dir else {
            report(&format!(
                "no token directory in {}: set SOFTTOKEN_DIR, or dir in the .conf file beside the module",
                settings.source
            ));
            return Err(CKR_GENERAL_ERROR);
        };
        let profile = match &settings.profile {
            Some(p) => Profile::load(p),
            None => Profile::builtin("softtoken"),
        }
        .map_err(|e| {
            report(&e.to_string());
            CKR_GENERAL_ERROR
        })?;
        let store = Store::new(dir).map_err(|e| {
            report(&format!("cannot use the token directory: {e}"));
            CKR_GENERAL_ERROR
        })?;
        let file = store.load_token().map_err(|e| {
            report(&format!("token file is corrupt: {e}"));
            CKR_GENERAL_ERROR
        })?;
        let mut t = Token {
            profile,
            store,
            fault: FaultControl::new(settings.fault),
            file,
            objects: BTreeMap::new(),
            next_object: 1,
            sessions: BTreeMap::new(),
            next_session: 1,
            login: None,
            removed: false,
            rejected: Default::default(),
        };
        t.load_objects();
        Ok(t)
    }

    fn load_objects(&mut self) {
        let (objs, bad) = self.store.load_objects();
        for b in bad {
            report(&format!("object file is corrupt and was not loaded: {b}"));
        }
        for (name, o) in objs {
            self.insert_loaded(name, o);
        }
    }

    /// Follows other processes that share the token directory (two seald nodes on one token, as
    /// a network HSM gives them): objects they made are loaded, objects they destroyed are
    /// dropped, and the token file (PINs, failure counters) is read again. Called where a process
    /// looks for objects or logs in.
    fn follow_directory(&mut self) {
        // A directory that cannot be read now leaves the objects as they are.
        let Some(on_disk) = self.store.object_names() else { return };
        let mut known: std::collections::BTreeSet<String> =
            self.objects.values().filter_map(|o| o.file.clone()).collect();
        known.extend(self.rejected.iter().cloned());
        self.objects.retain(|_, o| o.file.as_ref().is_none_or(|f| on_disk.contains(f)));
        let mut added = false;
        for name in on_disk.difference(&known) {
            match self.store.load_object(name) {
                Ok(o) => {
                    self.insert_loaded(name.clone(), o);
                    added = true;
                }
                Err(e) => {
                    report(&format!("object file is corrupt and was not loaded: {e}"));
                    let _ = self.rejected.insert(name.clone());
                }
            }
        }
        if let Ok(Some(f)) = self.store.load_token() {
            self.file = Some(f);
        }
        // A new private key is opened now, as at login, for a process already logged in.
        if let (true, Some((CKU_USER, mk))) = (added, self.login.clone()) {
            self.unseal_keys(&mk);
        }
    }

    fn insert_loaded(&mut self, name: String, o: store::ObjectFile) {
        {
            let mut attrs = Attrs::new();
            let mut ok = true;
            for (t, v) in &o.attrs {
                match hex::decode(v) {
                    Ok(v) => {
                        let _ = attrs.insert(*t, v);
                    }
                    Err(_) => ok = false,
                }
            }
            if !ok || get_ulong(&attrs, CKA_CLASS).is_none() {
                report(&format!("object file {name} is corrupt and was not loaded"));
                return;
            }
            let _ = self.insert(Object { attrs, secret: o.secret, key: None, file: Some(name), session: None });
        }
    }

    fn insert(&mut self, o: Object) -> CK_OBJECT_HANDLE {
        let h = self.next_object;
        self.next_object += 1;
        let _ = self.objects.insert(h, o);
        h
    }

    /// Fault injection: a removed device drops every session and login, and answers DEVICE_REMOVED.
    pub fn check_fault(&mut self) -> Result<(), CK_RV> {
        if self.fault.current().removed {
            if !self.removed {
                self.removed = true;
                self.sessions.clear();
                self.logout_all();
            }
            return Err(CKR_DEVICE_REMOVED);
        }
        self.removed = false;
        Ok(())
    }

    fn mech(&self, code: CK_MECHANISM_TYPE) -> Result<Mech, CK_RV> {
        mechanisms(&self.profile).into_iter().find(|(c, _)| *c == code).map(|(_, m)| m).ok_or(CKR_MECHANISM_INVALID)
    }

    fn slot(slot: CK_SLOT_ID) -> Result<(), CK_RV> {
        if slot == SLOT_ID {
            Ok(())
        } else {
            Err(CKR_SLOT_ID_INVALID)
        }
    }

    fn session(&mut self, h: CK_SESSION_HANDLE) -> Result<&mut Session, CK_RV> {
        self.sessions.get_mut(&h).ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    fn user_logged_in(&self) -> bool {
        matches!(self.login, Some((CKU_USER, _)))
    }

    fn visible(&self, o: &Object) -> bool {
        !o.private() || self.user_logged_in()
    }

    fn object(&self, h: CK_OBJECT_HANDLE) -> Result<&Object, CK_RV> {
        self.objects.get(&h).filter(|o| self.visible(o)).ok_or(CKR_OBJECT_HANDLE_INVALID)
    }

    // ---- slot and token ----

    /// C_GetSlotInfo.
    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<CK_SLOT_INFO, CK_RV> {
        Self::slot(slot)?;
        Ok(CK_SLOT_INFO {
            slotDescription: pad("seald softtoken slot (software, tests only)"),
            manufacturerID: pad("seald softtoken"),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: CK_VERSION { major: 0, minor: 1 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
        })
    }

    /// C_GetTokenInfo.
    pub fn token_info(&mut self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO, CK_RV> {
        Self::slot(slot)?;
        let cap = self.fault.current().sessions;
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED;
        let (label, serial) = match &self.file {
            Some(f) => {
                flags |= CKF_TOKEN_INITIALIZED;
                if f.user.is_some() {
                    flags |= CKF_USER_PIN_INITIALIZED;
                }
                match f.user_failures {
                    0 => {}
                    n if n >= MAX_PIN_TRIES => flags |= CKF_USER_PIN_LOCKED,
                    n if n == MAX_PIN_TRIES - 1 => flags |= CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
                    _ => flags |= CKF_USER_PIN_COUNT_LOW,
                }
                if f.so_failures >= MAX_PIN_TRIES {
                    flags |= CKF_SO_PIN_LOCKED;
                }
                (f.label.clone(), f.serial.clone())
            }
            None => (String::new(), "0000000000000000".into()),
        };
        let rw = self.sessions.values().filter(|s| s.rw).count() as CK_ULONG;
        Ok(CK_TOKEN_INFO {
            label: pad(&label),
            manufacturerID: pad("seald softtoken"),
            model: pad(&format!("st-{}", self.profile.name)),
            serialNumber: pad(&serial),
            flags,
            ulMaxSessionCount: cap.map(|c| c as CK_ULONG).unwrap_or(CK_EFFECTIVELY_INFINITE),
            ulSessionCount: self.sessions.len() as CK_ULONG,
            ulMaxRwSessionCount: cap.map(|c| c as CK_ULONG).unwrap_or(CK_EFFECTIVELY_INFINITE),
            ulRwSessionCount: rw,
            ulMaxPinLen: 64,
            ulMinPinLen: 4,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 0, minor: 1 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
            utcTime: [b' '; 16],
        })
    }

    /// C_GetMechanismList.
    pub fn mechanism_list(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>, CK_RV> {
        Self::slot(slot)?;
        let mut codes: Vec<_> = mechanisms(&self.profile).into_iter().map(|(c, _)| c).collect();
        codes.sort_unstable();
        codes.dedup();
        Ok(codes)
    }

    /// C_GetMechanismInfo.
    pub fn mechanism_info(&self, slot: CK_SLOT_ID, code: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO, CK_RV> {
        Self::slot(slot)?;
        let ec = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
        let (min, max, flags) = match self.mech(code)? {
            Mech::Sm2KeyGen | Mech::EcKeyGen => (256, 256, CKF_GENERATE_KEY_PAIR | ec),
            Mech::Sm2SignE | Mech::Sm2SignSm3 | Mech::Ecdsa => (256, 256, CKF_SIGN | CKF_VERIFY | ec),
            Mech::Sm3 | Mech::Sha256 => (0, 0, CKF_DIGEST),
        };
        Ok(CK_MECHANISM_INFO { ulMinKeySize: min, ulMaxKeySize: max, flags })
    }

    fn check_pin(pin: &[u8]) -> Result<(), CK_RV> {
        if pin.len() < 4 || pin.len() > 64 {
            Err(CKR_PIN_LEN_RANGE)
        } else {
            Ok(())
        }
    }

    /// C_InitToken: a new master key, no objects, no user PIN. Needs the old SO PIN if initialised.
    pub fn init_token(&mut self, slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8]) -> Result<(), CK_RV> {
        Self::slot(slot)?;
        Self::check_pin(so_pin)?;
        if !self.sessions.is_empty() {
            return Err(CKR_SESSION_EXISTS);
        }
        if let Some(f) = &self.file {
            if f.so_failures >= MAX_PIN_TRIES {
                return Err(CKR_PIN_LOCKED);
            }
            if store::unwrap(&f.so, so_pin, b"so").is_none() {
                return self.pin_failed(CKU_SO);
            }
        }
        let label = String::from_utf8_lossy(label).trim_end_matches([' ', '\0']).to_string();
        let mut serial = [0u8; 8];
        if !store::random_bytes(&mut serial) {
            return Err(CKR_DEVICE_ERROR);
        }
        let mk = store::new_master_key();
        let file = TokenFile {
            label,
            serial: hex::encode(serial),
            so: store::wrap(&mk, so_pin, b"so"),
            user: None,
            user_failures: 0,
            so_failures: 0,
        };
        self.store.clear_objects().map_err(|_| CKR_DEVICE_ERROR)?;
        self.store.save_token(&file).map_err(|_| CKR_DEVICE_ERROR)?;
        self.objects.clear();
        self.file = Some(file);
        Ok(())
    }

    fn pin_failed(&mut self, who: CK_USER_TYPE) -> Result<(), CK_RV> {
        if let Some(f) = &mut self.file {
            if who == CKU_SO {
                f.so_failures += 1;
            } else {
                f.user_failures += 1;
            }
            self.store.save_token(f).map_err(|_| CKR_DEVICE_ERROR)?;
        }
        Err(CKR_PIN_INCORRECT)
    }

    /// C_InitPIN: the SO sets the user PIN (also unlocking it); the master key stays, so keys stay usable.
    pub fn init_pin(&mut self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<(), CK_RV> {
        if !self.session(h)?.rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        Self::check_pin(pin)?;
        let Some((CKU_SO, mk)) = &self.login else {
            return Err(CKR_USER_NOT_LOGGED_IN);
        };
        let wrapped = store::wrap(mk, pin, b"user");
        let f = self.file.as_mut().ok_or(CKR_TOKEN_NOT_RECOGNIZED)?;
        f.user = Some(wrapped);
        f.user_failures = 0;
        self.store.save_token(f).map_err(|_| CKR_DEVICE_ERROR)
    }

    /// C_SetPIN: the logged-in SO changes the SO PIN; otherwise the user PIN changes.
    pub fn set_pin(&mut self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<(), CK_RV> {
        if !self.session(h)?.rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        Self::check_pin(new)?;
        let so = matches!(self.login, Some((CKU_SO, _)));
        let (role, who): (&[u8], _) = if so { (b"so", CKU_SO) } else { (b"user", CKU_USER) };
        let f = self.file.as_ref().ok_or(CKR_TOKEN_NOT_RECOGNIZED)?;
        let current = if so { Some(&f.so) } else { f.user.as_ref() };
        let current = current.ok_or(CKR_USER_PIN_NOT_INITIALIZED)?;
        if (if so { f.so_failures } else { f.user_failures }) >= MAX_PIN_TRIES {
            return Err(CKR_PIN_LOCKED);
        }
        let Some(mk) = store::unwrap(current, old, role) else {
            return self.pin_failed(who);
        };
        let wrapped = store::wrap(&mk, new, role);
        let f = self.file.as_mut().ok_or(CKR_TOKEN_NOT_RECOGNIZED)?;
        if so {
            f.so = wrapped;
            f.so_failures = 0;
        } else {
            f.user = Some(wrapped);
            f.user_failures = 0;
        }
        self.store.save_token(f).map_err(|_| CKR_DEVICE_ERROR)
    }

    // ---- sessions and login ----

    /// C_OpenSession.
    pub fn open_session(&mut self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, CK_RV> {
        Self::slot(slot)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        if self.file.is_none() {
            return Err(CKR_TOKEN_NOT_RECOGNIZED);
        }
        if let Some(cap) = self.fault.current().sessions {
            if self.sessions.len() >= cap {
                return Err(CKR_SESSION_COUNT);
            }
        }
        let rw = flags & CKF_RW_SESSION != 0;
        if !rw && matches!(self.login, Some((CKU_SO, _))) {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        let h = self.next_session;
        self.next_session += 1;
        let _ = self.sessions.insert(h, Session { rw, ..Session::default() });
        Ok(h)
    }

    /// C_CloseSession: its session objects go with it; the last one closed logs out.
    pub fn close_session(&mut self, h: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let _ = self.sessions.remove(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        self.objects.retain(|_, o| o.session != Some(h));
        if self.sessions.is_empty() {
            self.logout_all();
        }
        Ok(())
    }

    /// C_CloseAllSessions.
    pub fn close_all(&mut self, slot: CK_SLOT_ID) -> Result<(), CK_RV> {
        Self::slot(slot)?;
        self.sessions.clear();
        self.objects.retain(|_, o| o.session.is_none());
        self.logout_all();
        Ok(())
    }

    /// C_GetSessionInfo.
    pub fn session_info(&mut self, h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO, CK_RV> {
        let rw = self.session(h)?.rw;
        let state = match (&self.login, rw) {
            (Some((CKU_SO, _)), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        };
        let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
        Ok(CK_SESSION_INFO { slotID: SLOT_ID, state, flags, ulDeviceError: 0 })
    }

    /// C_Login. A wrong PIN counts; the fifth in a row locks the PIN until the SO resets it.
    pub fn login(&mut self, h: CK_SESSION_HANDLE, who: CK_USER_TYPE, pin: &[u8]) -> Result<(), CK_RV> {
        let _ = self.session(h)?;
        if who != CKU_USER && who != CKU_SO {
            return Err(CKR_USER_TYPE_INVALID);
        }
        match &self.login {
            Some((w, _)) if *w == who => return Err(CKR_USER_ALREADY_LOGGED_IN),
            Some(_) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            None => {}
        }
        if who == CKU_SO && self.sessions.values().any(|s| !s.rw) {
            return Err(CKR_SESSION_READ_ONLY_EXISTS);
        }
        self.follow_directory();
        let f = self.file.as_ref().ok_or(CKR_TOKEN_NOT_RECOGNIZED)?;
        let (wrapped, failures, role): (_, _, &[u8]) = if who == CKU_SO {
            (Some(&f.so), f.so_failures, b"so")
        } else {
            (f.user.as_ref(), f.user_failures, b"user")
        };
        let wrapped = wrapped.ok_or(CKR_USER_PIN_NOT_INITIALIZED)?;
        if failures >= MAX_PIN_TRIES {
            return Err(CKR_PIN_LOCKED);
        }
        let Some(mk) = store::unwrap(wrapped, pin, role) else {
            return self.pin_failed(who);
        };
        if failures > 0 {
            let f = self.file.as_mut().ok_or(CKR_TOKEN_NOT_RECOGNIZED)?;
            if who == CKU_SO {
                f.so_failures = 0;
            } else {
                f.user_failures = 0;
            }
            self.store.save_token(f).map_err(|_| CKR_DEVICE_ERROR)?;
        }
        if who == CKU_USER {
            self.unseal_keys(&mk);
        }
        self.login = Some((who, mk));
        Ok(())
    }

    /// Opens every private key with the master key; one that does not open is reported and dropped.
    fn unseal_keys(&mut self, mk: &MasterKey) {
        let mut corrupt = Vec::new();
        for (h, o) in self.objects.iter_mut() {
            let (Some(secret), Some(name)) = (&o.secret, &o.file) else {
                continue;
            };
            let sm2 = self.profile.sm2.as_ref().map(|s| s.key_type) == get_ulong(&o.attrs, CKA_KEY_TYPE);
            match store::open(mk, secret, name.as_bytes()).and_then(|s| KeyMaterial::from_scalar(sm2, &s)) {
                Some(k) => o.key = Some(Arc::new(k)),
                None => corrupt.push((*h, name.clone())),
            }
        }
        for (h, name) in corrupt {
            report(&format!("private key {name} does not decrypt (corrupt or from another token); not loaded"));
            let _ = self.objects.remove(&h);
            let _ = self.rejected.insert(name);
        }
    }

    fn logout_all(&mut self) {
        self.login = None;
        for o in self.objects.values_mut() {
            o.key = None;
        }
        for s in self.sessions.values_mut() {
            s.sign = None;
            s.find = None;
        }
    }

    /// C_Logout.
    pub fn logout(&mut self, h: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let _ = self.session(h)?;
        if self.login.is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        self.logout_all();
        Ok(())
    }
}
