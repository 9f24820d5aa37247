//! Steward's HTTP contract, shared by the server that serves it and every client that
//! calls it (the CLI, the gateway, the tests, the bench, the demo).
//!
//! - [`ROUTES`]: every route, who may call it and its body limit. The server's router is
//!   built from it; nothing else spells a path.
//! - The wire types: [`records`] (registry records the store fills), [`admin`] (requests
//!   and answers of the admin API) and [`ErrorBody`] (every error answer).
//! - [`ApiClient`] (feature `client`): one method per route.
//!
//! Enforcement points build it without default features: the route table only.

#[cfg(feature = "admin")]
pub mod admin;
pub mod audit;
pub mod authzen;
#[cfg(feature = "client")]
mod client;
mod enforcement;
mod error;
pub mod posture;
pub mod records;
mod routes;

#[cfg(feature = "admin")]
pub use admin::*;
pub use audit::*;
pub use authzen::*;
#[cfg(feature = "client")]
pub use client::{ApiClient, Call, EventQuery, IdentityQuery, PostureQuery, ReviewItems};
pub use enforcement::{
    AuthzenConfiguration, Introspection, PointIdentity, PointReportAnswer, PointReportRequest,
    ReleasedSecret, ServerMetadata,
};
pub use error::{Error, ErrorBody, OAuthErrorBody};
pub use posture::*;
pub use records::*;
pub use routes::{Access, BodyLimit, Method, ROUTES, Route, RouteId};
