//! From files to a validated desired state.

use std::collections::BTreeMap;

use steward_model::{
    CapabilityId, Classification, ContextSource, PlaneId, PlaneTree, Settings, TransportMapping,
    TrustDomain, validate_environment,
};

use crate::docs::{FileDoc, IdentityDoc};
use crate::identity_check::{IdentityRegistry, OwnerStanding, identity_problems};
use crate::lower::{Lowering, PlacedKey};
use crate::{Desired, DesiredIdentity, Diagnostic, GovernanceError, PolicyFile, SourceFile};

/// One file's diagnostics as they are found.
pub(crate) struct Ctx<'a> {
    pub diags: Vec<Diagnostic>,
    pub file: &'a SourceFile,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, line: usize, message: impl Into<String>) {
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
    let mut client_keys: Vec<PlacedKey> = Vec::new();

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
        let mut lower = Lowering::new(cx, &file.content);
        if let Some(settings) = doc.settings {
            lower.settings(&mut desired, &mut root_settings_at, settings);
        }
        lower.planes(&mut desired, doc.planes);
        lower.owners(&mut desired, doc.owners);
        lower.capabilities(&mut desired, doc.capabilities);
        lower.issuers(&mut desired, doc.issuers);
        lower.request_context(&mut desired, doc.request_context);
        lower.exceptions(&mut desired, doc.exceptions);
        lower.workflows(&mut desired, doc.workflows);
        lower.policy_tests(&mut desired, doc.policy_tests);
        lower.identities(&mut desired, doc.identities, &mut identity_docs);
        lower.client_keys(doc.client_keys, &mut client_keys);
        diags.append(&mut lower.cx.diags);
    }

    // Cross-references are checked only once every file parses: a capability lost to a
    // syntax error would otherwise show up again as every reference to it.
    if diags.is_empty() {
        attach_client_keys(&mut identity_docs, client_keys, &mut diags);
        check_references(&mut desired, identity_docs, trust_domain, &mut diags);
    }

    if diags.is_empty() {
        Ok(desired)
    } else {
        diags.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
        Err(GovernanceError::Invalid(diags))
    }
}

/// Moves each `client_keys` entry under its identity's `credentials.public_keys`, where
/// the identity checks see it like any other key (a repeated `kid` included). A key for an
/// identity the repository does not declare is an error at the key's line.
fn attach_client_keys(
    identity_docs: &mut [IdentityDoc],
    keys: Vec<PlacedKey>,
    diags: &mut Vec<Diagnostic>,
) {
    let index: BTreeMap<String, usize> = identity_docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.spiffe_id.to_string(), i))
        .collect();
    for placed in keys {
        let id = placed.doc.identity.to_string();
        match index.get(&id).and_then(|&i| identity_docs.get_mut(i)) {
            Some(doc) => doc.credentials.public_keys.push(placed.doc.key),
            None => diags.push(Diagnostic {
                file: placed.file,
                line: placed.line,
                message: format!(
                    "client key `{}` is for identity `{id}`, which the repository does not declare (declare it under `identities`, or fix the SPIFFE ID)",
                    placed.doc.key.kid
                ),
            }),
        }
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

pub(crate) fn context_name_problem(name: &str) -> Option<String> {
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

/// Headers a declared attribute may not be read from: credentials and proofs, what
/// proxies and Steward itself set, and transport framing.
const RESERVED_HEADERS: [&str; 14] = [
    "authorization",
    "proxy-authorization",
    "dpop",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-forwarded-client-cert",
    "traceparent",
    "tracestate",
    "steward-publisher",
];

/// What is wrong with where an attribute is read from, if anything.
pub(crate) fn context_source_problem(source: &ContextSource) -> Option<String> {
    match source {
        ContextSource::Header(h) => {
            let token = !h.is_empty()
                && h.len() <= 64
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !token {
                return Some(format!(
                    "source header `{h}`: write the header name in lowercase (a-z, 0-9, -), at most 64 characters"
                ));
            }
            if RESERVED_HEADERS.contains(&h.as_str())
                || h.starts_with("x-steward-")
                || h.starts_with("grpc-")
            {
                return Some(format!(
                    "source header `{h}` is reserved: it carries a credential, a proof or transport framing, or Steward sets it"
                ));
            }
            None
        }
        ContextSource::TokenClaim(n) | ContextSource::MessageHeader(n) => {
            let ident = !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            (!ident).then(|| {
                format!(
                    "source {}: the name must be lowercase (a-z, 0-9, _, -), at most 64 characters",
                    source.describe()
                )
            })
        }
        ContextSource::ToolArgument(a) => {
            let ident = !a.is_empty()
                && a.len() <= 64
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            (!ident).then(|| {
                format!(
                    "source {}: name a top-level argument (letters, digits, _, -), at most 64 characters",
                    source.describe()
                )
            })
        }
    }
}

/// Rewords serde's messages to name the document's own terms.
fn yaml_message(raw: &str) -> String {
    // yaml_serde appends " at line L column C"; the diagnostic carries the line already.
    let msg = raw.split(" at line ").next().unwrap_or(raw);
    msg.replace("unknown field", "unknown key")
        .replace("missing field", "missing required key")
}

pub(crate) fn check_settings(cx: &mut Ctx<'_>, line: usize, whose: &str, s: &Settings) {
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

/// The checks that need every file read: references between objects, the plane tree,
/// and the identities against the registry the repository declares.
fn check_references(
    desired: &mut Desired,
    identity_docs: Vec<IdentityDoc>,
    trust_domain: &TrustDomain,
    diags: &mut Vec<Diagnostic>,
) {
    let effective = check_plane_tree(desired, diags);
    check_catalog(desired, diags);
    check_exceptions(desired, trust_domain, diags);
    check_workflows(desired, &effective, trust_domain, diags);
    diags.extend(foreign_trust_domain(&identity_docs, trust_domain));
    check_identities(desired, identity_docs, &effective, trust_domain, diags);
}

/// Parents exist, no cycles, settings only tighten. Returns the effective settings of
/// the planes whose ancestry reaches the root (only those are checked against them).
fn check_plane_tree(desired: &Desired, diags: &mut Vec<Diagnostic>) -> BTreeMap<PlaneId, Settings> {
    use crate::ObjectKind as K;
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

    effective
}

/// Capabilities, issuers and policy directories name declared planes; one transport
/// address names one capability.
/// Why `value` cannot be fixed as context attribute `name` of a capability, if it cannot:
/// only `data_class` (a classification) and declared attributes (of their type) may be.
fn fixed_context_problem(
    desired: &Desired,
    name: &str,
    value: &serde_json::Value,
) -> Option<String> {
    if name == "data_class" {
        let known = value.as_str().and_then(Classification::parse).is_some();
        return (!known)
            .then(|| "must be one of public, internal, confidential, restricted".to_owned());
    }
    match desired.context_attributes.get(name) {
        None if RESERVED_CONTEXT.contains(&name) => Some(format!(
            "`{name}` is set by the request itself; only `data_class` and declared attributes can be fixed per capability"
        )),
        None => Some(format!(
            "`{name}` is not a declared request_context attribute (declare it under `request_context`)"
        )),
        Some(attr) if !attr.kind.admits(value) => {
            Some(format!("must be a {}, as its declaration says", attr.kind))
        }
        Some(_) => None,
    }
}

fn check_catalog(desired: &Desired, diags: &mut Vec<Diagnostic>) {
    use crate::ObjectKind as K;
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
    // A value fixed per capability names an attribute requests carry, of its type.
    for c in desired.capabilities.values() {
        for (name, value) in &c.context {
            if let Some(problem) = fixed_context_problem(desired, name, value) {
                at(
                    diags,
                    desired,
                    K::Capability,
                    c.id.as_str(),
                    format!("capability `{}`: context `{name}`: {problem}", c.id),
                );
            }
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
}

/// Exceptions name a principal in the trust domain, a declared owner, a cataloged capability.
fn check_exceptions(desired: &Desired, trust_domain: &TrustDomain, diags: &mut Vec<Diagnostic>) {
    use crate::ObjectKind as K;
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
}

/// Workflows live in a plane whose token lifetime they respect, name requesters in the
/// trust domain and cataloged capabilities.
fn check_workflows(
    desired: &Desired,
    effective: &BTreeMap<PlaneId, Settings>,
    trust_domain: &TrustDomain,
    diags: &mut Vec<Diagnostic>,
) {
    use crate::ObjectKind as K;
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
}

/// A repository written for another trust domain fails on every identity: one
/// diagnostic says which domain it is written for, and how to serve it.
fn foreign_trust_domain(
    identity_docs: &[IdentityDoc],
    trust_domain: &TrustDomain,
) -> Option<Diagnostic> {
    let outside: Vec<&str> = identity_docs
        .iter()
        .filter(|d| !d.spiffe_id.is_in(trust_domain))
        .map(|d| d.spiffe_id.trust_domain())
        .collect();
    if identity_docs.is_empty() || outside.len() < identity_docs.len() {
        return None;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &outside {
        *counts.entry(d).or_default() += 1;
    }
    let (theirs, _) = counts.iter().max_by_key(|(_, n)| **n)?;
    Some(Diagnostic {
        file: "(repository)".into(),
        line: 0,
        message: format!(
            "every identity is outside the trust domain `{trust_domain}`: the repository is written for `{theirs}`. Serve that trust domain (`steward serve --trust-domain {theirs}`, or `trust_domain` in steward.toml, before the first apply), or pass `--trust-domain {theirs}` to offline commands"
        ),
    })
}

/// Each identity against the registry the repository declares; all of them are kept
/// (with their problems reported), so the plan can still place later errors.
fn check_identities(
    desired: &mut Desired,
    identity_docs: Vec<IdentityDoc>,
    effective: &BTreeMap<PlaneId, Settings>,
    trust_domain: &TrustDomain,
    diags: &mut Vec<Diagnostic>,
) {
    use crate::ObjectKind as K;
    let registry = RepositoryRegistry {
        trust_domain,
        desired,
        effective,
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
    point_name_conflicts(desired, diags);
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
    fn owner(&self, owner: &str) -> OwnerStanding {
        if self.desired.owners.contains_key(owner) {
            OwnerStanding::Current
        } else {
            OwnerStanding::Unknown
        }
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
        TransportMapping::Mcp(mcp) => match mcp.item() {
            Some((kind, name)) => format!("mcp {} {kind} {name}", mcp.server),
            None => format!("mcp {} ?", mcp.server),
        },
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
    if let Some(grant) = &c.enforcement_point {
        out.extend(point_grant_problems(c, grant));
    }
    out
}

/// An enforcement point grant: at least one role, each once; point names for the roles
/// that speak for points; and a way to get the tokens it would use.
fn point_grant_problems(
    c: &steward_model::Credentials,
    grant: &steward_model::PointGrant,
) -> Vec<String> {
    use steward_model::PointRole;
    let mut out = Vec::new();
    if grant.roles.is_empty() {
        out.push(
            "`credentials.enforcement_point.roles` lists none of `bundle`, `report`, `decide`"
                .into(),
        );
    }
    let mut roles = std::collections::BTreeSet::new();
    for r in &grant.roles {
        if !roles.insert(*r) {
            out.push(format!(
                "`credentials.enforcement_point.roles` lists `{r}` twice"
            ));
        }
    }
    let needs_points = grant.has(PointRole::Bundle) || grant.has(PointRole::Report);
    if needs_points && grant.points.is_empty() {
        out.push("`credentials.enforcement_point.points` must name the points it speaks for (a gateway's `name`) to fetch the bundle or report".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for p in &grant.points {
        if p.is_empty() || p.len() > 128 || p.chars().any(|ch| ch.is_control() || ch == ':') {
            out.push(format!(
                "point name `{p}` must be 1 to 128 characters without `:` or control characters (a gateway's `name`)"
            ));
        } else if !names.insert(p.as_str()) {
            out.push(format!("point name `{p}` is listed twice"));
        }
    }
    if c.public_keys.is_empty() && c.tls_certificates.is_empty() {
        out.push("an enforcement point identity needs a registered key (`steward identity key create`) or client certificate to get its tokens".into());
    }
    out
}

/// Each point name is spoken for by one identity at most: otherwise two identities could
/// acknowledge revocations for the same point.
fn point_name_conflicts(desired: &Desired, diags: &mut Vec<Diagnostic>) {
    let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for identity in desired.identities.values() {
        let Some(grant) = &identity.credentials.enforcement_point else {
            continue;
        };
        let id = identity.spiffe_id.as_str();
        for name in &grant.points {
            match claimed.get(name.as_str()) {
                Some(first) if *first != id => conflicts.push((
                    id.to_owned(),
                    format!(
                        "identity `{id}`: point name `{name}` is already spoken for by `{first}`; a point has one identity"
                    ),
                )),
                _ => {
                    claimed.insert(name, id);
                }
            }
        }
    }
    for (id, message) in conflicts {
        at(diags, desired, crate::ObjectKind::Identity, &id, message);
    }
}

/// Keys and claim mapping of a trusted issuer: inline keys must parse (EC P-256 or RSA
/// ≥ 2048), a key URL must be https (plain http only on loopback, for tests), and the
/// mapping must say which identity a token maps to, using only known keys.
pub(crate) fn issuer_problems(
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
        if key == "context" {
            out.extend(context_mapping_problems(value));
        } else if !FEDERATION_MAPPING_KEYS.contains(&key.as_str()) {
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

/// What a trusted issuer's claims may be mapped onto (besides `context`, a map).
pub const FEDERATION_MAPPING_KEYS: &[&str] =
    &["identity", "environment", "model_tier", "task_scope"];

/// `claim_mapping.context` maps members of the issued token's `ctx` claim (what a
/// `token_claim` source reads) onto the external token's claims: `{human_approved: approved}`.
fn context_mapping_problems(value: &serde_json::Value) -> Vec<String> {
    let Some(map) = value.as_object() else {
        return vec!["`claim_mapping.context` must map `ctx` members onto the external token's claim names, e.g. `{human_approved: approved}`".into()];
    };
    map.iter()
        .filter_map(|(member, claim)| {
            let source = ContextSource::TokenClaim(member.clone());
            if let Some(problem) = context_source_problem(&source) {
                return Some(format!("`claim_mapping.context`: {problem}"));
            }
            let plain = claim
                .as_str()
                .is_some_and(|c| !c.is_empty() && !c.contains(['{', '}']));
            (!plain).then(|| {
                format!(
                    "`claim_mapping.context.{member}` must name one claim of the external token"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a file holds, parsing answers with a value or diagnostics placed in
        /// that file (or the repository), never a panic — and the same answer each time.
        #[test]
        fn arbitrary_text_gets_a_placed_and_stable_answer(content in ".{0,400}") {
            let files = vec![SourceFile { path: "x.yaml".into(), content }];
            let td = TrustDomain::new("acme.example").unwrap();
            stable_and_placed(&files, &td)?;
        }

        /// Structured junk that gets past the YAML scanner exercises the semantic checks.
        #[test]
        fn yaml_shaped_junk_gets_a_placed_and_stable_answer(
            keys in proptest::collection::vec(proptest::sample::select(vec!["planes", "owners", "identities", "capabilities", "issuers", "settings", "id", "spiffe_id", "plane", "parent", "mappings", "http"]), 1..8),
            values in proptest::collection::vec(proptest::sample::select(vec!["x", "[]", "{}", "root", "spiffe://acme.example/a", "[{id: a, parent: a}]", "[{id: a}, {id: a}]", "null", "1"]), 1..8),
        ) {
            let content: String = keys.iter().zip(values.iter().cycle()).map(|(k, v)| format!("{k}: {v}\n")).collect();
            let files = vec![SourceFile { path: "x.yaml".into(), content }];
            stable_and_placed(&files, &TrustDomain::new("acme.example").unwrap())?;
        }
    }

    /// Parsing twice gives the same digest or the same diagnostics, each placed in the
    /// file or the repository and saying something.
    fn stable_and_placed(files: &[SourceFile], td: &TrustDomain) -> Result<(), TestCaseError> {
        match (parse(files, td), parse(files, td)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.digest(), b.digest()),
            (Err(GovernanceError::Invalid(a)), Err(GovernanceError::Invalid(b))) => {
                prop_assert!(!a.is_empty());
                for d in &a {
                    prop_assert!(d.file == "x.yaml" || d.file == "(repository)", "{d}");
                    prop_assert!(!d.message.trim().is_empty());
                }
                prop_assert_eq!(a, b);
            }
            (a, b) => prop_assert!(false, "two answers: {a:?} / {b:?}"),
        }
        Ok(())
    }
}
