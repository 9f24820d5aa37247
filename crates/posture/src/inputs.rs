//! What posture reads, gathered by the caller.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use steward_api::{ClientKeyUse, EnvironmentUse, IdentityRecord};
use steward_model::{PlaneSettings, UsageTotal};

/// Everything posture reads from the store, read once.
pub struct Inputs {
    pub settings: PlaneSettings,
    pub exceptions: BTreeMap<String, steward_model::PolicyException>,
    pub records: Vec<IdentityRecord>,
    /// Removed owners and when.
    pub removed: HashMap<String, String>,
    /// Client secrets' creation times, by identity.
    pub secrets: HashMap<String, String>,
    /// Each identity's last review attestation.
    pub reviewed: HashMap<String, String>,
    pub used: HashMap<String, Used>,
    /// Unexpired tokens, by identity.
    pub active: HashMap<String, i64>,
    /// (principal, capability, grants, last granted) of exceptions granted again and again.
    pub exception_grants: Vec<(String, String, i64, String)>,
    /// Live admin credentials with no expiry (only for reports covering every plane).
    pub non_expiring_credentials: Vec<steward_api::Credential>,
}

/// What the evidence says one identity did in the window.
#[derive(Default)]
pub struct Used {
    pub(crate) permissions: BTreeSet<String>,
    pub(crate) last: Option<String>,
    pub(crate) tokens: i64,
    pub(crate) last_token: Option<String>,
    pub(crate) environments: BTreeMap<String, EnvironmentUse>,
    pub(crate) keys: BTreeMap<String, ClientKeyUse>,
}

impl Used {
    /// Folds one usage aggregate in; `window_start` bounds what counts as used now.
    pub fn add(&mut self, t: &UsageTotal, window_start: &str) {
        if !(t.kind == "access.decision" || t.kind.starts_with("credential.")) {
            return;
        }
        let in_window = t.last.as_str() >= window_start;
        let decision = t.kind == "access.decision";
        let allowed = t.outcome.as_deref() == Some("allow");
        if decision {
            if allowed {
                if in_window && let (Some(c), Some(a)) = (&t.capability, &t.action) {
                    self.permissions.insert(format!("{c}:{a}"));
                }
                newer(&mut self.last, &t.last);
            }
        } else {
            self.tokens += t.count;
            newer(&mut self.last_token, &t.last);
            newer(&mut self.last, &t.last);
            if in_window && let Some(k) = &t.credential {
                let u = self.keys.entry(k.clone()).or_insert_with(|| ClientKeyUse {
                    key: k.clone(),
                    first: t.first.clone(),
                    last: t.last.clone(),
                    ..Default::default()
                });
                u.tokens += t.count;
                u.first = u.first.clone().min(t.first.clone());
                u.last = u.last.clone().max(t.last.clone());
            }
        }
        if in_window && let Some(env) = &t.environment {
            let u = self.environments.entry(env.clone()).or_default();
            u.environment = env.clone();
            match (decision, allowed) {
                (true, true) => u.allowed += t.count,
                (true, false) => u.denied += t.count,
                (false, _) => u.tokens += t.count,
            }
            if u.last < t.last {
                u.last = t.last.clone();
            }
        }
    }
}

fn newer(a: &mut Option<String>, b: &str) {
    // RFC 3339 UTC times of one writer compare as text.
    if a.as_deref().is_none_or(|x| x < b) {
        *a = Some(b.to_owned());
    }
}
