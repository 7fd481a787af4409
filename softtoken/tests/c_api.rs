//! softtoken at its C boundary: the right CKR_ codes for wrong order, bad handles, short buffers and
//! NULL pointers, and never a crash. One test function, because the module is process-global.

use cryptoki_sys::*;
use softtoken::*;
use std::ptr::null_mut;

fn mech(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM { mechanism: m, pParameter: null_mut(), ulParameterLen: 0 }
}

fn attr<T>(t: CK_ATTRIBUTE_TYPE, v: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: t, pValue: v as *const T as *mut _, ulValueLen: std::mem::size_of::<T>() as CK_ULONG }
}

fn bytes_attr(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: t, pValue: v.as_ptr() as *mut _, ulValueLen: v.len() as CK_ULONG }
}

#[test]
fn the_c_interface_answers_every_misuse_with_the_right_code() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("SOFTTOKEN_DIR", dir.path());
    std::env::remove_var("SOFTTOKEN_PROFILE");
    std::env::remove_var("SOFTTOKEN_FAULT");
    unsafe {
        // Before C_Initialize.
        let mut count: CK_ULONG = 0;
        assert_eq!(C_GetSlotList(0, null_mut(), &mut count), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
        assert_eq!((*list).version.major, 2);

        // Initialise: reserved pointer and half-given mutex callbacks are refused.
        let mut args: CK_C_INITIALIZE_ARGS = std::mem::zeroed();
        args.pReserved = std::ptr::dangling_mut();
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_ARGUMENTS_BAD);
        args.pReserved = null_mut();
        args.flags = CKF_OS_LOCKING_OK;
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_OK);
        assert_eq!(C_Initialize(null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);

        let mut info: CK_INFO = std::mem::zeroed();
        assert_eq!(C_GetInfo(&mut info), CKR_OK);
        assert!(std::str::from_utf8(&info.libraryDescription).unwrap().contains("uncertified"));

        // Slots: the two-call convention.
        assert_eq!(C_GetSlotList(1, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetSlotList(1, null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 1);
        let mut slots = [0 as CK_SLOT_ID; 1];
        let mut zero: CK_ULONG = 0;
        assert_eq!(C_GetSlotList(1, slots.as_mut_ptr(), &mut zero), CKR_BUFFER_TOO_SMALL);
        assert_eq!(zero, 1);
        assert_eq!(C_GetSlotList(1, slots.as_mut_ptr(), &mut count), CKR_OK);
        let slot = slots[0];
        let mut ti: CK_TOKEN_INFO = std::mem::zeroed();
        assert_eq!(C_GetTokenInfo(99, &mut ti), CKR_SLOT_ID_INVALID);
        assert_eq!(C_GetTokenInfo(slot, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetTokenInfo(slot, &mut ti), CKR_OK);
        assert_eq!(ti.flags & CKF_TOKEN_INITIALIZED, 0);

        // Mechanisms of the built-in profile.
        assert_eq!(C_GetMechanismList(slot, null_mut(), &mut count), CKR_OK);
        let mut mechs = vec![0 as CK_MECHANISM_TYPE; count as usize];
        assert_eq!(C_GetMechanismList(slot, mechs.as_mut_ptr(), &mut count), CKR_OK);
        assert!(mechs.contains(&0x8000_5302) && mechs.contains(&CKM_ECDSA));
        let mut mi: CK_MECHANISM_INFO = std::mem::zeroed();
        assert_eq!(C_GetMechanismInfo(slot, CKM_RSA_PKCS, &mut mi), CKR_MECHANISM_INVALID);

        // An uninitialised token opens no sessions; initialise it.
        let mut h: CK_SESSION_HANDLE = 0;
        assert_eq!(
            C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h),
            CKR_TOKEN_NOT_RECOGNIZED
        );
        let mut label = [b' '; 32];
        label[..4].copy_from_slice(b"capi");
        let so = b"so-pin-1234";
        assert_eq!(C_InitToken(slot, so.as_ptr() as *mut _, so.len() as CK_ULONG, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_InitToken(slot, so.as_ptr() as *mut _, 2, label.as_mut_ptr()), CKR_PIN_LEN_RANGE);
        assert_eq!(C_InitToken(slot, so.as_ptr() as *mut _, so.len() as CK_ULONG, label.as_mut_ptr()), CKR_OK);
        assert_eq!(C_OpenSession(slot, CKF_RW_SESSION, null_mut(), None, &mut h), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        assert_eq!(
            C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut h), CKR_OK);

        // Login order and rules.
        let pin = b"user-pin-5678";
        assert_eq!(C_Login(h, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_USER_PIN_NOT_INITIALIZED);
        assert_eq!(C_InitPIN(h, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_Login(h, CKU_SO, so.as_ptr() as *mut _, so.len() as CK_ULONG), CKR_OK);
        assert_eq!(C_Login(h, CKU_SO, so.as_ptr() as *mut _, so.len() as CK_ULONG), CKR_USER_ALREADY_LOGGED_IN);
        assert_eq!(C_InitPIN(h, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_OK);
        assert_eq!(
            C_Login(h, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG),
            CKR_USER_ANOTHER_ALREADY_LOGGED_IN
        );
        assert_eq!(C_Logout(h), CKR_OK);
        assert_eq!(C_Logout(h), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_Login(h, 7, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_USER_TYPE_INVALID);
        assert_eq!(C_Login(h, CKU_USER, null_mut(), 4), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Login(h, CKU_USER, b"nope".as_ptr() as *mut _, 4), CKR_PIN_INCORRECT);
        assert_eq!(C_Login(999, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_SESSION_HANDLE_INVALID);

        // Key generation needs a login.
        let t = CK_TRUE;
        let params = [0x06u8, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let id = [0x42u8];
        let pub_t = [attr(CKA_TOKEN, &t), bytes_attr(CKA_EC_PARAMS, &params), bytes_attr(CKA_ID, &id)];
        let priv_t = [attr(CKA_TOKEN, &t), attr(CKA_SIGN, &t), bytes_attr(CKA_ID, &id)];
        let (mut pk, mut sk): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        let mut gen = mech(CKM_EC_KEY_PAIR_GEN);
        let g = |m: *mut CK_MECHANISM, pk: &mut CK_OBJECT_HANDLE, sk: &mut CK_OBJECT_HANDLE| {
            C_GenerateKeyPair(h, m, pub_t.as_ptr() as *mut _, 3, priv_t.as_ptr() as *mut _, 3, pk, sk)
        };
        assert_eq!(g(&mut gen, &mut pk, &mut sk), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_Login(h, CKU_USER, pin.as_ptr() as *mut _, pin.len() as CK_ULONG), CKR_OK);
        assert_eq!(g(null_mut(), &mut pk, &mut sk), CKR_ARGUMENTS_BAD);
        let mut bad_gen = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
        assert_eq!(g(&mut bad_gen, &mut pk, &mut sk), CKR_MECHANISM_INVALID);
        let extractable = [attr(CKA_TOKEN, &t), attr(CKA_EXTRACTABLE, &t)];
        assert_eq!(
            C_GenerateKeyPair(
                h,
                &mut gen,
                pub_t.as_ptr() as *mut _,
                3,
                extractable.as_ptr() as *mut _,
                2,
                &mut pk,
                &mut sk
            ),
            CKR_ATTRIBUTE_VALUE_INVALID,
            "this token never makes an extractable key"
        );
        let bad_ptr = [CK_ATTRIBUTE { type_: CKA_ID, pValue: null_mut(), ulValueLen: 4 }];
        assert_eq!(
            C_GenerateKeyPair(
                h,
                &mut gen,
                bad_ptr.as_ptr() as *mut _,
                1,
                priv_t.as_ptr() as *mut _,
                3,
                &mut pk,
                &mut sk
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(g(&mut gen, &mut pk, &mut sk), CKR_OK);

        // Attributes: the private value is sensitive; unknown types are invalid; short buffers say so.
        let mut value = [0u8; 64];
        let mut t1 = [CK_ATTRIBUTE { type_: CKA_VALUE, pValue: value.as_mut_ptr() as *mut _, ulValueLen: 64 }];
        assert_eq!(C_GetAttributeValue(h, sk, t1.as_mut_ptr(), 1), CKR_ATTRIBUTE_SENSITIVE);
        assert_eq!(t1[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        let mut t2 = [CK_ATTRIBUTE { type_: 0x7fff_0000, pValue: null_mut(), ulValueLen: 0 }];
        assert_eq!(C_GetAttributeValue(h, sk, t2.as_mut_ptr(), 1), CKR_ATTRIBUTE_TYPE_INVALID);
        let mut t3 = [CK_ATTRIBUTE { type_: CKA_EC_POINT, pValue: null_mut(), ulValueLen: 0 }];
        assert_eq!(C_GetAttributeValue(h, pk, t3.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(t3[0].ulValueLen, 67);
        t3[0].pValue = value.as_mut_ptr() as *mut _;
        t3[0].ulValueLen = 10;
        assert_eq!(C_GetAttributeValue(h, pk, t3.as_mut_ptr(), 1), CKR_BUFFER_TOO_SMALL);
        assert_eq!(C_GetAttributeValue(h, 12345, t3.as_mut_ptr(), 1), CKR_OBJECT_HANDLE_INVALID);
        assert_eq!(C_GetAttributeValue(h, pk, null_mut(), 1), CKR_ARGUMENTS_BAD);
        let newlabel = *b"renamed";
        let lbl = [bytes_attr(CKA_LABEL, &newlabel)];
        assert_eq!(C_SetAttributeValue(h, sk, lbl.as_ptr() as *mut _, 1), CKR_OK);
        let sens = [attr(CKA_SENSITIVE, &CK_FALSE)];
        assert_eq!(C_SetAttributeValue(h, sk, sens.as_ptr() as *mut _, 1), CKR_ATTRIBUTE_READ_ONLY);

        // Find: order matters.
        let mut found = [0 as CK_OBJECT_HANDLE; 4];
        assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, &mut count), CKR_OPERATION_NOT_INITIALIZED);
        let class = CKO_PRIVATE_KEY;
        let ft = [attr(CKA_CLASS, &class), bytes_attr(CKA_ID, &id)];
        assert_eq!(C_FindObjectsInit(h, ft.as_ptr() as *mut _, 2), CKR_OK);
        assert_eq!(C_FindObjectsInit(h, ft.as_ptr() as *mut _, 2), CKR_OPERATION_ACTIVE);
        assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, &mut count), CKR_OK);
        assert_eq!((count, found[0]), (1, sk));
        assert_eq!(C_FindObjectsFinal(h), CKR_OK);
        assert_eq!(C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);

        // Sign: order, key checks, the two-call size convention.
        let digest = [7u8; 32];
        let mut sig = [0u8; 64];
        let mut sig_len: CK_ULONG = 64;
        assert_eq!(
            C_Sign(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), &mut sig_len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        let mut ecdsa = mech(CKM_ECDSA);
        assert_eq!(C_SignInit(h, &mut ecdsa, pk), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(C_SignInit(h, &mut ecdsa, 9999), CKR_KEY_HANDLE_INVALID);
        let mut sm2e = mech(0x8000_5302);
        assert_eq!(C_SignInit(h, &mut sm2e, sk), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(C_SignInit(h, null_mut(), sk), CKR_ARGUMENTS_BAD);
        assert_eq!(C_SignInit(h, &mut ecdsa, sk), CKR_OK);
        assert_eq!(C_SignInit(h, &mut ecdsa, sk), CKR_OPERATION_ACTIVE);
        assert_eq!(C_Sign(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), null_mut()), CKR_ARGUMENTS_BAD);
        let mut need: CK_ULONG = 0;
        assert_eq!(C_Sign(h, digest.as_ptr() as *mut _, 32, null_mut(), &mut need), CKR_OK);
        assert_eq!(need, 64);
        let mut small: CK_ULONG = 10;
        assert_eq!(C_Sign(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
        assert_eq!(small, 64, "the operation stays active after a short buffer");
        assert_eq!(C_Sign(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), &mut sig_len), CKR_OK);
        assert_eq!(sig_len, 64);
        assert_eq!(
            C_Sign(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), &mut sig_len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        // Multi-part gives the same (deterministic) signature.
        let mut sig2 = [0u8; 64];
        let mut len2: CK_ULONG = 64;
        assert_eq!(C_SignInit(h, &mut ecdsa, sk), CKR_OK);
        assert_eq!(C_SignUpdate(h, digest.as_ptr() as *mut _, 16), CKR_OK);
        assert_eq!(C_SignUpdate(h, digest[16..].as_ptr() as *mut _, 16), CKR_OK);
        assert_eq!(C_SignFinal(h, sig2.as_mut_ptr(), &mut len2), CKR_OK);
        assert_eq!(sig, sig2);

        // Verify with the public key; a changed signature is invalid.
        assert_eq!(C_VerifyInit(h, &mut ecdsa, pk), CKR_OK);
        assert_eq!(C_Verify(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), 64), CKR_OK);
        sig[5] ^= 1;
        assert_eq!(C_VerifyInit(h, &mut ecdsa, pk), CKR_OK);
        assert_eq!(C_Verify(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), 64), CKR_SIGNATURE_INVALID);
        assert_eq!(C_VerifyInit(h, &mut ecdsa, pk), CKR_OK);
        assert_eq!(C_Verify(h, digest.as_ptr() as *mut _, 32, sig.as_mut_ptr(), 63), CKR_SIGNATURE_LEN_RANGE);

        // Digests: SM3 (profile code) and SHA-256, with the size convention.
        let mut sm3m = mech(0x8000_5304);
        assert_eq!(C_DigestInit(h, &mut sm3m), CKR_OK);
        let mut out = [0u8; 32];
        let mut out_len: CK_ULONG = 0;
        assert_eq!(C_Digest(h, b"abc".as_ptr() as *mut _, 3, null_mut(), &mut out_len), CKR_OK);
        assert_eq!(out_len, 32);
        assert_eq!(C_Digest(h, b"abc".as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut out_len), CKR_OK);
        assert_eq!(hex::encode(out), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");

        // Random, and the functions a signing server does not need.
        let mut rnd = [0u8; 16];
        assert_eq!(C_GenerateRandom(h, rnd.as_mut_ptr(), 16), CKR_OK);
        assert_ne!(rnd, [0u8; 16]);
        assert_eq!(C_GenerateRandom(h, null_mut(), 16), CKR_ARGUMENTS_BAD);
        assert_eq!(C_EncryptInit(h, &mut ecdsa, sk), CKR_FUNCTION_NOT_SUPPORTED);
        assert_eq!(C_WrapKey(h, &mut ecdsa, sk, sk, null_mut(), null_mut()), CKR_FUNCTION_NOT_SUPPORTED);
        assert_eq!(C_CreateObject(h, null_mut(), 0, null_mut()), CKR_FUNCTION_NOT_SUPPORTED);

        // C_InitToken with sessions open is refused; after closing, a wrong SO PIN is refused.
        assert_eq!(
            C_InitToken(slot, so.as_ptr() as *mut _, so.len() as CK_ULONG, label.as_mut_ptr()),
            CKR_SESSION_EXISTS
        );
        assert_eq!(C_DestroyObject(h, sk), CKR_OK);
        assert_eq!(C_DestroyObject(h, sk), CKR_OBJECT_HANDLE_INVALID);
        assert_eq!(C_CloseSession(h), CKR_OK);
        assert_eq!(C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(C_InitToken(slot, b"wrong-so".as_ptr() as *mut _, 8, label.as_mut_ptr()), CKR_PIN_INCORRECT);
        assert_eq!(C_Finalize(std::ptr::dangling_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
    }
}
