//! Fixtures shared by the integration tests: the built executable, real registries, a token
//! service, a fault proxy.
//!
//! Everything here starts on `127.0.0.1:0` and stops in `Drop`, so a test stops what it starts.

pub mod binary;
pub mod peers;
pub mod proxy;
pub mod registry;
pub mod token_issuer;

pub use registry::{Auth, Deletes, Registry};
