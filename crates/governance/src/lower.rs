//! Lowering one file's documents into the desired state: one method per object kind,
//! each checking what can be checked within the object itself and remembering where it
//! was declared. Cross-references wait until every file is read (`check_references`).

use std::collections::BTreeMap;

use steward_model::{
    ContextAttribute, Owner, Plane, PolicyException, Settings, TrustedIssuer, validate_slug,
};

use crate::ObjectKind as K;
use crate::docs::{
    CapabilityDoc, ClientKeyDoc, ExceptionDoc, IdentityDoc, IssuerDoc, OwnerDoc, PlaneDoc,
    PolicyTestDoc,
};
use crate::locate::LineIndex;
use crate::parse::{
    Ctx, check_settings, context_name_problem, context_source_problem, issuer_problems,
};
use crate::{Desired, PolicyTest};

/// A `client_keys` entry and where it was written, kept until its identity is known.
pub(crate) struct PlacedKey {
    pub doc: ClientKeyDoc,
    pub file: String,
    pub line: usize,
}

/// One file on its way into the desired state.
pub(crate) struct Lowering<'a> {
    pub cx: Ctx<'a>,
    index: LineIndex<'a>,
    /// How often each (kind, id) was seen in this file, to place duplicates.
    seen: BTreeMap<(K, String), usize>,
}

impl<'a> Lowering<'a> {
    pub(crate) fn new(cx: Ctx<'a>, content: &'a str) -> Self {
        Self {
            cx,
            index: LineIndex::new(content),
            seen: BTreeMap::new(),
        }
    }

    /// Places the next declaration of `id` in this file and remembers it. Returns its
    /// line, or `None` (with a diagnostic) when it was declared before.
    fn remember(&mut self, desired: &mut Desired, kind: K, key: &str, id: &str) -> Option<usize> {
        let n = self.seen.entry((kind, id.to_owned())).or_insert(0);
        let line = self.index.line_of(key, id, *n);
        *n += 1;
        if let Some((f, l)) = desired.locations.get(&(kind, id.to_owned())) {
            let at = format!("{f}:{l}");
            self.cx.err(
                line,
                format!("{kind} `{id}` is declared twice (first at {at})"),
            );
            return None;
        }
        desired
            .locations
            .insert((kind, id.to_owned()), (self.cx.file.path.clone(), line));
        Some(line)
    }

    /// Central settings: declared once in the whole repository.
    pub(crate) fn settings(
        &mut self,
        desired: &mut Desired,
        first_at: &mut Option<(String, usize)>,
        settings: Settings,
    ) {
        let line = self.index.settings_line();
        if let Some((f, l)) = first_at {
            self.cx.err(
                line,
                format!("central `settings` are declared twice (first at {f}:{l})"),
            );
        } else {
            check_settings(&mut self.cx, line, "central settings", &settings);
            *first_at = Some((self.cx.file.path.clone(), line));
            desired.root_settings = settings;
        }
    }

    /// Planes: the root is implicit; each declared plane is checked and kept.
    pub(crate) fn planes(&mut self, desired: &mut Desired, items: Vec<PlaneDoc>) {
        for p in items {
            let Some(line) = self.remember(desired, K::Plane, "id", p.id.as_str()) else {
                continue;
            };
            if p.id.is_root() {
                self.cx.err(line, "the root plane is implicit: put central settings under the top-level `settings` key");
                continue;
            }
            check_settings(
                &mut self.cx,
                line,
                &format!("plane `{}`", p.id),
                &p.settings,
            );
            let name = p.name.unwrap_or_else(|| p.id.to_string());
            desired.planes.insert(
                p.id.clone(),
                Plane {
                    id: p.id,
                    parent: Some(p.parent),
                    name,
                    description: p.description,
                    settings: p.settings,
                },
            );
        }
    }

    /// Owners: an id, a contact address, a name.
    pub(crate) fn owners(&mut self, desired: &mut Desired, items: Vec<OwnerDoc>) {
        for o in items {
            let Some(line) = self.remember(desired, K::Owner, "id", &o.id) else {
                continue;
            };
            if let Err(e) = validate_slug("owner id", &o.id) {
                self.cx.err(line, e.to_string());
            }
            if !o.email.contains('@') {
                self.cx.err(
                    line,
                    format!(
                        "owner `{}`: email `{}` is not an email address",
                        o.id, o.email
                    ),
                );
            }
            if o.name.trim().is_empty() {
                self.cx
                    .err(line, format!("owner `{}`: name must not be empty", o.id));
            }
            desired.owners.insert(
                o.id.clone(),
                Owner {
                    id: o.id,
                    name: o.name,
                    email: o.email,
                    kind: o.kind,
                },
            );
        }
    }

    /// Capabilities: each transport mapping must be valid on its own.
    pub(crate) fn capabilities(&mut self, desired: &mut Desired, items: Vec<CapabilityDoc>) {
        for c in items {
            let Some(line) = self.remember(desired, K::Capability, "id", c.id.as_str()) else {
                continue;
            };
            for m in &c.mappings {
                if let Err(e) = m.validate() {
                    self.cx.err(line, format!("capability `{}`: {e}", c.id));
                }
            }
            desired.capabilities.insert(c.id.clone(), c.into());
        }
    }

    /// Trusted issuers: the exact `iss`, keys one way, an audience, a mapping onto identities.
    pub(crate) fn issuers(&mut self, desired: &mut Desired, items: Vec<IssuerDoc>) {
        for i in items {
            let Some(line) = self.remember(desired, K::Issuer, "id", &i.id) else {
                continue;
            };
            if let Err(e) = validate_slug("issuer id", &i.id) {
                self.cx.err(line, e.to_string());
            }
            if !(i.issuer.starts_with("https://")
                || i.issuer.starts_with("http://")
                || i.issuer.starts_with("spiffe://"))
            {
                self.cx.err(line, format!("issuer `{}`: `issuer` must be the exact `iss` URL (https://…) or a SPIFFE trust domain (spiffe://…)", i.id));
            }
            match (&i.jwks_uri, &i.jwks) {
                (Some(_), Some(_)) => self.cx.err(
                    line,
                    format!(
                        "issuer `{}`: give either `jwks_uri` or inline `jwks`, not both",
                        i.id
                    ),
                ),
                (None, None) => self.cx.err(
                    line,
                    format!(
                        "issuer `{}`: keys are required: give `jwks_uri` or inline `jwks`",
                        i.id
                    ),
                ),
                _ => {}
            }
            if i.audience.trim().is_empty() {
                self.cx.err(
                    line,
                    format!("issuer `{}`: `audience` must not be empty", i.id),
                );
            }
            for problem in issuer_problems(&i.jwks_uri, &i.jwks, &i.claim_mapping) {
                self.cx.err(line, format!("issuer `{}`: {problem}", i.id));
            }
            if i.allowed_subjects.is_empty() {
                self.cx.err(
                    line,
                    format!(
                        "issuer `{}`: `allowed_subjects` must list at least one subject pattern",
                        i.id
                    ),
                );
            }
            desired.issuers.insert(
                i.id.clone(),
                TrustedIssuer {
                    id: i.id,
                    plane: i.plane,
                    issuer: i.issuer,
                    jwks_uri: i.jwks_uri,
                    jwks: i.jwks,
                    allowed_subjects: i.allowed_subjects,
                    audience: i.audience,
                    claim_mapping: serde_json::Value::Object(i.claim_mapping.into_iter().collect()),
                },
            );
        }
    }

    /// Request-context attributes policies may read.
    pub(crate) fn request_context(&mut self, desired: &mut Desired, items: Vec<ContextAttribute>) {
        for a in items {
            let Some(line) = self.remember(desired, K::ContextAttribute, "name", &a.name) else {
                continue;
            };
            if let Some(problem) = context_name_problem(&a.name) {
                self.cx
                    .err(line, format!("request_context `{}`: {problem}", a.name));
            }
            if let Some(problem) = a.source.as_ref().and_then(context_source_problem) {
                self.cx
                    .err(line, format!("request_context `{}`: {problem}", a.name));
            }
            desired.context_attributes.insert(a.name.clone(), a);
        }
    }

    /// Time-bound exceptions: accountable (reason, ticket), lifting something, expiring.
    pub(crate) fn exceptions(&mut self, desired: &mut Desired, items: Vec<ExceptionDoc>) {
        for e in items {
            let Some(line) = self.remember(desired, K::Exception, "id", &e.id) else {
                continue;
            };
            if let Err(err) = validate_slug("exception id", &e.id) {
                self.cx.err(line, err.to_string());
            }
            for (key, value) in [("reason", &e.reason), ("ticket", &e.ticket)] {
                if value.trim().is_empty() {
                    self.cx.err(line, format!("exception `{}`: `{key}` must not be empty: an auditor must be able to see why it was granted", e.id));
                }
            }
            if e.lifts.is_empty() {
                self.cx.err(
                    line,
                    format!(
                        "exception `{}`: `lifts` must name at least one exceptionable guardrail id",
                        e.id
                    ),
                );
            }
            match steward_model::timestamp::parse(&e.expires_at) {
                Some(expires_at) => {
                    desired.exceptions.insert(
                        e.id.clone(),
                        PolicyException {
                            id: e.id,
                            owner: e.owner,
                            reason: e.reason,
                            ticket: e.ticket,
                            principal: e.principal,
                            capability: e.capability,
                            lifts: e.lifts,
                            expires_at,
                        },
                    );
                }
                None => self.cx.err(line, format!("exception `{}`: `expires_at` must be an RFC 3339 time such as 2026-12-01T00:00:00Z, not `{}`", e.id, e.expires_at)),
            }
        }
    }

    /// Just-in-time workflows.
    pub(crate) fn workflows(&mut self, desired: &mut Desired, items: Vec<steward_model::Workflow>) {
        for w in items {
            let Some(line) = self.remember(desired, K::Workflow, "id", &w.id) else {
                continue;
            };
            if let Err(err) = validate_slug("workflow id", &w.id) {
                self.cx.err(line, err.to_string());
            }
            if w.requesters.is_empty() || w.scope.is_empty() {
                self.cx.err(
                    line,
                    format!(
                        "workflow `{}`: `requesters` and `scope` must each list at least one entry",
                        w.id
                    ),
                );
            }
            if w.max_ttl_secs == 0 {
                self.cx.err(
                    line,
                    format!("workflow `{}`: `max_ttl_secs` must be at least 1", w.id),
                );
            }
            desired.workflows.insert(w.id.clone(), w);
        }
    }

    /// Policy unit tests, placed at their own lines (names may repeat).
    pub(crate) fn policy_tests(&mut self, desired: &mut Desired, items: Vec<PolicyTestDoc>) {
        let mut names_seen: BTreeMap<String, usize> = BTreeMap::new();
        for t in items {
            let nth = names_seen.entry(t.name.clone()).or_insert(0);
            let line = self.index.line_of("name", &t.name, *nth);
            *nth += 1;
            let at = match t.at.as_deref().map(steward_model::timestamp::parse) {
                None => None,
                Some(Some(at)) => Some(at),
                Some(None) => {
                    self.cx.err(
                        line,
                        format!("policy test `{}`: `at` must be an RFC 3339 time", t.name),
                    );
                    continue;
                }
            };
            desired.policy_tests.push(PolicyTest {
                name: t.name,
                file: self.cx.file.path.clone(),
                line,
                principal: t.principal,
                capability: t.capability,
                action: t.action,
                context: t.context,
                at,
                expect: t.expect,
                decided_by: t.decided_by,
            });
        }
    }

    /// Identities are only remembered here: they are checked once every file is read,
    /// since their planes and owners may be declared in other files.
    /// Client keys in files of their own: placed now, attached to their identity once
    /// every file is read (the identity may be declared in another file).
    pub(crate) fn client_keys(&mut self, items: Vec<ClientKeyDoc>, later: &mut Vec<PlacedKey>) {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for doc in items {
            let n = seen.entry(doc.key.kid.clone()).or_insert(0);
            let line = self.index.line_of("kid", &doc.key.kid, *n);
            *n += 1;
            later.push(PlacedKey {
                doc,
                file: self.cx.file.path.clone(),
                line,
            });
        }
    }

    pub(crate) fn identities(
        &mut self,
        desired: &mut Desired,
        items: Vec<IdentityDoc>,
        checked_later: &mut Vec<IdentityDoc>,
    ) {
        for doc in items {
            if self
                .remember(desired, K::Identity, "spiffe_id", doc.spiffe_id.as_str())
                .is_some()
            {
                checked_later.push(doc);
            }
        }
    }
}
