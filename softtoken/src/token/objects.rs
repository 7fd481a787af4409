//! The token's objects: key-pair generation (sealed at rest under the master key), destruction,
//! attributes, and search.

use super::*;

impl Token {
    /// C_GenerateKeyPair for SM2 (profile code) or P-256 (CKM_EC_KEY_PAIR_GEN).
    pub fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        code: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
        let rw = self.session(h)?.rw;
        attrs::check_sizes(public)?;
        attrs::check_sizes(private)?;
        let mech = self.mech(code)?;
        let sm2 = match mech {
            Mech::Sm2KeyGen => true,
            Mech::EcKeyGen => false,
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        let Some((CKU_USER, mk)) = &self.login else {
            return Err(CKR_USER_NOT_LOGGED_IN);
        };
        let mk = mk.clone();
        let find =
            |t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], a| t.iter().rev().find(|(x, _)| *x == a).map(|(_, v)| v.clone());
        let params = find(public, CKA_EC_PARAMS);
        match (sm2, params.as_deref()) {
            (false, None) => return Err(CKR_TEMPLATE_INCOMPLETE),
            (false, Some(p)) if p != P256_OID => return Err(CKR_DOMAIN_PARAMS_INVALID),
            (true, Some(p)) if p != SM2_OID => return Err(CKR_DOMAIN_PARAMS_INVALID),
            _ => {}
        }
        let key_type = if sm2 { self.profile.sm2.as_ref().map(|s| s.key_type).unwrap_or(CKK_EC) } else { CKK_EC };
        for t in [public, private] {
            if let Some(kt) = find(t, CKA_KEY_TYPE) {
                if kt != ul(key_type) {
                    return Err(CKR_TEMPLATE_INCONSISTENT);
                }
            }
            if find(t, CKA_EC_POINT).is_some() || find(t, CKA_VALUE).is_some() {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
        }
        if find(public, CKA_CLASS).is_some_and(|c| c != ul(CKO_PUBLIC_KEY))
            || find(private, CKA_CLASS).is_some_and(|c| c != ul(CKO_PRIVATE_KEY))
        {
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        // This token never lets a private key out.
        if find(private, CKA_SENSITIVE) == Some(b(false)) || find(private, CKA_EXTRACTABLE) == Some(b(true)) {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        let token_obj = |t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]| find(t, CKA_TOKEN) == Some(b(true));
        if (token_obj(public) || token_obj(private)) && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }

        // The key itself.
        let (material, scalar, point) = loop {
            let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
            if !store::random_bytes(scalar.as_mut()) {
                return Err(CKR_DEVICE_ERROR);
            }
            let Some(k) = KeyMaterial::from_scalar(sm2, scalar.as_ref()) else {
                continue;
            };
            let point = match &k {
                KeyMaterial::Sm2(s) => s.verifying_key().to_sec1_bytes().to_vec(),
                KeyMaterial::P256(s) => s.verifying_key().to_encoded_point(false).as_bytes().to_vec(),
            };
            break (k, scalar, point);
        };
        let mut ec_point = vec![0x04, point.len() as u8];
        ec_point.extend_from_slice(&point);
        let keygen_mech = code;
        let mut pub_attrs: Attrs = [
            (CKA_TOKEN, b(false)),
            (CKA_PRIVATE, b(false)),
            (CKA_MODIFIABLE, b(true)),
            (CKA_LABEL, Vec::new()),
            (CKA_ID, Vec::new()),
            (CKA_VERIFY, b(true)),
            (CKA_ENCRYPT, b(false)),
            (CKA_WRAP, b(false)),
            (CKA_VERIFY_RECOVER, b(false)),
            (CKA_DERIVE, b(false)),
        ]
        .into_iter()
        .collect();
        pub_attrs.extend(public.iter().cloned());
        let mut priv_attrs: Attrs = [
            (CKA_TOKEN, b(false)),
            (CKA_PRIVATE, b(true)),
            (CKA_MODIFIABLE, b(true)),
            (CKA_LABEL, Vec::new()),
            (CKA_ID, Vec::new()),
            (CKA_SIGN, b(true)),
            (CKA_DECRYPT, b(false)),
            (CKA_UNWRAP, b(false)),
            (CKA_SIGN_RECOVER, b(false)),
            (CKA_DERIVE, b(false)),
            (CKA_SUBJECT, Vec::new()),
        ]
        .into_iter()
        .collect();
        priv_attrs.extend(private.iter().cloned());
        for (a, class) in [(&mut pub_attrs, CKO_PUBLIC_KEY), (&mut priv_attrs, CKO_PRIVATE_KEY)] {
            let _ = a.insert(CKA_CLASS, ul(class));
            let _ = a.insert(CKA_KEY_TYPE, ul(key_type));
            let _ = a.insert(CKA_LOCAL, b(true));
            let _ = a.insert(CKA_KEY_GEN_MECHANISM, ul(keygen_mech));
            let _ = a.insert(CKA_EC_PARAMS, if sm2 { SM2_OID.to_vec() } else { P256_OID.to_vec() });
        }
        let _ = pub_attrs.insert(CKA_EC_POINT, ec_point);
        for (t, v) in [
            (CKA_SENSITIVE, b(true)),
            (CKA_EXTRACTABLE, b(false)),
            (CKA_ALWAYS_SENSITIVE, b(true)),
            (CKA_NEVER_EXTRACTABLE, b(true)),
            (CKA_ALWAYS_AUTHENTICATE, b(false)),
            (CKA_WRAP_WITH_TRUSTED, b(false)),
        ] {
            let _ = priv_attrs.insert(t, v);
        }

        let mut handles = [0; 2];
        let key = Arc::new(material);
        for (i, attrs) in [pub_attrs, priv_attrs].into_iter().enumerate() {
            let is_private = i == 1;
            let persistent = get_bool(&attrs, CKA_TOKEN) == Some(true);
            let mut name = [0u8; 12];
            if !store::random_bytes(&mut name) {
                return Err(CKR_DEVICE_ERROR);
            }
            let name = hex::encode(name);
            let secret = is_private.then(|| store::seal(&mk, scalar.as_ref(), name.as_bytes()));
            if persistent {
                let file = ObjectFile {
                    attrs: attrs.iter().map(|(t, v)| (*t, hex::encode(v))).collect(),
                    secret: secret.clone(),
                };
                self.store.save_object(&name, &file).map_err(|_| CKR_DEVICE_ERROR)?;
            }
            handles[i] = self.insert(Object {
                attrs,
                secret,
                key: is_private.then(|| key.clone()),
                file: persistent.then_some(name),
                session: (!persistent).then_some(h),
            });
        }
        Ok((handles[0], handles[1]))
    }

    /// C_DestroyObject.
    pub fn destroy(&mut self, h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<(), CK_RV> {
        let rw = self.session(h)?.rw;
        let o = self.object(obj)?;
        if o.file.is_some() && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        if let Some(name) = &o.file {
            self.store.remove_object(name).map_err(|_| CKR_DEVICE_ERROR)?;
        }
        let _ = self.objects.remove(&obj);
        Ok(())
    }

    /// The value of one attribute for C_GetAttributeValue: `Err` with SENSITIVE or TYPE_INVALID.
    pub fn attribute(
        &mut self,
        h: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        t: CK_ATTRIBUTE_TYPE,
    ) -> Result<Result<Vec<u8>, CK_RV>, CK_RV> {
        let _ = self.session(h)?;
        let o = self.object(obj)?;
        if t == CKA_VALUE && o.class() == CKO_PRIVATE_KEY {
            return Ok(Err(CKR_ATTRIBUTE_SENSITIVE));
        }
        Ok(o.attrs.get(&t).cloned().ok_or(CKR_ATTRIBUTE_TYPE_INVALID))
    }

    /// Checks the object handle for C_GetAttributeValue before the per-attribute loop.
    pub fn check_object(&mut self, h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<(), CK_RV> {
        let _ = self.session(h)?;
        self.object(obj).map(|_| ())
    }

    /// C_SetAttributeValue: only CKA_LABEL may change.
    pub fn set_attributes(
        &mut self,
        h: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<(), CK_RV> {
        let rw = self.session(h)?.rw;
        let o = self.object(obj)?;
        if template.iter().any(|(t, _)| *t != CKA_LABEL) {
            return Err(CKR_ATTRIBUTE_READ_ONLY);
        }
        if o.file.is_some() && !rw {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let o = self.objects.get_mut(&obj).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        for (t, v) in template {
            let _ = o.attrs.insert(*t, v.clone());
        }
        if let Some(name) = &o.file {
            let file = ObjectFile {
                attrs: o.attrs.iter().map(|(t, v)| (*t, hex::encode(v))).collect(),
                secret: o.secret.clone(),
            };
            self.store.save_object(name, &file).map_err(|_| CKR_DEVICE_ERROR)?;
        }
        Ok(())
    }

    /// C_FindObjectsInit.
    pub fn find_init(&mut self, h: CK_SESSION_HANDLE, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Result<(), CK_RV> {
        if self.session(h)?.find.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        self.follow_directory();
        let found: Vec<_> = self
            .objects
            .iter()
            .filter(|(_, o)| self.visible(o))
            .filter(|(_, o)| template.iter().all(|(t, v)| o.attrs.get(t) == Some(v)))
            .map(|(h, _)| *h)
            .rev()
            .collect();
        self.session(h)?.find = Some(found);
        Ok(())
    }

    /// C_FindObjects.
    pub fn find_next(&mut self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let pending = self.session(h)?.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let n = max.min(pending.len());
        Ok((0..n).filter_map(|_| pending.pop()).collect())
    }

    /// C_FindObjectsFinal.
    pub fn find_final(&mut self, h: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session(h)?.find.take().map(|_| ()).ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }
}
