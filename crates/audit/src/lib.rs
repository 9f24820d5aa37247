//! Steward's evidence log, minus the storage: the one event model every part of Steward
//! writes, the hash chain that makes it tamper-evident, signed checkpoints, and the
//! verifier that names the first event altered, removed or inserted.
//!
//! Storage lives in `steward-store`; this crate does no I/O so the same verifier runs in
//! the server, in `steward audit verify`, and in tests that tamper with records.

mod chain;
mod checkpoint;
mod error;
mod event;
mod ocsf;
mod verify;

pub use chain::{ChainHead, GENESIS_HASH, Record, link};
pub use checkpoint::{
    CHECKPOINTS_FORMAT, Checkpoint, CheckpointKey, CheckpointSigner, CheckpointVerifier,
    CheckpointsExport, Prune,
};
pub use error::AuditError;
pub use event::{Decision, Destination, Event, EventKind, Outcome, SCHEMA};
pub use ocsf::{OCSF_VERSION, to_ocsf};
pub use verify::{Problem, Verifier, VerifyReport};
