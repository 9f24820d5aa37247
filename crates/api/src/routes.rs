//! The route table: every (method, path) the control plane serves, who may call it and
//! how large its body may be. The server's router is built from it, the client's methods
//! name their route by it, and the tests check the OpenAPI document and the credential
//! requirement against it: a route exists in one place.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    /// The method as HTTP spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Anyone: health, discovery documents relying parties fetch, the console's files
    /// (the console then calls the API with a credential).
    Public,
    /// An admin credential (`Authorization: Bearer stw_…`); the handler checks the role.
    Credential,
    /// An OAuth client authenticating itself in the request (RFC 6749 §2.3); errors are
    /// RFC 6749 bodies. The introspection endpoint also takes an admin credential there.
    OAuthClient,
}

/// Which body-size limit applies to a route (exhaustive: the server maps each to a size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyLimit {
    /// The admin limit (`max_body_bytes`).
    Standard,
    /// A whole governance repository (`max_apply_bytes`).
    Repository,
    /// A full batch of ingested or enforcement decision records.
    Ingest,
    /// An OAuth token or introspection request (small; larger is refused with an OAuth
    /// error).
    TokenRequest,
}

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub id: RouteId,
    pub method: Method,
    /// The path as the router spells it, with `{name}` for each parameter segment.
    pub path: &'static str,
    pub access: Access,
    pub body: BodyLimit,
}

/// Characters escaped in a path segment: everything but unreserved ones (SPIFFE IDs
/// contain `/` and `:`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Route {
    /// The path with each `{name}` segment replaced, in order, by the next of `params`,
    /// percent-encoded. Missing parameters stay as written (the server then answers 404).
    pub fn path_with(&self, params: &[&str]) -> String {
        let mut params = params.iter();
        self.path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{')
                    && segment.ends_with('}')
                    && let Some(value) = params.next()
                {
                    utf8_percent_encode(value, SEGMENT).to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether the path has parameter segments.
    pub fn has_params(&self) -> bool {
        self.path.contains('{')
    }
}

/// Declares [`RouteId`] and [`ROUTES`] from one list, so a route cannot have an id
/// without a table entry or the reverse.
macro_rules! routes {
    ($( $(#[$doc:meta])* $id:ident = $method:ident $path:literal, $access:ident, $body:ident; )*) => {
        /// Names one route of [`ROUTES`]. Deliberately exhaustive: the server matches on
        /// it to give every route a handler, so a new route fails to compile until served.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RouteId {
            $( $(#[$doc])* $id, )*
        }

        /// Every route the control plane serves.
        pub const ROUTES: &[Route] = &[
            $( Route {
                id: RouteId::$id,
                method: Method::$method,
                path: $path,
                access: Access::$access,
                body: BodyLimit::$body,
            }, )*
        ];

        impl RouteId {
            /// The table entry of this route.
            pub const fn route(self) -> &'static Route {
                match self {
                    $( RouteId::$id => &Route {
                        id: RouteId::$id,
                        method: Method::$method,
                        path: $path,
                        access: Access::$access,
                        body: BodyLimit::$body,
                    }, )*
                }
            }
        }
    };
}

routes! {
    /// Liveness: `ok`.
    Healthz = Get "/healthz", Public, Standard;
    /// Liveness for orchestrators: `ok` while the process serves.
    Livez = Get "/livez", Public, Standard;
    /// Readiness: the store answers, the policy engine and signing keys are loaded and
    /// the evidence writer runs; 503 naming what is not.
    Readyz = Get "/readyz", Public, Standard;
    /// OpenID Connect discovery.
    OpenidConfiguration = Get "/.well-known/openid-configuration", Public, Standard;
    /// OAuth authorization server metadata (RFC 8414).
    OauthMetadata = Get "/.well-known/oauth-authorization-server", Public, Standard;
    /// The trust domain's SPIFFE bundle.
    SpiffeBundle = Get "/.well-known/spiffe-bundle", Public, Standard;
    /// AuthZEN PDP metadata.
    AuthzenConfiguration = Get "/.well-known/authzen-configuration", Public, Standard;
    /// The token signing keys.
    Jwks = Get "/oauth2/jwks", Public, Standard;
    /// The OAuth token endpoint.
    Token = Post "/oauth2/token", OAuthClient, TokenRequest;
    /// Token introspection (RFC 7662): whether a token is in force now, revocations
    /// included, for validators that cannot follow the revocation stream.
    Introspect = Post "/oauth2/introspect", OAuthClient, TokenRequest;
    /// The console's address without the trailing slash (a redirect).
    ConsoleRedirect = Get "/console", Public, Standard;
    /// The console's page.
    ConsoleIndex = Get "/console/", Public, Standard;
    /// The console's script.
    ConsoleScript = Get "/console/app.js", Public, Standard;
    /// The console's style sheet.
    ConsoleStyle = Get "/console/app.css", Public, Standard;

    /// The calling credential.
    Whoami = Get "/admin/v1/whoami", Credential, Standard;
    /// Registry headline numbers.
    Status = Get "/admin/v1/status", Credential, Standard;
    /// What applying a repository would change.
    ConfigPlan = Post "/admin/v1/config/plan", Credential, Repository;
    /// Applies a repository.
    ConfigApply = Post "/admin/v1/config/apply", Credential, Repository;
    /// Applied configuration versions.
    ConfigVersions = Get "/admin/v1/config/versions", Credential, Standard;
    /// The plane tree.
    Planes = Get "/admin/v1/planes", Credential, Standard;
    /// Owners.
    Owners = Get "/admin/v1/owners", Credential, Standard;
    /// Removes an owner, orphaning its identities.
    RemoveOwner = Delete "/admin/v1/owners/{id}", Credential, Standard;
    /// A page of identities.
    ListIdentities = Get "/admin/v1/identities", Credential, Standard;
    /// Registers an identity outside the repository.
    CreateIdentity = Post "/admin/v1/identities", Credential, Standard;
    /// One identity.
    GetIdentity = Get "/admin/v1/identities/{id}", Credential, Standard;
    /// Moves an identity along its lifecycle.
    IdentityLifecycle = Post "/admin/v1/identities/{id}/lifecycle", Credential, Standard;
    /// A static secret for a legacy-key identity, shown once.
    CreateClientSecret = Post "/admin/v1/identities/{id}/client-secret", Credential, Standard;
    /// Revokes a legacy-key identity's static secret.
    RevokeClientSecret = Delete "/admin/v1/identities/{id}/client-secret", Credential, Standard;
    /// Registers a client key (`private_key_jwt`) for an identity registered through the
    /// API; a repository-managed identity's keys change only with the repository.
    AddClientKey = Post "/admin/v1/identities/{id}/keys", Credential, Standard;
    /// Removes a client key of an API-registered identity.
    RemoveClientKey = Delete "/admin/v1/identities/{id}/keys/{kid}", Credential, Standard;
    /// What an identity may do, and why.
    IdentityEntitlements = Get "/admin/v1/identities/{id}/entitlements", Credential, Standard;
    /// Declared capabilities.
    Capabilities = Get "/admin/v1/capabilities", Credential, Standard;
    /// Trusted external issuers.
    Issuers = Get "/admin/v1/issuers", Credential, Standard;
    /// Policy files in force.
    Policies = Get "/admin/v1/policies", Credential, Standard;
    /// Admin credentials.
    ListCredentials = Get "/admin/v1/credentials", Credential, Standard;
    /// Creates an admin credential (its token is shown once).
    CreateCredential = Post "/admin/v1/credentials", Credential, Standard;
    /// Revokes an admin credential.
    RevokeCredential = Delete "/admin/v1/credentials/{id}", Credential, Standard;
    /// The admin change log.
    Changes = Get "/admin/v1/changes", Credential, Standard;
    /// Token signing keys and their state.
    Keys = Get "/admin/v1/keys", Credential, Standard;
    /// Rotates the token signing key.
    RotateKeys = Post "/admin/v1/keys/rotate", Credential, Standard;
    /// Approves a just-in-time request.
    ApproveWorkflow = Post "/admin/v1/workflows/{id}/approvals", Credential, Standard;
    /// Searches the evidence log.
    AuditEvents = Get "/admin/v1/audit/events", Credential, Standard;
    /// Verifies the evidence chain.
    AuditVerify = Get "/admin/v1/audit/verify", Credential, Standard;
    /// Evidence writer statistics.
    AuditStats = Get "/admin/v1/audit/stats", Credential, Standard;
    /// Signed checkpoints of the chain, for offline verification.
    AuditCheckpoints = Get "/admin/v1/audit/checkpoints", Credential, Standard;
    /// A stretch of the chain, for offline verification.
    AuditChain = Get "/admin/v1/audit/chain", Credential, Standard;
    /// Decisions per hour.
    AuditTimeline = Get "/admin/v1/audit/timeline", Credential, Standard;
    /// Ingests records from other systems into the chain.
    AuditIngest = Post "/admin/v1/audit/ingest", Credential, Ingest;
    /// The policy in force against a published version.
    PolicyDiff = Get "/admin/v1/policy/diff", Credential, Standard;
    /// Published policy versions.
    PolicyVersions = Get "/admin/v1/policy/versions", Credential, Standard;
    /// One published policy version.
    PolicyVersion = Get "/admin/v1/policy/versions/{version}", Credential, Standard;
    /// Puts an earlier policy version back in force.
    PolicyRollback = Post "/admin/v1/policy/rollback", Credential, Standard;
    /// Enforcement points and what each has applied.
    EnforcementPoints = Get "/admin/v1/enforcement/points", Credential, Standard;
    /// The posture report.
    Posture = Get "/admin/v1/posture", Credential, Standard;
    /// Controls mapped to evidence.
    Compliance = Get "/admin/v1/compliance", Credential, Standard;
    /// Access review campaigns.
    ListReviews = Get "/admin/v1/reviews", Credential, Standard;
    /// Starts an access review campaign.
    StartReview = Post "/admin/v1/reviews", Credential, Standard;
    /// One campaign with its items.
    GetReview = Get "/admin/v1/reviews/{id}", Credential, Standard;
    /// Attests or revokes one review item.
    DecideReview = Post "/admin/v1/reviews/{id}/decisions", Credential, Standard;
    /// Revocations in epoch order.
    ListRevocations = Get "/admin/v1/revocations", Credential, Standard;
    /// Revokes a token, identity, issuer, key or plane.
    Revoke = Post "/admin/v1/revocations", Credential, Standard;
    /// Which live points applied a revocation.
    RevocationVerification = Get "/admin/v1/revocations/{epoch}/verification", Credential, Standard;
    /// Egress secrets (names and metadata, never values).
    ListEgressSecrets = Get "/admin/v1/egress-secrets", Credential, Standard;
    /// Stores an egress secret.
    SetEgressSecret = Put "/admin/v1/egress-secrets/{id}", Credential, Standard;
    /// Deletes an egress secret.
    DeleteEgressSecret = Delete "/admin/v1/egress-secrets/{id}", Credential, Standard;
    /// AuthZEN: one access evaluation.
    Evaluation = Post "/access/v1/evaluation", Credential, Standard;
    /// AuthZEN: a batch of access evaluations.
    Evaluations = Post "/access/v1/evaluations", Credential, Standard;
    /// The signed policy bundle enforcement points run.
    Bundle = Get "/enforcement/v1/bundle", Credential, Standard;
    /// The revocation stream points follow.
    RevocationStream = Get "/enforcement/v1/revocations", Credential, Standard;
    /// A point's report of what it has applied.
    PointReport = Post "/enforcement/v1/points/report", Credential, Standard;
    /// Decision records shipped by enforcement points.
    Decisions = Post "/enforcement/v1/decisions", Credential, Ingest;
    /// Releases an egress secret to a gateway.
    ReleaseEgressSecret = Get "/enforcement/v1/egress-secrets/{id}", Credential, Standard;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_method_and_path_is_served_once() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method.as_str(), r.path)),
                "{} {} twice",
                r.method.as_str(),
                r.path
            );
            assert_eq!(r.id.route(), r, "{:?}", r.id);
            assert!(r.path.starts_with('/'), "{}", r.path);
        }
        assert_eq!(ROUTES.len(), 72);
    }

    #[test]
    fn parameters_are_encoded_as_one_segment() {
        let path = RouteId::GetIdentity
            .route()
            .path_with(&["spiffe://acme.example/ns/a b"]);
        assert_eq!(
            path,
            "/admin/v1/identities/spiffe%3A%2F%2Facme.example%2Fns%2Fa%20b"
        );
        assert_eq!(
            RouteId::RevocationVerification.route().path_with(&["7"]),
            "/admin/v1/revocations/7/verification"
        );
        assert_eq!(RouteId::Status.route().path_with(&[]), "/admin/v1/status");
    }
}
