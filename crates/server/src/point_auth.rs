//! Enforcement points calling the control plane: with an admin credential (`stw_…`, the
//! static secret of existing deployments) or with their own identity — a short-lived
//! Steward token whose audience is this control plane, from an identity whose repository
//! grant (`credentials.enforcement_point`) names the role and the points it speaks for.
//!
//! The token is checked on every call (signature, times, audience, the revocation set)
//! and so is its identity (active in the registry now, still granted the role), so
//! revoking or suspending the identity cuts the point off at once. Refusals are 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` for a token not in force, 403 for a
//! role or point not granted; both are recorded in the evidence log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use steward_audit::{Event, EventKind, Outcome};
use steward_model::{LifecycleState, PointGrant, PointRole, Role};
use steward_store::Actor;
use steward_token::{Expectations, Proof};

use crate::AppState;
use crate::error::ApiError;

/// Who called a point-facing route.
#[derive(Debug, Clone)]
pub struct PointCaller {
    /// The admin credential, or for an identity its SPIFFE ID as both id and name.
    pub actor: Actor,
    /// An identity's grant; `None` for an admin credential (bound to the points it
    /// registered, as before).
    pub grant: Option<PointGrant>,
}

impl PointCaller {
    /// Refuses (403, recorded) when this caller is an identity that does not speak for
    /// `point`. Admin credentials pass: their points are bound by first report.
    pub async fn require_point(
        &self,
        s: &AppState,
        point: Option<&str>,
        route: &str,
    ) -> Result<(), ApiError> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        match point {
            Some(p) if grant.speaks_for(p) => Ok(()),
            Some(p) => {
                let why = format!(
                    "identity `{}` does not speak for point `{p}`; its grant names {}",
                    self.actor.name,
                    names(&grant.points)
                );
                Err(refuse(
                    s,
                    Refused::Identity(&self.actor.name),
                    route,
                    StatusCode::FORBIDDEN,
                    why,
                )
                .await)
            }
            None => {
                let why =
                    "name the point this call is for: send `Steward-Enforcement-Point`".to_owned();
                Err(refuse(
                    s,
                    Refused::Identity(&self.actor.name),
                    route,
                    StatusCode::FORBIDDEN,
                    why,
                )
                .await)
            }
        }
    }
}

fn names(points: &[String]) -> String {
    if points.is_empty() {
        "no point".to_owned()
    } else {
        points
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether the request carries a bearer token rather than an admin credential.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.starts_with("stw_") && token.matches('.').count() == 2).then_some(token)
}

/// Authenticates a point-facing call needing `role`: an admin credential whose role
/// `admin_ok` accepts, or an identity's token granted `role`.
pub(crate) async fn authenticate(
    headers: &HeaderMap,
    s: &AppState,
    role: PointRole,
    route: &str,
    admin_ok: impl Fn(&Role) -> Result<(), ApiError>,
) -> Result<PointCaller, ApiError> {
    let Some(token) = presented_token(headers) else {
        let actor = crate::auth::admin_credential(headers, s).await?;
        admin_ok(&actor.role)?;
        return Ok(PointCaller { actor, grant: None });
    };
    let ring = s.tokens.ring().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the token keys are unavailable; retry",
        )
    })?;
    let issuer = s.tokens.config.issuer.as_str();
    let expect = Expectations {
        audience: issuer,
        environment: None,
        now: crate::tokens::now_unix(),
        proof: Proof::None,
    };
    let claims = match ring.validator().validate(token, &expect) {
        Ok(claims) => claims,
        Err(e) => {
            // The reason names what failed, never the token.
            let why = format!(
                "the token is not accepted here: {e}; an enforcement point's token must be in force, unrevoked and issued for `{issuer}` (the control plane)"
            );
            let claimed = claimed_subject(token);
            return Err(refuse(
                s,
                Refused::Claimed(claimed),
                route,
                StatusCode::UNAUTHORIZED,
                why,
            )
            .await);
        }
    };
    let id = claims.sub.clone();
    if claims.act.is_some() {
        let why = "a delegated token does not authenticate an enforcement point; use the identity's own token".to_owned();
        return Err(refuse(
            s,
            Refused::Identity(&id),
            route,
            StatusCode::UNAUTHORIZED,
            why,
        )
        .await);
    }
    let state = s.engine().ok().and_then(|e| e.state_of(&id));
    if state != Some(LifecycleState::Active) {
        let what = state.map_or("not registered", LifecycleState::as_str);
        let why = format!("identity `{id}` is {what}; its tokens no longer authenticate");
        return Err(refuse(
            s,
            Refused::Identity(&id),
            route,
            StatusCode::UNAUTHORIZED,
            why,
        )
        .await);
    }
    let directory = s.tokens.directory();
    let Some(grant) = directory.client(&id).and_then(|c| c.point.clone()) else {
        let why = format!(
            "identity `{id}` is not an enforcement point: grant it `credentials.enforcement_point` in the governance repository"
        );
        return Err(refuse(s, Refused::Identity(&id), route, StatusCode::FORBIDDEN, why).await);
    };
    if !grant.has(role) {
        let held = grant
            .roles
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let why = format!(
            "identity `{id}` holds the enforcement point role(s) {held}, not `{role}`, which this call needs"
        );
        return Err(refuse(s, Refused::Identity(&id), route, StatusCode::FORBIDDEN, why).await);
    }
    Ok(PointCaller {
        actor: Actor {
            credential_id: id.clone(),
            name: id,
            role: Role::Ingestor,
        },
        grant: Some(grant),
    })
}

/// Who a refused call came from, as far as it can be told.
enum Refused<'a> {
    /// A verified identity.
    Identity(&'a str),
    /// The `sub` a token that did not verify claims (kept apart: it proves nothing).
    Claimed(Option<String>),
}

/// The `sub` an unverified token claims, clipped, for the record of its refusal.
fn claimed_subject(token: &str) -> Option<String> {
    let jws = steward_token::jws::decode(token, 16 * 1024).ok()?;
    let claims: serde_json::Value = jws.claims().ok()?;
    let sub = claims.get("sub")?.as_str()?;
    Some(sub.chars().take(256).collect())
}

/// Records a refused point call and makes its answer: 401 `invalid_token` (with the
/// reason in `WWW-Authenticate`) or 403.
async fn refuse(
    s: &AppState,
    who: Refused<'_>,
    route: &str,
    status: StatusCode,
    why: String,
) -> ApiError {
    let kind = if status == StatusCode::UNAUTHORIZED {
        EventKind::CredentialRefused
    } else {
        EventKind::AdminAction
    };
    let mut e = Event::new(
        kind,
        uuid::Uuid::now_v7().to_string(),
        steward_model::timestamp::now(),
    );
    e.action = Some("enforcement.point_refused".into());
    let (principal, claimed) = match who {
        Refused::Identity(id) => (Some(id.to_owned()), None),
        Refused::Claimed(claimed) => (None, claimed),
    };
    e.principal = principal.clone();
    e.enforcement_point = Some("control-plane".into());
    e.decision.outcome = Some(Outcome::Deny);
    e.decision.reasons = vec![why.clone()];
    e.details = serde_json::json!({
        "route": route,
        "status": status.as_u16(),
        "claimed_subject": claimed,
    });
    // Recorded before answering, so a refusal the point saw is in the log.
    if let Err(err) = s.evidence.record(vec![e]).await {
        tracing::error!(error = %err, "a refused enforcement point call could not be recorded");
    }
    let principal = principal.or(claimed).unwrap_or_else(|| "-".to_owned());
    tracing::warn!(%principal, route, status = status.as_u16(), reason = %why, "refused an enforcement point call");
    if status == StatusCode::UNAUTHORIZED {
        ApiError::new(status, "invalid_token", why)
    } else {
        ApiError::forbidden(why)
    }
}

/// Admin credentials that may fetch bundles, follow revocations, report and ship
/// decision records: ingestors and central admins.
fn ingest_role(role: &Role) -> Result<(), ApiError> {
    match role {
        Role::Ingestor | Role::CentralAdmin => Ok(()),
        other => Err(ApiError::forbidden(format!(
            "enforcement points call with the ingestor or central-admin role, or with their own identity's token; this credential is {other}"
        ))),
    }
}

/// Declares an extractor for the point-facing routes needing one role.
macro_rules! point_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub PointCaller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let route = parts.uri.path().to_owned();
                authenticate(&parts.headers, state, $role, &route, ingest_role)
                    .await
                    .map($name)
            }
        }
    };
}

point_extractor!(
    /// A caller of the bundle and the revocation stream: an ingestor or central-admin
    /// credential, or an identity granted `bundle`.
    BundleCaller,
    PointRole::Bundle
);
point_extractor!(
    /// A caller of the report and the decision records intake: an ingestor or
    /// central-admin credential, or an identity granted `report`.
    ReportCaller,
    PointRole::Report
);
