//! One store suite, run against both backends: embedded SQLite always, and the real
//! PostgreSQL server named by `STEWARD_TEST_POSTGRES_URL` (required under `CI=true`).

// Test helpers outside `#[test]` functions fail the test on any error, like the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use steward_governance::{Desired, GovernanceError, SourceFile, parse, read_dir};
use steward_model::{
    Classification, Identity, IdentityKind, LifecycleState, PlaneId, RevocationKind, Role,
    SpiffeId, TrustDomain,
};
use steward_store::{
    Actor, IdentityFilter, NewCredential, PointReport, RevokeRequest, Store, StoreError,
};
use steward_testkit::{example_repo, postgres_url, scaled_repo};

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Store::open_data_dir(dir.path()).await.unwrap(), dir)
}

fn td() -> TrustDomain {
    TrustDomain::new("acme.example").unwrap()
}

fn admin() -> Actor {
    Actor {
        credential_id: "c1".into(),
        name: "alice".into(),
        role: Role::CentralAdmin,
    }
}

fn example() -> Desired {
    parse(&read_dir(&example_repo()).unwrap(), &td()).unwrap()
}

fn api_identity(path: &str, plane: &str, owner: &str) -> Identity {
    Identity {
        spiffe_id: SpiffeId::parse(format!("spiffe://acme.example/{path}")).unwrap(),
        plane: PlaneId::new(plane).unwrap(),
        owner: owner.into(),
        environment: "test".into(),
        kind: IdentityKind::Service,
        classification: Classification::Internal,
        description: String::new(),
        labels: BTreeMap::new(),
        state: LifecycleState::Active,
        intended: Vec::new(),
        credentials: Default::default(),
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test] async fn $name() { let (s, _dir) = super::sqlite().await; super::$name(s).await; })*
        }
        mod on_postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(url) = steward_testkit::postgres_url(stringify!($name)).await {
                    super::$name(steward_store::Store::connect(&url).await.unwrap()).await;
                }
            })*
        }
    };
}

suite!(
    apply_is_recorded_and_idempotent,
    apply_updates_and_decommissions,
    version_conflicts_are_refused,
    plan_errors_change_nothing,
    api_identities_need_owner_and_unique_id,
    lifecycle_is_one_way,
    removed_owner_leaves_orphans,
    filters_and_pagination,
    credentials_and_change_log,
    change_log_is_append_only,
    large_apply_batches,
    concurrent_applies_serialize,
    evidence_chain_survives_concurrent_writers,
    admin_changes_are_evidence,
    evidence_search_filters,
    evidence_search_walks_blocks,
    verify_names_altered_event,
    verify_names_removed_events,
    verify_names_inserted_event,
    checkpoints_pin_history,
    retention_prunes_a_verifiable_prefix,
    a_forged_prune_is_refused,
    checkpoint_key_is_sealed_at_rest,
    an_exception_expiry_is_recorded_once,
    signing_keys_rotate_and_credentials_persist,
    revocations_are_gapless_append_only_and_acted_on,
    point_reports_upsert_and_never_go_back,
    usage_roll_up_folds_evidence_once,
);

async fn apply_is_recorded_and_idempotent(s: Store) {
    let d = example();
    assert_eq!(s.config_version().await.unwrap(), 0);
    let (v, plan) = s.plan(&d).await.unwrap();
    assert_eq!(v, 0);
    assert!(plan.summary.create > 30);
    let applied = s.apply(&d, Some(0), &admin()).await.unwrap();
    assert!(applied.changed);
    assert_eq!(applied.version, 1);
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.config_version, 1);
    assert_eq!(
        counts.identities.values().sum::<i64>(),
        d.identities.len() as i64
    );
    assert_eq!(counts.planes as usize, d.planes.len() + 1);
    // What was stored reads back as what was declared.
    for want in d.identities.values() {
        let got = s.identity(want.spiffe_id.as_str()).await.unwrap().unwrap();
        assert_eq!(got.identity.owner, want.owner);
        assert_eq!(got.identity.labels, want.labels);
        assert_eq!(got.identity.intended, want.intended);
        assert_eq!(
            got.identity.state,
            want.state.unwrap_or(LifecycleState::Active)
        );
        assert!(got.managed);
    }
    assert_eq!(s.capabilities().await.unwrap().len(), d.capabilities.len());
    assert_eq!(s.policies().await.unwrap().len(), d.policies.len());
    // A second apply of the same repository changes nothing and records no version.
    let again = s.apply(&d, None, &admin()).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.version, 1);
    let versions = s.config_versions(10).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].digest, d.digest());
    assert_eq!(versions[0].applied_by, "alice (c1)");
}

async fn apply_updates_and_decommissions(s: Store) {
    let v1 = parse(&scaled_repo(50, 5, 1), &td()).unwrap();
    s.apply(&v1, None, &admin()).await.unwrap();
    // Generation 2 rewrites every description and drops the last 10 identities.
    let mut files = scaled_repo(40, 5, 2);
    files.retain(|f| !f.path.ends_with("nothing"));
    let v2 = parse(&files, &td()).unwrap();
    let applied = s.apply(&v2, Some(1), &admin()).await.unwrap();
    assert_eq!(applied.plan.summary.update, 40);
    assert_eq!(applied.plan.summary.decommission, 10);
    let all = s
        .identities(&IdentityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        50,
        "decommissioned identities stay in the registry"
    );
    let decommissioned = all
        .iter()
        .filter(|r| r.identity.state == LifecycleState::Decommissioned)
        .count();
    assert_eq!(decommissioned, 10);
    assert!(
        all.iter()
            .filter(|r| r.identity.state == LifecycleState::Active)
            .all(|r| r.identity.description == "generation 2")
    );
    // Decommissioning revoked each of them in the apply's transaction: their outstanding
    // tokens die at every point once the epochs are pushed.
    let revoked = s.revocations_after(0, 100).await.unwrap();
    assert_eq!(revoked.len(), 10, "{revoked:?}");
    for r in &revoked {
        assert_eq!(r.kind, steward_model::RevocationKind::Identity);
        let id = all
            .iter()
            .find(|i| i.identity.spiffe_id.as_str() == r.target)
            .unwrap();
        assert_eq!(id.identity.state, LifecycleState::Decommissioned);
        assert!(
            r.reason.contains("removed from the governance repository"),
            "{r:?}"
        );
    }
    // Pinning an identity to `decommissioned` in the repository revokes it as well.
    let mut v3 = v2.clone();
    let pinned = v3
        .identities
        .values_mut()
        .find(|d| d.state.is_none())
        .unwrap();
    pinned.state = Some(LifecycleState::Decommissioned);
    let pinned = pinned.spiffe_id.to_string();
    s.apply(&v3, Some(2), &admin()).await.unwrap();
    let revoked = s.revocations_after(10, 100).await.unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].target, pinned);
    assert!(
        revoked[0]
            .reason
            .contains("decommissioned in the governance repository")
    );
    // A decommission through the lifecycle revokes too, once.
    let active = all
        .iter()
        .find(|r| {
            r.identity.state == LifecycleState::Active && r.identity.spiffe_id.as_str() != pinned
        })
        .unwrap()
        .identity
        .spiffe_id
        .to_string();
    for _ in 0..2 {
        s.set_identity_state(&active, LifecycleState::Decommissioned, "retired", &admin())
            .await
            .unwrap();
    }
    let revoked = s.revocations_after(11, 100).await.unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].target, active);
}

async fn version_conflicts_are_refused(s: Store) {
    let d = example();
    s.apply(&d, Some(0), &admin()).await.unwrap();
    let v2 = parse(&scaled_repo(3, 1, 1), &td()).unwrap();
    match s.apply(&v2, Some(0), &admin()).await {
        Err(StoreError::VersionConflict {
            expected: 0,
            actual: 1,
        }) => {}
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(s.config_version().await.unwrap(), 1);
}

async fn plan_errors_change_nothing(s: Store) {
    let mut files = scaled_repo(5, 1, 1);
    files.push(SourceFile {
        path: "identities/pinned.yaml".into(),
        content: "identities:\n  - spiffe_id: spiffe://acme.example/pinned\n    plane: plane-0\n    owner: team-0\n    environment: dev\n    kind: service\n    state: decommissioned\n".into(),
    });
    let d = parse(&files, &td()).unwrap();
    match s.apply(&d, None, &admin()).await {
        Err(StoreError::Governance(GovernanceError::Invalid(diags))) => {
            assert_eq!(diags[0].file, "identities/pinned.yaml");
            assert_eq!(diags[0].line, 2);
            assert!(
                diags[0]
                    .message
                    .contains("cannot be created decommissioned")
            );
        }
        other => panic!("expected diagnostics, got {other:?}"),
    }
    assert_eq!(s.config_version().await.unwrap(), 0);
    assert!(
        s.identities(&IdentityFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert!(s.admin_changes(0, 10).await.unwrap().is_empty());
}

async fn api_identities_need_owner_and_unique_id(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    let err = s
        .create_identity(&api_identity("x/one", "payments", "nobody"), &admin())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("owner `nobody` does not exist"),
        "{err}"
    );
    let err = s
        .create_identity(&api_identity("x/one", "ghost", "payments-team"), &admin())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "plane", .. }),
        "{err}"
    );
    let created = s
        .create_identity(
            &api_identity("x/one", "payments", "payments-team"),
            &admin(),
        )
        .await
        .unwrap();
    assert!(!created.managed);
    let err = s
        .create_identity(
            &api_identity("x/one", "payments", "payments-team"),
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    // An API identity survives a later apply that does not mention it.
    s.apply(&example(), None, &admin()).await.unwrap();
    let after = s
        .identity("spiffe://acme.example/x/one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.identity.state, LifecycleState::Active);
}

async fn lifecycle_is_one_way(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    let id = "spiffe://acme.example/ns/payments/sa/refund-worker";
    let r = s
        .set_identity_state(id, LifecycleState::Suspended, "incident", &admin())
        .await
        .unwrap();
    assert_eq!(r.identity.state, LifecycleState::Suspended);
    let r = s
        .set_identity_state(id, LifecycleState::Active, "resolved", &admin())
        .await
        .unwrap();
    assert_eq!(r.identity.state, LifecycleState::Active);
    s.set_identity_state(id, LifecycleState::Decommissioned, "retired", &admin())
        .await
        .unwrap();
    let err = s
        .set_identity_state(id, LifecycleState::Active, "undo", &admin())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("one-way"), "{err}");
    let err = s
        .set_identity_state(
            "spiffe://acme.example/none",
            LifecycleState::Suspended,
            "x",
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    // The repository still lists it without a state: it stays decommissioned.
    let again = s.apply(&example(), None, &admin()).await.unwrap();
    assert!(!again.changed, "{:?}", again.plan);
    assert_eq!(
        s.identity(id).await.unwrap().unwrap().identity.state,
        LifecycleState::Decommissioned
    );
    let actions: Vec<String> = s
        .admin_changes(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.action)
        .collect();
    assert!(actions.contains(&"identity.suspend".to_owned()));
    assert!(actions.contains(&"identity.reactivate".to_owned()));
    assert!(actions.contains(&"identity.decommission".to_owned()));
}

async fn removed_owner_leaves_orphans(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    let orphans = s.remove_owner("ledger-team", &admin()).await.unwrap();
    assert_eq!(orphans.len(), 2, "{orphans:?}");
    let listed = s
        .identities(&IdentityFilter {
            orphaned: Some(true),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.identity.spiffe_id.to_string())
            .collect::<Vec<_>>(),
        orphans
    );
    assert!(listed.iter().all(|r| r.orphaned));
    assert_eq!(s.counts().await.unwrap().orphaned_identities, 2);
    assert!(s.remove_owner("ledger-team", &admin()).await.is_err());
    assert!(matches!(
        s.remove_owner("ghost", &admin()).await,
        Err(StoreError::NotFound { .. })
    ));
    // A new identity cannot be given to a removed owner.
    let err = s
        .create_identity(&api_identity("x/two", "payments", "ledger-team"), &admin())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has been removed"), "{err}");
}

async fn filters_and_pagination(s: Store) {
    s.apply(
        &parse(&scaled_repo(120, 2, 1), &td()).unwrap(),
        None,
        &admin(),
    )
    .await
    .unwrap();
    let prod = s
        .identities(&IdentityFilter {
            environment: Some("prod".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prod.len(), 30);
    assert!(prod.iter().all(|r| r.identity.environment == "prod"));
    let agents_in_plane = s
        .identities(&IdentityFilter {
            kind: Some("agent".into()),
            planes: Some(vec![PlaneId::new("plane-1").unwrap()]),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        agents_in_plane
            .iter()
            .all(|r| r.identity.kind == IdentityKind::Agent
                && r.identity.plane.as_str() == "plane-1")
    );
    // Plane index is i % 20 and kind index i % 5, so every identity of plane-1 is an agent.
    assert_eq!(agents_in_plane.len(), 120 / 20);
    // Keyset pagination visits every identity exactly once, in order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .identities(&IdentityFilter {
                after: after.clone(),
                limit: 25,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.identity.spiffe_id.to_string());
        seen.extend(page.into_iter().map(|r| r.identity.spiffe_id.to_string()));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 120);
    let none = s
        .identities(&IdentityFilter {
            planes: Some(vec![]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    // Filter values are bound, never spliced into SQL.
    let injected = s
        .identities(&IdentityFilter {
            owner: Some("x' OR '1'='1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(injected.is_empty());
}

async fn credentials_and_change_log(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    assert!(!s.has_credentials().await.unwrap());
    let new = NewCredential {
        id: "abc".into(),
        name: "pay admin".into(),
        role: Role::PlaneAdmin {
            plane: PlaneId::new("payments").unwrap(),
        },
        token_hash: "h".repeat(64),
        expires_at: Some("2031-01-01T00:00:00.000Z".into()),
    };
    let rec = s.create_credential(&new, &admin()).await.unwrap();
    assert_eq!(rec.role, new.role);
    assert_eq!(rec.expires_at.as_deref(), Some("2031-01-01T00:00:00.000Z"));
    assert!(s.has_credentials().await.unwrap());
    let bad = NewCredential {
        id: "def".into(),
        role: Role::PlaneAdmin {
            plane: PlaneId::new("ghost").unwrap(),
        },
        ..new.clone()
    };
    assert!(matches!(
        s.create_credential(&bad, &admin()).await,
        Err(StoreError::NotFound { .. })
    ));
    s.revoke_credential("abc", &admin()).await.unwrap();
    assert!(
        s.credential("abc")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(s.revoke_credential("abc", &admin()).await.is_err());
    let log = s.admin_changes(0, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        ["config.apply", "credential.create", "credential.revoke"]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(log[0].after.as_ref().unwrap()["version"], 1);
    assert_eq!(log[1].actor, "alice (c1)");
    assert_eq!(s.admin_changes(log[1].seq, 100).await.unwrap().len(), 1);
}

async fn change_log_is_append_only(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    let pool_url_free = s.admin_changes(0, 10).await.unwrap();
    assert_eq!(pool_url_free.len(), 1);
    let err = s
        .execute_unchecked_for_tests("UPDATE admin_changes SET actor = 'mallory'")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = s
        .execute_unchecked_for_tests("DELETE FROM admin_changes")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(s.admin_changes(0, 10).await.unwrap(), pool_url_free);
}

async fn large_apply_batches(s: Store) {
    // More than one multi-row INSERT batch, with a partial last batch.
    let d = parse(&scaled_repo(1_234, 20, 1), &td()).unwrap();
    s.apply(&d, None, &admin()).await.unwrap();
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.identities.get("active").copied(), Some(1_234));
    assert_eq!(counts.capabilities, 20);
}

async fn concurrent_applies_serialize(s: Store) {
    let a = parse(&scaled_repo(300, 3, 1), &td()).unwrap();
    let b = parse(&scaled_repo(300, 3, 2), &td()).unwrap();
    let actor = admin();
    let (ra, rb) = tokio::join!(s.apply(&a, Some(0), &actor), s.apply(&b, Some(0), &actor));
    let ok = [ra.is_ok(), rb.is_ok()];
    assert_eq!(
        ok.iter().filter(|x| **x).count(),
        1,
        "exactly one apply wins: {ra:?} {rb:?}"
    );
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(
        matches!(loser, Err(StoreError::VersionConflict { .. })),
        "{loser:?}"
    );
    assert_eq!(s.config_version().await.unwrap(), 1);
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_leaking_passwords() {
    let err = Store::connect("mysql://root:hunter2@db/x")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let _ = postgres_url;
}

fn decision(n: usize, principal: &str, corr: &str) -> steward_audit::Event {
    use steward_audit::{Event, EventKind, Outcome};
    let mut e = Event::new(
        EventKind::AccessDecision,
        format!("ev-{principal}-{n}"),
        format!("2026-11-23T10:{:02}:{:02}Z", (n / 60) % 60, n % 60),
    );
    e.principal = Some(principal.to_owned());
    e.plane = Some("payments".into());
    e.action = Some("invoke".into());
    e.destination.capability = Some("payments.refund".into());
    e.decision.outcome = Some(if n.is_multiple_of(3) {
        Outcome::Deny
    } else {
        Outcome::Allow
    });
    e.correlation_id = Some(corr.to_owned());
    e
}

async fn drop_evidence_guards(s: &Store) {
    match s.backend() {
        steward_store::Backend::Sqlite => {
            s.execute_unchecked_for_tests("DROP TRIGGER evidence_no_update")
                .await
                .unwrap();
            s.execute_unchecked_for_tests("DROP TRIGGER evidence_no_delete")
                .await
                .unwrap();
        }
        steward_store::Backend::Postgres => {
            s.execute_unchecked_for_tests("DROP TRIGGER evidence_no_change ON evidence")
                .await
                .unwrap();
        }
    }
}

async fn seeded(s: &Store, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| decision(i, "spiffe://acme.example/a", "trace-a"))
        .collect();
    let seqs = s.append_evidence(&events).await.unwrap();
    assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>());
}

async fn evidence_chain_survives_concurrent_writers(s: Store) {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10 {
                let events: Vec<_> = (0..25)
                    .map(|i| decision(batch * 25 + i, &format!("spiffe://acme.example/w{w}"), "t"))
                    .collect();
                s.append_evidence(&events).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = s.verify_evidence().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.events, 1000);
    assert_eq!(s.evidence_head().await.unwrap().seq, 1000);
    let err = s
        .execute_unchecked_for_tests("UPDATE evidence SET body = 'x'")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = s
        .execute_unchecked_for_tests("DELETE FROM evidence")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

async fn admin_changes_are_evidence(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    s.set_identity_state(
        "spiffe://acme.example/ns/payments/sa/refund-worker",
        LifecycleState::Suspended,
        "INC-9",
        &admin(),
    )
    .await
    .unwrap();
    let events = s
        .evidence_search(&steward_store::EvidenceFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    // The example repository declares one exception: its grant follows the apply.
    assert_eq!(
        kinds,
        ["config.applied", "exception.granted", "identity.lifecycle"]
    );
    let lifecycle = &events[2].event;
    assert_eq!(
        lifecycle.principal.as_deref(),
        Some("spiffe://acme.example/ns/payments/sa/refund-worker")
    );
    assert_eq!(lifecycle.actor_chain, vec!["alice (c1)".to_owned()]);
    assert_eq!(lifecycle.details["after"]["reason"], "INC-9");
    assert!(s.verify_evidence().await.unwrap().ok());
}

async fn evidence_search_filters(s: Store) {
    let mut events: Vec<_> = (0..30)
        .map(|i| decision(i, "spiffe://acme.example/a", "trace-a"))
        .collect();
    events.extend((0..30).map(|i| decision(i, "spiffe://acme.example/b", "trace-b")));
    s.append_evidence(&events).await.unwrap();
    let f = |principal: Option<&str>, outcome: Option<&str>, corr: Option<&str>| {
        steward_store::EvidenceFilter {
            principal: principal.map(str::to_owned),
            outcome: outcome.map(str::to_owned),
            correlation_id: corr.map(str::to_owned),
            limit: 1000,
            ..Default::default()
        }
    };
    assert_eq!(
        s.evidence_search(&f(Some("spiffe://acme.example/b"), None, None))
            .await
            .unwrap()
            .len(),
        30
    );
    assert_eq!(
        s.evidence_search(&f(Some("spiffe://acme.example/b"), Some("deny"), None))
            .await
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        s.evidence_search(&f(None, None, Some("trace-a")))
            .await
            .unwrap()
            .len(),
        30
    );
    let window = steward_store::EvidenceFilter {
        since: Some("2026-11-23T10:00:10Z".into()),
        until: Some("2026-11-23T10:00:20Z".into()),
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(s.evidence_search(&window).await.unwrap().len(), 20);
    let tail = steward_store::EvidenceFilter {
        newest_first: true,
        limit: 5,
        ..Default::default()
    };
    let seqs: Vec<i64> = s
        .evidence_search(&tail)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [60, 59, 58, 57, 56]);
}

/// Searches by principal or correlation id over several index blocks answer exactly what
/// a scan of everything appended would, in either order, with paging and time windows,
/// and (on SQLite) through the block index.
async fn evidence_search_walks_blocks(s: Store) {
    use steward_store::{EVIDENCE_BLOCK, EvidenceFilter};
    let total = 3 * EVIDENCE_BLOCK as usize + 500;
    let rare = "spiffe://acme.example/rare";
    let rare_at = [3, 4_200, 12_001];
    let events: Vec<_> = (1..=total)
        .map(|seq| {
            let principal = if rare_at.contains(&seq) {
                rare.to_owned()
            } else {
                format!("spiffe://acme.example/w{}", seq % 7)
            };
            // One trace spans the blocks; the rest are one event each.
            let trace = if seq % 1_000 == 0 {
                "trace-long".to_owned()
            } else {
                format!("t{seq}")
            };
            let mut e = decision(seq, &principal, &trace);
            e.time = format!(
                "2026-11-23T{:02}:{:02}:{:02}Z",
                seq / 3600,
                (seq / 60) % 60,
                seq % 60
            );
            e
        })
        .collect();
    for chunk in events.chunks(2_000) {
        s.append_evidence(chunk).await.unwrap();
    }
    let check = |f: EvidenceFilter| {
        let s = s.clone();
        let events = &events;
        async move {
            let mut want: Vec<i64> = events
                .iter()
                .enumerate()
                .map(|(i, e)| (i as i64 + 1, e))
                .filter(|(seq, e)| {
                    *seq > f.after_seq.unwrap_or(0)
                        && f.principal
                            .as_ref()
                            .is_none_or(|p| e.principal.as_ref() == Some(p))
                        && f.correlation_id
                            .as_ref()
                            .is_none_or(|c| e.correlation_id.as_ref() == Some(c))
                        && f.since.as_ref().is_none_or(|t| &e.time >= t)
                        && f.until.as_ref().is_none_or(|t| &e.time < t)
                })
                .map(|(seq, _)| seq)
                .collect();
            if f.newest_first {
                want.reverse();
            }
            want.truncate(f.limit.max(0) as usize);
            let got: Vec<i64> = s
                .evidence_search(&f)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(got, want, "{f:?}");
            got
        }
    };
    let by = |principal: Option<&str>, corr: Option<&str>, newest_first, limit| EvidenceFilter {
        principal: principal.map(str::to_owned),
        correlation_id: corr.map(str::to_owned),
        newest_first,
        limit,
        ..Default::default()
    };
    for newest_first in [true, false] {
        for limit in [1, 2, 3, 50, 5_000] {
            check(by(Some(rare), None, newest_first, limit)).await;
            check(by(
                Some("spiffe://acme.example/w3"),
                None,
                newest_first,
                limit,
            ))
            .await;
            check(by(None, Some("trace-long"), newest_first, limit)).await;
            check(by(None, Some("t4097"), newest_first, limit)).await;
            check(by(
                Some("spiffe://acme.example/nobody"),
                None,
                newest_first,
                limit,
            ))
            .await;
        }
    }
    assert_eq!(
        check(by(Some(rare), None, true, 10)).await,
        [12_001, 4_200, 3]
    );
    // Paging forward from a seq, and time windows (bounded through the time index).
    let mut paged = by(Some(rare), None, false, 10);
    paged.after_seq = Some(3);
    assert_eq!(check(paged).await, [4_200, 12_001]);
    let mut window = by(None, Some("trace-long"), false, 100);
    window.since = Some("2026-11-23T01:00:00Z".into());
    window.until = Some("2026-11-23T03:00:00Z".into());
    assert_eq!(
        check(window.clone()).await,
        [4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000]
    );
    window.since = Some("2026-11-24T00:00:00Z".into());
    assert!(check(window).await.is_empty());
    check(by(Some(rare), None, true, 0)).await;
    if s.backend() == steward_store::Backend::Sqlite {
        let plan = s
            .search_plan_for_tests(&by(Some(rare), None, true, 10), (0, 3))
            .await
            .unwrap();
        assert!(plan.contains("evidence_principal_block"), "{plan}");
        let plan = s
            .search_plan_for_tests(&by(None, Some("t5"), false, 10), (0, 3))
            .await
            .unwrap();
        assert!(plan.contains("evidence_correlation_block"), "{plan}");
    }
}

async fn verify_names_altered_event(s: Store) {
    seeded(&s, 100).await;
    drop_evidence_guards(&s).await;
    s.execute_unchecked_for_tests(
        "UPDATE evidence SET body = replace(body, '\"allow\"', '\"deny\"') WHERE seq = 57",
    )
    .await
    .unwrap();
    let report = s.verify_evidence().await.unwrap();
    assert_eq!(
        report.problems,
        vec![steward_audit::Problem::Altered { seq: 57 }]
    );
}

async fn verify_names_removed_events(s: Store) {
    seeded(&s, 100).await;
    drop_evidence_guards(&s).await;
    s.execute_unchecked_for_tests("DELETE FROM evidence WHERE seq IN (40, 41)")
        .await
        .unwrap();
    let report = s.verify_evidence().await.unwrap();
    assert_eq!(
        report.problems,
        vec![steward_audit::Problem::Removed {
            after: 39,
            next: 42
        }]
    );
}

async fn verify_names_inserted_event(s: Store) {
    seeded(&s, 100).await;
    drop_evidence_guards(&s).await;
    // Make room at 57 (two steps, so the primary key never collides) and plant a record
    // that links correctly to 56.
    s.execute_unchecked_for_tests("UPDATE evidence SET seq = seq + 1000000 WHERE seq >= 57")
        .await
        .unwrap();
    s.execute_unchecked_for_tests("UPDATE evidence SET seq = seq - 999999 WHERE seq >= 1000000")
        .await
        .unwrap();
    let prev = s.evidence_records(55, 1).await.unwrap().remove(0);
    assert_eq!(prev.seq, 56);
    let body = decision(999, "spiffe://acme.example/mallory", "x")
        .canonical_json()
        .unwrap();
    let hash = steward_audit::link(&prev.hash, &body);
    let sql = format!(
        "INSERT INTO evidence (seq, time, kind, body, prev_hash, hash) VALUES (57, 't', 'access.decision', '{body}', '{}', '{hash}')",
        prev.hash
    );
    s.execute_unchecked_for_tests(Box::leak(sql.into_boxed_str()))
        .await
        .unwrap();
    let report = s.verify_evidence().await.unwrap();
    assert_eq!(
        report.problems,
        vec![steward_audit::Problem::Inserted { seq: 57 }]
    );
}

async fn checkpoints_pin_history(s: Store) {
    seeded(&s, 50).await;
    let signer = s.checkpoint_signer(&kek()).await.unwrap();
    assert_eq!(
        s.checkpoint_signer(&kek()).await.unwrap().key_id(),
        signer.key_id(),
        "the key is created once"
    );
    let cp = s.checkpoint_now(&signer).await.unwrap().unwrap();
    assert_eq!(cp.tree_size, 50);
    assert!(
        s.checkpoint_now(&signer).await.unwrap().is_none(),
        "no second checkpoint for the same head"
    );
    assert!(s.verify_evidence().await.unwrap().ok());
    let err = s
        .execute_unchecked_for_tests("DELETE FROM evidence_checkpoints")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // Truncate the log behind the checkpoint.
    drop_evidence_guards(&s).await;
    s.execute_unchecked_for_tests("DELETE FROM evidence WHERE seq > 45")
        .await
        .unwrap();
    let report = s.verify_evidence().await.unwrap();
    assert_eq!(
        report.problems,
        vec![steward_audit::Problem::Truncated {
            tree_size: 50,
            log_size: 45
        }]
    );
}

async fn retention_prunes_a_verifiable_prefix(s: Store) {
    seeded(&s, 100).await; // times 10:00:00 .. 10:01:39, one per second
    let signer = s.checkpoint_signer(&kek()).await.unwrap();
    let err = s
        .execute_unchecked_for_tests("DELETE FROM evidence WHERE seq = 1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(
        s.prune_evidence("2026-11-23T10:00:30Z", &signer)
            .await
            .unwrap(),
        30
    );
    assert_eq!(
        s.prune_evidence("2026-11-23T10:00:30Z", &signer)
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    let report = s.verify_evidence().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.events, 71, "70 kept and the prune's own event");
    let prune = s.latest_prune().await.unwrap().unwrap();
    assert_eq!(prune.pruned_through, 30);
    assert!(!prune.signature.is_empty());
    // The prune is itself in the chain, with its signature.
    let pruned = s
        .evidence_search(&steward_store::EvidenceFilter {
            kind: Some("evidence.pruned".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].event.details["pruned_through"], 30);
    assert_eq!(
        pruned[0].event.details["signature"],
        prune.signature.as_str()
    );
    // Only the recorded prefix may go; the rest stays append-only.
    let err = s
        .execute_unchecked_for_tests("DELETE FROM evidence WHERE seq = 31")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = s
        .execute_unchecked_for_tests("DELETE FROM evidence_prunes")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // New events keep chaining after the prune, and a second prune moves the start again.
    s.append_evidence(&[decision(500, "spiffe://acme.example/late", "t")])
        .await
        .unwrap();
    assert_eq!(
        s.prune_evidence("2026-11-23T10:01:00Z", &signer)
            .await
            .unwrap(),
        30
    );
    let report = s.verify_evidence().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        report.events, 43,
        "40 kept, the late one and both prune events"
    );
}

/// An exception's expiry is chained once, however often (and by however many replicas)
/// it is noticed; a renewed exception (a later expiry) is a new one.
async fn an_exception_expiry_is_recorded_once(s: Store) {
    let mut e: steward_model::PolicyException = serde_json::from_value(serde_json::json!({
        "id": "ex-1", "owner": "team", "reason": "r", "ticket": "T-1",
        "principal": "spiffe://acme.example/a", "capability": "payments.refund",
        "lifts": ["GR-3"], "expires_at": "2026-11-30T00:00:00Z",
    }))
    .unwrap();
    let (a, b) = tokio::join!(
        s.record_exception_expiry(&e, 3),
        s.record_exception_expiry(&e, 3)
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|x| **x).count(),
        1,
        "recorded exactly once"
    );
    assert!(!s.record_exception_expiry(&e, 3).await.unwrap());
    e.expires_at = time::macros::datetime!(2026-12-30 00:00 UTC);
    assert!(s.record_exception_expiry(&e, 4).await.unwrap());
    let events = s
        .evidence_search(&steward_store::EvidenceFilter {
            kind: Some("exception.expired".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event.decision.exception.as_deref(), Some("ex-1"));
    assert_eq!(
        events[0].event.principal.as_deref(),
        Some("spiffe://acme.example/a")
    );
    assert_eq!(
        events[0].event.details["expires_at"],
        "2026-11-30T00:00:00.000Z"
    );
    assert_eq!(events[1].event.policy_version, Some(4));
    assert!(s.verify_evidence().await.unwrap().ok());
    // An expiry recorded by an older release, in the plain RFC 3339 text of the time,
    // is on record too: an upgrade records it no second time.
    s.execute_unchecked_for_tests(
        "INSERT INTO exception_expiries (id, expires_at, recorded_at) VALUES ('ex-2', '2026-10-01T00:00:00Z', '2026-10-01T00:00:01Z')",
    )
    .await
    .unwrap();
    e.id = "ex-2".into();
    e.expires_at = time::macros::datetime!(2026-10-01 00:00 UTC);
    assert!(!s.record_exception_expiry(&e, 5).await.unwrap());
}

/// The key-encryption key the store's tests seal the checkpoint key with.
fn kek() -> steward_token::Kek {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = TEXT.get_or_init(|| steward_token::Kek::generate_base64().unwrap());
    steward_token::Kek::from_base64(text).unwrap()
}

/// Whoever can write the database can add a prune row and delete the events before it;
/// a checkpoint at that very size (the periodic ones are everywhere) used to vouch for
/// it. Only a prune signed by the checkpoint key starts the chain.
async fn a_forged_prune_is_refused(s: Store) {
    seeded(&s, 50).await;
    let signer = s.checkpoint_signer(&kek()).await.unwrap();
    s.checkpoint_now(&signer).await.unwrap().unwrap();
    let more: Vec<_> = (50..100)
        .map(|i| decision(i, "spiffe://acme.example/a", "trace-a"))
        .collect();
    s.append_evidence(&more).await.unwrap();
    assert!(s.verify_evidence().await.unwrap().ok());
    let hash = s.evidence_records(49, 1).await.unwrap().remove(0).hash;
    let sql = format!(
        "INSERT INTO evidence_prunes (pruned_through, head_hash, time, cutoff) VALUES (50, '{hash}', '2026-11-23T11:00:00Z', '2026-11-23T10:00:50Z')"
    );
    s.execute_unchecked_for_tests(Box::leak(sql.into_boxed_str()))
        .await
        .unwrap();
    s.execute_unchecked_for_tests("DELETE FROM evidence WHERE seq <= 50")
        .await
        .unwrap();
    let report = s.verify_evidence().await.unwrap();
    assert_eq!(
        report.problems,
        vec![steward_audit::Problem::UnvouchedPrune { pruned_through: 50 }]
    );
    assert!(report.problems[0].to_string().contains("not signed"));
}

/// The checkpoint key is sealed under the key-encryption key, like the token signing
/// keys: reading the database is not enough to re-sign a rewritten history. A key an
/// older release stored in plaintext is sealed on first use.
async fn checkpoint_key_is_sealed_at_rest(s: Store) {
    let (legacy, pkcs8) = steward_audit::CheckpointSigner::generate().unwrap();
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode(&pkcs8);
    let sql = format!(
        "INSERT INTO audit_keys (id, public_key, private_pkcs8, created_at) VALUES ('{}', '{}', '{plain}', '2026-01-01T00:00:00Z')",
        legacy.key_id(),
        legacy.public_key()
    );
    s.execute_unchecked_for_tests(Box::leak(sql.into_boxed_str()))
        .await
        .unwrap();
    let signer = s.checkpoint_signer(&kek()).await.unwrap();
    assert_eq!(signer.key_id(), legacy.key_id(), "the same key, now sealed");
    let stored = s
        .fetch_text_for_tests("SELECT private_pkcs8 FROM audit_keys")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("v1."), "{}", stored[0]);
    assert!(!stored[0].contains(&plain));
    // It opens again with the same key-encryption key, and with no other.
    assert_eq!(
        s.checkpoint_signer(&kek()).await.unwrap().key_id(),
        legacy.key_id()
    );
    let other =
        steward_token::Kek::from_base64(&steward_token::Kek::generate_base64().unwrap()).unwrap();
    let err = s.checkpoint_signer(&other).await.err().unwrap().to_string();
    assert!(err.contains("does not open"), "{err}");
    assert_eq!(
        s.checkpoint_keys().await.unwrap().len(),
        1,
        "no second key was made"
    );
    // The upgrade is on record.
    let sealed_events = s
        .evidence_search(&steward_store::EvidenceFilter {
            action: Some("checkpoint_key.seal".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sealed_events.len(), 1);
    // Someone who can write the database adds a plaintext key of their own, newer than
    // the sealed one: it is neither used to sign nor trusted to verify.
    let (forger, forged_pkcs8) = steward_audit::CheckpointSigner::generate().unwrap();
    let sql = format!(
        "INSERT INTO audit_keys (id, public_key, private_pkcs8, created_at) VALUES ('{}', '{}', '{}', '2099-01-01T00:00:00Z')",
        forger.key_id(),
        forger.public_key(),
        base64::engine::general_purpose::STANDARD.encode(&forged_pkcs8)
    );
    s.execute_unchecked_for_tests(Box::leak(sql.into_boxed_str()))
        .await
        .unwrap();
    assert_eq!(
        s.checkpoint_signer(&kek()).await.unwrap().key_id(),
        legacy.key_id()
    );
    assert_eq!(
        s.trusted_checkpoint_keys(&kek()).await.unwrap(),
        vec![legacy.public_key()]
    );
    let three: Vec<_> = (0..3)
        .map(|i| decision(i, "spiffe://acme.example/a", "trace-a"))
        .collect();
    s.append_evidence(&three).await.unwrap();
    let head = s.evidence_records(0, 100).await.unwrap().pop().unwrap();
    let forged = forger.sign(head.seq, &head.hash, "2026-11-23T10:00:00Z");
    let sql = format!(
        "INSERT INTO evidence_checkpoints (tree_size, head_hash, time, key_id, signature) VALUES ({}, '{}', '{}', '{}', '{}')",
        forged.tree_size, forged.head_hash, forged.time, forged.key_id, forged.signature
    );
    s.execute_unchecked_for_tests(Box::leak(sql.into_boxed_str()))
        .await
        .unwrap();
    let report = s.verify_evidence_trusting(&kek()).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, steward_audit::Problem::BadSignature { .. })),
        "{:?}",
        report.problems
    );
}

fn key_row(kid: &str) -> steward_store::SigningKeyRow {
    steward_store::SigningKeyRow {
        kid: kid.into(),
        alg: "ES256".into(),
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        sealed_private: format!("v1.sealed-{kid}"),
        created_at: format!("2026-11-24T10:00:0{}Z", kid.len() % 10),
        retired_at: None,
        publish_until: None,
    }
}

async fn signing_keys_rotate_and_credentials_persist(s: Store) {
    assert!(s.signing_keys().await.unwrap().is_empty());
    assert!(s.insert_first_signing_key(&key_row("k1")).await.unwrap());
    // A second replica racing to create the first key keeps the existing one.
    assert!(
        !s.insert_first_signing_key(&key_row("k-other"))
            .await
            .unwrap()
    );
    let old = s
        .rotate_signing_key(&key_row("k22"), "2026-11-24T11:00:00Z", &admin())
        .await
        .unwrap();
    assert_eq!(old.as_deref(), Some("k1"));
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let k1 = keys.iter().find(|k| k.kid == "k1").unwrap();
    let k22 = keys.iter().find(|k| k.kid == "k22").unwrap();
    assert!(k1.retired_at.is_some());
    assert_eq!(k1.publish_until.as_deref(), Some("2026-11-24T11:00:00Z"));
    assert_eq!(k22.retired_at, None);
    assert_eq!(k22.sealed_private, "v1.sealed-k22");
    let changes = s.admin_changes(0, 100).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.action == "keys.rotate" && c.target == "k22")
    );

    let mut i = api_identity("svc/keys", "payments", "nobody");
    i.credentials.token_ttl_secs = Some(120);
    i.credentials.public_keys.push(steward_model::ClientKey {
        kid: "c1".into(),
        kty: "EC".into(),
        crv: "P-256".into(),
        x: "x".into(),
        y: "y".into(),
        alg: None,
        created: Some("2026-11-01".into()),
    });
    s.apply(&example(), None, &admin()).await.unwrap();
    let owner = s
        .owners()
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
        .owner
        .id;
    i.owner = owner;
    s.create_identity(&i, &admin()).await.unwrap();
    let back = s.identity(i.spiffe_id.as_str()).await.unwrap().unwrap();
    assert_eq!(back.identity.credentials, i.credentials);
}

fn revoke_req(kind: RevocationKind, target: &str) -> RevokeRequest {
    RevokeRequest {
        kind,
        target: target.into(),
        reason: "incident INC-7".into(),
        revoked_at: 1_000,
        until: Some(5_000),
        identity: steward_model::RevokedIdentity::Suspended,
    }
}

async fn revocations_are_gapless_append_only_and_acted_on(s: Store) {
    s.apply(&example(), None, &admin()).await.unwrap();
    let id = s
        .identities(&IdentityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.identity.plane.as_str() == "payments")
        .unwrap()
        .identity
        .spiffe_id
        .to_string();
    // Concurrent revocations still get epochs 1..=n without gaps.
    let tokens: Vec<String> = (0..8).map(|i| format!("jti-{i}")).collect();
    let results = futures_join(
        tokens
            .iter()
            .map(|t| {
                let s = s.clone();
                let t = t.clone();
                async move {
                    s.revoke(&revoke_req(RevocationKind::Token, &t), &admin())
                        .await
                }
            })
            .collect(),
    )
    .await;
    let mut epochs: Vec<i64> = results.into_iter().map(|r| r.unwrap().epoch).collect();
    epochs.sort();
    assert_eq!(epochs, (1..=8).collect::<Vec<_>>());
    assert_eq!(s.revocation_epoch().await.unwrap(), 8);
    // A token is revoked once; unknown targets are named.
    let again = s
        .revoke(&revoke_req(RevocationKind::Token, "jti-0"), &admin())
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("already revoked at epoch"),
        "{again}"
    );
    for (kind, target) in [
        (RevocationKind::Identity, "spiffe://acme.example/nobody"),
        (RevocationKind::Issuer, "nobody"),
        (RevocationKind::Key, "nobody"),
        (RevocationKind::Plane, "nobody"),
    ] {
        let err = s
            .revoke(&revoke_req(kind, target), &admin())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{kind}: {err}");
    }
    assert_eq!(
        s.revocation_epoch().await.unwrap(),
        8,
        "refusals take no epoch"
    );
    // An identity revocation suspends it, in the same transaction.
    let r = s
        .revoke(&revoke_req(RevocationKind::Identity, &id), &admin())
        .await
        .unwrap();
    assert_eq!(r.epoch, 9);
    assert_eq!(
        s.identity(&id).await.unwrap().unwrap().identity.state,
        LifecycleState::Suspended
    );
    // A plane revocation lists its subtree and suspends its active identities.
    let r = s
        .revoke(&revoke_req(RevocationKind::Plane, "payments"), &admin())
        .await
        .unwrap();
    assert!(r.planes.contains(&"payments".to_owned()), "{r:?}");
    let payments = s
        .identities(&IdentityFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|i| r.planes.iter().any(|p| p == i.identity.plane.as_str()))
        .collect::<Vec<_>>();
    assert!(!payments.is_empty());
    assert!(
        payments
            .iter()
            .all(|i| i.identity.state != LifecycleState::Active)
    );
    // Read back in order; the table refuses rewrites.
    let all = s.revocations_after(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(s.revocations_after(8, 100).await.unwrap().len(), 2);
    for sql in [
        "UPDATE revocations SET reason = 'nothing happened'",
        "DELETE FROM revocations",
    ] {
        let err = s.execute_unchecked_for_tests(sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    // Every revocation is a `revocation.issued` evidence event.
    let issued = s
        .evidence_search(&steward_store::EvidenceFilter {
            kind: Some("revocation.issued".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(issued.len(), 10);
}

async fn point_reports_upsert_and_never_go_back(s: Store) {
    let report = |epoch: i64, flagged: Option<&str>| PointReport {
        id: "gateway:edge".into(),
        kind: "gateway".into(),
        name: "edge".into(),
        environment: Some("prod".into()),
        credential: "edge-gateway".into(),
        credential_id: "cred-edge".into(),
        bundle_version: epoch,
        epoch,
        flagged: flagged.map(str::to_owned),
    };
    s.record_point_reports(&[report(3, None)]).await.unwrap();
    // A burst: one transaction; a late, older report does not move the epoch back.
    s.record_point_reports(&[report(5, None), report(4, None)])
        .await
        .unwrap();
    let points = s.enforcement_points().await.unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].epoch, 5);
    assert_eq!(
        points[0].bundle_version, 4,
        "the bundle is what was last reported"
    );
    // A report claiming an epoch never issued is flagged and does not move the epoch
    // (or it would count as having applied revocations to come); the point's next
    // consistent report clears the flag.
    s.record_point_reports(&[report(99, Some("epoch 99 was never issued"))])
        .await
        .unwrap();
    let p = &s.enforcement_points().await.unwrap()[0];
    assert_eq!(p.flagged.as_deref(), Some("epoch 99 was never issued"));
    assert_eq!(p.epoch, 5, "a flagged report does not move the epoch");
    s.record_point_reports(&[report(6, None)]).await.unwrap();
    let p = &s.enforcement_points().await.unwrap()[0];
    assert_eq!(p.flagged, None, "a consistent report clears the flag");
    assert_eq!(p.epoch, 6);
    // The point is bound to its credential: a report through another changes nothing
    // (the API refuses it first; this is the race of two first reports).
    assert_eq!(
        s.point_owner("gateway:edge")
            .await
            .unwrap()
            .unwrap()
            .credential_id,
        "cred-edge"
    );
    let mut other = report(7, None);
    other.credential_id = "cred-other".into();
    other.credential = "other".into();
    s.record_point_reports(&[other]).await.unwrap();
    let p = &s.enforcement_points().await.unwrap()[0];
    assert_eq!((p.epoch, p.credential.as_str()), (6, "edge-gateway"));
    assert!(s.point_owner("gateway:nobody").await.unwrap().is_none());
}

/// Runs futures concurrently on the current runtime.
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn usage_event(
    kind: steward_audit::EventKind,
    n: usize,
    principal: &str,
    time: &str,
    details: serde_json::Value,
) -> steward_audit::Event {
    let mut e = steward_audit::Event::new(kind, format!("use-{principal}-{n}"), time);
    e.principal = Some(principal.to_owned());
    e.details = details;
    e
}

/// A decision on reading `payments.charges` made in `environment`.
fn charge_read(
    n: usize,
    principal: &str,
    time: &str,
    environment: &str,
    outcome: steward_audit::Outcome,
) -> steward_audit::Event {
    let mut e = usage_event(
        steward_audit::EventKind::AccessDecision,
        n,
        principal,
        time,
        serde_json::json!({"request": {"context": {"environment": environment}}}),
    );
    e.action = Some("read".into());
    e.destination.capability = Some("payments.charges".into());
    e.decision.outcome = Some(outcome);
    e
}

/// The usage roll-up folds each evidence event into `usage_totals` exactly
/// once — incrementally, in bounded steps, from concurrent callers — with the environment
/// and the client key read from the event body; other kinds are skipped.
async fn usage_roll_up_folds_evidence_once(s: Store) {
    use serde_json::json;
    use steward_audit::{EventKind, Outcome};
    let a = "spiffe://acme.example/payments/api";
    let mut events = Vec::new();
    for n in 0..5 {
        let time = format!("2026-11-0{}T10:00:00Z", n + 1);
        events.push(charge_read(n, a, &time, "prod", Outcome::Allow));
    }
    for n in 5..7 {
        events.push(charge_read(
            n,
            a,
            "2026-11-10T10:00:00Z",
            "staging",
            Outcome::Deny,
        ));
    }
    for (n, key, expires) in [
        (7, "k1", "2026-11-01T11:00:00Z"),
        (8, "k1", "2999-01-01T00:00:00Z"),
        (9, "k2", "2999-01-01T00:00:00Z"),
    ] {
        let mut e = usage_event(
            EventKind::CredentialIssued,
            n,
            a,
            &format!("2026-11-0{}T10:00:00Z", n - 6),
            json!({"client_key": key, "environment": "prod", "expires_at": expires}),
        );
        e.action = Some("client_credentials".into());
        events.push(e);
    }
    events.push(usage_event(
        EventKind::AdminAction,
        10,
        a,
        "2026-11-05T10:00:00Z",
        json!({}),
    ));
    s.append_evidence(&events).await.unwrap();

    // One step of at most 4 events, then the rest.
    let r = s.roll_up_usage(4).await.unwrap();
    assert_eq!((r.events, r.through_seq, r.head_seq), (4, 4, 11));
    let r = s.roll_up_usage(i64::MAX).await.unwrap();
    assert_eq!((r.events, r.through_seq), (7, 11));
    assert_eq!(s.roll_up_usage(i64::MAX).await.unwrap().events, 0);

    let mut totals = s
        .usage_totals_since("2026-01-01T00:00:00Z", None)
        .await
        .unwrap();
    totals.sort_by(|x, y| {
        (&x.kind, &x.outcome, &x.credential).cmp(&(&y.kind, &y.outcome, &y.credential))
    });
    let view: Vec<_> = totals
        .iter()
        .map(|t| {
            (
                t.kind.as_str(),
                t.outcome.as_deref(),
                t.environment.as_deref(),
                t.credential.as_deref(),
                t.count,
                t.first.as_str(),
                t.last.as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (
                "access.decision",
                Some("allow"),
                Some("prod"),
                None,
                5,
                "2026-11-01T10:00:00Z",
                "2026-11-05T10:00:00Z"
            ),
            (
                "access.decision",
                Some("deny"),
                Some("staging"),
                None,
                2,
                "2026-11-10T10:00:00Z",
                "2026-11-10T10:00:00Z"
            ),
            (
                "credential.issued",
                None,
                Some("prod"),
                Some("k1"),
                2,
                "2026-11-01T10:00:00Z",
                "2026-11-02T10:00:00Z"
            ),
            (
                "credential.issued",
                None,
                Some("prod"),
                Some("k2"),
                1,
                "2026-11-03T10:00:00Z",
                "2026-11-03T10:00:00Z"
            ),
        ]
    );
    assert_eq!(totals[0].capability.as_deref(), Some("payments.charges"));
    assert_eq!(totals[0].action.as_deref(), Some("read"));
    // Only aggregates used since the given time.
    assert_eq!(
        s.usage_totals_since("2026-11-06T00:00:00Z", None)
            .await
            .unwrap()
            .len(),
        1
    );
    // Of one principal.
    let of = |p: &'static str| {
        let s = s.clone();
        async move {
            s.usage_totals_since("2026-01-01T00:00:00Z", Some(p))
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(of(a).await, 4);
    assert_eq!(of("spiffe://acme.example/none").await, 0);

    // Later events extend the same aggregates; concurrent callers fold each event once.
    let more: Vec<_> = (100..400)
        .map(|n| charge_read(n, a, "2026-11-20T10:00:00Z", "prod", Outcome::Allow))
        .collect();
    s.append_evidence(&more).await.unwrap();
    let folded = futures_join(
        (0..4)
            .map(|_| {
                let s = s.clone();
                async move { s.roll_up_usage(i64::MAX).await.unwrap().events }
            })
            .collect(),
    )
    .await;
    assert_eq!(folded.iter().sum::<i64>(), 300, "{folded:?}");
    let allowed = s
        .usage_totals_since("2026-11-20T00:00:00Z", None)
        .await
        .unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(
        (
            allowed[0].count,
            allowed[0].first.as_str(),
            allowed[0].last.as_str()
        ),
        (305, "2026-11-01T10:00:00Z", "2026-11-20T10:00:00Z")
    );

    // Hourly counts and counts per kind come from the same steps.
    let hours = s.decisions_per_hour("2026-11-10T10:30:00Z").await.unwrap();
    assert_eq!(
        hours,
        [
            ("2026-11-10T10".to_owned(), 0, 2),
            ("2026-11-20T10".to_owned(), 300, 0)
        ]
    );
    let kinds = s.evidence_kinds().await.unwrap();
    assert_eq!(
        kinds,
        [
            ("access.decision".to_owned(), 307, 311),
            ("admin.action".to_owned(), 1, 11),
            ("credential.issued".to_owned(), 3, 10),
        ]
    );

    // An event appended before the environment column existed: read from its body.
    s.execute_unchecked_for_tests(
        r#"INSERT INTO evidence (seq, time, kind, principal, capability, action, outcome, body, prev_hash, hash) VALUES (312, '2026-11-21T10:00:00Z', 'access.decision', 'spiffe://acme.example/old', 'payments.charges', 'read', 'allow', '{"details":{"request":{"context":{"environment":"dev"}}}}', 'x', 'y')"#,
    )
    .await
    .unwrap();
    assert_eq!(s.roll_up_usage(i64::MAX).await.unwrap().events, 1);
    let old = s
        .usage_totals_since("2026-11-21T00:00:00Z", None)
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (old[0].principal.as_str(), old[0].environment.as_deref()),
        ("spiffe://acme.example/old", Some("dev"))
    );

    // Tokens still valid: the two that expire in 2999.
    let active = s
        .active_tokens("2026-01-01T00:00:00Z", "2026-11-28T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(active, [(a.to_owned(), 2)]);
}
