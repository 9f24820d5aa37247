//! Signed checkpoints: every so often the control plane signs (tree size, head hash) with
//! a key of its own. A checkpoint pins the chain: rewriting history before it — even
//! recomputing every hash — no longer matches a signature the attacker cannot make.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuditError;

/// A signed statement "the log had `tree_size` records ending in `head_hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tree_size: i64,
    pub head_hash: String,
    pub time: String,
    /// Which key signed it (the SHA-256 of its public key, shortened).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`], base64.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes a checkpoint signature covers.
    pub fn signed_bytes(tree_size: i64, head_hash: &str, time: &str) -> Vec<u8> {
        format!("steward-checkpoint/1\n{tree_size}\n{head_hash}\n{time}\n").into_bytes()
    }
}

/// A signed statement "retention deleted events `1..=pruned_through`, the last of them
/// hashing to `head_hash`, because they were older than `cutoff`". A checkpoint only says
/// the log once had that size: a prune is a separate statement, so a row someone inserts
/// next to an old checkpoint does not make deleted history look pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prune {
    pub pruned_through: i64,
    pub head_hash: String,
    pub cutoff: String,
    pub time: String,
    pub key_id: String,
    /// Ed25519 signature over [`Prune::signed_bytes`], base64.
    pub signature: String,
}

impl Prune {
    /// The exact bytes a prune signature covers (a different first line than a
    /// checkpoint's, so neither can stand for the other).
    pub fn signed_bytes(pruned_through: i64, head_hash: &str, cutoff: &str, time: &str) -> Vec<u8> {
        format!("steward-prune/1\n{pruned_through}\n{head_hash}\n{cutoff}\n{time}\n").into_bytes()
    }
}

/// A checkpoint key's public half, as exported for offline verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointKey {
    pub key_id: String,
    /// Ed25519, base64.
    pub public_key: String,
    pub created_at: String,
}

/// The format name of [`CheckpointsExport`].
pub const CHECKPOINTS_FORMAT: &str = "steward.checkpoints/1";

/// Everything that vouches for the log, to keep somewhere the database's owner cannot
/// rewrite: `steward audit checkpoints --export`, and the first line of a chain export
/// (`steward audit export --format chain`). With the public key kept apart, a copy of it
/// detects a later rewrite of the whole database, re-signed checkpoints included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsExport {
    /// [`CHECKPOINTS_FORMAT`].
    pub format: String,
    pub keys: Vec<CheckpointKey>,
    pub checkpoints: Vec<Checkpoint>,
    #[serde(default)]
    pub prunes: Vec<Prune>,
}

/// The control plane's checkpoint key.
pub struct CheckpointSigner {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl CheckpointSigner {
    /// A fresh key; returns the signer and its PKCS#8 encoding for storage.
    pub fn generate() -> Result<(Self, Vec<u8>), AuditError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AuditError::Key("cannot generate a key".into()))?;
        let pkcs8 = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// Loads a stored key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, AuditError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| AuditError::Key(format!("stored key is unusable: {e}")))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, base64, for verifiers.
    pub fn public_key(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// Signs a retention prune.
    pub fn sign_prune(
        &self,
        pruned_through: i64,
        head_hash: &str,
        cutoff: &str,
        time: &str,
    ) -> Prune {
        let sig = self.pair.sign(&Prune::signed_bytes(
            pruned_through,
            head_hash,
            cutoff,
            time,
        ));
        Prune {
            pruned_through,
            head_hash: head_hash.to_owned(),
            cutoff: cutoff.to_owned(),
            time: time.to_owned(),
            key_id: self.key_id.clone(),
            signature: B64.encode(sig.as_ref()),
        }
    }

    pub fn sign(&self, tree_size: i64, head_hash: &str, time: &str) -> Checkpoint {
        let sig = self
            .pair
            .sign(&Checkpoint::signed_bytes(tree_size, head_hash, time));
        Checkpoint {
            tree_size,
            head_hash: head_hash.to_owned(),
            time: time.to_owned(),
            key_id: self.key_id.clone(),
            signature: B64.encode(sig.as_ref()),
        }
    }
}

fn key_id(public: &[u8]) -> String {
    hex::encode(Sha256::digest(public))
        .chars()
        .take(16)
        .collect()
}

/// Checks checkpoint signatures against known public keys.
pub struct CheckpointVerifier {
    keys: Vec<(String, Vec<u8>)>,
}

impl CheckpointVerifier {
    /// From base64 public keys; undecodable keys are skipped (their checkpoints then fail).
    pub fn new<'a>(public_keys: impl IntoIterator<Item = &'a str>) -> Self {
        let keys = public_keys
            .into_iter()
            .filter_map(|k| B64.decode(k).ok())
            .map(|raw| (key_id(&raw), raw))
            .collect();
        Self { keys }
    }

    /// Whether `cp` carries a valid signature by one of the keys.
    pub fn verify(&self, cp: &Checkpoint) -> bool {
        self.signed_by_known_key(
            &cp.key_id,
            &cp.signature,
            &Checkpoint::signed_bytes(cp.tree_size, &cp.head_hash, &cp.time),
        )
    }

    /// Whether a retention prune carries a valid signature by one of the keys.
    pub fn verify_prune(&self, p: &Prune) -> bool {
        self.signed_by_known_key(
            &p.key_id,
            &p.signature,
            &Prune::signed_bytes(p.pruned_through, &p.head_hash, &p.cutoff, &p.time),
        )
    }

    fn signed_by_known_key(&self, key_id: &str, signature: &str, message: &[u8]) -> bool {
        let Some((_, raw)) = self.keys.iter().find(|(id, _)| id == key_id) else {
            return false;
        };
        let Ok(sig) = B64.decode(signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, raw)
            .verify(message, &sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_forgeries() {
        let (signer, pkcs8) = CheckpointSigner::generate().unwrap();
        let again = CheckpointSigner::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(signer.key_id(), again.key_id());
        let cp = signer.sign(10, "abc", "2026-11-23T00:00:00Z");
        let verifier = CheckpointVerifier::new([signer.public_key().as_str()]);
        assert!(verifier.verify(&cp));
        let mut forged = cp.clone();
        forged.tree_size = 11;
        assert!(!verifier.verify(&forged));
        let mut forged = cp.clone();
        forged.head_hash = "abd".into();
        assert!(!verifier.verify(&forged));
        let (other, _) = CheckpointSigner::generate().unwrap();
        assert!(!CheckpointVerifier::new([other.public_key().as_str()]).verify(&cp));
        assert!(CheckpointSigner::from_pkcs8(b"junk").is_err());
    }

    #[test]
    fn prunes_are_signed_statements_of_their_own() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let verifier = CheckpointVerifier::new([signer.public_key().as_str()]);
        let p = signer.sign_prune(40, "abc", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
        assert!(verifier.verify_prune(&p));
        let mut forged = p.clone();
        forged.pruned_through = 4_000;
        assert!(!verifier.verify_prune(&forged));
        // A checkpoint's signature does not pass for a prune's, nor the other way round.
        let cp = signer.sign(40, "abc", "2026-02-01T00:00:00Z");
        let mut as_prune = p.clone();
        as_prune.signature = cp.signature.clone();
        assert!(!verifier.verify_prune(&as_prune));
        let mut as_cp = cp;
        as_cp.signature = p.signature;
        assert!(!verifier.verify(&as_cp));
    }
}
