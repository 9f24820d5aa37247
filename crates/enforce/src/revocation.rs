//! The revocation state an enforcement point applies: every revocation up to its
//! epoch, indexed so that checking a token costs a few hash lookups.
//!
//! The set is the [`RevocationCheck`] of every validator built from a bundle at this point,
//! so it is consulted on every validation — cached signature or not — and no cached allow
//! outlives a revocation the point has applied. Revocations apply strictly in epoch
//! order; a gap is refused, so an acknowledged epoch means every revocation up to it.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use steward_model::{Revocation, RevocationKind, TokenFacts};
use steward_token::{Claims, RevocationCheck};

/// A revocation arrived out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revocation epoch {got} arrived after epoch {applied}; the epochs in between are missing")]
pub struct EpochGap {
    pub applied: i64,
    pub got: i64,
}

#[derive(Default)]
struct Index {
    epoch: i64,
    /// Every revocation still in force, in epoch order (what the indexes are built from).
    entries: Vec<Revocation>,
    tokens: HashMap<String, usize>,
    keys: HashMap<String, usize>,
    issuers: HashMap<String, usize>,
    /// SPIFFE ID → the newest revocation of it.
    identities: HashMap<String, usize>,
    /// Plane → the newest plane revocation covering it.
    planes: HashMap<String, usize>,
}

impl Index {
    fn insert(&mut self, r: Revocation) {
        let at = self.entries.len();
        match r.kind {
            RevocationKind::Token => {
                self.tokens.insert(r.target.clone(), at);
            }
            RevocationKind::Key => {
                self.keys.insert(r.target.clone(), at);
            }
            RevocationKind::Issuer => {
                self.issuers.insert(r.target.clone(), at);
            }
            RevocationKind::Identity => {
                self.identities.insert(r.target.clone(), at);
            }
            RevocationKind::Plane => {
                for p in &r.planes {
                    self.planes.insert(p.clone(), at);
                }
            }
        }
        self.epoch = self.epoch.max(r.epoch);
        self.entries.push(r);
    }

    fn rebuild(epoch: i64, entries: impl IntoIterator<Item = Revocation>) -> Self {
        let mut index = Index::default();
        for r in entries {
            index.insert(r);
        }
        index.epoch = index.epoch.max(epoch);
        index
    }

    fn get(&self, at: Option<&usize>) -> Option<&Revocation> {
        at.and_then(|i| self.entries.get(*i))
    }

    fn covering(&self, kid: &str, claims: &Claims) -> Option<&Revocation> {
        let facts = TokenFacts {
            jti: &claims.jti,
            kid,
            sub: &claims.sub,
            iat: claims.iat,
            plane: claims.plane.as_deref(),
            federated_by: claims.federated_by.as_deref(),
        };
        let actors = || claims.actors();
        let candidates = [
            self.get(self.tokens.get(&claims.jti)),
            self.get(self.keys.get(kid)),
            claims
                .federated_by
                .as_ref()
                .and_then(|i| self.get(self.issuers.get(i))),
            self.get(self.identities.get(&claims.sub)),
            claims
                .plane
                .as_ref()
                .and_then(|p| self.get(self.planes.get(p))),
        ];
        candidates
            .into_iter()
            .flatten()
            .chain(
                actors()
                    .filter_map(|a| self.get(self.identities.get(a)))
                    .collect::<Vec<_>>(),
            )
            .find(|r| r.covers(&facts, actors()))
    }
}

/// The revocations this point has applied, and whether its feed is current.
pub struct RevocationSet {
    index: RwLock<Index>,
    /// Whether anything is revoked at all: the common case costs one atomic load.
    any: AtomicBool,
    /// Set once a feed keeps this set current; from then on a feed silent for longer than
    /// the staleness limit makes the point refuse everything.
    fed: AtomicBool,
    confirmed: RwLock<Option<Instant>>,
    epoch: AtomicI64,
}

impl Default for RevocationSet {
    fn default() -> Self {
        Self {
            index: RwLock::new(Index::default()),
            any: AtomicBool::new(false),
            fed: AtomicBool::new(false),
            confirmed: RwLock::new(None),
            epoch: AtomicI64::new(0),
        }
    }
}

impl std::fmt::Debug for RevocationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationSet")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl RevocationSet {
    /// The epoch applied: every revocation up to it is in force here.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Applies the next revocation. One at or below the epoch is a repeat (ignored); one
    /// beyond the next epoch means some were missed.
    pub fn apply(&self, r: Revocation) -> Result<bool, EpochGap> {
        let mut index = self.index.write();
        if r.epoch <= index.epoch {
            return Ok(false);
        }
        if r.epoch != index.epoch + 1 {
            return Err(EpochGap {
                applied: index.epoch,
                got: r.epoch,
            });
        }
        index.insert(r);
        self.any.store(true, Ordering::SeqCst);
        self.epoch.store(index.epoch, Ordering::SeqCst);
        Ok(true)
    }

    /// Replaces everything with a snapshot: the revocations in force at `epoch`.
    pub fn replace(&self, epoch: i64, entries: Vec<Revocation>) {
        let mut index = self.index.write();
        *index = Index::rebuild(epoch, entries);
        self.any.store(!index.entries.is_empty(), Ordering::SeqCst);
        self.epoch.store(index.epoch, Ordering::SeqCst);
    }

    /// Forgets revocations whose tokens have all expired by `now` (seconds since the
    /// Unix epoch); the epoch stays.
    pub fn prune(&self, now: i64) {
        let mut index = self.index.write();
        if index
            .entries
            .iter()
            .any(|r| r.until.is_some_and(|u| u <= now))
        {
            let epoch = index.epoch;
            let kept: Vec<Revocation> = index
                .entries
                .drain(..)
                .filter(|r| r.until.is_none_or(|u| u > now))
                .collect();
            *index = Index::rebuild(epoch, kept);
            self.any.store(!index.entries.is_empty(), Ordering::SeqCst);
        }
    }

    /// The revocations in force, in epoch order.
    pub fn entries(&self) -> Vec<Revocation> {
        self.index.read().entries.clone()
    }

    /// Why federation from issuer `id` is refused, if it is revoked.
    pub fn issuer_revoked(&self, id: &str) -> Option<String> {
        let index = self.index.read();
        index.get(index.issuers.get(id)).map(Revocation::describe)
    }

    /// The control plane confirmed the set is current (a heartbeat or a revocation).
    pub fn confirm(&self) {
        self.fed.store(true, Ordering::SeqCst);
        *self.confirmed.write() = Some(Instant::now());
    }

    /// Whether this set may be relied on: always when no feed keeps it (the control plane
    /// itself), otherwise only if the feed confirmed it within `max_staleness`.
    pub fn fresh(&self, max_staleness: Duration) -> Result<(), crate::EnforceError> {
        if !self.fed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let age = self.confirmed.read().map(|c| c.elapsed());
        match age {
            Some(age) if age <= max_staleness => Ok(()),
            Some(age) => Err(crate::EnforceError::StaleRevocations {
                age_secs: age.as_secs(),
                max_secs: max_staleness.as_secs(),
            }),
            None => Err(crate::EnforceError::RevocationsNotConnected),
        }
    }

    /// Marks the set as kept by a feed before its first contact, so a point never decides
    /// on an empty set it was told to keep current.
    pub fn expect_feed(&self) {
        self.fed.store(true, Ordering::SeqCst);
    }
}

impl RevocationCheck for RevocationSet {
    fn revoked(&self, kid: &str, claims: &Claims) -> Option<String> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let index = self.index.read();
        index.covering(kid, claims).map(Revocation::describe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(epoch: i64, kind: RevocationKind, target: &str, until: Option<i64>) -> Revocation {
        Revocation {
            epoch,
            kind,
            target: target.into(),
            revoked_at: 1_000,
            until,
            planes: vec![target.into()],
            reason: "test".into(),
            actor: "admin".into(),
        }
    }

    fn claims(sub: &str, jti: &str, iat: i64) -> Claims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://cp", "sub": sub, "aud": "a", "exp": iat + 300, "iat": iat,
            "nbf": iat, "jti": jti, "plane": "payments",
            "act": {"sub": "spiffe://example.org/agent"}
        }))
        .unwrap()
    }

    #[test]
    fn applies_in_order_and_refuses_gaps() {
        let set = RevocationSet::default();
        assert!(
            set.apply(rev(1, RevocationKind::Token, "j1", None))
                .unwrap()
        );
        assert!(
            !set.apply(rev(1, RevocationKind::Token, "j1", None))
                .unwrap()
        );
        assert_eq!(
            set.apply(rev(3, RevocationKind::Token, "j3", None)),
            Err(EpochGap { applied: 1, got: 3 })
        );
        assert_eq!(set.epoch(), 1);
        let c = claims("spiffe://example.org/a", "j1", 900);
        assert!(set.revoked("k", &c).unwrap().contains("epoch 1"));
        assert!(
            set.revoked("k", &claims("spiffe://example.org/a", "j2", 900))
                .is_none()
        );
    }

    #[test]
    fn identity_actor_plane_key_and_prune() {
        let set = RevocationSet::default();
        set.apply(rev(
            1,
            RevocationKind::Identity,
            "spiffe://example.org/agent",
            Some(5_000),
        ))
        .unwrap();
        // Acting through a revoked identity.
        assert!(
            set.revoked("k", &claims("spiffe://example.org/a", "j", 900))
                .is_some()
        );
        // Issued after the revocation: not covered.
        assert!(
            set.revoked("k", &claims("spiffe://example.org/a", "j", 1_001))
                .is_none()
        );
        set.apply(rev(2, RevocationKind::Key, "old-kid", None))
            .unwrap();
        assert!(
            set.revoked("old-kid", &claims("spiffe://example.org/b", "j", 2_000))
                .is_some()
        );
        set.apply(rev(3, RevocationKind::Plane, "payments", Some(5_000)))
            .unwrap();
        assert!(
            set.revoked("k", &claims("spiffe://example.org/b", "j", 999))
                .is_some()
        );
        set.prune(6_000);
        assert_eq!(set.epoch(), 3);
        assert_eq!(set.entries().len(), 1, "only the key stays");
        assert!(
            set.revoked("k", &claims("spiffe://example.org/a", "j", 900))
                .is_none()
        );
    }

    /// A thread that panics while holding the set's locks must not leave it answering
    /// "not revoked" (std's poisoned locks made every read here skip): the revocation
    /// stays in force, later ones still apply, and a stale feed still refuses.
    #[test]
    fn a_panic_while_holding_the_locks_keeps_revocations_in_force() {
        let set = std::sync::Arc::new(RevocationSet::default());
        set.apply(rev(1, RevocationKind::Token, "j1", None))
            .unwrap();
        set.expect_feed();
        set.confirm();
        for lock in ["index", "confirmed"] {
            let held = set.clone();
            let crashed = std::thread::spawn(move || {
                let _index = (lock == "index").then(|| held.index.write());
                let _confirmed = (lock == "confirmed").then(|| held.confirmed.write());
                panic!("a bug while holding the {lock} lock");
            })
            .join();
            assert!(crashed.is_err());
        }
        let c = claims("spiffe://example.org/a", "j1", 900);
        assert!(
            set.revoked("k", &c).is_some(),
            "still revoked after the panic"
        );
        set.apply(rev(2, RevocationKind::Token, "j2", None))
            .unwrap();
        assert!(
            set.revoked("k", &claims("spiffe://example.org/a", "j2", 900))
                .is_some()
        );
        assert!(set.fresh(Duration::ZERO).is_err());
    }

    #[test]
    fn a_fed_set_goes_stale() {
        let set = RevocationSet::default();
        assert!(set.fresh(Duration::from_secs(1)).is_ok());
        set.expect_feed();
        assert!(set.fresh(Duration::from_secs(1)).is_err());
        set.confirm();
        assert!(set.fresh(Duration::from_secs(1)).is_ok());
        assert!(set.fresh(Duration::ZERO).is_err());
    }
}
