//! Revoke once, verify everywhere.
//!
//! - `POST /admin/v1/revocations` revokes a token, an identity, a trusted issuer, a
//!   signing key or a plane in one store transaction (with its evidence event) and pushes
//!   it at once to every stream this replica serves.
//! - `GET /enforcement/v1/revocations` is the push channel: server-sent events, a snapshot
//!   or the revocations after the point's last epoch, then each new one as it commits,
//!   and a heartbeat every few seconds (the confirmation that keeps points from failing
//!   closed).
//! - `POST /enforcement/v1/points/report` registers a point and records the bundle
//!   version and epoch it applied: its acknowledgement and its heartbeat. Reports are
//!   group-committed (one transaction for a burst) and an epoch never issued is flagged.
//! - `GET /admin/v1/revocations/{epoch}/verification` waits until every live point has
//!   acknowledged; `GET /admin/v1/enforcement/points` lists points and their drift.
//!
//! **Several replicas:** revocations, reports and registry changes all live in the shared
//! database. Each replica's hub catches up from it when woken by its own revocations, by
//! PostgreSQL `NOTIFY` from the others (`steward_revocations`, and `steward_changes` for
//! every admin change), and once a second regardless (a missed notification, a restart);
//! a registry change made elsewhere (seen in the admin change log) reloads this replica's
//! policy engine and keys.

mod hub;
mod replica;
mod reports;
mod revoke;
mod stream;

pub(crate) use hub::{Hub, catch_up};
pub(crate) use replica::spawn;
pub(crate) use reports::{points, report, verification};
pub(crate) use revoke::{list, revocation_until, revoke, revoke_now};
pub(crate) use stream::stream;
