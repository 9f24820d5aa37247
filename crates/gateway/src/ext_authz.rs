//! Envoy's external authorization service (`envoy.service.auth.v3.Authorization/Check`,
//! gRPC), so Envoy and Istio meshes enforce the same decision as every other layer.
//!
//! An allowed request goes upstream with the verified identity and trace context added
//! and the credential removed; a refused one gets 401 (no or invalid credential), 403
//! (policy) or 503 (no current bundle) with a JSON reason, as the ext_authz contract lets
//! the authorization service choose.

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use serde_json::json;
use steward_enforce::trace::TraceContext;
use steward_enforce::{
    Carried, EnforcementPoint, HeaderField, Origin, Outcome, PeerCertificate, Presented, Seen,
    request_address,
};
use steward_policy::Target;
use steward_token::Proof;

use crate::config::CertificateFrom;
use crate::credential::{IDENTITY_HEADER, is_steward_header};
use crate::request_headers::EnvoyHeaders;

/// The ext_authz service of one enforcement point.
pub struct ExtAuthz {
    audience: String,
    point: EnforcementPoint,
    certificate_from: CertificateFrom,
}

impl ExtAuthz {
    pub fn new(
        audience: String,
        point: &EnforcementPoint,
        certificate_from: CertificateFrom,
    ) -> Self {
        Self {
            audience,
            point: point.sibling("ext_authz"),
            certificate_from,
        }
    }

    /// The client certificate of the checked request, from where this service is
    /// configured to read it.
    fn certificate<'a>(
        &self,
        request: &'a CheckRequest,
        headers: &'a std::collections::HashMap<String, String>,
    ) -> PeerCertificate<'a> {
        match self.certificate_from {
            CertificateFrom::Source => request
                .attributes
                .as_ref()
                .and_then(|a| a.source.as_ref())
                .map_or(PeerCertificate::None, |s| {
                    PeerCertificate::EscapedPem(&s.certificate)
                }),
            CertificateFrom::Xfcc => headers
                .get("x-forwarded-client-cert")
                .map_or(PeerCertificate::None, |v| PeerCertificate::Xfcc(v)),
        }
    }

    /// Decides one `CheckRequest` (also what the gRPC method calls).
    pub fn decide(&self, request: &CheckRequest) -> CheckResponse {
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let empty = Default::default();
        let headers = request.get_client_headers().unwrap_or(&empty);
        let trace = TraceContext::continue_or_start(headers.get("traceparent").map(String::as_str));
        let (method, path) = http
            .map(|h| (h.method.as_str(), h.path.as_str()))
            .unwrap_or(("", ""));
        // Envoy passes the request target undecoded (path and query): decided, like at
        // every layer, on its normal form, and a gRPC call as its gRPC method.
        let target = request_address(
            method,
            path,
            headers.get("content-type").map(String::as_str),
            |h| headers.contains_key(h),
        )
        .map(Target::Address);
        let envoy_headers = EnvoyHeaders(headers);
        let seen = Seen {
            received: std::time::Instant::now(),
            token: None,
            proof: Proof::None,
            audience: &self.audience,
            target,
            action: None,
            correlation_id: Some(&trace.trace_id),
            context: Default::default(),
            carried: Carried {
                headers: Some(&envoy_headers),
                message: None,
                arguments: None,
            },
        };
        let (verdict, challenge) = match http {
            None => (
                self.point.refuse_credential(
                    &seen,
                    "the CheckRequest carries no HTTP request attributes".into(),
                ),
                steward_enforce::Challenge::Bearer,
            ),
            Some(h) => {
                // Envoy joins repeated headers with `,` and names them in lower case.
                let presented = Presented {
                    authorization: HeaderField::from_joined(
                        headers.get("authorization").map(String::as_str),
                    ),
                    dpop: HeaderField::from_joined(headers.get("dpop").map(String::as_str)),
                    method,
                    origin: Origin::Request {
                        scheme: Some(h.scheme.as_str()).filter(|s| !s.is_empty()),
                        host: Some(h.host.as_str()).filter(|s| !s.is_empty()),
                    },
                    target: path,
                    origin_hint: "Envoy must send the request's scheme and host in `attributes.request.http`",
                    certificate: self.certificate(request, headers),
                };
                let read = self.point.read_credential(&presented);
                self.point.check_credential(&read, seen)
            }
        };
        if verdict.allowed() {
            let mut ok = OkHttpResponseBuilder::new();
            let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
            if let Some(p) = &verdict.principal {
                ok.add_header(IDENTITY_HEADER, p.as_str(), overwrite, false);
            }
            ok.add_header(
                "x-steward-decision-id",
                verdict.event_id.as_str(),
                overwrite,
                false,
            );
            ok.add_header("traceparent", trace.child().to_string(), overwrite, false);
            // The credential stays here: the upstream must not take a proof checked here
            // as one it may rely on (nor replay it).
            ok.remove_header("authorization");
            ok.remove_header("dpop");
            // Identity headers the client made up. (Envoy applies removals after
            // additions, so the ones set above are not listed.)
            for name in headers.keys() {
                if is_steward_header(name)
                    && name != IDENTITY_HEADER
                    && name != "x-steward-decision-id"
                {
                    ok.remove_header(name.as_str());
                }
            }
            let mut response = CheckResponse::with_status(tonic::Status::ok("allowed"));
            response.set_http_response(ok);
            return response;
        }
        let (grpc_status, http_status) = match verdict.outcome {
            Outcome::Unauthenticated => (
                tonic::Status::unauthenticated(verdict.reason()),
                HttpStatusCode::Unauthorized,
            ),
            Outcome::Forbidden => (
                tonic::Status::permission_denied(verdict.reason()),
                HttpStatusCode::Forbidden,
            ),
            Outcome::Malformed => (
                tonic::Status::invalid_argument(verdict.reason()),
                HttpStatusCode::BadRequest,
            ),
            Outcome::Unavailable | Outcome::Allow => (
                tonic::Status::unavailable(verdict.reason()),
                HttpStatusCode::ServiceUnavailable,
            ),
        };
        let mut denied = DeniedHttpResponseBuilder::new();
        denied.set_http_status(http_status);
        denied.add_header("content-type", "application/json", None, false);
        if verdict.outcome == Outcome::Unauthenticated {
            denied.add_header("www-authenticate", challenge.header_value(), None, false);
        }
        denied.set_body(
            json!({
                "error": match verdict.outcome {
                    Outcome::Unauthenticated => "unauthenticated",
                    Outcome::Forbidden => "forbidden",
                    Outcome::Malformed => "bad_request",
                    _ => "enforcement_unavailable",
                },
                "reason": verdict.reason(),
                "decision_id": verdict.event_id,
                "trace_id": trace.trace_id,
            })
            .to_string(),
        );
        let mut response = CheckResponse::with_status(grpc_status);
        response.set_http_response(denied);
        response
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.decide(request.get_ref())))
    }
}
