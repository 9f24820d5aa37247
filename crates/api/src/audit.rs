//! Answers of the evidence routes.

use serde::{Deserialize, Serialize};
use steward_audit::VerifyReport;

/// `GET /admin/v1/audit/verify`: the chain check, and each problem in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub ok: bool,
    #[serde(flatten)]
    pub report: VerifyReport,
    /// Each problem in words.
    pub explanations: Vec<String>,
}

/// `GET /admin/v1/audit/stats`: the chain's head and what the writer refused or lost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditStats {
    pub head_seq: i64,
    pub head_hash: String,
    pub checkpoints: usize,
    pub ingest_refused: u64,
    pub evidence_lost: u64,
}

/// `POST /admin/v1/audit/ingest` and `POST /enforcement/v1/decisions`: what was chained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestAnswer {
    pub accepted: usize,
    /// Sequence numbers the records were chained at.
    pub seqs: Vec<i64>,
    /// Records chained without a field their plane's `required_audit_fields` asks for
    /// (each is also marked in its `details.missing_audit_fields`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<FlaggedRecord>,
}

/// A record that lacks required audit fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlaggedRecord {
    /// Its index in the request's `records`.
    pub index: usize,
    pub missing: Vec<String>,
}

/// One hour of access decisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HourOfDecisions {
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    pub allowed: i64,
    pub denied: i64,
}
