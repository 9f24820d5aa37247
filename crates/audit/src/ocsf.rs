//! OCSF (Open Cybersecurity Schema Framework, 1.1) rendering of evidence events, for SIEMs
//! that speak it. Each kind maps onto the class that fits:
//!
//! | Steward kind | OCSF class |
//! |---|---|
//! | `access.decision` | API Activity (6003) |
//! | `credential.*` | Authentication (3002) |
//! | `config.applied`, `identity.lifecycle`, `admin.action`, `exception.*`, `review.attested`, `evidence.pruned` | Entity Management (3004) |
//! | `revocation.*` | Account Change (3001) |
//!
//! The Steward event itself travels in `unmapped.steward`, so nothing is lost.

use serde_json::{Value, json};

use crate::{Event, EventKind, Outcome};

/// OCSF schema version this rendering targets.
pub const OCSF_VERSION: &str = "1.1.0";

/// (category_uid, class_uid, class_name) for an event kind.
fn class(kind: EventKind) -> (u32, u32, &'static str) {
    use EventKind::*;
    match kind {
        AccessDecision => (6, 6003, "API Activity"),
        CredentialIssued | CredentialExchanged | CredentialFederated | CredentialRefused => {
            (3, 3002, "Authentication")
        }
        RevocationIssued | RevocationAcknowledged => (3, 3001, "Account Change"),
        ConfigApplied | IdentityLifecycle | AdminAction | ExceptionGranted | ExceptionExpired
        | ReviewAttested | EvidencePruned => (3, 3004, "Entity Management"),
    }
}

/// OCSF activity id within the class (99 = Other where nothing fits).
fn activity(e: &Event) -> u32 {
    let action = e.action.as_deref().unwrap_or_default();
    match e.kind {
        EventKind::AccessDecision => match action {
            "write" | "publish" => 1,
            "read" | "consume" => 2,
            _ => 99,
        },
        EventKind::CredentialIssued
        | EventKind::CredentialExchanged
        | EventKind::CredentialFederated
        | EventKind::CredentialRefused => 1,
        EventKind::ConfigApplied => 3,
        _ if action.ends_with(".create") => 1,
        _ if action.ends_with(".remove")
            || action.ends_with(".revoke")
            || action.ends_with(".decommission") =>
        {
            4
        }
        _ => 3,
    }
}

/// Renders one stored event (with its chain position) as an OCSF event object.
pub fn to_ocsf(seq: i64, hash: &str, e: &Event) -> Value {
    let (category_uid, class_uid, class_name) = class(e.kind);
    let activity_id = activity(e);
    let time_ms =
        time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(0);
    let denied =
        e.decision.outcome == Some(Outcome::Deny) || e.kind == EventKind::CredentialRefused;
    let (status_id, status) = match e.decision.outcome {
        None if e.kind != EventKind::CredentialRefused => (1, "Success"),
        _ if denied => (2, "Failure"),
        _ => (1, "Success"),
    };
    let steward = serde_json::to_value(e).unwrap_or(Value::Null);
    let mut out = json!({
        "category_uid": category_uid,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "time": time_ms,
        "severity_id": if denied { 3 } else { 1 },
        "status_id": status_id,
        "status": status,
        "message": format!("{} {} {}", e.kind, e.principal.as_deref().unwrap_or("-"), e.action.as_deref().unwrap_or("")).trim_end().to_owned(),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": e.id,
            "correlation_uid": e.correlation_id,
            "sequence": seq,
            "product": { "name": "Steward", "vendor_name": "Steward", "feature": { "name": e.source } },
            "log_name": "steward.evidence",
        },
        "actor": {
            "user": { "uid": e.principal, "type": "Service" },
            "authorizations": e.decision.policies.iter().map(|p| json!({ "policy": { "uid": p } })).collect::<Vec<_>>(),
        },
        "unmapped": { "steward": steward, "steward_chain_hash": hash },
    });
    if e.kind == EventKind::AccessDecision
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert(
            "api".into(),
            json!({ "operation": e.action, "service": { "name": e.destination.capability } }),
        );
        obj.insert(
            "http_request".into(),
            json!({ "url": { "path": e.destination.address } }),
        );
        if let Some(ep) = &e.enforcement_point {
            obj.insert("dst_endpoint".into(), json!({ "name": ep }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_become_api_activity_with_failure_on_deny() {
        let mut e = Event::new(EventKind::AccessDecision, "e1", "2026-11-23T10:00:00Z");
        e.principal = Some("spiffe://acme.example/a".into());
        e.action = Some("write".into());
        e.decision.outcome = Some(Outcome::Deny);
        e.decision.policies = vec!["GR-1".into()];
        let o = to_ocsf(7, "abc", &e);
        assert_eq!(o["class_uid"], 6003);
        assert_eq!(o["category_uid"], 6);
        assert_eq!(o["activity_id"], 1);
        assert_eq!(o["type_uid"], 600301);
        assert_eq!(o["status_id"], 2);
        assert_eq!(o["time"], 1_795_428_000_000_i64);
        assert_eq!(o["metadata"]["uid"], "e1");
        assert_eq!(o["actor"]["authorizations"][0]["policy"]["uid"], "GR-1");
        assert_eq!(o["unmapped"]["steward"]["kind"], "access.decision");
        assert_eq!(o["unmapped"]["steward_chain_hash"], "abc");
    }

    #[test]
    fn admin_changes_become_entity_management() {
        let mut e = Event::new(EventKind::IdentityLifecycle, "e2", "2026-11-23T10:00:00Z");
        e.action = Some("identity.decommission".into());
        let o = to_ocsf(1, "h", &e);
        assert_eq!(
            (
                o["class_uid"].as_u64(),
                o["activity_id"].as_u64(),
                o["status_id"].as_u64()
            ),
            (Some(3004), Some(4), Some(1))
        );
        let refused = Event::new(EventKind::CredentialRefused, "e3", "2026-11-23T10:00:00Z");
        let o = to_ocsf(2, "h", &refused);
        assert_eq!(
            (o["class_uid"].as_u64(), o["status_id"].as_u64()),
            (Some(3002), Some(2))
        );
    }
}
