//! From files to a validated desired state.

use std::collections::BTreeMap;

use steward_model::{
    CapabilityId, Owner, Plane, PlaneId, PlaneTree, PolicyException, Settings, TransportMapping,
    TrustDomain, TrustedIssuer, validate_environment, validate_slug,
};

use crate::docs::{FileDoc, IdentityDoc};
use crate::identity_check::{IdentityRegistry, identity_problems};
use crate::locate::LineIndex;
use crate::{
    Desired, DesiredIdentity, Diagnostic, GovernanceError, PolicyFile, PolicyTest, SourceFile,
};

struct Ctx<'a> {
    diags: Vec<Diagnostic>,
    file: &'a SourceFile,
}

impl Ctx<'_> {
    fn err(&mut self, line: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.path.clone(),
            line,
            message: message.into(),
        });
    }
}

/// Parses and validates a repository against the control plane's trust domain.
pub fn parse(files: &[SourceFile], trust_domain: &TrustDomain) -> Result<Desired, GovernanceError> {
    let mut diags = Vec::new();
    let mut desired = Desired::default();
    let mut root_settings_at: Option<(String, usize)> = None;
    // Identity docs are checked after every file is read, since their planes and owners
    // may be declared in other files.
    let mut identity_docs: Vec<IdentityDoc> = Vec::new();

    for file in files {
        let mut cx = Ctx {
            diags: Vec::new(),
            file,
        };
        if file.path.ends_with(".cedar") {
            parse_policy(&mut cx, &mut desired);
            diags.append(&mut cx.diags);
            continue;
        }
        let doc: FileDoc = if file.content.trim().is_empty() {
            FileDoc::default()
        } else {
            match yaml_serde::from_str(&file.content) {
                Ok(doc) => doc,
                Err(e) => {
                    let line = e.location().map(|l| l.line()).unwrap_or(0);
                    cx.err(line, yaml_message(&e.to_string()));
                    diags.append(&mut cx.diags);
                    continue;
                }
            }
        };
        let index = LineIndex::new(&file.content);
        // How often each (kind, id) was seen in this file, to place duplicates.
        let mut seen_counts: BTreeMap<(crate::ObjectKind, String), usize> = BTreeMap::new();
        let mut remember = |cx: &mut Ctx<'_>,
                            desired: &mut Desired,
                            kind: crate::ObjectKind,
                            key: &str,
                            id: &str|
         -> bool {
            let n = seen_counts.entry((kind, id.to_owned())).or_insert(0);
            let line = index.line_of(key, id, *n);
            *n += 1;
            if let Some((f, l)) = desired.locations.get(&(kind, id.to_owned())) {
                let at = format!("{f}:{l}");
                cx.err(
                    line,
                    format!("{kind} `{id}` is declared twice (first at {at})"),
                );
                return false;
            }
            desired
                .locations
                .insert((kind, id.to_owned()), (cx.file.path.clone(), line));
            true
        };
        use crate::ObjectKind as K;

        if let Some(settings) = doc.settings {
            let line = index.settings_line();
            if let Some((f, l)) = &root_settings_at {
                cx.err(
                    line,
                    format!("central `settings` are declared twice (first at {f}:{l})"),
                );
            } else {
                check_settings(&mut cx, line, "central settings", &settings);
                root_settings_at = Some((file.path.clone(), line));
                desired.root_settings = settings;
            }
        }
        for p in doc.planes {
            if !remember(&mut cx, &mut desired, K::Plane, "id", p.id.as_str()) {
                continue;
            }
            let line = desired.locate(K::Plane, p.id.as_str()).1;
            if p.id.is_root() {
                cx.err(line, "the root plane is implicit: put central settings under the top-level `settings` key");
                continue;
            }
            check_settings(&mut cx, line, &format!("plane `{}`", p.id), &p.settings);
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
        for o in doc.owners {
            if !remember(&mut cx, &mut desired, K::Owner, "id", &o.id) {
                continue;
            }
            let line = desired.locate(K::Owner, &o.id).1;
            if let Err(e) = validate_slug("owner id", &o.id) {
                cx.err(line, e.to_string());
            }
            if !o.email.contains('@') {
                cx.err(
                    line,
                    format!(
                        "owner `{}`: email `{}` is not an email address",
                        o.id, o.email
                    ),
                );
            }
            if o.name.trim().is_empty() {
                cx.err(line, format!("owner `{}`: name must not be empty", o.id));
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
        for c in doc.capabilities {
            if !remember(&mut cx, &mut desired, K::Capability, "id", c.id.as_str()) {
                continue;
            }
            let line = desired.locate(K::Capability, c.id.as_str()).1;
            for m in &c.mappings {
                if let Err(e) = m.validate() {
                    cx.err(line, format!("capability `{}`: {e}", c.id));
                }
            }
            desired.capabilities.insert(c.id.clone(), c.into());
        }
        for i in doc.issuers {
            if !remember(&mut cx, &mut desired, K::Issuer, "id", &i.id) {
                continue;
            }
            let line = desired.locate(K::Issuer, &i.id).1;
            if let Err(e) = validate_slug("issuer id", &i.id) {
                cx.err(line, e.to_string());
            }
            if !(i.issuer.starts_with("https://")
                || i.issuer.starts_with("http://")
                || i.issuer.starts_with("spiffe://"))
            {
                cx.err(line, format!("issuer `{}`: `issuer` must be the exact `iss` URL (https://…) or a SPIFFE trust domain (spiffe://…)", i.id));
            }
            match (&i.jwks_uri, &i.jwks) {
                (Some(_), Some(_)) => cx.err(
                    line,
                    format!(
                        "issuer `{}`: give either `jwks_uri` or inline `jwks`, not both",
                        i.id
                    ),
                ),
                (None, None) => cx.err(
                    line,
                    format!(
                        "issuer `{}`: keys are required: give `jwks_uri` or inline `jwks`",
                        i.id
                    ),
                ),
                _ => {}
            }
            if i.audience.trim().is_empty() {
                cx.err(
                    line,
                    format!("issuer `{}`: `audience` must not be empty", i.id),
                );
            }
            for problem in issuer_problems(&i.jwks_uri, &i.jwks, &i.claim_mapping) {
                cx.err(line, format!("issuer `{}`: {problem}", i.id));
            }
            if i.allowed_subjects.is_empty() {
                cx.err(
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
        for a in doc.request_context {
            if !remember(&mut cx, &mut desired, K::ContextAttribute, "name", &a.name) {
                continue;
            }
            let line = desired.locate(K::ContextAttribute, &a.name).1;
            if let Some(problem) = context_name_problem(&a.name) {
                cx.err(line, format!("request_context `{}`: {problem}", a.name));
            }
            desired.context_attributes.insert(a.name.clone(), a);
        }
        for e in doc.exceptions {
            if !remember(&mut cx, &mut desired, K::Exception, "id", &e.id) {
                continue;
            }
            let line = desired.locate(K::Exception, &e.id).1;
            if let Err(err) = validate_slug("exception id", &e.id) {
                cx.err(line, err.to_string());
            }
            for (key, value) in [("reason", &e.reason), ("ticket", &e.ticket)] {
                if value.trim().is_empty() {
                    cx.err(line, format!("exception `{}`: `{key}` must not be empty: an auditor must be able to see why it was granted", e.id));
                }
            }
            if e.lifts.is_empty() {
                cx.err(
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
                None => cx.err(line, format!("exception `{}`: `expires_at` must be an RFC 3339 time such as 2026-12-01T00:00:00Z, not `{}`", e.id, e.expires_at)),
            }
        }
        for w in doc.workflows {
            if !remember(&mut cx, &mut desired, K::Workflow, "id", &w.id) {
                continue;
            }
            let line = desired.locate(K::Workflow, &w.id).1;
            if let Err(err) = validate_slug("workflow id", &w.id) {
                cx.err(line, err.to_string());
            }
            if w.requesters.is_empty() || w.scope.is_empty() {
                cx.err(
                    line,
                    format!(
                        "workflow `{}`: `requesters` and `scope` must each list at least one entry",
                        w.id
                    ),
                );
            }
            if w.max_ttl_secs == 0 {
                cx.err(
                    line,
                    format!("workflow `{}`: `max_ttl_secs` must be at least 1", w.id),
                );
            }
            desired.workflows.insert(w.id.clone(), w);
        }
        let mut names_seen: BTreeMap<String, usize> = BTreeMap::new();
        for t in doc.policy_tests {
            let nth = names_seen.entry(t.name.clone()).or_insert(0);
            let line = index.line_of("name", &t.name, *nth);
            *nth += 1;
            let at = match t.at.as_deref().map(steward_model::timestamp::parse) {
                None => None,
                Some(Some(at)) => Some(at),
                Some(None) => {
                    cx.err(
                        line,
                        format!("policy test `{}`: `at` must be an RFC 3339 time", t.name),
                    );
                    continue;
                }
            };
            desired.policy_tests.push(PolicyTest {
                name: t.name,
                file: file.path.clone(),
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
        for doc in doc.identities {
            if remember(
                &mut cx,
                &mut desired,
                K::Identity,
                "spiffe_id",
                doc.spiffe_id.as_str(),
            ) {
                identity_docs.push(doc);
            }
        }
        diags.append(&mut cx.diags);
    }

    // Cross-references are checked only once every file parses: a capability lost to a
    // syntax error would otherwise show up again as every reference to it.
    if diags.is_empty() {
        check_references(&mut desired, identity_docs, trust_domain, &mut diags);
    }

    if diags.is_empty() {
        Ok(desired)
    } else {
        diags.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
        Err(GovernanceError::Invalid(diags))
    }
}

/// Names the request carries whatever the repository says; a declared attribute must not
/// shadow them and must be a Cedar identifier.
pub const RESERVED_CONTEXT: [&str; 7] = [
    "environment",
    "data_class",
    "time",
    "delegation_chain",
    "task_scope",
    "exceptions",
    "model_tier",
];

fn context_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ident || name.len() > 64 {
        return Some(
            "the name must be a lowercase identifier (a-z, 0-9, _), at most 64 characters".into(),
        );
    }
    if RESERVED_CONTEXT.contains(&name) {
        return Some(format!(
            "`{name}` is a standard context attribute; it is always present and cannot be redeclared"
        ));
    }
    None
}

/// Rewords serde's messages to name the document's own terms.
fn yaml_message(raw: &str) -> String {
    // yaml_serde appends " at line L column C"; the diagnostic carries the line already.
    let msg = raw.split(" at line ").next().unwrap_or(raw);
    msg.replace("unknown field", "unknown key")
        .replace("missing field", "missing required key")
}

fn check_settings(cx: &mut Ctx<'_>, line: usize, whose: &str, s: &Settings) {
    if s.max_token_ttl_secs == Some(0) {
        cx.err(
            line,
            format!("{whose}: `max_token_ttl_secs` must be greater than 0"),
        );
    }
    for env in s.environments.iter().flatten() {
        if let Err(e) = validate_environment(env) {
            cx.err(line, format!("{whose}: {e}"));
        }
    }
}

fn parse_policy(cx: &mut Ctx<'_>, desired: &mut Desired) {
    let path = cx.file.path.clone();
    let parts: Vec<&str> = path.split('/').collect();
    let plane = match parts.as_slice() {
        ["policies", _file] => Ok(PlaneId::root()),
        ["policies", plane, _file] => PlaneId::new(*plane).map_err(|e| e.to_string()),
        _ => Err("policies live in `policies/` (central guardrails) or `policies/<plane>/` (plane policy)".to_owned()),
    };
    match plane {
        Ok(plane) => {
            if cx.file.content.trim().is_empty() {
                cx.err(0, "policy file is empty");
                return;
            }
            desired.policies.insert(
                path.clone(),
                PolicyFile {
                    path,
                    plane,
                    text: cx.file.content.clone(),
                },
            );
        }
        Err(e) => cx.err(0, e),
    }
}

/// Checks every cross-reference once all files are read.
fn check_references(
    desired: &mut Desired,
    identity_docs: Vec<IdentityDoc>,
    trust_domain: &TrustDomain,
    diags: &mut Vec<Diagnostic>,
) {
    use crate::ObjectKind as K;

    // Plane tree: parents exist, no cycles, settings only tighten. Only planes whose
    // ancestry reaches the root get effective settings (and are checked against them).
    let tree = PlaneTree::new(&desired.planes);
    let mut effective: BTreeMap<PlaneId, Settings> = BTreeMap::new();
    effective.insert(PlaneId::root(), desired.root_settings.clone());
    for plane in desired.planes.values() {
        let parent = tree.parent(&plane.id).unwrap_or_else(PlaneId::root);
        if !tree.contains(&parent) {
            at(
                diags,
                desired,
                K::Plane,
                plane.id.as_str(),
                format!(
                    "plane `{}`: parent plane `{parent}` is not declared",
                    plane.id
                ),
            );
        } else if tree.on_cycle(&plane.id) {
            at(
                diags,
                desired,
                K::Plane,
                plane.id.as_str(),
                format!("plane `{}` is part of a parent cycle", plane.id),
            );
        }
        if !tree.reaches_root(&plane.id) {
            continue;
        }
        let inherited = tree.effective_settings(&desired.root_settings, &parent);
        for l in plane.settings.loosenings(&inherited) {
            at(
                diags,
                desired,
                K::Plane,
                plane.id.as_str(),
                format!(
                    "plane `{}` loosens inherited setting `{}`: inherited {}, declared {} (a plane may only tighten)",
                    plane.id, l.setting, l.inherited, l.declared
                ),
            );
        }
        effective.insert(plane.id.clone(), plane.settings.inherit(&inherited));
    }

    let plane_known = |p: &PlaneId| p.is_root() || desired.planes.contains_key(p);
    for c in desired.capabilities.values() {
        if !plane_known(&c.plane) {
            at(
                diags,
                desired,
                K::Capability,
                c.id.as_str(),
                format!("capability `{}`: plane `{}` is not declared", c.id, c.plane),
            );
        }
    }
    // One transport address must name one capability, or enforcement would be ambiguous.
    let mut addresses: BTreeMap<String, &CapabilityId> = BTreeMap::new();
    for c in desired.capabilities.values() {
        for m in &c.mappings {
            let key = mapping_key(m);
            if let Some(other) = addresses.get(&key) {
                if *other != &c.id {
                    at(
                        diags,
                        desired,
                        K::Capability,
                        c.id.as_str(),
                        format!(
                            "capability `{}`: `{m}` is already mapped to capability `{other}`",
                            c.id
                        ),
                    );
                }
            } else {
                addresses.insert(key, &c.id);
            }
        }
    }
    for i in desired.issuers.values() {
        if !plane_known(&i.plane) {
            at(
                diags,
                desired,
                K::Issuer,
                &i.id,
                format!("issuer `{}`: plane `{}` is not declared", i.id, i.plane),
            );
        }
    }
    for p in desired.policies.values() {
        if !plane_known(&p.plane) {
            diags.push(Diagnostic {
                file: p.path.clone(),
                line: 0,
                message: format!(
                    "policy directory names plane `{}`, which is not declared",
                    p.plane
                ),
            });
        }
    }

    for e in desired.exceptions.values() {
        let mut problems = Vec::new();
        if !e.principal.is_in(trust_domain) {
            problems.push(format!(
                "principal `{}` is outside the trust domain `{trust_domain}`",
                e.principal
            ));
        }
        if !desired.owners.contains_key(&e.owner) {
            problems.push(format!("owner `{}` is not declared", e.owner));
        }
        if !desired.capabilities.contains_key(&e.capability) {
            problems.push(format!(
                "capability `{}` is not in the catalog",
                e.capability
            ));
        }
        let (file, line) = desired.locate(K::Exception, &e.id);
        for p in problems {
            diags.push(Diagnostic {
                file: file.clone(),
                line,
                message: format!("exception `{}`: {p}", e.id),
            });
        }
    }

    for w in desired.workflows.values() {
        let mut problems = Vec::new();
        match effective.get(&w.plane) {
            None => problems.push(format!("plane `{}` is not declared", w.plane)),
            Some(settings) => {
                if let Some(max) = settings.max_token_ttl_secs
                    && w.max_ttl_secs > max
                {
                    problems.push(format!(
                        "`max_ttl_secs` {} is longer than plane `{}` allows for any token ({max})",
                        w.max_ttl_secs, w.plane
                    ));
                }
            }
        }
        for r in &w.requesters {
            if !r.is_in(trust_domain) {
                problems.push(format!(
                    "requester `{r}` is outside the trust domain `{trust_domain}`"
                ));
            }
        }
        for c in &w.scope {
            if !desired.capabilities.contains_key(c) {
                problems.push(format!("capability `{c}` is not in the catalog"));
            }
        }
        let (file, line) = desired.locate(K::Workflow, &w.id);
        for p in problems {
            diags.push(Diagnostic {
                file: file.clone(),
                line,
                message: format!("workflow `{}`: {p}", w.id),
            });
        }
    }

    // A repository written for another trust domain fails on every identity: say once
    // which domain it is written for, and how to serve it.
    let outside: Vec<&str> = identity_docs
        .iter()
        .filter(|d| !d.spiffe_id.is_in(trust_domain))
        .map(|d| d.spiffe_id.trust_domain())
        .collect();
    if !identity_docs.is_empty() && outside.len() == identity_docs.len() {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &outside {
            *counts.entry(d).or_default() += 1;
        }
        if let Some((theirs, _)) = counts.iter().max_by_key(|(_, n)| **n) {
            diags.push(Diagnostic {
                file: "(repository)".into(),
                line: 0,
                message: format!(
                    "every identity is outside the trust domain `{trust_domain}`: the repository is written for `{theirs}`. Serve that trust domain (`steward serve --trust-domain {theirs}`, or `trust_domain` in steward.toml, before the first apply), or pass `--trust-domain {theirs}` to offline commands"
                ),
            });
        }
    }

    let registry = RepositoryRegistry {
        trust_domain,
        desired,
        effective: &effective,
    };
    let mut checked = Vec::with_capacity(identity_docs.len());
    for doc in identity_docs {
        let mut intended = doc.intended;
        intended.sort();
        let identity = DesiredIdentity {
            spiffe_id: doc.spiffe_id,
            plane: doc.plane,
            owner: doc.owner,
            environment: doc.environment,
            kind: doc.kind,
            classification: doc.classification,
            description: doc.description,
            labels: doc.labels,
            state: doc.state,
            intended,
            credentials: doc.credentials,
        };
        let id = identity.spiffe_id.to_string();
        for p in identity_problems(&identity, &registry) {
            at(
                diags,
                desired,
                K::Identity,
                &id,
                format!("identity `{id}`: {p}"),
            );
        }
        checked.push(identity);
    }
    for identity in checked {
        desired
            .identities
            .insert(identity.spiffe_id.clone(), identity);
    }
}

/// The registry a repository declares, for [`identity_problems`].
struct RepositoryRegistry<'a> {
    trust_domain: &'a TrustDomain,
    desired: &'a Desired,
    /// Effective settings of the planes that resolved (not those on a cycle).
    effective: &'a BTreeMap<PlaneId, Settings>,
}

impl IdentityRegistry for RepositoryRegistry<'_> {
    fn trust_domain(&self) -> &TrustDomain {
        self.trust_domain
    }
    fn plane_declared(&self, plane: &PlaneId) -> bool {
        plane.is_root() || self.desired.planes.contains_key(plane)
    }
    fn owner_declared(&self, owner: &str) -> bool {
        self.desired.owners.contains_key(owner)
    }
    fn capability_declared(&self, capability: &CapabilityId) -> bool {
        self.desired.capabilities.contains_key(capability)
    }
    fn allowed_environments(&self, plane: &PlaneId) -> Option<Vec<String>> {
        self.effective.get(plane)?.environments.clone()
    }
}

fn at(
    diags: &mut Vec<Diagnostic>,
    desired: &Desired,
    kind: crate::ObjectKind,
    id: &str,
    message: String,
) {
    let (file, line) = desired.locate(kind, id);
    diags.push(Diagnostic {
        file,
        line,
        message,
    });
}

/// A normalised form of a transport address for duplicate detection.
fn mapping_key(m: &TransportMapping) -> String {
    match m {
        TransportMapping::Http(h) => format!("http {} {}", h.method, h.path),
        TransportMapping::Grpc(g) => format!("grpc {}/{}", g.service, g.method),
        TransportMapping::Amqp(a) => format!(
            "amqp {} {} {} {}",
            a.vhost,
            a.exchange,
            a.routing_key,
            m.action()
        ),
        TransportMapping::Queue { name, .. } => format!("queue {name} {}", m.action()),
        TransportMapping::Tool { name, .. } => format!("tool {name}"),
    }
}

/// Problems with an identity's registered keys: each must be a usable P-256 key with a
/// unique `kid`, so a bad key is refused at `validate` time with its file and line rather
/// than at the first token request.
pub fn credential_problems(c: &steward_model::Credentials) -> Vec<String> {
    let mut out = Vec::new();
    let mut kids = std::collections::BTreeSet::new();
    for k in &c.public_keys {
        if !kids.insert(k.kid.as_str()) {
            out.push(format!("public key `{}` is listed twice", k.kid));
        }
        if let Err(e) = steward_token::client_public_key(k) {
            out.push(format!("public key `{}`: {e}", k.kid));
        }
    }
    for t in &c.tls_certificates {
        let ok = t.len() == 43
            && t.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !ok {
            out.push(format!(
                "TLS certificate `{t}` is not a SHA-256 thumbprint (43 base64url characters, as `openssl x509 -outform der | openssl dgst -sha256 -binary | basenc --base64url` prints without `=`)"
            ));
        }
    }
    if c.token_ttl_secs == Some(0) {
        out.push("`credentials.token_ttl_secs` must be at least 1".into());
    }
    out
}

/// Keys and claim mapping of a trusted issuer: inline keys must parse (EC P-256 or RSA
/// ≥ 2048), a key URL must be https (plain http only on loopback, for tests), and the
/// mapping must say which identity a token maps to, using only known keys.
fn issuer_problems(
    jwks_uri: &Option<String>,
    jwks: &Option<serde_json::Value>,
    mapping: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(doc) = jwks
        && let Err(e) = steward_token::ForeignKeySet::from_jwks(doc)
    {
        out.push(format!("`jwks`: {e}"));
    }
    if let Some(uri) = jwks_uri {
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| uri.starts_with(p));
        if !uri.starts_with("https://") && !loopback {
            out.push(format!(
                "`jwks_uri` `{uri}` must be https:// (keys fetched in the clear could be swapped)"
            ));
        }
    }
    match mapping.get("identity") {
        Some(serde_json::Value::String(t)) if t.starts_with("spiffe://") => {}
        _ => out.push(
            "`claim_mapping.identity` must be a SPIFFE ID template such as `spiffe://<domain>/ns/{claim}`".into(),
        ),
    }
    for (key, value) in mapping {
        if !FEDERATION_MAPPING_KEYS.contains(&key.as_str()) {
            out.push(format!(
                "`claim_mapping.{key}` is not one of {}",
                FEDERATION_MAPPING_KEYS.join(", ")
            ));
        } else if !value.is_string() {
            out.push(format!("`claim_mapping.{key}` must be a string"));
        }
    }
    out
}

/// What a trusted issuer's claims may be mapped onto.
pub const FEDERATION_MAPPING_KEYS: &[&str] =
    &["identity", "environment", "model_tier", "task_scope"];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a file holds, parsing answers with a value or diagnostics, never a panic.
        #[test]
        fn never_panics_on_arbitrary_text(content in ".{0,400}") {
            let files = vec![SourceFile { path: "x.yaml".into(), content }];
            let _ = parse(&files, &TrustDomain::new("acme.example").unwrap());
        }

        /// Structured junk that gets past the YAML scanner exercises the semantic checks.
        #[test]
        fn never_panics_on_yaml_shaped_junk(
            keys in proptest::collection::vec(proptest::sample::select(vec!["planes", "owners", "identities", "capabilities", "issuers", "settings", "id", "spiffe_id", "plane", "parent", "mappings", "http"]), 1..8),
            values in proptest::collection::vec(proptest::sample::select(vec!["x", "[]", "{}", "root", "spiffe://acme.example/a", "[{id: a, parent: a}]", "[{id: a}, {id: a}]", "null", "1"]), 1..8),
        ) {
            let content: String = keys.iter().zip(values.iter().cycle()).map(|(k, v)| format!("{k}: {v}\n")).collect();
            let files = vec![SourceFile { path: "x.yaml".into(), content }];
            let _ = parse(&files, &TrustDomain::new("acme.example").unwrap());
        }
    }
}
