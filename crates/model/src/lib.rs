//! Steward's domain types.
//!
//! Everything the control plane reasons about — planes, owners, identities, capabilities,
//! trusted issuers, settings and admin roles — as plain data with validating constructors.
//! This crate does no I/O: it is shared by the governance parser, the store, the server
//! and the CLI, so a value that exists here has already passed its syntactic checks.

mod capability;
mod desired;
mod error;
mod http_path;
mod identity;
mod issuer;
mod lookup;
mod names;
mod plane;
mod policy;
mod revocation;
mod role;
mod settings;
mod spiffe;
pub mod timestamp;
mod usage;

pub use capability::{
    Action, AmqpMapping, Capability, GrpcMapping, HttpMapping, McpKind, McpMapping,
    TransportMapping, escaped_name, mcp_item_problem, mcp_name_problem, mcp_resource_problem,
};
pub use desired::{
    Desired, DesiredIdentity, Diagnostic, Expectation, ObjectKind, PolicyBundle, PolicyFile,
    PolicyTest,
};
pub use error::ModelError;
pub use http_path::{HttpPath, MAX_PATH_BYTES};
pub use identity::{
    Classification, ClientKey, Credentials, Entitlement, Identity, IdentityKind, LifecycleState,
    MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_LABELS, Owner, OwnerKind, PointGrant, PointRole,
    label_problems,
};
pub use issuer::TrustedIssuer;
pub use lookup::{Address, CapabilityIndex, Resolved};
pub use names::{CapabilityId, PlaneId, ROOT_PLANE, validate_environment, validate_slug};
pub use plane::{Plane, PlaneSettings, PlaneTree};
pub use policy::{
    ContextAttribute, ContextSource, ContextType, EntitlementReport, Flip, Permission,
    PolicyException, Workflow,
};
pub use revocation::{Revocation, RevocationKind, RevokedIdentity, TokenFacts};
pub use role::{AdminRole, Role};
pub use settings::{DEFAULT_MAX_EXCEPTION_DAYS, Loosening, Settings};
pub use spiffe::{SpiffeId, TrustDomain};
pub use usage::UsageTotal;
