//! Steward's layered policy model on Cedar.
//!
//! One schema for every channel ([`schema`]); a compiler that turns a repository's
//! `.cedar` files into per-plane policy sets and refuses what breaks the layering rules
//! ([`compile`]); an [`Engine`] that answers access requests from those sets, the registry
//! and the active exceptions, failing closed on every error; and the analyses built on it:
//! effective permissions against intended entitlements, policy unit tests and the replay
//! of recorded decisions against a candidate policy ([`analysis`]).
//!
//! No I/O: the server and the CLI feed it what the store or the repository holds.

pub mod analysis;
mod cache;
mod compile;
mod diff;
mod engine;
mod entities;
mod error;
pub mod schema;
mod source;

pub use compile::{Compiled, Effect, Layer, PolicyMeta, check, compile};
pub use diff::bundle_diff;
pub use engine::{AccessRequest, Decision, Engine, EngineInput, OwnedAddress, Target};
pub use error::PolicyError;
pub use steward_model::HttpPath;
