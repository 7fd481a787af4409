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
