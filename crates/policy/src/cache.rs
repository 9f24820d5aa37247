//! A short-lived cache of decisions, so the same request repeated within one second (a
//! workload calling the same API in a loop, a gateway in front of a busy service) is
//! evaluated once.
//!
//! The cache is exact, not approximate: an [`Engine`](crate::Engine) is immutable, Cedar
//! sees the request time to the second, and the key is an injective encoding of everything
//! else a decision reads (principal, target, action, caller context). Decisions that an
//! exception could touch are never cached, since an exception's expiry is checked to the
//! sub-second. Each engine owns its cache, so a new policy, registry or lifecycle change
//! (which builds a new engine) starts empty.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::engine::{AccessRequest, Decision};

/// Shards, so concurrent deciders rarely wait on one another.
const SHARDS: usize = 8;
/// Entries per shard; a full shard starts over, so memory stays bounded under a flood of
/// distinct requests and the requests that keep coming back are soon cached again.
const PER_SHARD: usize = 1_024;

#[derive(Default)]
struct Shard {
    second: i64,
    entries: HashMap<String, Decision>,
}

/// Decisions of the current second, keyed by their request.
pub(crate) struct DecisionCache {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for DecisionCache {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// The cache key of a request: JSON of its parts (injective: strings are quoted and
/// escaped), or `None` when it cannot be encoded.
pub(crate) fn key(req: &AccessRequest) -> Option<String> {
    serde_json::to_string(&(&req.principal, &req.target, &req.action, &req.context)).ok()
}

fn shard_of(key: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    (hash as usize) % SHARDS
}

impl DecisionCache {
    /// The decision already made for `key` in `second`, if any.
    pub(crate) fn get(&self, key: &str, second: i64) -> Option<Decision> {
        let shard = self.shards.get(shard_of(key))?.lock();
        if shard.second != second {
            return None;
        }
        shard.entries.get(key).cloned()
    }

    /// Keeps a decision made for a request of `second`. Requests of an earlier second than
    /// the shard's are not kept; a later one, or a full shard, starts the shard afresh.
    pub(crate) fn put(&self, key: String, second: i64, decision: &Decision) {
        let Some(mut shard) = self.shards.get(shard_of(&key)).map(Mutex::lock) else {
            return;
        };
        if second > shard.second || (second == shard.second && shard.entries.len() >= PER_SHARD) {
            shard.second = second;
            shard.entries.clear();
        }
        if second == shard.second {
            shard.entries.insert(key, decision.clone());
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }
}
