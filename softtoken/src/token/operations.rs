//! The token's cryptographic operations: sign (init, update, the final step taken out of the session
//! so that `lib.rs` computes it without the token lock), verify, digest and random.

use super::*;

impl Token {
    /// The output format of a sign/verify mechanism on a key, or why the pair does not fit.
    fn signature_format(&self, mech: Mech, sm2_key: bool) -> Result<SignatureFormat, CK_RV> {
        let format = match (mech, sm2_key) {
            (Mech::Sm2SignE | Mech::Sm2SignSm3, true) => self.profile.sm2.as_ref().map(|s| s.signature),
            (Mech::Ecdsa, false) => self.profile.ecdsa.as_ref().map(|e| e.signature),
            (Mech::Sm2SignE | Mech::Sm2SignSm3 | Mech::Ecdsa, _) => return Err(CKR_KEY_TYPE_INCONSISTENT),
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        format.ok_or(CKR_MECHANISM_INVALID)
    }

    /// C_SignInit.
    pub fn sign_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        code: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), CK_RV> {
        if self.session(h)?.sign.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let mech = self.mech(code)?;
        let o = self.object(key).map_err(|_| CKR_KEY_HANDLE_INVALID)?;
        if o.class() != CKO_PRIVATE_KEY {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        if get_bool(&o.attrs, CKA_SIGN) != Some(true) {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let material = o.key.clone().ok_or(CKR_USER_NOT_LOGGED_IN)?;
        let format = self.signature_format(mech, matches!(*material, KeyMaterial::Sm2(_)))?;
        self.session(h)?.sign = Some(SignOp { mech, key: material, data: Vec::new(), format });
        Ok(())
    }

    /// C_SignUpdate.
    pub fn sign_update(&mut self, h: CK_SESSION_HANDLE, part: &[u8]) -> Result<(), CK_RV> {
        let op = self.session(h)?.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if op.data.len() + part.len() > 1 << 26 {
            self.session(h)?.sign = None;
            return Err(CKR_DATA_LEN_RANGE);
        }
        op.data.extend_from_slice(part);
        Ok(())
    }

    /// C_Sign (with `data`) or C_SignFinal (without): a length query leaves the operation active;
    /// otherwise the operation is taken out to be computed without the lock.
    pub fn sign_step(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        length_only: bool,
    ) -> Result<SignStep, CK_RV> {
        let faults = self.fault.current().clone();
        let session = self.session(h)?;
        let op = session.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if length_only {
            return Ok(SignStep::Length(if op.format == SignatureFormat::Der { SIG_MAX_DER } else { 64 }));
        }
        let mut op = session.sign.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if faults.sign_fails {
            return Err(CKR_FUNCTION_FAILED);
        }
        if let Some(d) = data {
            op.data.extend_from_slice(d);
        }
        Ok(SignStep::Compute(op, faults.slow, faults.corrupt))
    }

    /// Puts an operation back after the caller's buffer turned out too small.
    pub fn sign_restore(&mut self, h: CK_SESSION_HANDLE, op: SignOp) {
        if let Ok(s) = self.session(h) {
            s.sign = Some(op);
        }
    }

    /// C_VerifyInit, with a public key (or a private key's own public half).
    pub fn verify_init(
        &mut self,
        h: CK_SESSION_HANDLE,
        code: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), CK_RV> {
        if self.session(h)?.verify.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let mech = self.mech(code)?;
        let o = self.object(key).map_err(|_| CKR_KEY_HANDLE_INVALID)?;
        let sm2_type = self.profile.sm2.as_ref().map(|s| s.key_type);
        let is_sm2 = get_ulong(&o.attrs, CKA_KEY_TYPE) == sm2_type && sm2_type.is_some();
        let vk = match (o.class(), &o.key) {
            (CKO_PRIVATE_KEY, Some(k)) => match &**k {
                KeyMaterial::Sm2(s) => VerifyKey::Sm2(
                    sm2::PublicKey::from_affine(*s.verifying_key().as_affine()).map_err(|_| CKR_KEY_HANDLE_INVALID)?,
                ),
                KeyMaterial::P256(s) => VerifyKey::P256(p256::PublicKey::from(s.verifying_key())),
            },
            (CKO_PUBLIC_KEY, _) => {
                let point = o.attrs.get(&CKA_EC_POINT).ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
                let sec1 = point.get(2..).ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
                if is_sm2 {
                    VerifyKey::Sm2(sm2::PublicKey::from_sec1_bytes(sec1).map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?)
                } else {
                    VerifyKey::P256(p256::PublicKey::from_sec1_bytes(sec1).map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?)
                }
            }
            _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
        };
        let format = self.signature_format(mech, matches!(vk, VerifyKey::Sm2(_)))?;
        self.session(h)?.verify = Some(VerifyOp { mech, key: vk, data: Vec::new(), format });
        Ok(())
    }

    /// C_VerifyUpdate.
    pub fn verify_update(&mut self, h: CK_SESSION_HANDLE, part: &[u8]) -> Result<(), CK_RV> {
        let op = self.session(h)?.verify.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.data.extend_from_slice(part);
        Ok(())
    }

    /// C_Verify (with data) or C_VerifyFinal (without); ends the operation.
    pub fn verify_finish(&mut self, h: CK_SESSION_HANDLE, data: Option<&[u8]>, sig: &[u8]) -> Result<(), CK_RV> {
        let mut op = self.session(h)?.verify.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if let Some(d) = data {
            op.data.extend_from_slice(d);
        }
        let raw = match op.format {
            SignatureFormat::Raw if sig.len() == 64 => sig.to_vec(),
            SignatureFormat::Raw => return Err(CKR_SIGNATURE_LEN_RANGE),
            SignatureFormat::Der => seald_gm::der_to_raw(sig, 32).map_err(|_| CKR_SIGNATURE_INVALID)?,
        };
        let ok = match (&op.key, op.mech) {
            (VerifyKey::Sm2(pk), Mech::Sm2SignE | Mech::Sm2SignSm3) => {
                let e = if op.mech == Mech::Sm2SignSm3 {
                    seald_gm::sm2::e(pk, seald_gm::sm2::DEFAULT_USER_ID, &op.data)
                        .map_err(|_| CKR_DATA_INVALID)?
                        .to_vec()
                } else if op.data.len() == 32 {
                    op.data.clone()
                } else {
                    return Err(CKR_DATA_LEN_RANGE);
                };
                // RustCrypto's verification of e (the distid only feeds Z, which a prehash skips).
                let s = sm2::dsa::Signature::from_slice(&raw).map_err(|_| CKR_SIGNATURE_INVALID)?;
                sm2::dsa::VerifyingKey::new("1234567812345678", *pk)
                    .map_err(|_| CKR_KEY_TYPE_INCONSISTENT)?
                    .verify_prehash(&e, &s)
                    .is_ok()
            }
            (VerifyKey::P256(pk), Mech::Ecdsa) => {
                let s = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| CKR_SIGNATURE_INVALID)?;
                p256::ecdsa::VerifyingKey::from(pk).verify_prehash(&op.data, &s).is_ok()
            }
            _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
        };
        if ok {
            Ok(())
        } else {
            Err(CKR_SIGNATURE_INVALID)
        }
    }

    /// C_DigestInit.
    pub fn digest_init(&mut self, h: CK_SESSION_HANDLE, code: CK_MECHANISM_TYPE) -> Result<(), CK_RV> {
        if self.session(h)?.digest.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let mech = self.mech(code)?;
        if !matches!(mech, Mech::Sm3 | Mech::Sha256) {
            return Err(CKR_MECHANISM_INVALID);
        }
        self.session(h)?.digest = Some(DigestOp { mech, data: Vec::new() });
        Ok(())
    }

    /// C_DigestUpdate.
    pub fn digest_update(&mut self, h: CK_SESSION_HANDLE, part: &[u8]) -> Result<(), CK_RV> {
        let op = self.session(h)?.digest.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        op.data.extend_from_slice(part);
        Ok(())
    }

    /// C_Digest / C_DigestFinal. `Ok(None)` for a length query (the operation stays).
    pub fn digest_finish(
        &mut self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        length_only: bool,
        room: usize,
    ) -> Result<Result<Vec<u8>, usize>, CK_RV> {
        let session = self.session(h)?;
        if session.digest.is_none() {
            return Err(CKR_OPERATION_NOT_INITIALIZED);
        }
        if length_only || room < 32 {
            return Ok(Err(32));
        }
        let mut op = session.digest.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if let Some(d) = data {
            op.data.extend_from_slice(d);
        }
        Ok(Ok(match op.mech {
            Mech::Sm3 => seald_gm::sm3(&op.data).to_vec(),
            _ => seald_gm::sha256(&op.data).to_vec(),
        }))
    }

    /// C_GenerateRandom.
    pub fn random(&mut self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<(), CK_RV> {
        let _ = self.session(h)?;
        if store::random_bytes(out) {
            Ok(())
        } else {
            Err(CKR_DEVICE_ERROR)
        }
    }
}

/// Computes a signature for an operation taken out of its session. Runs without the token lock.
pub fn compute(op: &SignOp, corrupt: bool) -> Result<Vec<u8>, CK_RV> {
    let mut raw = match (&*op.key, op.mech) {
        (KeyMaterial::Sm2(sk), Mech::Sm2SignE | Mech::Sm2SignSm3) => {
            let e: Vec<u8> = if op.mech == Mech::Sm2SignSm3 {
                let pk = sm2::PublicKey::from_affine(*sk.verifying_key().as_affine()).map_err(|_| CKR_GENERAL_ERROR)?;
                seald_gm::sm2::e(&pk, seald_gm::sm2::DEFAULT_USER_ID, &op.data).map_err(|_| CKR_DATA_INVALID)?.to_vec()
            } else if op.data.len() == 32 {
                op.data.clone()
            } else {
                return Err(CKR_DATA_LEN_RANGE);
            };
            let sig: sm2::dsa::Signature = sk.sign_prehash(&e).map_err(|_| CKR_FUNCTION_FAILED)?;
            sig.to_bytes().to_vec()
        }
        (KeyMaterial::P256(sk), Mech::Ecdsa) => {
            if op.data.len() < 16 || op.data.len() > 64 {
                return Err(CKR_DATA_LEN_RANGE);
            }
            let sig: p256::ecdsa::Signature = sk.sign_prehash(&op.data).map_err(|_| CKR_DATA_INVALID)?;
            sig.to_bytes().to_vec()
        }
        _ => return Err(CKR_KEY_TYPE_INCONSISTENT),
    };
    if corrupt {
        raw[63] ^= 0x01;
    }
    match op.format {
        SignatureFormat::Raw => Ok(raw),
        SignatureFormat::Der => seald_gm::raw_to_der(&raw).map_err(|_| CKR_GENERAL_ERROR),
    }
}
