//! The credential an HTTP request presents, read the same way at every enforcement point
//! (the gateway proxy, the nginx endpoint, Envoy ext_authz): `Authorization: Bearer
//! <token>`, or `Authorization: DPoP <token>` with exactly one `DPoP` proof (RFC 9449)
//! made for this request's method and URL and for this token (`ath`). A verified proof
//! becomes [`Proof::Dpop`], which token validation compares with the token's `cnf.jkt`.
//! A bearer token that came over a connection with a client certificate carries that
//! certificate's thumbprint ([`Proof::ClientCert`]), which a certificate-bound token's
//! `cnf.x5t#S256` must equal (RFC 8705).
//!
//! Protocols only describe what they received ([`Presented`]); reading, verifying and
//! refusing happen here, so a request is read alike at every layer and every refusal is
//! recorded like the others ([`EnforcementPoint::check_credential`]).
//!
//! Each point keeps its own replay cache: a request passing several layers (nginx in
//! front of the gateway) is checked at each with the same proof, so a cache shared by
//! points would refuse the second layer.

use std::sync::Arc;

use steward_token::{
    CheckedProof, Claims, DpopRequest, Expectations, Proof, ReplayCache, TokenError,
};

use crate::certificate::PeerCertificate;
use crate::point::{EnforcementPoint, Seen, Verdict};

/// How old (by its `iat`) a DPoP proof may be at an enforcement point, besides the
/// bundle's clock skew: a proof is made for one request, moments before it is sent.
pub const DPOP_MAX_AGE_SECS: i64 = 60;

/// DPoP proofs one point remembers at once, each until it is too old to pass
/// ([`DPOP_MAX_AGE_SECS`] plus the skew). Enough for thousands of DPoP requests a second;
/// past it, new proofs are refused (with the reason) until old ones age out — refused
/// rather than forgotten, since a forgotten proof could be replayed.
pub const MAX_DPOP_PROOFS: usize = 250_000;

/// DPoP holders' keys one point keeps parsed (a client uses one key for all its proofs).
pub(crate) const MAX_DPOP_KEYS: usize = 10_000;

/// Skew allowed on a proof's `iat` when no bundle is in force (the request is refused
/// anyway; this only keeps the proof check meaningful).
const FALLBACK_SKEW_SECS: i64 = 30;

/// One credential header of a request as the point received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField<'a> {
    Absent,
    /// Exactly one value; `None` when it is not visible text.
    One(Option<&'a str>),
    /// Sent more than once: which one would the upstream read?
    Repeated,
}

impl<'a> HeaderField<'a> {
    /// From every value of the header (`None` for a value that is not text).
    pub fn from_values(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(v), None) => Self::One(v),
            (Some(_), Some(_)) => Self::Repeated,
        }
    }

    /// From a value a proxy already joined: Envoy hands ext_authz repeated headers as one,
    /// joined with `,`. Neither a token nor a proof can hold a comma, so one means several
    /// headers were sent.
    pub fn from_joined(value: Option<&'a str>) -> Self {
        match value {
            None => Self::Absent,
            Some(v) if v.contains(',') => Self::Repeated,
            Some(v) => Self::One(Some(v)),
        }
    }
}

/// Where a request was sent: the start of the URL a DPoP proof's `htu` must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// The external URL an operator configured (`https://api.example.com`, optionally
    /// with a path prefix): what clients reach the point at when TLS or another proxy
    /// sits in front, whatever the request itself says.
    Configured(&'a str),
    /// The scheme and host (`Host`, `:authority`) the request was received with, or that
    /// the proxy asking on its behalf reports; `None` when not known.
    Request {
        scheme: Option<&'a str>,
        host: Option<&'a str>,
    },
}

/// What a request presents for its credential, as a protocol received it.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub authorization: HeaderField<'a>,
    pub dpop: HeaderField<'a>,
    /// The request's method, as a proof's `htm` must name it.
    pub method: &'a str,
    pub origin: Origin<'a>,
    /// The request target as received (the path, with or without its query: the query
    /// is not part of `htu`).
    pub target: &'a str,
    /// What an operator changes when the point cannot tell the request's URL (named in
    /// the refusal): e.g. "set `public_url` in the `[[proxy]]` section".
    pub origin_hint: &'static str,
    /// The client certificate of the connection, as the protocol learned of it.
    pub certificate: PeerCertificate<'a>,
}

impl Presented<'_> {
    /// `scheme://host[/prefix]/path`: the URL the request was sent to, as the client
    /// wrote it in its proof's `htu`.
    pub fn url(&self) -> Result<String, CredentialError> {
        let path = self.target.split(['?', '#']).next().unwrap_or_default();
        match self.origin {
            Origin::Configured(base) => Ok(format!("{}{path}", base.trim_end_matches('/'))),
            Origin::Request { scheme, host } => {
                let unknown = |what: &'static str| CredentialError::UnknownUrl {
                    what,
                    hint: self.origin_hint,
                };
                let scheme = scheme
                    .filter(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
                    .ok_or_else(|| unknown("scheme"))?;
                let host = host
                    .filter(|h| {
                        !h.is_empty()
                            && h.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
                    })
                    .ok_or_else(|| unknown("host"))?;
                Ok(format!("{scheme}://{host}{path}"))
            }
        }
    }
}

/// The credential a request presented, read and, for DPoP, its proof checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    None,
    /// A bearer token, with the thumbprint of the connection's client certificate if it
    /// presented one.
    Bearer {
        token: &'a str,
        certificate: Option<String>,
    },
    /// A token with a proof checked for this request; its `jti` is recorded when the
    /// request is checked ([`EnforcementPoint::check_credential`]).
    Dpop { token: &'a str, proof: CheckedProof },
}

impl<'a> Credential<'a> {
    /// The token presented, if any.
    pub fn token(&self) -> Option<&'a str> {
        match self {
            Self::None => None,
            Self::Bearer { token: t, .. } | Self::Dpop { token: t, .. } => Some(t),
        }
    }

    /// The proof of possession shown with the token.
    pub fn proof(&self) -> Proof<'_> {
        match self {
            Self::Dpop { proof, .. } => Proof::Dpop(proof.thumbprint()),
            Self::Bearer {
                certificate: Some(c),
                ..
            } => Proof::ClientCert(c),
            _ => Proof::None,
        }
    }
}

/// Why a request's credential was refused before its token was validated. Never carries
/// a token or a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("more than one Authorization header; send exactly one")]
    Repeated,
    #[error("the Authorization header is not readable text")]
    Unreadable,
    #[error(
        "the Authorization header must be `Bearer <token>` or `DPoP <token>` (with a `DPoP` proof header)"
    )]
    NoScheme,
    /// Another scheme (its name cut to 20 characters).
    #[error(
        "the `{0}` scheme is not accepted here; send `Authorization: Bearer <token>`, or `Authorization: DPoP <token>` with a `DPoP` proof"
    )]
    Scheme(String),
    /// The scheme was given without a token.
    #[error("the token after `{0}` is empty")]
    Empty(Scheme),
    #[error(
        "`Authorization: DPoP` needs a `DPoP` header with a proof made for this request (RFC 9449); send one"
    )]
    NoProof,
    #[error("more than one `DPoP` header; send exactly one proof per request")]
    RepeatedProof,
    #[error("the `DPoP` header is not readable text")]
    UnreadableProof,
    /// The point cannot tell which URL the proof's `htu` must name.
    #[error(
        "the {what} this request was sent to is unknown here, so its DPoP proof cannot be checked; {hint}"
    )]
    UnknownUrl {
        what: &'static str,
        hint: &'static str,
    },
    /// The proof does not hold for this request or this token, or was used before.
    #[error(
        "the DPoP proof was refused: {0}; make a fresh proof for this method and URL, with `ath` the hash of this token"
    )]
    Proof(TokenError),
    /// The token did not validate (expired, revoked, for another audience, not bound to
    /// what was presented), or no policy bundle is in force to validate it with.
    #[error("the token was refused: {reason}")]
    Refused { scheme: Scheme, reason: String },
    /// The client certificate the connection (or the proxy in front) reported cannot be
    /// read, so a token bound to it cannot be checked.
    #[error("the client certificate of this request cannot be read: {0}")]
    Certificate(String),
}

impl CredentialError {
    /// How a 401 for this refusal names the scheme to use.
    pub fn challenge(&self) -> Challenge {
        match self {
            Self::Empty(Scheme::Dpop)
            | Self::Refused {
                scheme: Scheme::Dpop,
                ..
            } => Challenge::DpopToken,
            Self::NoProof
            | Self::RepeatedProof
            | Self::UnreadableProof
            | Self::UnknownUrl { .. }
            | Self::Proof(_) => Challenge::DpopProof,
            _ => Challenge::Bearer,
        }
    }
}

/// The scheme and token of an `Authorization` value: `Bearer <token>` or `DPoP <token>`
/// (scheme names in any case, RFC 9110 §11.1). A refusal never echoes the token, only a
/// scheme it does not know, cut to 20 characters.
pub fn authorization(value: &str) -> Result<(Scheme, &str), CredentialError> {
    let (scheme, token) = value.split_once(' ').ok_or(CredentialError::NoScheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(CredentialError::Scheme(scheme.chars().take(20).collect()));
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(CredentialError::Empty(scheme));
    }
    Ok((scheme, token))
}

/// The two schemes a token is accepted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        })
    }
}

/// The `WWW-Authenticate` challenge of a 401: it follows the scheme the client used, so
/// a DPoP client learns whether its proof (`invalid_dpop_proof`) or its token
/// (`invalid_token`) was refused (RFC 9449 §7.1), and a bearer client gets the RFC 6750
/// challenge it always got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Bearer,
    /// A DPoP request whose token was refused.
    DpopToken,
    /// A DPoP request whose proof was missing, repeated or refused.
    DpopProof,
}

impl Challenge {
    /// The header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer error=\"invalid_token\"",
            Self::DpopToken => "DPoP algs=\"ES256\", error=\"invalid_token\"",
            Self::DpopProof => "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"",
        }
    }
}

/// The cache of the DPoP proofs one point has seen, so none is used twice. Proofs made
/// before the point started cannot be vouched for and are refused.
pub(crate) fn dpop_replay_cache() -> ReplayCache {
    ReplayCache::kept_by(
        time::OffsetDateTime::now_utc().unix_timestamp(),
        MAX_DPOP_PROOFS,
        "this enforcement point",
    )
}

impl EnforcementPoint {
    /// Reads the credential a request presents: `Ok(Credential::None)` without an
    /// `Authorization` header; a bearer token; or a DPoP token whose one proof verifies
    /// for this method, URL and token. Refuses two `Authorization` headers (request
    /// smuggling: which would the upstream read?), other schemes, a DPoP token without
    /// exactly one proof, and a proof that does not hold. A `DPoP` header beside a bearer
    /// token is ignored: a bound token sent as bearer is refused by its validation.
    pub fn read_credential<'a>(
        &self,
        presented: &Presented<'a>,
    ) -> Result<Credential<'a>, CredentialError> {
        let value = match presented.authorization {
            HeaderField::Absent => return Ok(Credential::None),
            HeaderField::Repeated => return Err(CredentialError::Repeated),
            HeaderField::One(None) => return Err(CredentialError::Unreadable),
            HeaderField::One(Some(v)) => v,
        };
        let (scheme, token) = authorization(value)?;
        if scheme == Scheme::Bearer {
            let certificate = presented.certificate.thumbprint()?;
            return Ok(Credential::Bearer { token, certificate });
        }
        let proof = match presented.dpop {
            HeaderField::Absent => return Err(CredentialError::NoProof),
            HeaderField::Repeated => return Err(CredentialError::RepeatedProof),
            HeaderField::One(None) => return Err(CredentialError::UnreadableProof),
            HeaderField::One(Some(p)) => p,
        };
        let url = presented.url()?;
        let request = DpopRequest {
            method: presented.method,
            url: &url,
            access_token: Some(token),
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            max_age: DPOP_MAX_AGE_SECS,
            skew: self.dpop_skew(),
        };
        let proof = steward_token::check_dpop(proof, &request, Some(self.dpop_keys()))
            .map_err(CredentialError::Proof)?;
        Ok(Credential::Dpop { token, proof })
    }

    /// Checks a request with what [`EnforcementPoint::read_credential`] gave: a credential
    /// that could not be read is refused and recorded; a DPoP proof is recorded as used
    /// (a replay is refused and recorded) once its token validated with it; then the
    /// token is validated, the request decided and recorded ([`EnforcementPoint::check`]).
    /// Returns the verdict and, for a 401, the challenge to answer with.
    pub fn check_credential<'r>(
        &self,
        read: &'r Result<Credential<'_>, CredentialError>,
        mut seen: Seen<'r>,
    ) -> (Verdict, Challenge) {
        let credential = match read {
            Ok(c) => c,
            Err(why) => {
                return (
                    self.refuse_credential(&seen, why.to_string()),
                    why.challenge(),
                );
            }
        };
        seen.token = credential.token();
        seen.proof = credential.proof();
        let Credential::Dpop { token, proof } = credential else {
            return (self.check(&seen), Challenge::Bearer);
        };
        if let Err(why) = self.remember_proof(token, proof, &seen) {
            return (
                self.refuse_credential(&seen, why.to_string()),
                why.challenge(),
            );
        }
        (self.check(&seen), Challenge::DpopToken)
    }

    /// Records a checked proof's `jti`, refusing a replay. Only once the token validates
    /// with the proof's key: a caller without a valid token must not fill the cache (it
    /// is refused by [`EnforcementPoint::check`] all the same). Without a bundle every
    /// request is refused, and the proof is recorded anyway.
    fn remember_proof(
        &self,
        token: &str,
        proof: &CheckedProof,
        seen: &Seen<'_>,
    ) -> Result<(), CredentialError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let skew = match self.source().current() {
            Ok(enforcer) => {
                let validator = enforcer.validator();
                let expect = Expectations {
                    audience: seen.audience,
                    environment: Some(self.environment()),
                    now,
                    proof: seen.proof,
                };
                if validator.validate(token, &expect).is_err() {
                    return Ok(());
                }
                validator.skew()
            }
            Err(_) => FALLBACK_SKEW_SECS,
        };
        proof
            .clone()
            .remember(self.dpop_replay(), now, skew)
            .map(drop)
            .map_err(CredentialError::Proof)
    }

    /// Validates `credential` for `audience` without deciding anything, for a request
    /// whose messages are then decided one by one (the MCP point): the token against what
    /// it is bound to (the DPoP proof's key, the connection's certificate), and a proof
    /// recorded as used once the token validated with it, so it cannot be replayed. The
    /// caller records a refusal, with its reason.
    pub fn authenticate_credential(
        &self,
        credential: &Credential<'_>,
        audience: &str,
    ) -> Result<Arc<Claims>, CredentialError> {
        let scheme = match credential {
            Credential::Dpop { .. } => Scheme::Dpop,
            _ => Scheme::Bearer,
        };
        let refused = |reason: String| CredentialError::Refused { scheme, reason };
        let token = credential
            .token()
            .ok_or_else(|| refused("no token was presented".into()))?;
        let enforcer = self
            .source()
            .current()
            .map_err(|e| refused(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let validator = enforcer.validator();
        let claims = validator
            .validate(
                token,
                &Expectations {
                    audience,
                    environment: Some(self.environment()),
                    now,
                    proof: credential.proof(),
                },
            )
            .map_err(|e| refused(e.to_string()))?;
        if let Credential::Dpop { proof, .. } = credential {
            proof
                .clone()
                .remember(self.dpop_replay(), now, validator.skew())
                .map_err(CredentialError::Proof)?;
        }
        Ok(claims)
    }

    /// The clock skew of the bundle in force.
    fn dpop_skew(&self) -> i64 {
        self.source()
            .current()
            .map(|e| e.validator().skew())
            .unwrap_or(FALLBACK_SKEW_SECS)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use serde_json::{Value, json};
    use steward_policy::{OwnedAddress, Target};
    use steward_token::{SigningKey, jws, new_dpop_proof, sign_dpop};
    use tokio::sync::mpsc::Receiver;

    use super::*;
    use crate::bundle::{BUNDLE_FORMAT, Bundle};
    use crate::decision_log::DecisionLog;
    use crate::point::Outcome;
    use crate::source::{BundleSource, SourceConfig};

    const ISSUER: &str = "https://steward.test";
    const CALLER: &str = "spiffe://acme.example/ns/payments/sa/caller";
    const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
    const HOST: &str = "payments.internal";
    const PATH: &str = "/v1/charges/ch_1";
    const URL: &str = "http://payments.internal/v1/charges/ch_1";

    /// A point deciding with a bundle where `CALLER` may read `GET /v1/charges/**`, its
    /// records handed to the receiver, and the key tokens are signed with.
    struct Fixture {
        point: EnforcementPoint,
        records: Receiver<Box<serde_json::value::RawValue>>,
        issuer: SigningKey,
    }

    fn fixture() -> Fixture {
        let (issuer, _) = SigningKey::generate().unwrap();
        let bundle: Bundle = serde_json::from_value(json!({
            "format": BUNDLE_FORMAT,
            "policy_version": 7,
            "issued_at": now(),
            "issuer": ISSUER,
            "keys": [issuer.public_key().jwk()],
            "clock_skew_secs": 30,
            "root_settings": {},
            "planes": {"payments": {
                "id": "payments", "parent": "root", "name": "Payments",
                "description": "", "settings": {},
            }},
            "capabilities": {"payments.read": {
                "id": "payments.read", "plane": "payments", "classification": "internal",
                "description": "", "mappings": [
                    {"http": {"method": "GET", "path": "/v1/charges/**", "action": "read"}}
                ],
            }},
            "identities": [{
                "spiffe_id": CALLER, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "internal",
                "description": "", "labels": {}, "state": "active", "intended": [],
            }],
            "policy": {
                "policies": {"policies/payments/read.cedar": {
                    "path": "policies/payments/read.cedar",
                    "plane": "payments",
                    "text": format!(
                        "@id(\"caller-reads\")\npermit (principal == Steward::Identity::\"{CALLER}\", action == Steward::Action::\"read\", resource == Steward::Capability::\"payments.read\");\n"
                    ),
                }},
                "context_attributes": {},
                "exceptions": {},
            },
        }))
        .unwrap();
        let source = BundleSource::new(
            SourceConfig {
                url: "http://127.0.0.1:1".into(),
                credential: String::from("unused").into(),
                point: "t".into(),
                refresh: std::time::Duration::from_secs(60),
                max_staleness: std::time::Duration::from_secs(300),
                anchor: vec![issuer.public_key().clone()],
            },
            reqwest::Client::new(),
        );
        source.install(&bundle.sign(&issuer).unwrap()).unwrap();
        let (log, records) = DecisionLog::channel(100);
        Fixture {
            point: EnforcementPoint::new("gateway", "t", "prod", source, log),
            records,
            issuer,
        }
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    impl Fixture {
        /// A token for `CALLER`, bound to `dpop` when given.
        fn token(&self, dpop: Option<&SigningKey>) -> String {
            let mut claims = json!({
                "iss": ISSUER, "sub": CALLER, "aud": AUDIENCE, "exp": now() + 300,
                "iat": now(), "nbf": now(), "jti": uuid::Uuid::new_v4().to_string(),
                "environment": "prod", "plane": "payments",
            });
            if let Some(key) = dpop {
                claims["cnf"] = json!({"jkt": key.public_key().thumbprint()});
            }
            jws::encode(&self.issuer, "JWT", &claims).unwrap()
        }

        /// Checks `GET PATH` on `HOST` presenting these headers; the verdict, the
        /// challenge and the decision record.
        fn check(
            &mut self,
            authorization: &[&str],
            dpop: &[&str],
        ) -> (Outcome, Challenge, String, Value) {
            let presented = Presented {
                authorization: HeaderField::from_values(authorization.iter().map(|v| Some(*v))),
                dpop: HeaderField::from_values(dpop.iter().map(|v| Some(*v))),
                method: "GET",
                origin: Origin::Request {
                    scheme: Some("http"),
                    host: Some(HOST),
                },
                target: &format!("{PATH}?expand=refunds"),
                origin_hint: "configure it",
                certificate: PeerCertificate::None,
            };
            let seen = Seen {
                received: std::time::Instant::now(),
                token: None,
                proof: Proof::None,
                audience: AUDIENCE,
                target: Ok(Target::Address(OwnedAddress::Http {
                    method: "GET".into(),
                    path: steward_model::HttpPath::from_target(PATH).unwrap().0,
                })),
                action: None,
                correlation_id: None,
                context: Default::default(),
                carried: Default::default(),
            };
            let read = self.point.read_credential(&presented);
            let (verdict, challenge) = self.point.check_credential(&read, seen);
            let record: Value =
                serde_json::from_str(self.records.try_recv().unwrap().get()).unwrap();
            assert!(self.records.try_recv().is_err(), "one record per check");
            (verdict.outcome, challenge, verdict.reason(), record)
        }
    }

    fn proof(key: &SigningKey, method: &str, url: &str, token: &str) -> String {
        new_dpop_proof(key, method, url, Some(token), now()).unwrap()
    }

    fn dpop(token: &str) -> String {
        format!("DPoP {token}")
    }

    /// A DPoP-bound token with a fresh proof of its key for this request is allowed, and
    /// recorded for the token's subject; the query is no part of `htu`, and scheme and
    /// host compare without case or default port.
    #[test]
    fn a_bound_token_with_a_valid_proof_is_allowed() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        for url in [URL, "HTTP://Payments.Internal:80/v1/charges/ch_1"] {
            let (outcome, _, reason, record) =
                f.check(&[&dpop(&token)], &[&proof(&key, "GET", url, &token)]);
            assert_eq!(outcome, Outcome::Allow, "{url}: {reason}");
            assert_eq!(record["principal"], CALLER);
            assert_eq!(record["decision"]["outcome"], "allow");
        }
        // An unbound token is still accepted as a bearer token.
        let plain = f.token(None);
        let (outcome, challenge, reason, _) = f.check(&[&format!("Bearer {plain}")], &[]);
        assert_eq!(
            (outcome, challenge),
            (Outcome::Allow, Challenge::Bearer),
            "{reason}"
        );
    }

    /// Every way a DPoP request can fail its proof: refused (401) with the reason and the
    /// `invalid_dpop_proof` challenge, recorded as a deny, never echoing token or proof.
    #[test]
    fn every_bad_proof_is_refused_and_recorded() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        let other_token = f.token(Some(&key));
        let no_ath = sign_dpop(
            &key,
            &json!({"jti": "no-ath", "htm": "GET", "htu": URL, "iat": now()}),
        )
        .unwrap();
        let old = sign_dpop(
            &key,
            &json!({"jti": "old", "htm": "GET", "htu": URL, "iat": now() - 600,
                    "ath": steward_token::access_token_hash(&token)}),
        )
        .unwrap();
        let good = proof(&key, "GET", URL, &token);
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            (
                "another method",
                vec![proof(&key, "POST", URL, &token)],
                "htm",
            ),
            (
                "another URL",
                vec![proof(
                    &key,
                    "GET",
                    "http://payments.internal/v1/charges/ch_2",
                    &token,
                )],
                "htu",
            ),
            (
                "another host",
                vec![proof(
                    &key,
                    "GET",
                    "http://evil.example/v1/charges/ch_1",
                    &token,
                )],
                "htu",
            ),
            ("no ath", vec![no_ath], "ath"),
            (
                "the ath of another token",
                vec![proof(&key, "GET", URL, &other_token)],
                "another access token",
            ),
            ("too old", vec![old], "expired"),
            (
                "not a JWS",
                vec!["not.a.proof".into()],
                "DPoP proof was refused",
            ),
            ("no proof", vec![], "needs a `DPoP` header"),
            (
                "two proofs",
                vec![good.clone(), good.clone()],
                "more than one `DPoP` header",
            ),
        ];
        for (what, proofs, want) in cases {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let (outcome, challenge, reason, record) = f.check(&[&dpop(&token)], &proofs);
            assert_eq!(outcome, Outcome::Unauthenticated, "{what}: {reason}");
            assert_eq!(challenge, Challenge::DpopProof, "{what}");
            assert!(reason.contains(want), "{what}: {reason}");
            assert!(
                !reason.contains(&token[..20]),
                "{what} echoes the token: {reason}"
            );
            assert_eq!(record["decision"]["outcome"], "deny", "{what}");
            assert_eq!(record["principal"], "unauthenticated", "{what}");
            assert!(
                record["decision"]["reasons"][0]
                    .as_str()
                    .unwrap()
                    .contains(want),
                "{what}: {record}"
            );
        }
        // The good proof was never spent by the refusals above.
        assert_eq!(f.check(&[&dpop(&token)], &[&good]).0, Outcome::Allow);
    }

    /// A proof is good for one request: the second time it is a replay, refused and
    /// recorded.
    #[test]
    fn a_replayed_proof_is_refused() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        let once = proof(&key, "GET", URL, &token);
        assert_eq!(f.check(&[&dpop(&token)], &[&once]).0, Outcome::Allow);
        let (outcome, challenge, reason, record) = f.check(&[&dpop(&token)], &[&once]);
        assert_eq!(
            (outcome, challenge),
            (Outcome::Unauthenticated, Challenge::DpopProof)
        );
        assert!(reason.contains("already used"), "{reason}");
        assert_eq!(record["decision"]["outcome"], "deny");
        // Each point keeps its own cache: a layer behind this one (nginx in front of the
        // gateway) checks the same request's proof once too.
        let behind = f.point.sibling("nginx");
        let front = std::mem::replace(&mut f.point, behind);
        let fresh = proof(&key, "GET", URL, &token);
        assert_eq!(f.check(&[&dpop(&token)], &[&fresh]).0, Outcome::Allow);
        f.point = front;
        assert_eq!(f.check(&[&dpop(&token)], &[&fresh]).0, Outcome::Allow);
        assert_eq!(
            f.check(&[&dpop(&token)], &[&fresh]).0,
            Outcome::Unauthenticated
        );
    }

    /// A bound token sent as a bearer token is refused by its validation, saying how to
    /// send it; the challenge stays the bearer one the client used.
    #[test]
    fn a_bound_token_as_bearer_is_refused() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        for proofs in [vec![], vec![proof(&key, "GET", URL, &token)]] {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let (outcome, challenge, reason, record) =
                f.check(&[&format!("Bearer {token}")], &proofs);
            assert_eq!(
                (outcome, challenge),
                (Outcome::Unauthenticated, Challenge::Bearer)
            );
            assert!(
                reason.contains("DPoP-bound") && reason.contains("Authorization: DPoP"),
                "{reason}"
            );
            assert_eq!(record["decision"]["outcome"], "deny");
        }
    }

    /// The proof must come from the key the token is bound to; the token's refusal gets
    /// the `invalid_token` challenge, and its proof is not spent (a caller without a valid
    /// token cannot fill the replay cache).
    #[test]
    fn a_proof_of_another_key_or_a_bad_token_is_a_token_refusal() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let thief = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        let stolen = proof(&thief, "GET", URL, &token);
        for _ in 0..2 {
            let (outcome, challenge, reason, _) = f.check(&[&dpop(&token)], &[&stolen]);
            assert_eq!(
                (outcome, challenge),
                (Outcome::Unauthenticated, Challenge::DpopToken)
            );
            assert!(reason.contains("another key"), "{reason}");
        }
        let forged = format!("{}x", f.token(Some(&key)));
        let p = proof(&key, "GET", URL, &forged);
        for _ in 0..2 {
            let (outcome, challenge, reason, _) = f.check(&[&dpop(&forged)], &[&p]);
            assert_eq!(
                (outcome, challenge),
                (Outcome::Unauthenticated, Challenge::DpopToken)
            );
            assert!(!reason.contains("already used"), "{reason}");
        }
    }

    /// What cannot be read is refused before any token is looked at: two
    /// `Authorization` headers, unknown schemes, empty tokens.
    #[test]
    fn unreadable_credentials_are_refused_and_recorded() {
        let mut f = fixture();
        let key = SigningKey::generate().unwrap().0;
        let token = f.token(Some(&key));
        let p = proof(&key, "GET", URL, &token);
        let bearer = format!("Bearer {token}");
        let two = [bearer.as_str(), bearer.as_str()];
        for (authorization, challenge, want) in [
            (&two[..], Challenge::Bearer, "more than one Authorization"),
            (
                &["Basic YWxhZGRpbjpvcGVuc2VzYW1l"][..],
                Challenge::Bearer,
                "`Basic` scheme",
            ),
            (&["DPoP "][..], Challenge::DpopToken, "empty"),
            (
                &["token"][..],
                Challenge::Bearer,
                "must be `Bearer <token>`",
            ),
        ] {
            let (outcome, got, reason, record) = f.check(authorization, &[&p]);
            assert_eq!(
                (outcome, got),
                (Outcome::Unauthenticated, challenge),
                "{want}"
            );
            assert!(reason.contains(want), "{reason}");
            assert!(
                !reason.contains("YWxh"),
                "never echo the credential: {reason}"
            );
            assert_eq!(record["decision"]["outcome"], "deny");
        }
        // No credential at all: the bearer challenge, as before.
        let (outcome, challenge, _, _) = f.check(&[], &[]);
        assert_eq!(
            (outcome, challenge),
            (Outcome::Unauthenticated, Challenge::Bearer)
        );
    }

    /// The URL a proof must name: the configured base, or the request's scheme and host;
    /// a point that cannot tell it refuses DPoP requests and says what to configure.
    #[test]
    fn the_request_url_comes_from_the_configuration_or_the_request() {
        let presented = |origin| Presented {
            authorization: HeaderField::Absent,
            dpop: HeaderField::Absent,
            method: "GET",
            origin,
            target: "/v1/a?b=c#d",
            origin_hint: "set `public_url`",
            certificate: PeerCertificate::None,
        };
        assert_eq!(
            presented(Origin::Configured("https://api.example.com/pay/")).url(),
            Ok("https://api.example.com/pay/v1/a".into())
        );
        assert_eq!(
            presented(Origin::Request {
                scheme: Some("https"),
                host: Some("api.example.com:8443")
            })
            .url(),
            Ok("https://api.example.com:8443/v1/a".into())
        );
        for (scheme, host) in [
            (None, Some("h")),
            (Some("ftp"), Some("h")),
            (Some("http"), None),
            (Some("http"), Some("")),
            (Some("http"), Some("evil.example/x")),
            (Some("http"), Some("user@h")),
        ] {
            let e = presented(Origin::Request { scheme, host })
                .url()
                .unwrap_err();
            assert_eq!(e.challenge(), Challenge::DpopProof);
            assert!(e.to_string().contains("set `public_url`"), "{e}");
        }
    }

    #[test]
    fn joined_headers_are_repeated_ones() {
        assert_eq!(HeaderField::from_joined(None), HeaderField::Absent);
        assert_eq!(
            HeaderField::from_joined(Some("a.b.c")),
            HeaderField::One(Some("a.b.c"))
        );
        assert_eq!(
            HeaderField::from_joined(Some("a.b.c,d.e.f")),
            HeaderField::Repeated
        );
        assert_eq!(
            HeaderField::from_values([Some("x"), None]),
            HeaderField::Repeated
        );
    }

    proptest::proptest! {
        /// Any `Authorization` value: no panic, a token is only ever what follows
        /// `Bearer ` or `DPoP `, trimmed and non-empty, and a refusal never echoes what
        /// follows the scheme (only the scheme itself, cut to 20 characters, may be named).
        #[test]
        fn authorization_never_panics_and_only_takes_its_schemes(value in "\\PC{0,200}") {
            match authorization(&value) {
                Ok((scheme, token)) => {
                    let prefix = format!("{scheme} ");
                    proptest::prop_assert!(value.get(..prefix.len()).is_some_and(|s| s.eq_ignore_ascii_case(&prefix)));
                    proptest::prop_assert!(!token.is_empty() && token == token.trim());
                }
                Err(e) => {
                    let e = e.to_string();
                    if let Some((scheme, secret)) = value.split_once(' ') {
                        let shown: String = scheme.chars().take(20).collect();
                        let secret = secret.trim();
                        proptest::prop_assert!(
                            !e.contains(secret) || secret.len() < 3 || shown.contains(secret),
                            "{e}"
                        );
                    }
                }
            }
        }
    }
}
