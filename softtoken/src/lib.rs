//! softtoken: seald's software PKCS#11 module, for tests and development only.
//!
//! **This is not a certified cryptographic module.** It keeps keys in files (encrypted, but on the
//! host), and exists so that seald's SM2 path can be tested through the real PKCS#11 C interface
//! without a cipher machine, and so that `seald dev` needs no hardware. SoftHSM2 has no SM2.
//!
//! It exports `C_GetFunctionList` like any vendor module, and imitates a vendor profile
//! (`SOFTTOKEN_PROFILE`, the same TOML as `pkcs11-profiles/`): its SM2 codes, raw or DER signatures.
//! Configuration: a `.conf` file beside the module, else `SOFTTOKEN_DIR` (required), `SOFTTOKEN_PROFILE`,
//! `SOFTTOKEN_FAULT` (see `settings.rs` and `fault.rs`).
//!
//! This file is the C boundary only: pointer checks, the two-call size convention, panics turned into
//! CKR_GENERAL_ERROR. The token's behaviour is in `token.rs`.
#![allow(non_snake_case, clippy::missing_safety_doc)]

mod attrs;
mod fault;
mod settings;
mod store;
mod token;

use cryptoki_sys::*;
use std::os::raw::c_void;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use token::{SignStep, Token, SLOT_ID};

static TOKEN: Mutex<Option<Token>> = Mutex::new(None);

/// Runs an entry point: errors become their CK_RV, a panic becomes CKR_GENERAL_ERROR.
fn entry(f: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

/// Runs `f` on the initialised token, after fault injection had its say.
fn with<T>(f: impl FnOnce(&mut Token) -> Result<T, CK_RV>) -> Result<T, CK_RV> {
    let mut guard = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    let t = guard.as_mut().ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)?;
    t.check_fault()?;
    f(t)
}

unsafe fn bytes<'a>(p: *const u8, n: CK_ULONG) -> Result<&'a [u8], CK_RV> {
    match (p.is_null(), n) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(CKR_ARGUMENTS_BAD),
        (false, n) if n > 1 << 26 => Err(CKR_DATA_LEN_RANGE),
        (false, n) => Ok(std::slice::from_raw_parts(p, n as usize)),
    }
}

unsafe fn put<T>(p: *mut T, v: T) -> Result<(), CK_RV> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    p.write(v);
    Ok(())
}

/// The two-call convention for a byte output.
unsafe fn out_bytes(data: &[u8], p: *mut u8, plen: *mut CK_ULONG) -> Result<(), CK_RV> {
    if plen.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let room = *plen as usize;
    *plen = data.len() as CK_ULONG;
    if p.is_null() {
        return Ok(());
    }
    if room < data.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
    Ok(())
}

/// The two-call convention for a list of CK_ULONGs (slots, mechanisms).
unsafe fn out_list(items: &[CK_ULONG], p: *mut CK_ULONG, pcount: *mut CK_ULONG) -> Result<(), CK_RV> {
    if pcount.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let room = *pcount as usize;
    *pcount = items.len() as CK_ULONG;
    if p.is_null() {
        return Ok(());
    }
    if room < items.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
    Ok(())
}

unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<CK_MECHANISM_TYPE, CK_RV> {
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let m = &*p;
    if !m.pParameter.is_null() && m.ulParameterLen > 0 {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    Ok(m.mechanism)
}

fn pad32(s: &str) -> [u8; 32] {
    let mut out = [b' '; 32];
    for (o, c) in out.iter_mut().zip(s.bytes()) {
        *o = c;
    }
    out
}

// ---- general purpose ----

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    entry(|| {
        if !args.is_null() {
            let a = &*(args as *const CK_C_INITIALIZE_ARGS);
            if !a.pReserved.is_null() {
                return Err(CKR_ARGUMENTS_BAD);
            }
            let given =
                [a.CreateMutex.is_some(), a.DestroyMutex.is_some(), a.LockMutex.is_some(), a.UnlockMutex.is_some()];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return Err(CKR_ARGUMENTS_BAD);
            }
            // Callbacks without OS_LOCKING_OK would oblige us to lock with them: we lock with the OS.
            if given[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(CKR_CANT_LOCK);
            }
        }
        let mut guard = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED);
        }
        *guard = Some(Token::from_settings()?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    entry(|| {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let mut guard = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
        guard.take().map(|_| ()).ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    entry(|| {
        if TOKEN.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        put(
            info,
            CK_INFO {
                cryptokiVersion: CK_VERSION { major: 2, minor: 40 },
                manufacturerID: pad32("seald softtoken"),
                flags: 0,
                // 32 characters exactly: it says what this module is, wherever a tool shows it.
                libraryDescription: pad32("Test/dev soft token, uncertified"),
                libraryVersion: CK_VERSION { major: 0, minor: 1 },
            },
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    entry(|| put(list, std::ptr::addr_of!(FUNCTIONS) as *mut CK_FUNCTION_LIST))
}

// ---- slots and tokens ----

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(_present: CK_BBOOL, list: *mut CK_SLOT_ID, count: *mut CK_ULONG) -> CK_RV {
    entry(|| {
        with(|_| Ok(()))?;
        out_list(&[SLOT_ID], list, count)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    entry(|| {
        let i = with(|t| t.slot_info(slot))?;
        put(info, i)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    entry(|| {
        let i = with(|t| t.token_info(slot))?;
        put(info, i)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    entry(|| {
        let m = with(|t| t.mechanism_list(slot))?;
        out_list(&m, list, count)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    entry(|| {
        let i = with(|t| t.mechanism_info(slot, kind))?;
        put(info, i)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    entry(|| {
        let pin = bytes(pin, pin_len)?;
        if label.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let label = std::slice::from_raw_parts(label, 32);
        with(|t| t.init_token(slot, pin, label))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(h: CK_SESSION_HANDLE, pin: *mut CK_UTF8CHAR, len: CK_ULONG) -> CK_RV {
    entry(|| {
        let pin = bytes(pin, len)?;
        with(|t| t.init_pin(h, pin))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    entry(|| {
        let (old, new) = (bytes(old, old_len)?, bytes(new, new_len)?);
        with(|t| t.set_pin(h, old, new))
    })
}

// ---- sessions ----

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    out: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    entry(|| {
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let h = with(|t| t.open_session(slot, flags))?;
        put(out, h)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    entry(|| with(|t| t.close_session(h)))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    entry(|| with(|t| t.close_all(slot)))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(h: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) -> CK_RV {
    entry(|| {
        let i = with(|t| t.session_info(h))?;
        put(info, i)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    who: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    entry(|| {
        let pin = bytes(pin, len)?;
        with(|t| t.login(h, who, pin))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    entry(|| with(|t| t.logout(h)))
}

// ---- objects ----

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_t: *mut CK_ATTRIBUTE,
    pub_n: CK_ULONG,
    priv_t: *mut CK_ATTRIBUTE,
    priv_n: CK_ULONG,
    pub_h: *mut CK_OBJECT_HANDLE,
    priv_h: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    entry(|| {
        let code = mechanism(mech)?;
        let public = attrs::read_template(pub_t, pub_n)?;
        let private = attrs::read_template(priv_t, priv_n)?;
        if pub_h.is_null() || priv_h.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let (p, q) = with(|t| t.generate_key_pair(h, code, &public, &private))?;
        put(pub_h, p)?;
        put(priv_h, q)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> CK_RV {
    entry(|| with(|t| t.destroy(h, obj)))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> CK_RV {
    entry(|| {
        if tmpl.is_null() && n > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        with(|t| {
            t.check_object(h, obj)?;
            let template = if n == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(tmpl, n as usize) };
            // Every attribute is processed; the result is the last problem seen, as PKCS#11 says.
            let mut result = Ok(());
            for a in template.iter_mut() {
                match t.attribute(h, obj, a.type_)? {
                    Ok(value) => {
                        if a.pValue.is_null() {
                            a.ulValueLen = value.len() as CK_ULONG;
                        } else if (a.ulValueLen as usize) < value.len() {
                            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                            result = Err(CKR_BUFFER_TOO_SMALL);
                        } else {
                            std::ptr::copy_nonoverlapping(value.as_ptr(), a.pValue as *mut u8, value.len());
                            a.ulValueLen = value.len() as CK_ULONG;
                        }
                    }
                    Err(rv) => {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        result = Err(rv);
                    }
                }
            }
            result
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    tmpl: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> CK_RV {
    entry(|| {
        let template = attrs::read_template(tmpl, n)?;
        with(|t| t.set_attributes(h, obj, &template))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(h: CK_SESSION_HANDLE, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG) -> CK_RV {
    entry(|| {
        let template = attrs::read_template(tmpl, n)?;
        with(|t| t.find_init(h, &template))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    entry(|| {
        if count.is_null() || (out.is_null() && max > 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let found = with(|t| t.find_next(h, max as usize))?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), out, found.len());
        }
        put(count, found.len() as CK_ULONG)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    entry(|| with(|t| t.find_final(h)))
}

// ---- signing ----

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) -> CK_RV {
    entry(|| {
        let code = mechanism(mech)?;
        with(|t| t.sign_init(h, code, key))
    })
}

/// C_Sign and C_SignFinal: the signature is computed without holding the token lock.
unsafe fn sign_out(
    h: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    sig: *mut u8,
    sig_len: *mut CK_ULONG,
) -> Result<(), CK_RV> {
    if sig_len.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    match with(|t| t.sign_step(h, data, sig.is_null()))? {
        SignStep::Length(n) => put(sig_len, n as CK_ULONG),
        SignStep::Compute(op, slow, corrupt) => {
            if let Some(d) = slow {
                std::thread::sleep(d);
            }
            let out = token::compute(&op, corrupt)?;
            if (*sig_len as usize) < out.len() {
                *sig_len = out.len() as CK_ULONG;
                with(|t| {
                    t.sign_restore(h, op);
                    Ok(())
                })?;
                return Err(CKR_BUFFER_TOO_SMALL);
            }
            out_bytes(&out, sig, sig_len)
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    entry(|| {
        let data = bytes(data, len)?;
        sign_out(h, Some(data), sig, sig_len)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(h: CK_SESSION_HANDLE, part: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    entry(|| {
        let part = bytes(part, len)?;
        with(|t| t.sign_update(h, part))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(h: CK_SESSION_HANDLE, sig: *mut CK_BYTE, sig_len: *mut CK_ULONG) -> CK_RV {
    entry(|| sign_out(h, None, sig, sig_len))
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) -> CK_RV {
    entry(|| {
        let code = mechanism(mech)?;
        with(|t| t.verify_init(h, code, key))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: CK_ULONG,
) -> CK_RV {
    entry(|| {
        let (data, sig) = (bytes(data, len)?, bytes(sig, sig_len)?);
        with(|t| t.verify_finish(h, Some(data), sig))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(h: CK_SESSION_HANDLE, part: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    entry(|| {
        let part = bytes(part, len)?;
        with(|t| t.verify_update(h, part))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(h: CK_SESSION_HANDLE, sig: *mut CK_BYTE, sig_len: CK_ULONG) -> CK_RV {
    entry(|| {
        let sig = bytes(sig, sig_len)?;
        with(|t| t.verify_finish(h, None, sig))
    })
}

// ---- digests and random ----

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, mech: *mut CK_MECHANISM) -> CK_RV {
    entry(|| {
        let code = mechanism(mech)?;
        with(|t| t.digest_init(h, code))
    })
}

unsafe fn digest_out(
    h: CK_SESSION_HANDLE,
    data: Option<&[u8]>,
    out: *mut u8,
    out_len: *mut CK_ULONG,
) -> Result<(), CK_RV> {
    if out_len.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    match with(|t| t.digest_finish(h, data, out.is_null(), *out_len as usize))? {
        Ok(d) => out_bytes(&d, out, out_len),
        Err(n) => {
            *out_len = n as CK_ULONG;
            if out.is_null() {
                Ok(())
            } else {
                Err(CKR_BUFFER_TOO_SMALL)
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    entry(|| {
        let data = bytes(data, len)?;
        digest_out(h, Some(data), out, out_len)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(h: CK_SESSION_HANDLE, part: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    entry(|| {
        let part = bytes(part, len)?;
        with(|t| t.digest_update(h, part))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(h: CK_SESSION_HANDLE, out: *mut CK_BYTE, out_len: *mut CK_ULONG) -> CK_RV {
    entry(|| digest_out(h, None, out, out_len))
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(h: CK_SESSION_HANDLE, out: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    entry(|| {
        if out.is_null() && len > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        if len > 1 << 20 {
            return Err(CKR_DATA_LEN_RANGE);
        }
        let buf = if len == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(out, len as usize) };
        with(|t| t.random(h, buf))
    })
}

// ---- everything else ----

/// Entry points a signing server does not need: they exist (PKCS#11 requires every one) and say so.
macro_rules! not_supported {
    ($($name:ident($($t:ty),*);)*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($(_: $t),*) -> CK_RV {
            CKR_FUNCTION_NOT_SUPPORTED
        }
    )*};
}

not_supported! {
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CreateObject(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG);
    C_EncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Encrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Decrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_GenerateKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_DeriveKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_SeedRandom(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_GetFunctionStatus(CK_SESSION_HANDLE);
    C_CancelFunction(CK_SESSION_HANDLE);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
}

static FUNCTIONS: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION { major: 2, minor: 40 },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
