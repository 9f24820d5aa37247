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
mod locate;
mod parse;
mod plan;
mod source;

pub use diagnostic::{Diagnostic, GovernanceError};
pub use parse::{
    Desired, DesiredIdentity, Expectation, PolicyBundle, PolicyFile, PolicyTest, RESERVED_CONTEXT,
    client_public_key, credential_problems, parse,
};
pub use plan::{
    Change, FieldChange, MAX_LISTED_CHANGES, ObjectKind, Op, Plan, PlanSummary, State,
    StoredIdentity, plan,
};
pub use source::{MAX_FILE_BYTES, MAX_FILES, SourceFile, read_dir};
