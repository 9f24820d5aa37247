//! Every enforcement point against a real control plane: the gateway proxy, the nginx
//! `auth_request` endpoint, Envoy ext_authz through a real gRPC client and the AuthZEN API
//! decide one table of requests (bearer and DPoP-bound tokens, HTTP and gRPC) the same way; real nginx and a real RabbitMQ (with
//! `lapin`) enforce through Steward in CI; faults (upstream down, slow clients, oversized
//! headers, spoofed identity headers, a control plane that goes away) fail closed.

// Test helpers outside `#[test]` functions fail the test on any error, like the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "enforcement/grpc.rs"]
mod grpc;
#[path = "enforcement/mcp.rs"]
mod mcp;
#[path = "enforcement/mtls.rs"]
mod mtls;
#[path = "enforcement/point_identity.rs"]
mod point_identity;
#[path = "enforcement/real_servers.rs"]
mod real_servers;
#[path = "enforcement/revocation.rs"]
mod revocation;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_api::RouteId;
use steward_gateway::GatewayConfig;
use steward_server::config::{FileConfig, Overrides};
use steward_testkit::example_repo;
use steward_token::{SigningKey, jws};

/// A payments service in prod: requests refunds, publishes and consumes refund commands,
/// reads charges (`TEST_GRANTS`).
pub const CALLER: &str = "spiffe://acme.example/ns/payments/sa/gw-caller";
/// A commerce service: nothing in payments is granted to it.
pub const OUTSIDER: &str = "spiffe://acme.example/ns/orders/sa/gw-outsider";
/// A dev identity with the caller's grants: refused in prod by GR-1 (and by token
/// validation).
pub const DEV: &str = "spiffe://acme.example/ns/payments-dev/sa/gw-dev";
/// An AI agent in commerce: may call the AI provider's chat API and offer it the order
/// lookup tools, not the refund tool (restricted, GR-4).
pub const AGENT: &str = "spiffe://acme.example/agents/prod/gw-assistant";
/// A second AI agent, nested under `AGENT`: it works a task `AGENT` hands it, reaching
/// tools only with `AGENT`'s token exchanged for each hop.
pub const RESEARCHER: &str = "spiffe://acme.example/agents/prod/gw-researcher";

/// What the example's planes grant the identities these tests register through the API
/// (registering an identity grants nothing): exactly what each intends (`intended`).
const TEST_GRANTS: &[(&str, &str)] = &[
    (
        "policies/payments/gateway-tests.cedar",
        r#"@id("payments-gateway-tests")
permit (principal, action, resource)
when {
  principal in [
    Steward::Identity::"spiffe://acme.example/ns/payments/sa/gw-caller",
    Steward::Identity::"spiffe://acme.example/ns/payments-dev/sa/gw-dev"
  ] &&
  (
    (resource == Steward::Capability::"payments.refund" &&
      action in [
        Steward::Action::"write",
        Steward::Action::"publish",
        Steward::Action::"consume"
      ]) ||
    (resource == Steward::Capability::"payments.read" &&
      action == Steward::Action::"read")
  )
};
"#,
    ),
    (
        "policies/payments/gateway-tests-payouts.cedar",
        r#"@id("payments-gateway-tests-payouts")
permit (
  principal == Steward::Identity::"spiffe://acme.example/ns/payments/sa/gw-caller",
  action == Steward::Action::"write",
  resource == Steward::Capability::"payments.payout"
)
when {
  context has amount_minor && context.amount_minor <= 5000 &&
  context has partner_id && context.partner_id == "acme-bank"
};
"#,
    ),
    (
        "capabilities/gateway-tests.yaml",
        r#"capabilities:
  # Allowed only with the amount (read from the `x-amount-minor` header, as the
  # example's request_context declares) and the partner, which the catalog fixes.
  - id: payments.payout
    plane: payments
    classification: confidential
    description: Pay out to the partner bank (gateway tests).
    context: {partner_id: acme-bank}
    mappings:
      - http: {method: POST, path: /v1/payouts/*, action: write}
      - grpc: {service: payments.v1.Payouts, method: Create, action: write}
  # Restricted: an agent reaches it only in a session a human approved (GR-4), which
  # only the token's verified `ctx.human_approved` can say.
  - id: commerce.orders.export
    plane: commerce
    classification: restricted
    description: Export customer orders (gateway tests).
    mappings:
      - http: {method: GET, path: /v1/exports/*}
"#,
    ),
    (
        "gateway-tests-request-context.yaml",
        r#"request_context:
  - name: refund_amount
    type: long
    description: The amount an agent asks an MCP refund tool to refund (gateway tests).
    source: {tool_argument: amount}
"#,
    ),
    (
        "capabilities/gateway-tests-mcp.yaml",
        r#"capabilities:
  # The MCP server `support` behind the gateway's [[mcp]] point: the agent may look
  # orders up; refunds are restricted (GR-4).
  - id: support.mcp.lookup_order
    plane: commerce
    classification: internal
    description: Look an order up through the support MCP server (gateway tests).
    mappings:
      - mcp: {server: support, tool: lookup_order}
  - id: support.mcp.refund_payment
    plane: commerce
    classification: restricted
    description: Refund through the support MCP server (gateway tests).
    mappings:
      - mcp: {server: support, tool: refund_payment}
  # Its orders may be read and its summary prompt got; the secrets under the orders
  # (the longer prefix) may not.
  - id: support.mcp.orders
    plane: commerce
    classification: internal
    description: Read orders through the support MCP server (gateway tests).
    mappings:
      - mcp: {server: support, resource: "orders://*"}
      - mcp: {server: support, prompt: summarise_order}
  - id: support.mcp.order_secrets
    plane: commerce
    classification: restricted
    description: Secrets kept beside the orders (gateway tests).
    mappings:
      - mcp: {server: support, resource: "orders://secret/*"}
"#,
    ),
    (
        "policies/commerce/gateway-tests-exports.cedar",
        r#"@id("commerce-gateway-tests-exports")
permit (
  principal == Steward::Identity::"spiffe://acme.example/agents/prod/gw-assistant",
  action == Steward::Action::"read",
  resource == Steward::Capability::"commerce.orders.export"
);
"#,
    ),
    (
        "policies/commerce/gateway-tests.cedar",
        r#"@id("commerce-gateway-tests-assistant")
permit (
  principal == Steward::Identity::"spiffe://acme.example/agents/prod/gw-assistant",
  action == Steward::Action::"invoke",
  resource
)
when {
  resource == Steward::Capability::"support.llm.chat" ||
  resource == Steward::Capability::"support.tool.lookup_order" ||
  resource == Steward::Capability::"support.mcp.lookup_order"
};

// Refunds through the MCP server: only under 100 (minor units), read from the call's
// own arguments (GR-4 still wants a human's approval: the capability is restricted).
@id("commerce-gateway-tests-assistant-refunds")
permit (
  principal == Steward::Identity::"spiffe://acme.example/agents/prod/gw-assistant",
  action == Steward::Action::"invoke",
  resource == Steward::Capability::"support.mcp.refund_payment"
)
when { context has refund_amount && context.refund_amount < 100 };

// The nested agent may narrow its caller's token for the support MCP server's order
// lookup (GR-4: only within the caller's task).
@id("commerce-gateway-tests-researcher-delegates")
permit (
  principal == Steward::Identity::"spiffe://acme.example/agents/prod/gw-researcher",
  action == Steward::Action::"delegate",
  resource == Steward::Capability::"support.mcp.lookup_order"
);

@id("commerce-gateway-tests-assistant-reads")
permit (
  principal == Steward::Identity::"spiffe://acme.example/agents/prod/gw-assistant",
  action == Steward::Action::"read",
  resource == Steward::Capability::"support.mcp.orders"
);
"#,
    ),
];

/// What an identity registered by `ControlPlane::start` intends, as the API takes it.
fn intended(id: &str) -> Value {
    match id {
        CALLER | DEV => json!([
            {"capability": "payments.refund", "actions": ["write", "publish", "consume"]},
            {"capability": "payments.read", "actions": ["read"]}
        ]),
        AGENT => json!([
            {"capability": "support.llm.chat", "actions": ["invoke"]},
            {"capability": "support.tool.lookup_order", "actions": ["invoke"]}
        ]),
        _ => json!([]),
    }
}
/// The audience of the egress gateway in front of the AI provider.
pub const AI_AUDIENCE: &str = "spiffe://acme.example/egress/ai-provider";
/// The audience of the proxied service.
pub const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
pub const BROKER_AUDIENCE: &str = "spiffe://acme.example/broker/rabbitmq";
/// The agent platform's `iss`: a trusted issuer in the commerce plane.
const AGENT_PLATFORM: &str = "https://agents.acme.test";
const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// `AGENT` holding a token the agent platform vouched for: a human approved its session.
const APPROVED_AGENT: &str = "gw-assistant, approved by a human";
/// `AGENT` holding an agent-platform token that says no human approved.
const UNAPPROVED_AGENT: &str = "gw-assistant, not approved";

/// The path of `route` with `params` filled in (percent-encoded), as the router spells it.
pub fn path(route: RouteId, params: &[&str]) -> String {
    route.route().path_with(params)
}

/// The method of `route`, as reqwest spells it.
fn method_of(route: RouteId) -> Method {
    Method::from_bytes(route.route().method.as_str().as_bytes()).unwrap()
}

pub struct ControlPlane {
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    pub keys: HashMap<&'static str, SigningKey>,
    /// The same keys as PKCS#8, to hand a copy to a publisher.
    pub pkcs8: HashMap<&'static str, Vec<u8>>,
    /// The agent platform's signing key: a trusted issuer whose tokens say whether a human
    /// approved the agent's session (`approved`, copied into the Steward token's `ctx`).
    agent_platform: SigningKey,
    /// Each registered identity's client certificate, pinned in its registration.
    pub certs: HashMap<&'static str, ClientCert>,
    /// The same token endpoint over HTTPS, which authenticates a client by its
    /// certificate and binds the token to it (`cnf.x5t#S256`).
    tls_token_url: String,
    /// The certificate the HTTPS listener presents.
    tls_root: reqwest::Certificate,
    _tls: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    /// Serving until taken (dropping it stops the server).
    server: Option<steward_server::LocalServer>,
}

/// A self-signed client certificate and its key, as a TLS client presents them.
pub struct ClientCert {
    pub der: Vec<u8>,
    pub pem: String,
    pub key_pem: String,
}

impl ClientCert {
    /// For the DNS name or IP address `name`.
    pub fn generate(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Self {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// What reqwest presents for it.
    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.pem, self.key_pem).as_bytes()).unwrap()
    }

    /// The RFC 8705 thumbprint a token bound to it names.
    pub fn thumbprint(&self) -> String {
        steward_token::certificate_thumbprint(&self.der)
    }
}

impl ControlPlane {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Heartbeats every second: the tests run gateways with staleness limits of a
        // few seconds, and a feed confirmed only every 5 s would go stale between them.
        let mut file = FileConfig::parse("test", "[enforcement]\nheartbeat_secs = 1\n").unwrap();
        file.trust_domain = Some("acme.example".into());
        let config = file
            .resolve(Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(dir.path().into()),
                database_url: None,
                trust_domain: None,
            })
            .unwrap();
        let server = steward_server::LocalServer::start(config).await.unwrap();
        // The same control plane over HTTPS, for certificate-bound tokens.
        steward_server::tls::install_crypto_provider();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&server_key)
            .unwrap();
        let (cert_file, key_file) = (dir.path().join("tls.pem"), dir.path().join("tls-key.pem"));
        std::fs::write(&cert_file, server_cert.pem()).unwrap();
        std::fs::write(&key_file, server_key.serialize_pem()).unwrap();
        let tls = steward_server::tls::server_config(&steward_server::tls::TlsConfig {
            cert_file,
            key_file,
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_token_url = format!(
            "https://{}{}",
            listener.local_addr().unwrap(),
            path(RouteId::Token, &[])
        );
        let tls_task = tokio::spawn(steward_server::tls::serve_tls(
            listener,
            server.state.clone(),
            tls,
            std::future::pending(),
        ));
        let mut cp = Self {
            base: server.base.clone(),
            admin: server.admin_token.clone(),
            http: reqwest::Client::new(),
            keys: HashMap::new(),
            pkcs8: HashMap::new(),
            agent_platform: SigningKey::generate().unwrap().0,
            certs: HashMap::new(),
            tls_token_url,
            tls_root: reqwest::Certificate::from_pem(server_cert.pem().as_bytes()).unwrap(),
            _tls: tls_task,
            _dir: dir,
            server: Some(server),
        };
        let mut files = steward_governance::read_dir(&example_repo()).unwrap();
        files.extend(
            TEST_GRANTS
                .iter()
                .map(|(path, content)| steward_governance::SourceFile {
                    path: (*path).into(),
                    content: (*content).into(),
                }),
        );
        files.push(steward_governance::SourceFile {
            path: "issuers/agent-platform.yaml".into(),
            content: format!(
                r#"issuers:
  - id: agent-platform
    plane: commerce
    issuer: {AGENT_PLATFORM}
    jwks: {{"keys": [{jwk}]}}
    allowed_subjects: ["agent:*"]
    audience: steward
    claim_mapping:
      identity: "spiffe://acme.example/agents/prod/{{agent}}"
      environment: prod
      context: {{human_approved: approved}}
      task_scope: "{{task}}"
"#,
                jwk = serde_json::to_string(&cp.agent_platform.public_key().jwk()).unwrap(),
            ),
        });
        let (st, body) = cp
            .route(RouteId::ConfigApply, &[], Some(json!({ "files": files })))
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        for (id, plane, owner, env, kind) in [
            (CALLER, "payments", "payments-team", "prod", "service"),
            (OUTSIDER, "commerce", "commerce-team", "prod", "service"),
            (DEV, "payments", "payments-team", "dev", "service"),
            (AGENT, "commerce", "commerce-team", "prod", "agent"),
            (RESEARCHER, "commerce", "commerce-team", "prod", "agent"),
        ] {
            cp.register(id, plane, owner, env, kind).await;
        }
        cp
    }

    /// Stops serving (the gateway then loses its control plane).
    pub fn stop(&mut self) {
        self.server.take();
    }

    /// The absolute URL of `route` with `params` filled in.
    pub fn url(&self, route: RouteId, params: &[&str]) -> String {
        format!("{}{}", self.base, path(route, params))
    }

    /// Calls `route` as the admin, with its method and `params` filled in.
    pub async fn route(
        &self,
        route: RouteId,
        params: &[&str],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method_of(route), &path(route, params), body)
            .await
    }

    /// Calls `route` as the admin with `query` (`k=v&…`, already encoded) appended and
    /// no body.
    pub async fn query(&self, route: RouteId, params: &[&str], query: &str) -> (StatusCode, Value) {
        let path = format!("{}?{query}", path(route, params));
        self.call(method_of(route), &path, None).await
    }

    /// Sends `method` to `path` as given, as the admin: for requests the route table
    /// would not produce; [`ControlPlane::route`] otherwise.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn register(
        &mut self,
        id: &'static str,
        plane: &str,
        owner: &str,
        env: &str,
        kind: &str,
    ) {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        self.pkcs8.insert(id, pkcs8);
        let jwk = key.public_key().jwk();
        let cert = ClientCert::generate(&format!("{kind}.acme.example"));
        let (st, body) = self
            .route(
                RouteId::CreateIdentity,
                &[],
                Some(json!({
                    "spiffe_id": id, "plane": plane, "owner": owner,
                    "environment": env, "kind": kind,
                    "classification": if kind == "agent" { "confidential" } else { "restricted" },
                    "intended": intended(id),
                    "credentials": {
                        "token_ttl_secs": 3600,
                        "public_keys": [{"kid": "k1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}],
                        "tls_certificates": [cert.thumbprint()],
                    },
                })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        self.keys.insert(id, key);
        self.certs.insert(id, cert);
    }

    /// A token for `id` and `audience` bound to its client certificate: asked for over
    /// mutual TLS, the certificate authenticating the client (RFC 8705).
    pub async fn cert_bound_token(&self, id: &str, audience: &str) -> String {
        let client = reqwest::Client::builder()
            .add_root_certificate(self.tls_root.clone())
            .identity(self.certs[id].identity())
            .build()
            .unwrap();
        let resp = client
            .post(&self.tls_token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "client_credentials"),
                        ("client_id", id),
                        ("audience", audience),
                    ])
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A credential with `role` (the gateway uses an ingestor one).
    pub async fn credential(&self, name: &str, role: &str) -> String {
        let (st, resp) = self
            .route(
                RouteId::CreateCredential,
                &[],
                Some(json!({ "name": name, "role": role })),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{resp}");
        resp["token"].as_str().unwrap().to_owned()
    }

    /// A Steward token for `id` (registered above) with `audience`.
    pub async fn token(&self, id: &str, audience: &str) -> String {
        self.token_with(id, audience, None).await
    }

    /// A token for `id` and `audience`, asked for within the W3C trace `traceparent`: its
    /// issuance is recorded under that trace.
    pub async fn token_in_trace(&self, id: &str, audience: &str, traceparent: &str) -> String {
        self.token_asked(id, audience, &[("traceparent", traceparent)])
            .await
    }

    /// A token for `id` and `audience`, asked for with the DPoP proof `dpop` if given.
    async fn token_with(&self, id: &str, audience: &str, dpop: Option<&str>) -> String {
        match dpop {
            Some(proof) => self.token_asked(id, audience, &[("dpop", proof)]).await,
            None => self.token_asked(id, audience, &[]).await,
        }
    }

    /// A token for `id` and `audience`, asked for with the extra request `headers`.
    async fn token_asked(&self, id: &str, audience: &str, headers: &[(&str, &str)]) -> String {
        let assertion = self.client_assertion(id);
        self.token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", steward_token::JWT_BEARER_ASSERTION),
                ("client_assertion", &assertion),
                ("audience", audience),
            ],
            headers,
        )
        .await
        .unwrap_or_else(|body| panic!("the token request was refused: {body}"))
    }

    /// A `private_key_jwt` client assertion for `id`, signed with its registered key.
    fn client_assertion(&self, id: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        jws::encode(
            &self.keys[id],
            "JWT",
            &json!({
                "iss": id, "sub": id, "aud": self.url(RouteId::Token, &[]),
                "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
            }),
        )
        .unwrap()
    }

    /// A token endpoint request with the form `pairs` and extra `headers`: the access
    /// token, or the endpoint's error body.
    async fn token_request(
        &self,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<String, Value> {
        let mut req = self.http.post(self.url(RouteId::Token, &[]));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let ok = resp.status() == StatusCode::OK;
        let body: Value = resp.json().await.unwrap();
        match body["access_token"].as_str() {
            Some(token) if ok => Ok(token.to_owned()),
            _ => Err(body),
        }
    }

    /// A Steward token for the agent `AGENT`, exchanged for one from the agent platform
    /// that says whether a human `approved` its session (the token's `ctx.human_approved`)
    /// and the task it works (`task_scope`).
    pub async fn agent_platform_token(&self, approved: bool, audience: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let external = jws::encode(
            &self.agent_platform,
            "JWT",
            &json!({
                "iss": AGENT_PLATFORM, "sub": "agent:gw-assistant", "aud": "steward",
                "agent": "gw-assistant", "approved": approved, "task": "refund-triage",
                "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
            }),
        )
        .unwrap();
        self.token_request(
            &[
                ("grant_type", EXCHANGE_GRANT),
                ("subject_token", &external),
                ("subject_token_type", JWT_TOKEN_TYPE),
                ("audience", audience),
            ],
            &[],
        )
        .await
        .unwrap_or_else(|body| panic!("the agent platform's token was refused: {body}"))
    }

    /// `subject_token` (issued to `actor`) exchanged by `actor` for the next hop
    /// `audience`, narrowed to `scope` (RFC 8693): the token a nested agent calls a tool
    /// with. `Err` carries the refusal.
    pub async fn exchange(
        &self,
        actor: &str,
        subject_token: &str,
        audience: &str,
        scope: &str,
    ) -> Result<String, Value> {
        let assertion = self.client_assertion(actor);
        self.token_request(
            &[
                ("grant_type", EXCHANGE_GRANT),
                ("client_assertion_type", steward_token::JWT_BEARER_ASSERTION),
                ("client_assertion", &assertion),
                ("subject_token", subject_token),
                ("subject_token_type", JWT_TOKEN_TYPE),
                ("audience", audience),
                ("scope", scope),
            ],
            &[],
        )
        .await
    }

    /// Serves the control plane's `/metrics` on a port of its own; its address.
    pub async fn serve_metrics(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = self.server.as_ref().unwrap().state.clone();
        tokio::spawn(steward_server::serve_metrics(listener, state));
        addr
    }

    /// A DPoP-bound Steward token for `id` with `audience`, bound to `holder`'s key.
    pub async fn bound_token(&self, id: &str, audience: &str, holder: &SigningKey) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let endpoint = self.url(RouteId::Token, &[]);
        let proof = steward_token::new_dpop_proof(holder, "POST", &endpoint, None, now).unwrap();
        self.token_with(id, audience, Some(&proof)).await
    }

    /// Decision records with `correlation_id`, waiting (they are shipped asynchronously)
    /// until at least `n` arrived.
    pub async fn decisions_for(&self, correlation_id: &str, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (st, body) = self
                .query(
                    RouteId::AuditEvents,
                    &[],
                    &format!("kind=access.decision&correlation_id={correlation_id}"),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{body}");
            let events = body.as_array().cloned().unwrap_or_default();
            if events.len() >= n || std::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A real gRPC client of the gateway's ext_authz service, as Envoy would call it.
pub async fn ext_authz_client(
    gw: &steward_gateway::Running,
) -> envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient<
    tonic::transport::Channel,
> {
    envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://{}", gw.ext_authz.unwrap()),
    )
    .await
    .unwrap()
}

/// An upstream that answers every request with what it received.
pub async fn echo_upstream() -> SocketAddr {
    use axum::body::Body;
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|req: Request<Body>| async move {
        let (parts, body) = req.into_parts();
        if parts.uri.path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let all: Vec<Value> = parts
                    .headers
                    .get_all(k)
                    .iter()
                    .map(|v| Value::from(v.to_str().unwrap_or("?")))
                    .collect();
                let _ = v;
                (k.as_str().to_owned(), Value::Array(all))
            })
            .collect();
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body_len": bytes.len(),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts a gateway following `cp` with a proxy to `upstream`, a second proxy to a closed
/// port, the decision endpoints and ext_authz.
pub async fn gateway(
    cp: &ControlPlane,
    upstream: SocketAddr,
    extra: &str,
) -> steward_gateway::Running {
    gateway_at(cp, &cp.base, upstream, extra, "").await
}

/// A gateway following the control plane at `base` (`cp`'s own, or a relay in front of
/// it); `extra` goes into `[control_plane]`, `auth_extra` into `[auth]`.
pub async fn gateway_at(
    cp: &ControlPlane,
    base: &str,
    upstream: SocketAddr,
    extra: &str,
    auth_extra: &str,
) -> steward_gateway::Running {
    let credential = cp.credential("gateway-test", "ingestor").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credential"), &credential).unwrap();
    let text = format!(
        r#"
name = "edge-test"
environment = "prod"
[control_plane]
url = "{base}"
credential_file = "credential"
refresh_secs = 1
{extra}
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
audience = "{AUDIENCE}"
header_read_timeout_secs = 1
upstream_timeout_secs = 5
max_header_bytes = 8192
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:{closed}"
audience = "{AUDIENCE}"
[auth]
listen = "127.0.0.1:0"
nginx_audience = "{AUDIENCE}"
rabbitmq_audience = "{BROKER_AUDIENCE}"
{auth_extra}
[ext_authz]
listen = "127.0.0.1:0"
audience = "{AUDIENCE}"
header_read_timeout_secs = 1
"#,
        closed = closed_port(),
    );
    let config = GatewayConfig::parse(&text, dir.path()).unwrap();
    let running = steward_gateway::start(config).await.unwrap();
    running
        .source
        .wait_ready(Duration::from_secs(20))
        .await
        .unwrap();
    running
}

/// How a row presents its token: as a bearer token, DPoP-bound (RFC 9449), or bound to
/// the client's certificate (RFC 8705).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// A bearer token.
    No,
    /// A DPoP-bound token with a fresh proof for this layer's URL.
    Proof,
    /// A DPoP-bound token with a proof this layer already saw (sent once first).
    Replayed,
    /// A DPoP-bound token with a proof made for another URL.
    OtherUrl,
    /// A DPoP-bound token sent as `Authorization: Bearer`.
    AsBearer,
    /// A certificate-bound token over a connection presenting its certificate.
    Cert,
    /// A certificate-bound token over a connection presenting another certificate.
    OtherCert,
    /// A certificate-bound token over a connection without a client certificate.
    NoCert,
}

impl Binding {
    /// Whether the credential itself is refused (401), whatever policy says.
    fn refused(self) -> bool {
        matches!(
            self,
            Self::Replayed | Self::OtherUrl | Self::AsBearer | Self::OtherCert | Self::NoCert
        )
    }

    /// Whether the row's token is bound to a certificate (asked over mutual TLS).
    fn by_certificate(self) -> bool {
        matches!(self, Self::Cert | Self::OtherCert | Self::NoCert)
    }

    /// The `WWW-Authenticate` challenge of a 401 for this row.
    fn challenge(self) -> &'static str {
        match self {
            Self::Replayed | Self::OtherUrl => "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"",
            Self::Proof => "DPoP algs=\"ES256\", error=\"invalid_token\"",
            Self::No | Self::AsBearer | Self::Cert | Self::OtherCert | Self::NoCert => {
                "Bearer error=\"invalid_token\""
            }
        }
    }

    /// What the decision record of a refused credential says.
    fn reason(self) -> Option<&'static str> {
        match self {
            Self::Replayed => Some("already used"),
            Self::OtherUrl => Some("htu"),
            Self::AsBearer => Some("DPoP-bound"),
            Self::OtherCert => Some("another client certificate"),
            Self::NoCert => Some("bound to a client certificate"),
            Self::No | Self::Proof | Self::Cert => None,
        }
    }
}

/// One request as each layer phrases it.
struct Case {
    who: Option<&'static str>,
    method: &'static str,
    path: &'static str,
    /// Sent as a gRPC call (`content-type: application/grpc`): decided as the gRPC method.
    grpc: bool,
    /// Further request headers (declared request-context attributes among them).
    headers: &'static [(&'static str, &'static str)],
    binding: Binding,
    allowed: bool,
}

impl Case {
    /// The status every HTTP layer answers: 200, 401 without a valid credential, 400 for a
    /// gRPC call that names no `/Service/Method`, 403 by policy.
    fn status(&self) -> u16 {
        if self.malformed_context() {
            return 400;
        }
        let grpc_path = self
            .path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(_, m)| !m.contains('/'));
        match (self.allowed, self.who) {
            (true, _) => 200,
            (false, None) => 401,
            (false, Some(_)) if self.binding.refused() => 401,
            (false, Some(_)) if self.grpc && !grpc_path => 400,
            (false, Some(_)) => 403,
        }
    }

    /// A header-sourced context attribute that does not read as its declared type, or is
    /// sent more than once (one number cannot be read from two).
    fn malformed_context(&self) -> bool {
        self.who.is_some() && self.amount().is_some_and(|a| a.parse::<i64>().is_err())
    }

    /// The `x-amount-minor` header as a proxy that joins repeated headers hands it on.
    fn amount(&self) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| *k == "x-amount-minor")
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// The request context an AuthZEN caller (a PEP that read the request) states: the
    /// attributes the repository declares, as the request carries them.
    fn authzen_context(&self) -> Value {
        let mut context = json!({"environment": "prod"});
        if let Some(v) = self.amount() {
            context["amount_minor"] = v.parse::<i64>().map_or(json!(v), Value::from);
        }
        if self.who == Some(APPROVED_AGENT) {
            context["human_approved"] = json!(true);
        }
        context
    }

    /// The SPIFFE ID of the identity the row's token speaks for.
    fn subject(&self) -> Option<&'static str> {
        match self.who {
            Some(APPROVED_AGENT | UNAPPROVED_AGENT) => Some(AGENT),
            other => other,
        }
    }

    /// The `grpc-status` a gRPC client gets for [`Case::status`].
    fn grpc_status(&self) -> Option<&'static str> {
        match self.status() {
            401 => Some("16"),
            403 => Some("7"),
            400 => Some("3"),
            _ => None,
        }
    }
}

const TABLE: &[Case] = &[
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(OUTSIDER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(OUTSIDER),
        method: "POST",
        path: "/v1/charges",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "DELETE",
        path: "/v1/unmapped/thing",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: None,
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    // gRPC calls are decided as their gRPC method (with the method's own action), at
    // every layer: never by an HTTP mapping of the same path.
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/payments.v1.Charges/Get",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(OUTSIDER),
        method: "POST",
        path: "/payments.v1.Charges/Get",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/payments.v1.Refunds/Create",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: None,
        method: "POST",
        path: "/payments.v1.Charges/Get",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    // DPoP-bound tokens (RFC 9449): allowed with a fresh proof for the layer's URL,
    // decided by policy like any token, refused (401) with a spent proof, a proof for
    // another URL, or sent as a bearer token.
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::Proof,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: false,
        binding: Binding::Proof,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(OUTSIDER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: false,
        binding: Binding::Proof,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::Replayed,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::OtherUrl,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::AsBearer,
        headers: &[],
        allowed: false,
    },
    // Certificate-bound tokens (mutual TLS): allowed only over a connection presenting
    // their certificate — the proxy's own handshake, nginx's `$ssl_client_escaped_cert`,
    // Envoy's `source.certificate` — and still decided by policy.
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::Cert,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(OUTSIDER),
        method: "POST",
        path: "/v1/charges/ch_1/refunds",
        grpc: false,
        binding: Binding::Cert,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::OtherCert,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "GET",
        path: "/v1/charges/ch_1",
        grpc: false,
        binding: Binding::NoCert,
        headers: &[],
        allowed: false,
    },
    // Request context reaches policy from where the repository declares it: the amount
    // from its header (a payout is allowed only with one, up to 5000), the partner fixed
    // by the catalog whatever the client sends; a value that is not a number is refused.
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/payouts/po_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("x-amount-minor", "4200"), ("x-partner-id", "evil-bank")],
        allowed: true,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/payouts/po_1",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/payouts/po_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("x-amount-minor", "9000")],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/payouts/po_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("x-amount-minor", "42.00")],
        allowed: false,
    },
    // Sent twice, each a number: refused at every layer, though Envoy joins the two.
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/v1/payouts/po_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("x-amount-minor", "4200"), ("x-amount-minor", "100")],
        allowed: false,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/payments.v1.Payouts/Create",
        grpc: true,
        binding: Binding::No,
        headers: &[("x-amount-minor", "4200")],
        allowed: true,
    },
    Case {
        who: Some(CALLER),
        method: "POST",
        path: "/payments.v1.Payouts/Create",
        grpc: true,
        binding: Binding::No,
        headers: &[],
        allowed: false,
    },
    // A human's approval comes only from the verified token (`ctx.human_approved`,
    // vouched for by the agent platform): headers claiming it are not read.
    Case {
        who: Some(APPROVED_AGENT),
        method: "GET",
        path: "/v1/exports/ex_1",
        grpc: false,
        binding: Binding::No,
        headers: &[],
        allowed: true,
    },
    Case {
        who: Some(UNAPPROVED_AGENT),
        method: "GET",
        path: "/v1/exports/ex_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("human_approved", "true"), ("x-human-approved", "true")],
        allowed: false,
    },
    Case {
        who: Some(AGENT),
        method: "GET",
        path: "/v1/exports/ex_1",
        grpc: false,
        binding: Binding::No,
        headers: &[("human_approved", "true"), ("x-human-approved", "true")],
        allowed: false,
    },
];

/// The host and scheme the nginx snippet and Envoy report for the table's requests.
const TABLE_HOST: &str = "payments.internal";

/// The `Authorization` (and `DPoP`) headers of a row's request to the URL `url` (the one
/// its layer checks a proof against); `spent` is a proof this layer already saw, for
/// [`Binding::Replayed`].
fn credential_headers(
    case: &Case,
    url: &str,
    token: Option<&str>,
    bound: Option<&str>,
    key: &SigningKey,
    spent: Option<&str>,
) -> Vec<(&'static str, String)> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let proof = |url: &str, token: &str| {
        steward_token::new_dpop_proof(key, case.method, url, Some(token), now).unwrap()
    };
    let mut headers = match (case.binding, token, bound) {
        (Binding::No, Some(t), _) => vec![("authorization", format!("Bearer {t}"))],
        (Binding::No, None, _) | (_, _, None) => Vec::new(),
        (Binding::Proof, _, Some(b)) => vec![
            ("authorization", format!("DPoP {b}")),
            ("dpop", proof(url, b)),
        ],
        (Binding::Replayed, _, Some(b)) => vec![
            ("authorization", format!("DPoP {b}")),
            ("dpop", spent.unwrap().to_owned()),
        ],
        (Binding::OtherUrl, _, Some(b)) => vec![
            ("authorization", format!("DPoP {b}")),
            (
                "dpop",
                proof(&format!("http://elsewhere.example{}", case.path), b),
            ),
        ],
        (Binding::AsBearer | Binding::Cert | Binding::OtherCert | Binding::NoCert, _, Some(b)) => {
            vec![("authorization", format!("Bearer {b}"))]
        }
    };
    // The row's own headers (declared request-context attributes among them).
    headers.extend(case.headers.iter().map(|(k, v)| (*k, (*v).to_owned())));
    headers
}

/// A certificate as nginx (`$ssl_client_escaped_cert`) and Envoy (`source.certificate`)
/// report it: URL-escaped PEM.
fn escaped_pem(c: &ClientCert) -> String {
    percent_encoding::utf8_percent_encode(&c.pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A Check request for Envoy's ext_authz carrying `headers`, from a connection that
/// presented `certificate`.
fn check_with(
    case: &Case,
    headers: &[(&'static str, String)],
    certificate: Option<&ClientCert>,
) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    let content_type = case.grpc.then_some(("content-type", "application/grpc"));
    let mut check = real_servers::check_request(case.method, case.path, None, content_type);
    if let Some(c) = certificate {
        check.attributes.as_mut().unwrap().source = Some(
            envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer {
                certificate: escaped_pem(c),
                ..Default::default()
            },
        );
    }
    let http = check
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    // Envoy hands a header sent twice on joined with commas.
    for (k, v) in headers {
        http.headers
            .entry((*k).to_owned())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    check
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_decided_alike_at_every_layer_and_traced() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    let proxy = format!("http://{}", gw.proxies[0]);
    let auth = format!("http://{}", gw.auth.unwrap());
    // Bearer tokens, and DPoP-bound ones (the holder's key).
    let holder = SigningKey::generate().unwrap().0;
    let mut tokens = HashMap::new();
    let mut bound_tokens = HashMap::new();
    for who in [CALLER, OUTSIDER, AGENT] {
        tokens.insert(who, cp.token(who, AUDIENCE).await);
        bound_tokens.insert(who, cp.bound_token(who, AUDIENCE, &holder).await);
    }
    tokens.insert(
        APPROVED_AGENT,
        cp.agent_platform_token(true, AUDIENCE).await,
    );
    tokens.insert(
        UNAPPROVED_AGENT,
        cp.agent_platform_token(false, AUDIENCE).await,
    );
    let mut grpc = ext_authz_client(&gw).await;
    let http = reqwest::Client::new();
    // Certificate-bound tokens, and the same proxy over TLS (a second gateway of the same
    // control plane) for the rows that present a certificate.
    let mut cert_tokens = HashMap::new();
    for who in [CALLER, OUTSIDER] {
        cert_tokens.insert(who, cp.cert_bound_token(who, AUDIENCE).await);
    }
    let site = ClientCert::generate("127.0.0.1");
    let stranger = ClientCert::generate("stranger.acme.example");
    let (tls_gw, _tls_dir) = mtls::tls_gateway(&cp, &format!("http://{upstream}"), &site, "").await;
    // The trace of each bound-token row, and what its three layers must have recorded.
    let mut dpop_traces = Vec::new();
    for (row, case) in TABLE.iter().enumerate() {
        let token = case.who.map(|w| tokens[w].clone());
        let bound = case.who.and_then(|w| {
            if case.binding.by_certificate() {
                cert_tokens.get(w).cloned()
            } else {
                bound_tokens.get(w).cloned()
            }
        });
        // The client certificate the row's connection presents.
        let presented = match (case.binding, case.who) {
            (Binding::Cert, Some(w)) => Some(&cp.certs[w]),
            (Binding::OtherCert, _) => Some(&stranger),
            _ => None,
        };
        let label = format!(
            "{:?} {} {}{}{}",
            case.who,
            case.method,
            case.path,
            if case.grpc { " (gRPC)" } else { "" },
            if case.binding == Binding::No {
                String::new()
            } else {
                format!(" ({:?})", case.binding)
            },
        );
        let content_type = case.grpc.then_some(("content-type", "application/grpc"));
        let trace = (case.binding != Binding::No).then(|| {
            let id = format!("{:032x}", 0xd90f_0000_u128 + row as u128);
            dpop_traces.push((id.clone(), case));
            format!("00-{id}-00f067aa0ba902b7-01")
        });
        // A proof each layer sees once before the row sends it again.
        let spend = |url: &str| {
            (case.binding == Binding::Replayed).then(|| {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                steward_token::new_dpop_proof(&holder, case.method, url, bound.as_deref(), now)
                    .unwrap()
            })
        };
        // 1. the gateway proxy (which checks proofs against `http://` and its Host); over
        // TLS, with the row's client certificate, for certificate-bound rows
        let (proxy_url, client) = if case.binding.by_certificate() {
            (
                format!("https://{}{}", tls_gw.proxies[0], case.path),
                mtls::https_client(&site, presented),
            )
        } else {
            (format!("{proxy}{}", case.path), http.clone())
        };
        let spent = spend(&proxy_url);
        let headers = credential_headers(
            case,
            &proxy_url,
            token.as_deref(),
            bound.as_deref(),
            &holder,
            spent.as_deref(),
        );
        let send = |headers: &[(&'static str, String)], trace: Option<&String>| {
            let mut req = client.request(case.method.parse().unwrap(), &proxy_url);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some((k, v)) = content_type {
                req = req.header(k, v);
            }
            if let Some(t) = trace {
                req = req.header("traceparent", t);
            }
            req.send()
        };
        if spent.is_some() {
            assert_eq!(
                send(&headers, None).await.unwrap().status(),
                StatusCode::OK,
                "proxy {label}: first use"
            );
        }
        let resp = send(&headers, trace.as_ref()).await.unwrap();
        let proxy_status = resp.status();
        let proxy_challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let grpc_status = resp
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let grpc_message = resp
            .headers()
            .get("grpc-message")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // 2. nginx auth_request, asked as nginx asks (the client's headers passed on, and
        // where the request was sent, as the snippet reports it)
        let nginx_url = format!("http://{TABLE_HOST}{}", case.path);
        let spent = spend(&nginx_url);
        let headers = credential_headers(
            case,
            &nginx_url,
            token.as_deref(),
            bound.as_deref(),
            &holder,
            spent.as_deref(),
        );
        let ask = |headers: &[(&'static str, String)], trace: Option<&String>| {
            let mut req = http
                .get(format!("{auth}/nginx/auth"))
                .header("x-original-method", case.method)
                .header("x-original-uri", format!("{}?q=1", case.path))
                .header("x-original-scheme", "http")
                .header("x-original-host", TABLE_HOST);
            // As the snippet passes a TLS connection's certificate.
            if let Some(c) = presented {
                req = req.header("x-ssl-client-cert", escaped_pem(c));
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some((k, v)) = content_type {
                req = req.header(k, v);
            }
            if let Some(t) = trace {
                req = req.header("traceparent", t);
            }
            req.send()
        };
        if spent.is_some() {
            assert_eq!(
                ask(&headers, None).await.unwrap().status(),
                StatusCode::OK,
                "nginx {label}: first use"
            );
        }
        let resp = ask(&headers, trace.as_ref()).await.unwrap();
        let nginx_status = resp.status();
        let nginx_challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        // 3. Envoy ext_authz over gRPC (Envoy reports scheme `http`, host `payments.internal`)
        let spent = spend(&nginx_url);
        let mut headers = credential_headers(
            case,
            &nginx_url,
            token.as_deref(),
            bound.as_deref(),
            &holder,
            spent.as_deref(),
        );
        if spent.is_some() {
            let first = grpc
                .check(check_with(case, &headers, presented))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                first.status.unwrap().code,
                0,
                "ext_authz {label}: first use"
            );
        }
        if let Some(t) = &trace {
            headers.push(("traceparent", t.clone()));
        }
        let answer = grpc
            .check(check_with(case, &headers, presented))
            .await
            .unwrap()
            .into_inner();
        let envoy_allowed = answer.status.as_ref().unwrap().code == 0;
        let envoy_headers: Vec<(String, String)> = match &answer.http_response {
            Some(envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::DeniedResponse(d)) => d
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref().map(|h| (h.key.clone(), h.value.clone())))
                .collect(),
            _ => Vec::new(),
        };
        // 4. the AuthZEN decision API, for the identity the token speaks for
        let authzen = match case.subject() {
            Some(who) => {
                let (st, d) = cp
                    .route(
                        RouteId::Evaluation,
                        &[],
                        Some(json!({
                            "subject": {"type": "workload", "id": who},
                            "resource": if case.grpc {
                                json!({"type": "grpc", "id": case.path})
                            } else {
                                json!({"type": "http", "id": case.path, "properties": {"method": case.method}})
                            },
                            "action": {"name": "access"},
                            "context": case.authzen_context(),
                        })),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK, "{d}");
                d["decision"].as_bool().unwrap()
            }
            None => false,
        };
        assert_eq!(nginx_status.is_success(), case.allowed, "nginx {label}");
        assert_eq!(envoy_allowed, case.allowed, "ext_authz {label}: {answer:?}");
        // AuthZEN decides for an identity; its credential is the point's to check.
        assert_eq!(
            authzen,
            case.allowed || case.binding.refused(),
            "authzen {label}"
        );
        // Refusals say which: no/invalid credential 401, policy 403 — alike everywhere; a
        // gRPC client gets the same as a gRPC status (UNAUTHENTICATED, PERMISSION_DENIED).
        // (nginx passes on only 401 and 403 from its auth subrequest: an unreadable
        // request is forbidden there.)
        let nginx_expected = match case.status() {
            400 => 403,
            other => other,
        };
        assert_eq!(nginx_status.as_u16(), nginx_expected, "{label}");
        if case.grpc {
            assert_eq!(proxy_status.as_u16(), 200, "proxy {label}: {body}");
            assert_eq!(
                grpc_status.as_deref(),
                case.grpc_status(),
                "proxy {label}: {body}"
            );
            if !case.allowed {
                assert!(grpc_message.unwrap_or_default().len() > 5, "{label}");
            }
        } else {
            assert_eq!(
                proxy_status.as_u16(),
                case.status(),
                "proxy {label}: {body}"
            );
            if !case.allowed {
                assert!(body["reason"].as_str().unwrap().len() > 5, "{body}");
                assert!(body["decision_id"].is_string(), "{body}");
            }
        }
        // A 401 names the scheme the client used, alike at every layer.
        if case.status() == 401 && !case.grpc {
            let want = Some(case.binding.challenge().to_owned());
            assert_eq!(proxy_challenge, want, "proxy {label}");
            assert_eq!(nginx_challenge, want, "nginx {label}");
            assert!(
                envoy_headers
                    .iter()
                    .any(|(k, v)| k == "www-authenticate" && Some(v) == want.as_ref()),
                "ext_authz {label}: {envoy_headers:?}"
            );
        }
        // An allowed DPoP request reaches the upstream with the verified identity and
        // neither the token nor the proof (checked and spent here).
        if case.binding == Binding::Proof && case.allowed {
            assert_eq!(
                body["headers"]["x-steward-identity"],
                json!([CALLER]),
                "{body}"
            );
            assert!(body["headers"].get("authorization").is_none(), "{body}");
            assert!(body["headers"].get("dpop").is_none(), "{body}");
            let Some(
                envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::OkResponse(
                    ok,
                ),
            ) = &answer.http_response
            else {
                panic!("not an OK response: {answer:?}");
            };
            for h in ["authorization", "dpop"] {
                assert!(ok.headers_to_remove.contains(&h.to_owned()), "{h}: {ok:?}");
            }
        }
    }
    // Every bound-token row was recorded alike by the three layers, under its trace (the
    // certificate rows' proxy is the TLS gateway).
    for (trace_id, case) in &dpop_traces {
        let events = cp.decisions_for(trace_id, 3).await;
        let mut points: Vec<&str> = events
            .iter()
            .map(|e| e["enforcement_point"].as_str().unwrap())
            .collect();
        points.sort_unstable();
        let proxy_point = if case.binding.by_certificate() {
            "gateway:edge-tls"
        } else {
            "gateway:edge-test"
        };
        assert_eq!(
            points,
            ["ext_authz:edge-test", proxy_point, "nginx:edge-test"],
            "{:?}: {events:?}",
            case.binding
        );
        for e in &events {
            let outcome = if case.allowed { "allow" } else { "deny" };
            assert_eq!(e["decision"]["outcome"], outcome, "{:?}: {e}", case.binding);
            match case.binding.reason() {
                Some(why) => {
                    assert_eq!(e["principal"], "unauthenticated", "{e}");
                    assert!(
                        e["decision"]["reasons"][0].as_str().unwrap().contains(why),
                        "{:?}: {e}",
                        case.binding
                    );
                }
                None => assert_eq!(e["principal"], case.who.unwrap(), "{e}"),
            }
        }
    }

    // An allowed request: the upstream sees the verified identity and the trace, never
    // the credential or identity headers the client made up.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = http
        .post(format!("{proxy}/v1/charges/ch_9/refunds?amount=5"))
        .bearer_auth(&tokens[CALLER])
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header(
            "x-steward-identity",
            "spiffe://acme.example/ns/payments/sa/admin",
        )
        .header("X-Steward-Decision-Id", "forged")
        .body(vec![7u8; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["uri"], "/v1/charges/ch_9/refunds?amount=5");
    assert_eq!(
        seen["body_len"],
        3 * 1024 * 1024,
        "the body is forwarded whole"
    );
    assert_eq!(seen["headers"]["x-steward-identity"], json!([CALLER]));
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    let decision_id = seen["headers"]["x-steward-decision-id"][0]
        .as_str()
        .unwrap();
    assert_ne!(decision_id, "forged");
    let tp = seen["headers"]["traceparent"][0].as_str().unwrap();
    assert!(
        tp.starts_with(&format!("00-{trace_id}-")) && !tp.contains("00f067aa0ba902b7"),
        "{tp}"
    );
    // The decision reached the evidence log under the trace id, from this gateway.
    let events = cp.decisions_for(trace_id, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["id"], decision_id);
    assert_eq!(e["principal"], CALLER);
    assert_eq!(e["enforcement_point"], "gateway:edge-test");
    assert_eq!(e["destination"]["capability"], "payments.refund");
    assert_eq!(e["decision"]["outcome"], "allow");
    assert!(
        e["source"].as_str().unwrap().starts_with("enforcement:"),
        "{e}"
    );
    // How long the decision took at this layer, for the trace's hop-by-hop latency.
    let took = e["details"]["decision_us"].as_u64().expect("decision_us");
    assert!(took > 0 && took < 5_000_000, "{e}");
    // The context a decision read is in its record (what a replay decides on again).
    let resp = http
        .post(format!("{proxy}/v1/payouts/po_2"))
        .bearer_auth(&tokens[CALLER])
        .header("x-amount-minor", "1200")
        .header(
            "traceparent",
            "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let events = cp
        .decisions_for("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1)
        .await;
    assert_eq!(events[0]["destination"]["capability"], "payments.payout");
    assert_eq!(
        events[0]["details"]["request"]["context"]["amount_minor"], 1200,
        "{}",
        events[0]
    );
    // A denied request is recorded too, with the reason.
    let resp = http
        .post(format!("{proxy}/v1/charges/ch_9/refunds"))
        .bearer_auth(&tokens[OUTSIDER])
        .header(
            "traceparent",
            "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let events = cp
        .decisions_for("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1)
        .await;
    assert_eq!(events[0]["decision"]["outcome"], "deny");
    assert_eq!(events[0]["principal"], OUTSIDER);

    // ext_authz: an allowed check adds identity and trace, removes the credential and a
    // spoofed identity header.
    let answer = grpc
        .check(real_servers::check_request(
            "POST",
            "/v1/charges/ch_1/refunds",
            Some(&tokens[CALLER]),
            Some(("x-steward-role", "admin")),
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::OkResponse(
        ok,
    )) = answer.http_response
    else {
        panic!("not an OK response: {answer:?}");
    };
    let added: HashMap<String, String> = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref().map(|h| (h.key.clone(), h.value.clone())))
        .collect();
    assert_eq!(added["x-steward-identity"], CALLER);
    assert!(added.contains_key("traceparent"));
    assert!(ok.headers_to_remove.contains(&"authorization".to_owned()));
    assert!(ok.headers_to_remove.contains(&"x-steward-role".to_owned()));
    // ext_authz refusals carry the HTTP status and a JSON body for Envoy to send.
    let answer = grpc
        .check(real_servers::check_request(
            "POST",
            "/v1/charges",
            Some(&tokens[OUTSIDER]),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status.unwrap().code, 7, "PERMISSION_DENIED");
    let Some(
        envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::DeniedResponse(
            denied,
        ),
    ) = answer.http_response
    else {
        panic!("not a denied response");
    };
    assert_eq!(denied.status.unwrap().code, 403);
    let reason: Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(reason["error"], "forbidden");
    gw.shutdown(Duration::from_secs(5)).await;
}

/// Sends one HTTP/1.1 request exactly as written (HTTP clients resolve `..` and
/// `%2e%2e` before sending, which is what an attacker does not do); returns the status
/// and the body.
pub async fn raw_request(
    addr: SocketAddr,
    request_line: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut text = format!("{request_line} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    s.write_all(text.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the answer did not end")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Chunk sizes in hex, each followed by its data.
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_owned()
    };
    (status, body)
}

/// How every layer must treat a hostile path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Decided as (and at the proxy forwarded as) this normal form, then allowed.
    Allowed(&'static str),
    /// Decided as this normal form, which policy refuses.
    Forbidden(&'static str),
    /// Refused as ambiguous: 400 (403 through nginx, which passes on only 401/403).
    Refused,
}

/// Paths an attacker sends to reach what their token does not allow. CALLER may read
/// `/v1/charges/**`, not `/v1/orders/**`.
const HOSTILE: &[(&str, Expect)] = &[
    (
        "/v1/charges/../orders/42",
        Expect::Forbidden("/v1/orders/42"),
    ),
    (
        "/v1/charges/ch_1/../../orders/42",
        Expect::Forbidden("/v1/orders/42"),
    ),
    ("/v1/./orders/42", Expect::Forbidden("/v1/orders/42")),
    (
        "/v1/orders/../charges/ch_1",
        Expect::Allowed("/v1/charges/ch_1"),
    ),
    ("/v1/%63harges/ch_1", Expect::Allowed("/v1/charges/ch_1")),
    ("/v1/charges/./ch_1", Expect::Allowed("/v1/charges/ch_1")),
    ("/v1/charges/%2e%2e/orders/42", Expect::Refused),
    ("/v1/charges/%2E%2E/orders/42", Expect::Refused),
    ("/v1/charges/.%2e/orders/42", Expect::Refused),
    ("/v1/charges/ch_1%2f..%2f..%2forders%2f42", Expect::Refused),
    ("/v1/charges/%252e%252e/orders/42", Expect::Refused),
    ("/v1/charges/..%5c..%5corders/42", Expect::Refused),
    ("/v1/charges/ch_1;x=1/../../orders/42", Expect::Refused),
    ("/v1/charges/..;/orders/42", Expect::Refused),
    ("/v1//charges/ch_1", Expect::Refused),
    ("/v1/charges/%00", Expect::Refused),
    ("/v1/charges/%ff", Expect::Refused),
    ("/../v1/charges/ch_1", Expect::Refused),
    ("/v1/charges/%zz", Expect::Refused),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_decided_as_the_upstream_serves_them_at_every_layer() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    let token = cp.token(CALLER, AUDIENCE).await;
    let bearer = format!("Bearer {token}");
    let mut grpc = ext_authz_client(&gw).await;
    for (n, (path, expect)) in HOSTILE.iter().enumerate() {
        let trace = format!("{:032x}", 0xdead_0000_u64 + n as u64);
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        // 1. the gateway proxy, sent byte for byte
        let (status, body) = raw_request(
            gw.proxies[0],
            &format!("GET {path}"),
            &[("authorization", &bearer), ("traceparent", &traceparent)],
        )
        .await;
        // 2. nginx auth_request, with the raw `$request_uri`
        let (nginx, nginx_body) = raw_request(
            gw.auth.unwrap(),
            "GET /nginx/auth",
            &[
                ("authorization", &bearer),
                ("x-original-method", "GET"),
                ("x-original-uri", &format!("{path}?q=1")),
            ],
        )
        .await;
        // 3. Envoy ext_authz: the request target undecoded, as Envoy passes it
        let answer = grpc
            .check(real_servers::check_request("GET", path, Some(&token), None))
            .await
            .unwrap()
            .into_inner();
        let envoy_http = match &answer.http_response {
            Some(envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse::DeniedResponse(d)) => d.status.as_ref().unwrap().code,
            _ => 200,
        };
        // 4. AuthZEN for the same identity
        let (st, authzen) = cp
            .route(
                RouteId::Evaluation,
                &[],
                Some(json!({
                    "subject": {"type": "workload", "id": CALLER},
                    "resource": {"type": "http", "id": path, "properties": {"method": "GET"}},
                    "action": {"name": "access"},
                    "context": {"environment": "prod"},
                })),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{authzen}");
        let label = format!("{path} ({expect:?})");
        match expect {
            Expect::Allowed(normal) => {
                assert_eq!(status, 200, "proxy {label}: {body}");
                let seen: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    seen["uri"], *normal,
                    "the upstream gets the path decided on: {label}"
                );
                assert_eq!(nginx, 200, "nginx {label}: {nginx_body}");
                assert_eq!(answer.status.as_ref().unwrap().code, 0, "ext_authz {label}");
                assert_eq!(authzen["decision"], true, "authzen {label}: {authzen}");
            }
            Expect::Forbidden(normal) => {
                assert_eq!(status, 403, "proxy {label}: {body}");
                assert_eq!(nginx, 403, "nginx {label}: {nginx_body}");
                assert_eq!(
                    answer.status.as_ref().unwrap().code,
                    7,
                    "ext_authz {label}: {answer:?}"
                );
                assert_eq!(envoy_http, 403, "ext_authz {label}");
                assert_eq!(authzen["decision"], false, "authzen {label}: {authzen}");
                // Recorded as a deny of the path the upstream would have served.
                let events = cp.decisions_for(&trace, 1).await;
                assert_eq!(events.len(), 1, "{label}: {events:?}");
                assert_eq!(events[0]["decision"]["outcome"], "deny", "{label}");
                assert_eq!(
                    events[0]["destination"]["address"],
                    format!("http GET {normal}"),
                    "{label}"
                );
            }
            Expect::Refused => {
                assert_eq!(status, 400, "proxy {label}: {body}");
                assert_eq!(nginx, 403, "nginx {label}: {nginx_body}");
                assert_eq!(
                    answer.status.as_ref().unwrap().code,
                    3,
                    "ext_authz INVALID_ARGUMENT {label}: {answer:?}"
                );
                assert_eq!(envoy_http, 400, "ext_authz {label}");
                assert_eq!(authzen["decision"], false, "authzen {label}: {authzen}");
                let reasons = authzen["context"]["reasons"].to_string();
                assert!(
                    reasons.contains("refused HTTP path"),
                    "authzen {label}: {reasons}"
                );
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["error"], "bad_request", "{label}");
                assert!(
                    body["reason"]
                        .as_str()
                        .unwrap()
                        .contains("refused HTTP path"),
                    "{label}: {body}"
                );
                // Recorded too: who tried, what, and why it was refused.
                let events = cp.decisions_for(&trace, 1).await;
                assert_eq!(events.len(), 1, "{label}: {events:?}");
                assert_eq!(events[0]["decision"]["outcome"], "deny", "{label}");
                assert_eq!(events[0]["principal"], CALLER, "{label}");
                assert!(
                    events[0]["decision"]["reasons"][0]
                        .as_str()
                        .unwrap()
                        .contains("refused HTTP path"),
                    "{label}: {}",
                    events[0]
                );
            }
        }
    }
    // A method override: decided on GET, an upstream honouring it would serve DELETE.
    for header in steward_enforce::METHOD_OVERRIDE_HEADERS {
        let (status, body) = raw_request(
            gw.proxies[0],
            "GET /v1/charges/ch_1",
            &[("authorization", &bearer), (header, "DELETE")],
        )
        .await;
        assert_eq!(status, 400, "{header}: {body}");
        assert!(body.contains(header), "{body}");
        let (nginx, _) = raw_request(
            gw.auth.unwrap(),
            "GET /nginx/auth",
            &[
                ("authorization", &bearer),
                ("x-original-method", "GET"),
                ("x-original-uri", "/v1/charges/ch_1"),
                (header, "DELETE"),
            ],
        )
        .await;
        assert_eq!(nginx, 403, "{header}");
        let answer = grpc
            .check(real_servers::check_request(
                "GET",
                "/v1/charges/ch_1",
                Some(&token),
                Some((header, "DELETE")),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.status.as_ref().unwrap().code,
            3,
            "{header}: {answer:?}"
        );
    }
    gw.shutdown(Duration::from_secs(5)).await;
}

/// A point whose decision records the control plane refuses (its credential revoked)
/// stops allowing at once instead of allowing unrecorded until its bundle goes stale,
/// and says so on `/status`.
/// A certificate-bound token (RFC 8705) at ext_authz: checked against the certificate
/// Envoy received (`source.certificate`, URL-escaped PEM), or, where configured, the one
/// an edge Envoy forwarded in `x-forwarded-client-cert`. RabbitMQ, which cannot carry the
/// certificate, refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_at_ext_authz() {
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
    use steward_gateway::config::CertificateFrom;
    use steward_gateway::ext_authz::ExtAuthz;

    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    let token = cp.cert_bound_token(CALLER, AUDIENCE).await;
    let mine = &cp.certs[CALLER];
    let other = ClientCert::generate("stranger.acme.example");
    let escaped = escaped_pem;
    let check = |certificate: Option<String>, xfcc: Option<String>| {
        let mut req = real_servers::check_request(
            "GET",
            "/v1/charges/ch_1",
            Some(&token),
            xfcc.as_deref().map(|v| ("x-forwarded-client-cert", v)),
        );
        if let Some(pem) = certificate {
            req.attributes
                .get_or_insert_with(AttributeContext::default)
                .source = Some(Peer {
                certificate: pem,
                ..Default::default()
            });
        }
        req
    };
    let code = |answer: envoy_types::pb::envoy::service::auth::v3::CheckResponse| {
        answer.status.map(|s| s.code).unwrap_or_default()
    };
    let mut grpc = ext_authz_client(&gw).await;
    // `source.certificate` (the default): only the certificate the token names passes;
    // an XFCC header naming it is not listened to.
    let hex = |c: &ClientCert| -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c.thumbprint())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    for (certificate, xfcc, want, label) in [
        (Some(escaped(mine)), None, 0, "its certificate"),
        (None, None, 16, "no certificate"),
        (Some(escaped(&other)), None, 16, "another certificate"),
        (Some("not%20a%20certificate".into()), None, 16, "garbage"),
        (
            None,
            Some(format!("Hash={}", hex(mine))),
            16,
            "an XFCC header",
        ),
    ] {
        let answer = grpc
            .check(check(certificate, xfcc))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(answer), want, "{label}");
    }
    // An unbound token passes with or without a certificate.
    let plain = cp.token(CALLER, AUDIENCE).await;
    let mut req = real_servers::check_request("GET", "/v1/charges/ch_1", Some(&plain), None);
    req.attributes.as_mut().unwrap().source = Some(Peer {
        certificate: escaped(&other),
        ..Default::default()
    });
    assert_eq!(code(grpc.check(req).await.unwrap().into_inner()), 0);

    // RabbitMQ's HTTP backend is never told the connection's certificate: a bound token
    // cannot log in to the broker; an unbound one can.
    let broker_login = |token: String| {
        reqwest::Client::new()
            .post(format!("http://{}/rabbitmq/user", gw.auth.unwrap()))
            .form(&[("username", CALLER.to_owned()), ("password", token)])
            .send()
    };
    let bound_for_broker = cp.cert_bound_token(CALLER, BROKER_AUDIENCE).await;
    let answer = broker_login(bound_for_broker)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer.trim(), "deny");
    let plain_for_broker = cp.token(CALLER, BROKER_AUDIENCE).await;
    let answer = broker_login(plain_for_broker)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.starts_with("allow"), "{answer}");

    // Configured for XFCC: the one element's `Hash` is the certificate; several
    // elements, or none, are refused.
    let point = steward_enforce::EnforcementPoint::new(
        "gateway",
        "edge-xfcc",
        "prod",
        gw.source.clone(),
        gw.log.clone(),
    );
    let xfcc = ExtAuthz::new(AUDIENCE.into(), &point, CertificateFrom::Xfcc);
    for (header, want, label) in [
        (
            Some(format!(
                "By=spiffe://acme.example/edge;Hash={};Subject=\"CN=a,O=b\"",
                hex(mine)
            )),
            0,
            "its certificate",
        ),
        (
            Some(format!("Hash={}", hex(&other))),
            16,
            "another certificate",
        ),
        (
            Some(format!("Hash={},Hash={}", hex(mine), hex(mine))),
            16,
            "two elements",
        ),
        (None, 16, "none"),
    ] {
        let answer = xfcc.decide(&check(Some(escaped(&other)), header));
        assert_eq!(code(answer), want, "XFCC: {label}");
    }
    gw.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_whose_records_are_refused_stops_allowing() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "max_staleness_secs = 600").await;
    let proxy = format!("http://{}/v1/charges/ch_1", gw.proxies[0]);
    let status_url = format!("http://{}/status", gw.auth.unwrap());
    let http = reqwest::Client::new();
    let token = cp.token(CALLER, AUDIENCE).await;
    let resp = http.get(&proxy).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The gateway's own credential is revoked.
    let (_, list) = cp.route(RouteId::ListCredentials, &[], None).await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gateway-test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, body) = cp.route(RouteId::RevokeCredential, &[&id], None).await;
    assert!(st.is_success(), "{body}");
    let revoked_at = std::time::Instant::now();
    let mut first_refusal = None;
    let mut allowed_after_refusal = 0;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        let resp = http.get(&proxy).bearer_auth(&token).send().await.unwrap();
        match (resp.status(), first_refusal) {
            (StatusCode::SERVICE_UNAVAILABLE, None) => {
                let body: Value = resp.json().await.unwrap();
                assert!(
                    body["reason"]
                        .as_str()
                        .unwrap()
                        .contains("refuses this point's decision records"),
                    "{body}"
                );
                first_refusal = Some(revoked_at.elapsed());
            }
            (StatusCode::OK, Some(_)) => allowed_after_refusal += 1,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = first_refusal.expect("the gateway kept allowing for 5 s with its records refused");
    assert!(first < Duration::from_secs(2), "{first:?}");
    assert_eq!(
        allowed_after_refusal, 0,
        "an allow after the refusal went unrecorded"
    );
    let resp = http.get(&status_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let status: Value = resp.json().await.unwrap();
    assert!(
        status["records_refused"].as_str().unwrap().contains("401"),
        "{status}"
    );
    gw.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_faults_fail_closed() {
    let mut cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway_at(
        &cp,
        &cp.base,
        upstream,
        "max_staleness_secs = 3",
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 1",
    )
    .await;
    let proxy = format!("http://{}", gw.proxies[0]);
    let http = reqwest::Client::new();
    let good = cp.token(CALLER, AUDIENCE).await;
    let other_audience = cp
        .token(CALLER, "spiffe://acme.example/ns/ledger/sa/ledger-api")
        .await;
    let dev = cp.token(DEV, AUDIENCE).await;
    let path = format!("{proxy}/v1/charges/ch_1");
    // Credentials that are missing, malformed, doubled, for someone else, or from dev.
    let refusals: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "garbage",
            http.get(&path)
                .header("authorization", "Bearer not.a.token"),
        ),
        (
            "basic",
            http.get(&path)
                .header("authorization", "Basic dXNlcjpwYXNz"),
        ),
        (
            "two headers",
            http.get(&path)
                .header("authorization", format!("Bearer {good}"))
                .header("authorization", format!("Bearer {good}")),
        ),
        (
            "other audience",
            http.get(&path).bearer_auth(&other_audience),
        ),
        ("dev token in prod", http.get(&path).bearer_auth(&dev)),
        ("tampered", http.get(&path).bearer_auth(format!("{good}x"))),
    ];
    for (what, req) in refusals {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(resp.headers().contains_key("www-authenticate"), "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated", "{what}: {body}");
        assert!(
            !body.to_string().contains("dXNlcjpwYXNz"),
            "never echo credentials: {body}"
        );
    }
    // Upstream down: 502 with a JSON reason.
    let down = format!("http://{}/v1/charges/ch_1", gw.proxies[1]);
    let resp = http.get(&down).bearer_auth(&good).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    // Oversized headers: 431 before any decision.
    let resp = http
        .get(&path)
        .bearer_auth(&good)
        .header("x-padding", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // A slow client (slowloris): headers never finished, the connection is closed after
    // the header read timeout (1 s here).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(gw.proxies[0]).await.unwrap();
        s.write_all(b"GET /v1/charges/ch_1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "the slow connection was not closed within 10 s"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
        // The decision endpoints' listener too, and one that sends nothing at all, there
        // and to ext_authz.
        let mut partial = tokio::net::TcpStream::connect(gw.auth.unwrap())
            .await
            .unwrap();
        partial
            .write_all(b"GET /nginx/auth HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let mut silent = tokio::net::TcpStream::connect(gw.auth.unwrap())
            .await
            .unwrap();
        let mut silent_grpc = tokio::net::TcpStream::connect(gw.ext_authz.unwrap())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        for s in [&mut partial, &mut silent, &mut silent_grpc] {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
            assert!(read.is_ok(), "a slow connection to [auth] was not closed");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    // Still fine with a good token, over HTTP/1.1 and HTTP/2 (h2c prior knowledge).
    let resp = http.get(&path).bearer_auth(&good).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(&path).bearer_auth(&good).send().await.unwrap();
    assert_eq!(
        (resp.status(), resp.version()),
        (StatusCode::OK, reqwest::Version::HTTP_2)
    );
    let resp = h2.get(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The control plane goes away: the last good bundle keeps deciding until it is
    // stale (3 s here), then every request is refused (503), never allowed.
    cp.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = http.get(&path).bearer_auth(&good).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "within the staleness, the last bundle decides"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        let resp = http.get(&path).bearer_auth(&good).send().await.unwrap();
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            break resp.json::<Value>().await.unwrap();
        }
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(std::time::Instant::now() < deadline, "never went stale");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(body["error"], "enforcement_unavailable");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("max_staleness_secs"),
        "{body}"
    );
    let status = gw.source.status();
    assert!(status.stale && status.last_error.is_some(), "{status:?}");
    let resp = http
        .get(format!("http://{}/status", gw.auth.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["bundle"]["stale"], true, "{report}");
    assert!(
        report["bundle"]["policy_version"].as_i64().unwrap() >= 1,
        "{report}"
    );
    gw.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_open_requests_finish_and_ships_their_records() {
    let cp = ControlPlane::start().await;
    let gw = gateway(&cp, echo_upstream().await, "").await;
    let proxy = gw.proxies[0];
    let token = cp.token(CALLER, AUDIENCE).await;
    let trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let slow = tokio::spawn({
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .get(format!("http://{proxy}/v1/charges/ch_1/slow"))
                .bearer_auth(token)
                .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    gw.shutdown(Duration::from_secs(5)).await;
    // The request in flight when the shutdown began was answered, not cut off.
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(proxy).await.is_err());
    // Its decision record was shipped before the gateway stopped.
    let events = cp.decisions_for(trace, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_signed_and_checked() {
    let cp = ControlPlane::start().await;
    let ingestor = cp.credential("bundle-reader", "ingestor").await;
    let auditor = cp.credential("bundle-auditor", "auditor").await;
    let http = reqwest::Client::new();
    let get = |cred: &str| {
        http.get(cp.url(RouteId::Bundle, &[]))
            .bearer_auth(cred)
            .send()
    };
    assert_eq!(get(&auditor).await.unwrap().status(), StatusCode::FORBIDDEN);
    let resp = get(&ingestor).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    // Verified with the control plane's published keys; the kid must be trusted.
    let (_, jwks) = cp.route(RouteId::Jwks, &[], None).await;
    let keys: Vec<steward_token::PublicKey> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            serde_json::from_value::<steward_token::Jwk>(k.clone())
                .unwrap()
                .to_public_key()
                .unwrap()
        })
        .collect();
    let bundle = steward_enforce::Bundle::verify(&text, &keys).unwrap();
    assert!(
        bundle
            .identities
            .iter()
            .any(|i| i.spiffe_id.as_str() == CALLER)
    );
    assert!(bundle.policy_version >= 1);
    let stranger = SigningKey::generate().unwrap().0;
    let e = steward_enforce::Bundle::verify(&text, &[stranger.public_key().clone()]).unwrap_err();
    assert!(e.to_string().contains("does not trust"), "{e}");
    // A bundle signed by an untrusted key, a token passed off as a bundle, a tampered one.
    let forged = bundle.sign(&stranger).unwrap();
    assert!(steward_enforce::Bundle::verify(&forged, &keys).is_err());
    let token = cp.token(CALLER, AUDIENCE).await;
    let e = steward_enforce::Bundle::verify(&token, &keys).unwrap_err();
    assert!(e.to_string().contains("not a policy bundle"), "{e}");
    let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    parts[1] = format!("{}A", &parts[1][..parts[1].len() - 1]);
    assert!(steward_enforce::Bundle::verify(&parts.join("."), &keys).is_err());
    // Decision records a point queued while the control plane was away are taken up to
    // 24 h late (the foreign-engine ingest keeps its 5 min skew).
    let old = (time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let record = json!({"records": [{
        "schema": "steward.evidence/1", "id": uuid::Uuid::new_v4().to_string(), "time": old,
        "kind": "access.decision", "principal": CALLER, "decision": {"outcome": "allow"},
    }]});
    for (route, expected) in [
        (RouteId::Decisions, StatusCode::CREATED),
        (RouteId::AuditIngest, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let resp = http
            .post(cp.url(route, &[]))
            .bearer_auth(&ingestor)
            .json(&record)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{}", path(route, &[]));
    }
    // Unchanged: 304. After a registry change: a new bundle.
    let if_changed = || {
        http.get(cp.url(RouteId::Bundle, &[]))
            .bearer_auth(&ingestor)
            .header("if-none-match", &etag)
            .send()
    };
    let resp = if_changed().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    // A rebuild that changed nothing (a replica seeing its own change again) keeps it.
    let state = &cp.server.as_ref().unwrap().state;
    state.reload_policy().await.unwrap();
    let resp = if_changed().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let (st, body) = cp
        .route(
            RouteId::IdentityLifecycle,
            &[OUTSIDER],
            Some(json!({"state": "suspended", "reason": "test"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let resp = if_changed().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_ne!(resp.headers()["etag"].to_str().unwrap(), etag);
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An HTTPS upstream (self-signed certificate, written to `ca`) that echoes requests and
/// counts them.
async fn tls_echo_upstream(
    ca: &std::path::Path,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(ca, cert.pem()).unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plain = echo_upstream().await;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // Terminate TLS, then relay the bytes to the plain echo server.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut inner = tokio::net::TcpStream::connect(plain).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_injects_the_provider_key_and_decides_each_tool() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("upstream-ca.pem");
    let (port, connections) = tls_echo_upstream(&ca).await;
    let (st, body) = cp
        .route(
            RouteId::SetEgressSecret,
            &["ai-provider"],
            Some(json!({"value": "sk-live-provider-key", "description": "AI provider key"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(
        !body.to_string().contains("sk-live"),
        "never echoed: {body}"
    );
    let (_, listed) = cp.route(RouteId::ListEgressSecrets, &[], None).await;
    assert!(
        !listed.to_string().contains("sk-live") && listed[0]["id"] == "ai-provider",
        "{listed}"
    );
    let egress = format!(
        r#"
[[proxy]]
listen = "127.0.0.1:0"
mode = "egress"
upstream = "https://localhost:{port}"
upstream_ca_file = "{ca}"
audience = "{AI_AUDIENCE}"
egress_secret = "ai-provider"
tools_from_body = true
max_inspected_body_bytes = 4096
"#,
        ca = ca.display()
    );
    let gw = gateway(&cp, echo_upstream().await, &egress).await;
    // `extra` comes first in the file: the egress proxy is listener 0.
    let url = format!("http://{}/v1/chat/completions", gw.proxies[0]);
    let http = reqwest::Client::new();
    let agent = cp.token(AGENT, AI_AUDIENCE).await;
    let chat = |tools: &[&str]| {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t, "parameters": {}}}))
            .collect();
        json!({"model": "acme-support-llm", "messages": [{"role": "user", "content": "where is my order?"}], "tools": tools})
    };
    // Allowed: the provider sees its key, never the agent's token; the agent never saw
    // the key.
    let resp = http
        .post(&url)
        .bearer_auth(&agent)
        .json(&chat(&["lookup_order"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(
        seen["headers"]["authorization"],
        json!(["Bearer sk-live-provider-key"])
    );
    assert_eq!(seen["headers"]["x-steward-identity"], json!([AGENT]));
    assert!(seen["body_len"].as_u64().unwrap() > 50);
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "over TLS"
    );
    // A tool the agent may not offer (restricted refunds): refused before the provider
    // is called, naming the tool.
    let before = connections.load(std::sync::atomic::Ordering::SeqCst);
    let resp = http
        .post(&url)
        .bearer_auth(&agent)
        .json(&chat(&["lookup_order", "refund_payment"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["x-steward-refused-tool"], "refund_payment");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("GR-4")
            || body["reason"].as_str().unwrap().contains("no permit"),
        "{body}"
    );
    // Not JSON, or larger than what is inspected: refused, never forwarded unchecked.
    let resp = http
        .post(&url)
        .bearer_auth(&agent)
        .body("tools=refund_payment")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .post(&url)
        .bearer_auth(&agent)
        .json(&json!({"model": "m", "padding": "x".repeat(10_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A payments service may not use the commerce plane's AI provider at all.
    let caller = cp.token(CALLER, AI_AUDIENCE).await;
    let resp = http
        .post(&url)
        .bearer_auth(&caller)
        .json(&chat(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // No token: no key.
    let resp = http.post(&url).json(&chat(&[])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "refused requests never reach the provider"
    );
    // The tool decisions are in the evidence log.
    let _ = gw.log.flush(Duration::from_secs(5)).await;
    let (_, events) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            &format!(
                "kind=access.decision&principal={}&capability=support.tool.refund_payment",
                urlencode(AGENT)
            ),
        )
        .await;
    assert_eq!(events[0]["decision"]["outcome"], "deny", "{events}");
    assert_eq!(events[0]["enforcement_point"], "egress:edge-test");
    // The secret's release to the gateway is itself evidence (without the value).
    let (_, released) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=admin.action&action=egress_secret.release",
        )
        .await;
    assert!(!released.as_array().unwrap().is_empty(), "{released}");
    assert_eq!(released[0]["details"]["target"], "ai-provider");
    assert!(!released.to_string().contains("sk-live"), "{released}");
    gw.shutdown(Duration::from_secs(2)).await;
}
