//! Token administration that happens before a pool exists: initialising a fresh token and its user
//! PIN (first boot, `seald dev`). Uses the SO PIN once and forgets it.

use super::keys::p11;
use super::{Pin, TokenError};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use secrecy::ExposeSecret;
use std::path::Path;

/// Initialises the first slot whose token is not yet initialised: label, SO PIN, user PIN.
/// Returns the slot id. Refuses if a token with this label already exists.
pub fn init_token(module: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<u64, TokenError> {
    let ctx = super::pool::load_module(module)?;
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(p11("C_GetSlotList"))? {
        let info = ctx.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        if info.token_initialized() {
            if info.label().trim_end() == label {
                return Err(TokenError::BadInput(format!("a token labelled '{label}' already exists")));
            }
        } else if free.is_none() {
            free = Some(slot);
        }
    }
    let slot = free.ok_or_else(|| TokenError::TokenNotFound {
        wanted: "a slot with an uninitialised token".into(),
        present: "only initialised tokens".into(),
    })?;
    let so = AuthPin::from(so_pin.secret().expose_secret().to_owned());
    ctx.init_token(slot, &so, label).map_err(p11("C_InitToken"))?;
    // SoftHSM moves a freshly initialised token to a new slot id: look it up again by label.
    let slot = ctx
        .get_slots_with_token()
        .map_err(p11("C_GetSlotList"))?
        .into_iter()
        .find(|s| ctx.get_token_info(*s).map(|i| i.label().trim_end() == label).unwrap_or(false))
        .ok_or_else(|| TokenError::TokenNotFound {
            wanted: format!("label '{label}'"),
            present: "none after C_InitToken".into(),
        })?;
    let session = ctx.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
    session.login(UserType::So, Some(&so)).map_err(p11("C_Login(SO)"))?;
    let user = AuthPin::from(user_pin.secret().expose_secret().to_owned());
    session.init_pin(&user).map_err(p11("C_InitPIN"))?;
    session.logout().map_err(p11("C_Logout"))?;
    drop(session);
    let _ = ctx.finalize();
    Ok(slot.id())
}
