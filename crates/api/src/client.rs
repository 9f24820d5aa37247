//! A typed client of the control plane: one method per route whose answer has a wire type
//! here, and [`ApiClient::route`] for the rest. Paths come from the route table only.

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use steward_audit::{CheckpointsExport, Record};
use steward_model::{Capability, EntitlementReport, Plane, PolicyFile, TrustedIssuer};

use crate::admin::*;
use crate::audit::*;
use crate::authzen::*;
use crate::posture::{ComplianceReport, PostureReport};
use crate::records::*;
use crate::{Error, ErrorBody, Route, RouteId};

/// The control plane at `base`, calling with an admin credential (or none).
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// One request being built: a route with its parameters, query and body.
#[must_use = "a call does nothing until `send`"]
pub struct Call<'a> {
    client: &'a ApiClient,
    route: &'static Route,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Result<Vec<u8>, serde_json::Error>>,
}

impl ApiClient {
    /// A client of `base` (`http://` or `https://` with a host).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Error> {
        check_server_url(base)?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The same server with another credential.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL of `route` with its path parameters.
    pub fn url(&self, route: RouteId, params: &[&str]) -> String {
        format!("{}{}", self.base, route.route().path_with(params))
    }

    /// Starts a request to `route`, filling its `{…}` segments with `params` in order.
    pub fn route(&self, route: RouteId, params: &[&str]) -> Call<'_> {
        let route = route.route();
        Call {
            client: self,
            route,
            path: route.path_with(params),
            query: Vec::new(),
            body: None,
        }
    }

    /// `POST /oauth2/token` with a form, as an OAuth client (no admin credential): the
    /// status and the JSON answer, error or not (OAuth errors are answers to show).
    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Value), Error> {
        self.token_request_with(form, None).await
    }

    /// [`ApiClient::token_request`] with a `DPoP` proof header, for a token bound to the
    /// proof's key.
    pub async fn token_request_with(
        &self,
        form: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> Result<(u16, serde_json::Value), Error> {
        let path = RouteId::Token.route().path;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(proof) = dpop {
            req = req.header("dpop", proof);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let value = resp.json().await.map_err(|e| Error::UnexpectedAnswer {
            method: "POST",
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        Ok((status, value))
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        // Say what the usual mistake is: TLS spoken to a plain-HTTP server.
        let hint = if self.base.starts_with("https://")
            && (detail.contains("InvalidContentType") || detail.contains("corrupt message"))
        {
            " The server answered in plain HTTP: use an http:// URL (or give `steward serve` a [tls] section)."
        } else {
            " Is `steward serve` running there (STEWARD_SERVER or --server)?"
        };
        Error::Unreachable {
            base: self.base.clone(),
            detail,
            hint,
        }
    }
}

impl Call<'_> {
    /// Adds a query parameter.
    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds a query parameter when there is a value.
    pub fn query_opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        self.body = Some(serde_json::to_vec(body));
        self
    }

    /// The path and query as sent.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        format!("{}?{query}", self.path)
    }

    /// Sends the request; an error status becomes [`Error::Server`] with the server's
    /// answer.
    pub async fn send<T: DeserializeOwned>(self) -> Result<T, Error> {
        let method = self.route.method.as_str();
        let target = self.target();
        let unexpected = |detail: String| Error::UnexpectedAnswer {
            method,
            path: target.clone(),
            detail,
        };
        let http_method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| unexpected(e.to_string()))?;
        let mut req = self
            .client
            .http
            .request(http_method, format!("{}{target}", self.client.base));
        if let Some(t) = &self.client.token {
            req = req.bearer_auth(t);
        }
        if let Some(body) = self.body {
            let body = body.map_err(|e| unexpected(format!("cannot encode the request: {e}")))?;
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = req.send().await.map_err(|e| self.client.unreachable(e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unexpected(format!("the connection closed mid-answer: {e}")))?;
        if status.is_success() {
            let raw: &[u8] = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                b"null"
            } else {
                &bytes
            };
            return serde_json::from_slice(raw).map_err(|e| unexpected(e.to_string()));
        }
        let mut body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            status: 0,
            error: "http".into(),
            message: format!("HTTP {status}"),
            diagnostics: Vec::new(),
        });
        body.status = status.as_u16();
        Err(Error::Server(body))
    }
}

/// Refuses a server address that is not an `http://` or `https://` URL with a host,
/// saying what to write (reqwest's own words for it are "relative URL without a base").
fn check_server_url(base: &str) -> Result<(), Error> {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(Error::NotAUrl(base.to_owned())),
    }
}

/// Filters of [`ApiClient::identities`]; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct IdentityQuery {
    pub plane: Option<String>,
    pub environment: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub owner: Option<String>,
    pub orphaned: Option<bool>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

/// Filters of [`ApiClient::audit_events`]; unset fields match everything. Times are
/// RFC 3339.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub principal: Option<String>,
    pub plane: Option<String>,
    pub kind: Option<String>,
    pub action: Option<String>,
    pub capability: Option<String>,
    pub decision: Option<String>,
    pub correlation_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only events after this sequence number.
    pub after: Option<i64>,
    pub limit: Option<i64>,
    /// Newest first.
    pub newest_first: bool,
}

/// Which items of a campaign [`ApiClient::review`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewItems {
    All,
    /// Only those not attested yet.
    Pending,
}

/// Parameters of [`ApiClient::posture`]; unset ones take the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct PostureQuery {
    pub window_days: Option<u64>,
    pub stale_days: Option<u64>,
    /// Days after registration before unused permissions are judged (the server's
    /// `[posture] observation_days` when unset).
    pub observation_days: Option<u64>,
    pub max_analysed: Option<usize>,
    /// Only this plane and the planes below it.
    pub plane: Option<String>,
    /// One identity's posture only.
    pub identity: Option<String>,
}

/// The typed routes.
impl ApiClient {
    /// `GET /healthz`
    pub async fn healthz(&self) -> Result<(), Error> {
        let url = self.url(RouteId::Healthz, &[]);
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::UnexpectedAnswer {
                method: "GET",
                path: RouteId::Healthz.route().path.to_owned(),
                detail: format!("HTTP {}", resp.status()),
            })
        }
    }

    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        self.route(RouteId::Whoami, &[]).send().await
    }

    pub async fn status(&self) -> Result<RegistryCounts, Error> {
        self.route(RouteId::Status, &[]).send().await
    }

    pub async fn plan(&self, req: &PlanRequest) -> Result<PlanResponse, Error> {
        self.route(RouteId::ConfigPlan, &[]).json(req).send().await
    }

    pub async fn apply(&self, req: &ApplyRequest) -> Result<ApplyResponse, Error> {
        self.route(RouteId::ConfigApply, &[]).json(req).send().await
    }

    pub async fn config_versions(&self, limit: Option<i64>) -> Result<Vec<ConfigVersion>, Error> {
        self.route(RouteId::ConfigVersions, &[])
            .query_opt("limit", limit)
            .send()
            .await
    }

    pub async fn planes(&self) -> Result<Vec<Plane>, Error> {
        self.route(RouteId::Planes, &[]).send().await
    }

    pub async fn owners(&self) -> Result<Vec<OwnerRecord>, Error> {
        self.route(RouteId::Owners, &[]).send().await
    }

    pub async fn remove_owner(&self, owner: &str) -> Result<OwnerRemoved, Error> {
        self.route(RouteId::RemoveOwner, &[owner]).send().await
    }

    pub async fn identities(&self, q: &IdentityQuery) -> Result<Page<IdentityRecord>, Error> {
        self.route(RouteId::ListIdentities, &[])
            .query_opt("plane", q.plane.as_ref())
            .query_opt("environment", q.environment.as_ref())
            .query_opt("kind", q.kind.as_ref())
            .query_opt("state", q.state.as_ref())
            .query_opt("owner", q.owner.as_ref())
            .query_opt("orphaned", q.orphaned)
            .query_opt("after", q.after.as_ref())
            .query_opt("limit", q.limit)
            .send()
            .await
    }

    pub async fn create_identity(
        &self,
        req: &CreateIdentityRequest,
    ) -> Result<IdentityRecord, Error> {
        self.route(RouteId::CreateIdentity, &[])
            .json(req)
            .send()
            .await
    }

    pub async fn identity(&self, spiffe_id: &str) -> Result<IdentityRecord, Error> {
        self.route(RouteId::GetIdentity, &[spiffe_id]).send().await
    }

    pub async fn set_lifecycle(
        &self,
        spiffe_id: &str,
        req: &LifecycleRequest,
    ) -> Result<IdentityRecord, Error> {
        self.route(RouteId::IdentityLifecycle, &[spiffe_id])
            .json(req)
            .send()
            .await
    }

    pub async fn create_client_secret(&self, spiffe_id: &str) -> Result<ClientSecret, Error> {
        self.route(RouteId::CreateClientSecret, &[spiffe_id])
            .send()
            .await
    }

    pub async fn revoke_client_secret(
        &self,
        spiffe_id: &str,
    ) -> Result<ClientSecretRevoked, Error> {
        self.route(RouteId::RevokeClientSecret, &[spiffe_id])
            .send()
            .await
    }

    pub async fn capabilities(&self) -> Result<Vec<Capability>, Error> {
        self.route(RouteId::Capabilities, &[]).send().await
    }

    pub async fn issuers(&self) -> Result<Vec<TrustedIssuer>, Error> {
        self.route(RouteId::Issuers, &[]).send().await
    }

    pub async fn policies(&self) -> Result<Vec<PolicyFile>, Error> {
        self.route(RouteId::Policies, &[]).send().await
    }

    pub async fn credentials(&self) -> Result<Vec<Credential>, Error> {
        self.route(RouteId::ListCredentials, &[]).send().await
    }

    pub async fn create_credential(
        &self,
        req: &CreateCredentialRequest,
    ) -> Result<CreatedCredential, Error> {
        self.route(RouteId::CreateCredential, &[])
            .json(req)
            .send()
            .await
    }

    pub async fn revoke_credential(&self, id: &str) -> Result<(), Error> {
        self.route(RouteId::RevokeCredential, &[id]).send().await
    }

    pub async fn changes(&self, after: i64, limit: i64) -> Result<Vec<AdminChange>, Error> {
        self.route(RouteId::Changes, &[])
            .query("after", after)
            .query("limit", limit)
            .send()
            .await
    }

    pub async fn revoke(&self, req: &RevokeRequest) -> Result<RevokeResponse, Error> {
        self.route(RouteId::Revoke, &[]).json(req).send().await
    }

    pub async fn revocations(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<steward_model::Revocation>, Error> {
        self.route(RouteId::ListRevocations, &[])
            .query("after", after)
            .query("limit", limit)
            .send()
            .await
    }

    /// Which live points applied revocation `epoch`, waiting up to `wait_secs` for them.
    pub async fn revocation_verification(
        &self,
        epoch: i64,
        wait_secs: Option<u64>,
    ) -> Result<Verification, Error> {
        self.route(RouteId::RevocationVerification, &[&epoch.to_string()])
            .query_opt("wait_secs", wait_secs)
            .send()
            .await
    }

    /// The posture report; `None` parameters take the server's defaults.
    pub async fn posture(&self, q: &PostureQuery) -> Result<PostureReport, Error> {
        self.route(RouteId::Posture, &[])
            .query_opt("window_days", q.window_days)
            .query_opt("stale_days", q.stale_days)
            .query_opt("observation_days", q.observation_days)
            .query_opt("max_analysed", q.max_analysed)
            .query_opt("plane", q.plane.as_ref())
            .query_opt("identity", q.identity.as_ref())
            .send()
            .await
    }

    pub async fn compliance(&self) -> Result<ComplianceReport, Error> {
        self.route(RouteId::Compliance, &[]).send().await
    }

    pub async fn reviews(&self) -> Result<Vec<Campaign>, Error> {
        self.route(RouteId::ListReviews, &[]).send().await
    }

    pub async fn start_review(&self, req: &StartRequest) -> Result<Campaign, Error> {
        self.route(RouteId::StartReview, &[]).json(req).send().await
    }

    /// A campaign with its items (`items`), only `owner`'s when given.
    pub async fn review(
        &self,
        id: &str,
        items: ReviewItems,
        owner: Option<&str>,
    ) -> Result<CampaignView, Error> {
        self.route(RouteId::GetReview, &[id])
            .query("pending", items == ReviewItems::Pending)
            .query_opt("owner", owner)
            .send()
            .await
    }

    pub async fn decide_review(
        &self,
        id: &str,
        req: &DecisionRequest,
    ) -> Result<ReviewItem, Error> {
        self.route(RouteId::DecideReview, &[id])
            .json(req)
            .send()
            .await
    }

    pub async fn egress_secrets(&self) -> Result<Vec<EgressSecret>, Error> {
        self.route(RouteId::ListEgressSecrets, &[]).send().await
    }

    pub async fn set_egress_secret(
        &self,
        id: &str,
        req: &SetEgressSecret,
    ) -> Result<EgressSecret, Error> {
        self.route(RouteId::SetEgressSecret, &[id])
            .json(req)
            .send()
            .await
    }

    pub async fn delete_egress_secret(&self, id: &str) -> Result<(), Error> {
        self.route(RouteId::DeleteEgressSecret, &[id]).send().await
    }

    /// What `spiffe_id` may do, and why; under `environment` instead of its own.
    pub async fn entitlements(
        &self,
        spiffe_id: &str,
        environment: Option<&str>,
    ) -> Result<EntitlementReport, Error> {
        self.route(RouteId::IdentityEntitlements, &[spiffe_id])
            .query_opt("environment", environment)
            .send()
            .await
    }

    pub async fn policy_versions(&self, limit: Option<i64>) -> Result<Vec<PolicyVersion>, Error> {
        self.route(RouteId::PolicyVersions, &[])
            .query_opt("limit", limit)
            .send()
            .await
    }

    pub async fn policy_version(&self, version: i64) -> Result<PolicyVersionBody, Error> {
        self.route(RouteId::PolicyVersion, &[&version.to_string()])
            .send()
            .await
    }

    pub async fn policy_rollback(&self, req: &RollbackRequest) -> Result<PolicyVersion, Error> {
        self.route(RouteId::PolicyRollback, &[])
            .json(req)
            .send()
            .await
    }

    pub async fn policy_diff(&self, from: i64, to: i64) -> Result<PolicyDiff, Error> {
        self.route(RouteId::PolicyDiff, &[])
            .query("from", from)
            .query("to", to)
            .send()
            .await
    }

    /// AuthZEN: one access evaluation.
    pub async fn evaluation(&self, req: &EvaluationRequest) -> Result<EvaluationResponse, Error> {
        self.route(RouteId::Evaluation, &[]).json(req).send().await
    }

    /// AuthZEN: a batch of access evaluations.
    pub async fn evaluations(
        &self,
        req: &EvaluationsRequest,
    ) -> Result<EvaluationsResponse, Error> {
        self.route(RouteId::Evaluations, &[]).json(req).send().await
    }

    pub async fn audit_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, Error> {
        self.route(RouteId::AuditEvents, &[])
            .query_opt("principal", q.principal.as_ref())
            .query_opt("plane", q.plane.as_ref())
            .query_opt("kind", q.kind.as_ref())
            .query_opt("action", q.action.as_ref())
            .query_opt("capability", q.capability.as_ref())
            .query_opt("decision", q.decision.as_ref())
            .query_opt("correlation_id", q.correlation_id.as_ref())
            .query_opt("since", q.since.as_ref())
            .query_opt("until", q.until.as_ref())
            .query_opt("after", q.after)
            .query_opt("limit", q.limit)
            .query_opt("order", q.newest_first.then_some("desc"))
            .send()
            .await
    }

    pub async fn audit_verify(&self) -> Result<VerifyAnswer, Error> {
        self.route(RouteId::AuditVerify, &[]).send().await
    }

    pub async fn audit_stats(&self) -> Result<AuditStats, Error> {
        self.route(RouteId::AuditStats, &[]).send().await
    }

    pub async fn audit_checkpoints(&self) -> Result<CheckpointsExport, Error> {
        self.route(RouteId::AuditCheckpoints, &[]).send().await
    }

    /// Chained records after sequence number `after`, at most `limit`.
    pub async fn audit_chain(&self, after: i64, limit: i64) -> Result<Vec<Record>, Error> {
        self.route(RouteId::AuditChain, &[])
            .query("after", after)
            .query("limit", limit)
            .send()
            .await
    }

    pub async fn audit_timeline(&self, hours: Option<i64>) -> Result<Vec<HourOfDecisions>, Error> {
        self.route(RouteId::AuditTimeline, &[])
            .query_opt("hours", hours)
            .send()
            .await
    }

    /// Chains records from another system (`{"records": [...]}`).
    pub async fn ingest<T: Serialize>(&self, records: &[T]) -> Result<IngestAnswer, Error> {
        self.route(RouteId::AuditIngest, &[])
            .json(&serde_json::json!({ "records": records }))
            .send()
            .await
    }

    /// A listed approver approves just-in-time credentials under `workflow`.
    pub async fn approve(
        &self,
        workflow: &str,
        req: &ApprovalRequest,
    ) -> Result<JitApproval, Error> {
        self.route(RouteId::ApproveWorkflow, &[workflow])
            .json(req)
            .send()
            .await
    }

    /// The OpenID Connect discovery document.
    pub async fn server_metadata(&self) -> Result<crate::ServerMetadata, Error> {
        self.route(RouteId::OpenidConfiguration, &[]).send().await
    }

    /// The AuthZEN PDP metadata.
    pub async fn authzen_configuration(&self) -> Result<crate::AuthzenConfiguration, Error> {
        self.route(RouteId::AuthzenConfiguration, &[]).send().await
    }

    pub async fn keys(&self) -> Result<KeysList, Error> {
        self.route(RouteId::Keys, &[]).send().await
    }

    pub async fn rotate_keys(&self) -> Result<KeyRotated, Error> {
        self.route(RouteId::RotateKeys, &[]).send().await
    }

    pub async fn enforcement_points(&self) -> Result<PointsResponse, Error> {
        self.route(RouteId::EnforcementPoints, &[]).send().await
    }
}
