//! Governance as code: the directory of YAML and `.cedar` files a team keeps in git.
//!
//! [`parse`] turns the files into a validated [`Desired`] state or a list of
//! [`Diagnostic`]s that each name the file, the line and what is wrong. [`plan`] compares a
//! desired state with the registry's current [`State`] and lists every change; the store
//! applies a plan atomically. Parsing collects every problem it can find rather than
//! stopping at the first, so one run of `steward plan` shows them all.
//!
//! Apart from [`read_dir`], which loads the files, this crate does no I/O.

mod diagnostic;
mod docs;
mod identity_check;
mod load;
mod locate;
mod lower;
mod parse;
mod plan;
mod source;

pub use diagnostic::GovernanceError;
pub use identity_check::{IdentityRegistry, OwnerStanding, identity_problems};
pub use load::load;
pub use parse::{RESERVED_CONTEXT, credential_problems, parse};
pub use plan::{
    Change, FieldChange, MAX_LISTED_CHANGES, Op, Plan, PlanSummary, State, StoredIdentity, plan,
};
pub use source::{MAX_FILE_BYTES, MAX_FILES, SourceFile, read_dir};
/// What [`parse`] produces: plain data kept in `steward-model`, so what only reads a
/// configuration does not link this parser.
pub use steward_model::{
    Desired, DesiredIdentity, Diagnostic, Expectation, ObjectKind, PolicyBundle, PolicyFile,
    PolicyTest,
};
