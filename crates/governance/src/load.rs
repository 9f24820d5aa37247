//! The one load pipeline every path that accepts a repository runs: `steward validate`,
//! the plan and apply routes (and with them the plan's replay).

use steward_model::{Desired, TrustDomain};

use crate::{GovernanceError, SourceFile, parse};

/// Parses a repository and runs the publish checks on its policy, at `now` (exceptions
/// expire): what is accepted here is what `apply` would put in force.
pub fn load(
    files: &[SourceFile],
    trust_domain: &TrustDomain,
    now: time::OffsetDateTime,
) -> Result<Desired, GovernanceError> {
    let desired = parse(files, trust_domain)?;
    steward_policy::check(&desired, now)?;
    Ok(desired)
}
