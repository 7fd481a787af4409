//! DER structures. `formats` knows nothing of tokens: what it signs goes through a signer given to it,
//! and what it verifies uses `crypto`.

pub mod cms;
pub mod ofd;
pub mod oid;
pub mod p12;
pub mod seal_status;
pub mod ses;
pub mod tsp;
pub mod x509;
