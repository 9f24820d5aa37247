//! Verification: walk the records in order, recompute every link, compare with signed
//! checkpoints, and name the first thing that is wrong.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::chain::{GENESIS_HASH, link};
use crate::{Checkpoint, CheckpointVerifier, Prune, Record};

/// One thing wrong with the log, in terms an auditor can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's content no longer matches its hash.
    Altered { seq: i64 },
    /// Records are missing: `after` is followed by `next`.
    Removed { after: i64, next: i64 },
    /// A record was put between two that were linked to each other.
    Inserted { seq: i64 },
    /// The record does not link to its predecessor for another reason (reordering,
    /// renumbering).
    BrokenLink { seq: i64 },
    /// A signed checkpoint disagrees with the chain at its size: history before it was
    /// rewritten (even if every hash was recomputed).
    CheckpointMismatch { tree_size: i64 },
    /// A checkpoint names a size the log does not reach: records at the end were removed.
    Truncated { tree_size: i64, log_size: i64 },
    /// A checkpoint's signature is not valid for any known key.
    BadSignature { tree_size: i64 },
    /// The log claims its first events were pruned by retention, but the prune record
    /// carries no valid signature by a checkpoint key: the history was deleted, not pruned.
    UnvouchedPrune { pruned_through: i64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { seq } => write!(
                f,
                "event {seq} was altered: its content does not match its hash"
            ),
            Self::Removed { after, next } => write!(
                f,
                "events {}..{} were removed: event {next} follows event {after}",
                after + 1,
                next - 1
            ),
            Self::Inserted { seq } => write!(
                f,
                "event {seq} was inserted: the event after it links to the event before it"
            ),
            Self::BrokenLink { seq } => write!(
                f,
                "event {seq} does not link to its predecessor (reordered or renumbered)"
            ),
            Self::CheckpointMismatch { tree_size } => write!(
                f,
                "the signed checkpoint at size {tree_size} does not match the chain: history up to it was rewritten"
            ),
            Self::Truncated {
                tree_size,
                log_size,
            } => write!(
                f,
                "the log ends at {log_size} but a signed checkpoint covers {tree_size} events: events at the end were removed"
            ),
            Self::BadSignature { tree_size } => write!(
                f,
                "the checkpoint at size {tree_size} has no valid signature"
            ),
            Self::UnvouchedPrune { pruned_through } => write!(
                f,
                "events 1..{pruned_through} are recorded as pruned, but the prune record is not signed by a checkpoint key: they were deleted, not pruned by retention"
            ),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub events: i64,
    pub checkpoints: usize,
    pub head_hash: String,
    /// Problems in log order; empty means the log is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Incremental verifier: feed records in `seq` order (in as many batches as you like),
/// then call [`Verifier::finish`].
pub struct Verifier {
    /// The head hash each valid checkpoint pins, by size: several when checkpoints from
    /// different copies (the database's, one kept elsewhere) are checked together.
    checkpoints: BTreeMap<i64, Vec<String>>,
    signatures: CheckpointVerifier,
    report: VerifyReport,
    /// Hash and seq of the last record seen, and the hash of the one before it.
    last: Option<(i64, String)>,
    before_last: String,
    /// Most problems kept; a wholesale rewrite would otherwise list every record.
    limit: usize,
}

const MAX_PROBLEMS: usize = 100;

impl Verifier {
    pub fn new(checkpoints: Vec<Checkpoint>, signatures: CheckpointVerifier) -> Self {
        let mut report = VerifyReport {
            checkpoints: checkpoints.len(),
            head_hash: GENESIS_HASH.to_owned(),
            ..Default::default()
        };
        let mut map: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for cp in checkpoints {
            if !signatures.verify(&cp) {
                report.problems.push(Problem::BadSignature {
                    tree_size: cp.tree_size,
                });
                continue;
            }
            let pinned = map.entry(cp.tree_size).or_default();
            if !pinned.contains(&cp.head_hash) {
                pinned.push(cp.head_hash);
            }
        }
        Self {
            checkpoints: map,
            signatures,
            report,
            last: None,
            before_last: GENESIS_HASH.to_owned(),
            limit: MAX_PROBLEMS,
        }
    }

    /// Starts the chain after a retention prune: events `1..=pruned_through` are gone on
    /// purpose, and the next record must link to `head_hash`. The prune must be signed by
    /// a checkpoint key, or the start is reported: anyone who can write the database can
    /// add a prune row, not sign one.
    pub fn starting_after(mut self, prune: &Prune) -> Self {
        if !self.signatures.verify_prune(prune) {
            self.problem(Problem::UnvouchedPrune {
                pruned_through: prune.pruned_through,
            });
        }
        self.last = Some((prune.pruned_through, prune.head_hash.clone()));
        self
    }

    fn problem(&mut self, p: Problem) {
        if self.report.problems.len() < self.limit {
            self.report.problems.push(p);
        }
    }

    /// Checks one record against the chain so far.
    pub fn push(&mut self, r: &Record) {
        let (prev_seq, prev_hash) = self.last.clone().unwrap_or((0, GENESIS_HASH.to_owned()));
        if link(&r.prev_hash, &r.body) != r.hash {
            self.problem(Problem::Altered { seq: r.seq });
        }
        if r.prev_hash != prev_hash {
            if r.seq > prev_seq + 1 {
                self.problem(Problem::Removed {
                    after: prev_seq,
                    next: r.seq,
                });
            } else if r.prev_hash == self.before_last && prev_seq > 0 {
                self.problem(Problem::Inserted { seq: prev_seq });
            } else if !self
                .report
                .problems
                .contains(&Problem::Altered { seq: prev_seq })
            {
                self.problem(Problem::BrokenLink { seq: r.seq });
            }
        } else if r.seq != prev_seq + 1 {
            self.problem(Problem::BrokenLink { seq: r.seq });
        }
        // Checkpoints pin the hash at their size, whatever the records claim.
        if self
            .checkpoints
            .get(&r.seq)
            .is_some_and(|pinned| pinned.iter().any(|h| *h != r.hash))
        {
            self.problem(Problem::CheckpointMismatch { tree_size: r.seq });
        }
        self.before_last = prev_hash;
        self.last = Some((r.seq, r.hash.clone()));
        self.report.events += 1;
    }

    pub fn finish(mut self) -> VerifyReport {
        let (log_size, head) = self.last.clone().unwrap_or((0, GENESIS_HASH.to_owned()));
        let beyond: Vec<i64> = self
            .checkpoints
            .keys()
            .copied()
            .filter(|t| *t > log_size)
            .collect();
        if let Some(tree_size) = beyond.last() {
            self.problem(Problem::Truncated {
                tree_size: *tree_size,
                log_size,
            });
        }
        self.report.head_hash = head;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChainHead, CheckpointSigner};

    fn log(n: i64) -> Vec<Record> {
        let mut head = ChainHead::default();
        (1..=n)
            .map(|i| head.append(format!("{{\"event\":{i}}}")))
            .collect()
    }

    fn verify(records: &[Record], cps: Vec<Checkpoint>, signer: &CheckpointSigner) -> VerifyReport {
        let mut v = Verifier::new(cps, CheckpointVerifier::new([signer.public_key().as_str()]));
        for r in records {
            v.push(r);
        }
        v.finish()
    }

    #[test]
    fn intact_log_verifies() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let records = log(100);
        let cps = vec![
            signer.sign(50, &records[49].hash, "t"),
            signer.sign(100, &records[99].hash, "t"),
        ];
        let report = verify(&records, cps, &signer);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.events, 100);
        assert_eq!(report.head_hash, records[99].hash);
    }

    #[test]
    fn names_an_altered_event() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let mut records = log(100);
        records[56].body = "{\"event\":\"forged\"}".into();
        let report = verify(&records, vec![], &signer);
        assert_eq!(report.problems, vec![Problem::Altered { seq: 57 }]);
    }

    #[test]
    fn names_removed_events() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let mut records = log(100);
        records.drain(56..59); // seq 57, 58, 59
        let report = verify(&records, vec![], &signer);
        assert_eq!(
            report.problems,
            vec![Problem::Removed {
                after: 56,
                next: 60
            }]
        );
        assert_eq!(
            report.problems[0].to_string(),
            "events 57..59 were removed: event 60 follows event 56"
        );
    }

    #[test]
    fn names_an_inserted_event() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let records = log(100);
        // The attacker writes a well-formed record after 56 and renumbers the rest.
        let forged_body = "{\"event\":\"planted\"}".to_owned();
        let forged = Record {
            seq: 57,
            prev_hash: records[55].hash.clone(),
            hash: link(&records[55].hash, &forged_body),
            body: forged_body,
        };
        let mut tampered: Vec<Record> = records[..56].to_vec();
        tampered.push(forged);
        tampered.extend(records[56..].iter().cloned().map(|mut r| {
            r.seq += 1;
            r
        }));
        let report = verify(&tampered, vec![], &signer);
        assert_eq!(report.problems, vec![Problem::Inserted { seq: 57 }]);
    }

    #[test]
    fn a_signed_prune_starts_the_chain() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let records = log(100);
        let cps = vec![signer.sign(40, &records[39].hash, "t")];
        let verifier = |cps: Vec<Checkpoint>| {
            Verifier::new(cps, CheckpointVerifier::new([signer.public_key().as_str()]))
        };
        let prune = signer.sign_prune(40, &records[39].hash, "cutoff", "t");
        let mut v = verifier(cps.clone()).starting_after(&prune);
        records[40..].iter().for_each(|r| v.push(r));
        let report = v.finish();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.events, 60);
        // A prune nobody signed is reported even where an old checkpoint sits at exactly
        // its size: that checkpoint says the log once ended there, not that it was pruned.
        let mut forged = prune.clone();
        forged.signature = cps[0].signature.clone();
        let mut v = verifier(cps.clone()).starting_after(&forged);
        records[40..].iter().for_each(|r| v.push(r));
        assert_eq!(
            v.finish().problems,
            vec![Problem::UnvouchedPrune { pruned_through: 40 }]
        );
        // One signed by another key too.
        let (other, _) = CheckpointSigner::generate().unwrap();
        let mut v = verifier(cps.clone()).starting_after(&other.sign_prune(
            40,
            &records[39].hash,
            "c",
            "t",
        ));
        records[40..].iter().for_each(|r| v.push(r));
        assert_eq!(
            v.finish().problems,
            vec![Problem::UnvouchedPrune { pruned_through: 40 }]
        );
        // Deleting more than was pruned is still a removal.
        let mut v = verifier(cps).starting_after(&prune);
        records[45..].iter().for_each(|r| v.push(r));
        assert_eq!(
            v.finish().problems,
            vec![Problem::Removed {
                after: 40,
                next: 46
            }]
        );
    }

    #[test]
    fn checkpoints_catch_a_recomputed_chain_and_truncation() {
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let records = log(100);
        let cps = vec![signer.sign(80, &records[79].hash, "t")];
        // Rewrite event 10 and recompute every hash after it: links are consistent again.
        let mut head = ChainHead::default();
        let rewritten: Vec<Record> = records
            .iter()
            .map(|r| {
                head.append(if r.seq == 10 {
                    "{\"event\":\"rewritten\"}".into()
                } else {
                    r.body.clone()
                })
            })
            .collect();
        let report = verify(&rewritten, cps.clone(), &signer);
        assert_eq!(
            report.problems,
            vec![Problem::CheckpointMismatch { tree_size: 80 }]
        );
        let report = verify(&records[..70], cps.clone(), &signer);
        assert_eq!(
            report.problems,
            vec![Problem::Truncated {
                tree_size: 80,
                log_size: 70
            }]
        );
        let mut bad = cps;
        bad[0].tree_size = 81;
        let report = verify(&records, bad, &signer);
        assert_eq!(
            report.problems,
            vec![Problem::BadSignature { tree_size: 81 }]
        );
    }
}
