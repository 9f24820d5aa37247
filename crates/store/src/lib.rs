//! Persistence for Steward.
//!
//! One [`Store`] serves both backends: SQLite (embedded, the default, WAL mode) and
//! PostgreSQL (for several stateless replicas). It talks to either through sqlx's `Any`
//! driver with a single set of portable queries (`$N` placeholders, TEXT/BIGINT columns);
//! only the migrations and transaction start differ per backend. The same test suite
//! (`tests/store_suite.rs`) runs against both.
//!
//! Every multi-row change happens in one transaction: a governance apply is all or
//! nothing, also across `kill -9`.

mod admin;
mod apply;
mod backup;
mod db;
mod egress;
mod error;
mod evidence;
mod keys;
mod policy;
mod registry;
mod reviews;
mod revocations;
mod rows;
mod secrets;
mod usage;

pub use admin::{Actor, CredentialRecord, NewCredential};
pub use apply::Applied;
pub use db::{Backend, Notifications, SQLITE_FILE, Store, redact_url};
pub use egress::EgressSecretRow;
pub use error::StoreError;
pub use evidence::{EVIDENCE_BLOCK, EvidenceFilter, canonical_bodies};
pub use keys::{ClientSecretRow, SigningKeyRow};
pub use registry::{ClientKeyEdit, IdentityFilter};
pub use reviews::NewItem;
pub use revocations::{
    CHANGE_CHANNEL, PointOwner, PointReport, PointRow, REVOCATION_CHANNEL, RevokeRequest,
};
pub use usage::RollUp;
