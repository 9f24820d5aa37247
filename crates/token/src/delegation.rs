//! One hop of delegation (RFC 8693 token exchange) as a pure rule: what a delegated
//! token may say, given the token it delegates. The token service adds the policy check
//! (may this client delegate each capability?) and signs the result.
//!
//! The rule: the subject, its environment, plane and narrowing claims travel unchanged;
//! the scope is the asked one only if the subject holds all of it; the lifetime never
//! outlasts the subject's; the chain grows by exactly one hop, within a bound.

use crate::{Actor, Claims};

/// Why a hop cannot be made. Each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelegationError {
    #[error("the delegation chain would have {depth} hops; at most {max} are allowed")]
    TooDeep { depth: usize, max: usize },
    #[error("`{0}` is not in the subject token's scope: an exchange never widens it")]
    Widens(String),
    #[error("name the `scope` to delegate: a delegated token is limited to named capabilities")]
    NoScope,
    #[error("the scope is empty")]
    EmptyScope,
}

/// Turns `claims` (prepared for the acting client `client_id`) into the delegated
/// token's claims for `subject`, narrowed to `asked` (space-separated; `None` keeps the
/// subject's scope).
pub fn delegate_claims(
    mut claims: Claims,
    subject: &Claims,
    client_id: &str,
    asked: Option<&str>,
    max_depth: usize,
) -> Result<Claims, DelegationError> {
    let act = Actor {
        sub: client_id.to_owned(),
        act: subject.act.clone().map(Box::new),
    };
    let depth = act.depth();
    if depth > max_depth {
        return Err(DelegationError::TooDeep {
            depth,
            max: max_depth,
        });
    }
    // Empty items (a doubled or trailing space) name nothing, on either side.
    let held: Option<Vec<&str>> = subject
        .scope
        .as_deref()
        .map(|s| s.split(' ').filter(|i| !i.is_empty()).collect());
    let asked: Option<Vec<&str>> = asked.map(|s| s.split(' ').filter(|i| !i.is_empty()).collect());
    let scope: Vec<&str> = match (asked, held) {
        (Some(asked), Some(held)) => {
            if let Some(wider) = asked.iter().find(|a| !held.contains(a)) {
                return Err(DelegationError::Widens((*wider).to_owned()));
            }
            asked
        }
        (Some(asked), None) => asked,
        (None, Some(held)) => held,
        (None, None) => return Err(DelegationError::NoScope),
    };
    if scope.is_empty() {
        return Err(DelegationError::EmptyScope);
    }
    claims.sub = subject.sub.clone();
    claims.environment = subject.environment.clone();
    claims.plane = subject.plane.clone();
    claims.scope = Some(scope.join(" "));
    claims.exp = claims.exp.min(subject.exp);
    // Narrowing claims travel with the subject: a hop never sheds them.
    claims.workflow = subject.workflow.clone();
    claims.model_tier = subject.model_tier.clone();
    claims.task_scope = subject.task_scope.clone();
    claims.federated_by = subject.federated_by.clone();
    claims.act = Some(act);
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(sub: &str, exp: i64, scope: Option<String>, chain: &[String]) -> Claims {
        let act = chain
            .iter()
            .rev()
            .fold(None, |inner: Option<serde_json::Value>, s| {
                Some(match inner {
                    Some(i) => serde_json::json!({"sub": s, "act": i}),
                    None => serde_json::json!({"sub": s}),
                })
            });
        serde_json::from_value(serde_json::json!({
            "iss": "https://steward", "sub": sub, "aud": "spiffe://acme.example/api",
            "exp": exp, "iat": 0, "nbf": 0, "jti": "j", "environment": "prod",
            "plane": "payments", "scope": scope, "act": act, "workflow": "wf",
            "model_tier": "small", "task_scope": "ticket-1",
        }))
        .unwrap()
    }

    const POOL: [&str; 5] = ["a.read", "a.write", "b.read", "c.invoke", "d.admin"];

    proptest! {
        /// An exchange never widens: what it grants is within the subject's scope and
        /// lifetime, keeps the subject and its narrowing claims, and adds exactly one hop.
        #[test]
        fn an_exchange_never_widens(
            held in proptest::option::of(proptest::sample::subsequence(POOL.to_vec(), 0..=5)),
            asked in proptest::option::of(proptest::collection::vec(proptest::sample::select(POOL.to_vec()), 0..4)),
            subject_exp in 0i64..10_000,
            client_exp in 0i64..10_000,
            chain in proptest::collection::vec("[a-z]{1,5}", 0..4),
            max in 1usize..5,
        ) {
            let held_text = held.as_ref().map(|h| h.join(" "));
            let subject = claims("spiffe://acme.example/subject", subject_exp, held_text, &chain);
            let asked_text = asked.as_ref().map(|a| a.join(" "));
            let fresh = claims("spiffe://acme.example/client", client_exp, None, &[]);
            match delegate_claims(fresh, &subject, "spiffe://acme.example/client", asked_text.as_deref(), max) {
                Ok(c) => {
                    prop_assert_eq!(&c.sub, &subject.sub);
                    prop_assert!(c.exp <= subject.exp && c.exp <= client_exp);
                    let granted: Vec<&str> = c.scope.as_deref().unwrap_or("").split(' ').collect();
                    prop_assert!(!granted.is_empty() && granted.iter().all(|g| !g.is_empty()));
                    if let Some(h) = &held {
                        prop_assert!(granted.iter().all(|g| h.contains(g)), "{:?} ⊄ {:?}", granted, h);
                    }
                    let depth = c.act.as_ref().map_or(0, Actor::depth);
                    prop_assert_eq!(depth, chain.len() + 1);
                    prop_assert!(depth <= max);
                    prop_assert_eq!(c.act.as_ref().map(|a| a.sub.as_str()), Some("spiffe://acme.example/client"));
                    prop_assert_eq!((&c.environment, &c.plane), (&subject.environment, &subject.plane));
                    prop_assert_eq!((&c.workflow, &c.model_tier, &c.task_scope), (&subject.workflow, &subject.model_tier, &subject.task_scope));
                }
                Err(DelegationError::TooDeep { depth, .. }) => prop_assert!(depth > max),
                Err(DelegationError::Widens(w)) => prop_assert!(held.as_ref().is_some_and(|h| !h.contains(&w.as_str()))),
                Err(DelegationError::NoScope) => prop_assert!(held.is_none() && asked.is_none()),
                Err(DelegationError::EmptyScope) => {}
            }
        }
    }
}
