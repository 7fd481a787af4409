//! GB/T 38540-2020 (v4) and GM/T 0031-2014 (v1) electronic seals (`SESeal`) and seal signatures
//! (`SES_Signature`): tolerant parsing that keeps the stored bytes, the standard's verification
//! procedures (GB/T 38540 §6.3 for a seal, §7.3 for a signature) step by step, and strict DER output.
//!
//! Parsing walks the TLVs by hand rather than through `der`'s derive: real producers emit things a
//! strict DER decoder refuses (explicitly encoded DEFAULT values, GeneralizedTime without `Z`,
//! `certListType = 3`, raw r‖s inside the BIT STRING, signature BIT STRINGs with trailing zero bits
//! stripped; see ../shared/STANDARDS.md §1.6). Each tolerated deviation becomes a warning. Every
//! signature is checked over the bytes as stored, never over a re-encoding. Output (`build`) is
//! strict DER through `der`.
//!
//! Version detection follows STANDARDS.md §1.3: an `SESeal` with 2 elements is v1; with 4 it is v4
//! when the header version is 4. An `SES_Signature` with 2 elements is v1, with 4 or 5 it is v4.
//! Header version 5 (ofdrw's "v5") is refused as non-standard.

use crate::crypto::{self, PublicKey};
use crate::formats::x509::Cert;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod build;
mod model;
mod parse;
mod verify;

pub use build::*;
pub use model::*;
pub(crate) use parse::*;
pub use verify::*;

/// SM2 signature with SM3.
pub use crate::formats::oid::SM2_SM3 as OID_SM2_SM3;

/// A structure could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SesError(pub String);

pub(super) fn bad(m: impl Into<String>) -> SesError {
    SesError(m.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_tolerate_what_producers_write() {
        let mut w = Vec::new();
        let t = |tag: u8, s: &str, w: &mut Vec<String>| {
            let mut v = vec![tag, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            let (x, _) = tlv(&v).unwrap();
            read_time(&x, "t", w).map(|t| t.at.duration_since(UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(t(0x18, "20200422020900Z", &mut w), Ok(1_587_521_340));
        assert!(w.is_empty());
        assert_eq!(t(0x18, "20200422100900", &mut w), Ok(1_587_521_340), "no Z: Beijing time");
        assert_eq!(t(0x18, "200422020900Z", &mut w), Ok(1_587_521_340));
        assert_eq!(t(0x17, "200422020900Z", &mut w), Ok(1_587_521_340));
        assert_eq!(w.len(), 2);
        assert!(t(0x18, "2020", &mut w).is_err() && t(0x18, "20201322020900Z", &mut w).is_err());
    }

    /// The offset in `whole` of the unused-bits byte of the BIT STRING `t`, a part of `whole`.
    fn unused_bits_at(whole: &[u8], t: &Tlv<'_>) -> usize {
        assert_eq!(t.tag, 0x03);
        t.content.as_ptr() as usize - whole.as_ptr() as usize
    }

    #[test]
    fn signature_bit_strings_with_unused_bits_are_reported() {
        let dir = std::env::var("SEALD_SAMPLES")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into());
        let bytes = std::fs::read(format!("{dir}/signatures/ofdrw_SignedValueV4_zero_datahash.dat"))
            .unwrap_or_else(|e| panic!("samples not found at {dir} (set SEALD_SAMPLES): {e}"));
        let report = |b: &[u8]| verify_signature(&SesSignature::parse(b).unwrap(), &VerifyOptions::default());
        let unused = |r: &Report| r.warnings.iter().filter(|w| w.contains("unused bits")).cloned().collect::<Vec<_>>();
        let signer_ok = |r: &Report| r.steps.iter().find(|s| s.step == "signer_signature").and_then(|s| s.ok);
        let before = report(&bytes);
        assert!(unused(&before).is_empty() && signer_ok(&before) == Some(true), "{before:#?}");

        let (outer, _) = tlv(&bytes).unwrap();
        let el = children(&outer).unwrap();
        let signature_at = unused_bits_at(&bytes, &el[3]);
        let seal = children(&children(&el[0]).unwrap()[1]).unwrap();
        let seal_value_at = unused_bits_at(&bytes, &seal[3]);

        // The signer's signature BIT STRING re-encoded with 1 unused bit: its bytes still verify, and
        // the report says what was tolerated.
        let mut b = bytes.clone();
        b[signature_at] = 1;
        let r = report(&b);
        assert_eq!(
            unused(&r),
            vec![
                "signature: the BIT STRING declares 1 unused bits, but holds whole bytes; its bytes are used as stored [bit_string_unused_bits]"
            ]
        );
        assert_eq!(signer_ok(&r), Some(true), "{r:#?}");
        // The seal's signedValue likewise (inside TBS_Sign, so the signer's signature no longer holds).
        let mut b = bytes.clone();
        b[seal_value_at] = 3;
        let r = report(&b);
        assert_eq!(unused(&r).len(), 1, "{r:#?}");
        assert!(unused(&r)[0].starts_with("seal: signedValue: the BIT STRING declares 3 unused bits"), "{r:#?}");
        // And the seal alone, as `sealctl ses verify` reports it.
        let seal_tlv = children(&el[0]).unwrap()[1];
        let start = seal_tlv.raw.as_ptr() as usize - bytes.as_ptr() as usize;
        let alone =
            verify_seal(&SesSeal::parse(&b[start..start + seal_tlv.raw.len()]).unwrap(), &VerifyOptions::default());
        assert!(
            unused(&alone).iter().any(|w| w.starts_with("signedValue: the BIT STRING declares 3 unused bits")),
            "{alone:#?}"
        );
    }

    #[test]
    fn the_parsers_never_panic_on_cut_or_flipped_input() {
        let dir = std::env::var("SEALD_SAMPLES")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples").into());
        let bytes = std::fs::read(format!("{dir}/seals/ofdrw_UserV4_gbt38540.esl"))
            .unwrap_or_else(|e| panic!("samples not found at {dir} (set SEALD_SAMPLES): {e}"));
        for cut in (0..bytes.len()).step_by(97) {
            let _ = SesObject::parse(&bytes[..cut]);
        }
        let mut x = 0x9e37_79b9u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut b = bytes.clone();
            let i = (x as usize) % b.len();
            b[i] ^= (x >> 24) as u8 | 1;
            let _ = SesObject::parse(&b);
        }
    }
}
