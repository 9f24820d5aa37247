//! Posture: the inventory of non-human identities — owner, plane, credentials
//! outstanding, last use, intended vs effective vs used permissions — and the
//! findings that follow from it, each with its severity, the evidence behind it, the
//! owner to act and its place in the OWASP Non-Human Identities Top 10 (2025).
//!
//! "Used" comes from the evidence log: allowed `access.decision` events (any enforcement
//! point, the decision API, ingested foreign decisions) and issued credentials, in one
//! grouped scan of the window. "Effective" is computed by deciding every capability and
//! action for the identity in its own environment — exactly what enforcement points would
//! get — for at most `max_analysed` identities per report (it costs one decision per
//! capability and action each); the others are counted as not analysed.
//!
//! This crate is the pure core: [`assess`] turns [`Inputs`] (what the control plane read
//! from its store) and the policy engine into a report, and [`compliance::report`] maps
//! [`compliance::Facts`] onto framework controls. No I/O, no async: the server loads the
//! inputs and serves the answers.

mod assess;
pub mod compliance;
mod inputs;

pub use assess::{Analysed, Params, assess, effective_permissions};
pub use inputs::{Inputs, Used};
