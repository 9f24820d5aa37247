use serde::{Deserialize, Serialize};

/// Guardrail settings a plane declares. Every field is optional: an unset field inherits
/// from the parent plane. A plane may tighten an inherited value, never loosen it;
/// the check lives where the whole plane tree is known (the governance crate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Longest lifetime of an issued token, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_ttl_secs: Option<u64>,
    /// Oldest a key or secret may get before rotation is overdue, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_credential_age_days: Option<u64>,
    /// Longest time between two access reviews of an identity, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_cadence_days: Option<u64>,
    /// Longest an exception may run, from the moment it is published to its expiry, in
    /// days. Unset everywhere: [`DEFAULT_MAX_EXCEPTION_DAYS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exception_days: Option<u64>,
    /// Evidence fields every decision record must carry; a child may only add to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_audit_fields: Option<Vec<String>>,
    /// Environments identities of this plane may be registered in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
}

/// The longest exception lifetime when no plane sets `max_exception_days`.
pub const DEFAULT_MAX_EXCEPTION_DAYS: u64 = 30;

/// A setting a plane tried to loosen, with both values, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosening {
    pub setting: &'static str,
    pub inherited: String,
    pub declared: String,
}

impl Settings {
    /// The settings in force for a child that declares `self` under a parent whose
    /// effective settings are `parent`.
    pub fn inherit(&self, parent: &Settings) -> Settings {
        Settings {
            max_token_ttl_secs: self.max_token_ttl_secs.or(parent.max_token_ttl_secs),
            max_credential_age_days: self
                .max_credential_age_days
                .or(parent.max_credential_age_days),
            review_cadence_days: self.review_cadence_days.or(parent.review_cadence_days),
            max_exception_days: self.max_exception_days.or(parent.max_exception_days),
            required_audit_fields: self
                .required_audit_fields
                .clone()
                .or_else(|| parent.required_audit_fields.clone()),
            environments: self
                .environments
                .clone()
                .or_else(|| parent.environments.clone()),
        }
    }

    /// Every setting in `self` that is looser than the parent's effective value.
    pub fn loosenings(&self, parent: &Settings) -> Vec<Loosening> {
        let mut out = Vec::new();
        let mut upper = |setting, mine: Option<u64>, theirs: Option<u64>| {
            if let (Some(m), Some(t)) = (mine, theirs)
                && m > t
            {
                out.push(Loosening {
                    setting,
                    inherited: t.to_string(),
                    declared: m.to_string(),
                });
            }
        };
        upper(
            "max_token_ttl_secs",
            self.max_token_ttl_secs,
            parent.max_token_ttl_secs,
        );
        upper(
            "max_credential_age_days",
            self.max_credential_age_days,
            parent.max_credential_age_days,
        );
        upper(
            "review_cadence_days",
            self.review_cadence_days,
            parent.review_cadence_days,
        );
        upper(
            "max_exception_days",
            self.max_exception_days,
            parent.max_exception_days,
        );
        if let (Some(mine), Some(theirs)) =
            (&self.required_audit_fields, &parent.required_audit_fields)
        {
            let missing: Vec<_> = theirs
                .iter()
                .filter(|f| !mine.contains(f))
                .cloned()
                .collect();
            if !missing.is_empty() {
                out.push(Loosening {
                    setting: "required_audit_fields",
                    inherited: theirs.join(", "),
                    declared: format!("{} (drops {})", mine.join(", "), missing.join(", ")),
                });
            }
        }
        if let (Some(mine), Some(theirs)) = (&self.environments, &parent.environments) {
            let extra: Vec<_> = mine
                .iter()
                .filter(|e| !theirs.contains(e))
                .cloned()
                .collect();
            if !extra.is_empty() {
                out.push(Loosening {
                    setting: "environments",
                    inherited: theirs.join(", "),
                    declared: format!("{} (adds {})", mine.join(", "), extra.join(", ")),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightening_is_fine_loosening_is_reported() {
        let parent = Settings {
            max_token_ttl_secs: Some(3600),
            required_audit_fields: Some(vec!["trace_id".into()]),
            ..Default::default()
        };
        let tighter = Settings {
            max_token_ttl_secs: Some(600),
            required_audit_fields: Some(vec!["trace_id".into(), "actor".into()]),
            ..Default::default()
        };
        assert!(tighter.loosenings(&parent).is_empty());
        let looser = Settings {
            max_token_ttl_secs: Some(86400),
            required_audit_fields: Some(vec![]),
            ..Default::default()
        };
        let found = looser.loosenings(&parent);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].setting, "max_token_ttl_secs");
        assert_eq!(found[1].setting, "required_audit_fields");
    }

    #[test]
    fn unset_fields_inherit() {
        let parent = Settings {
            max_token_ttl_secs: Some(3600),
            review_cadence_days: Some(90),
            ..Default::default()
        };
        let child = Settings {
            review_cadence_days: Some(30),
            ..Default::default()
        };
        let eff = child.inherit(&parent);
        assert_eq!(eff.max_token_ttl_secs, Some(3600));
        assert_eq!(eff.review_cadence_days, Some(30));
    }
}
