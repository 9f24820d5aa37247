//! gRPC end to end through the gateway proxy: a real tonic client calls a real tonic
//! server behind the proxy — over h2c with prior knowledge, and over TLS (ALPN h2) to an
//! `https://` upstream. Allowed calls get the upstream's answer, trailers included, and
//! streams stay streamed both ways; refusals are the gRPC statuses a client reads.
//!
//! The upstream serves two methods the catalog maps (`payments.v1.Charges/Get` and
//! `/List`, read by `CALLER` and not by `OUTSIDER`) with messages of protos already at
//! hand: Envoy's `Authorization/Check` (unary) and `ExternalProcessor/Process`
//! (bidirectional streaming).

use std::pin::Pin;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

use super::mtls::{tls_gateway, write_cert};
use super::*;

const GET: &str = "/payments.v1.Charges/Get";
const LIST: &str = "/payments.v1.Charges/List";

/// The unary method: answers with the identity the gateway forwarded, and says whether
/// any credential reached it.
struct Upstream;

#[tonic::async_trait]
impl Authorization for Upstream {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, Status> {
        let md = request.metadata();
        let identity = md
            .get("x-steward-identity")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        let leaked = md.contains_key("authorization") || md.contains_key("x-forwarded-client-cert");
        let mut answer = tonic::Response::new(CheckResponse {
            status: Some(RpcStatus {
                code: 0,
                message: format!("{identity} leaked={leaked}"),
                details: Vec::new(),
            }),
            ..Default::default()
        });
        answer
            .metadata_mut()
            .insert("x-upstream", "tonic".parse().unwrap());
        Ok(answer)
    }
}

type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

/// The streaming method: one answer per message as it arrives, then a status in the
/// trailers saying how many it answered.
#[tonic::async_trait]
impl ExternalProcessor for Upstream {
    type ProcessStream = Answers;

    async fn process(
        &self,
        request: tonic::Request<tonic::Streaming<ProcessingRequest>>,
    ) -> Result<tonic::Response<Answers>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Some(_)) = inbound.message().await {
                n += 1;
                if tx.send(Ok(ProcessingResponse::default())).await.is_err() {
                    return;
                }
            }
            let mut trailers = tonic::metadata::MetadataMap::new();
            trailers.insert("x-answered", n.to_string().parse().unwrap());
            let _ = tx
                .send(Err(Status::with_metadata(
                    Code::Aborted,
                    format!("answered {n}"),
                    trailers,
                )))
                .await;
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The upstream's router: the catalog's two paths served by the two services.
fn upstream_router() -> axum::Router {
    let rewrite = |to: &'static str| {
        move |mut req: axum::extract::Request| {
            *req.uri_mut() = to.parse().unwrap();
            req
        }
    };
    let check = tower::ServiceBuilder::new()
        .map_request(rewrite("/envoy.service.auth.v3.Authorization/Check"))
        .service(AuthorizationServer::new(Upstream));
    let process = tower::ServiceBuilder::new()
        .map_request(rewrite(
            "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
        ))
        .service(ExternalProcessorServer::new(Upstream));
    axum::Router::new()
        .route_service(GET, check)
        .route_service(LIST, process)
}

/// Serves the upstream over h2c (HTTP/2 with prior knowledge) and over TLS with
/// `server`'s certificate (ALPN h2); their addresses.
async fn grpc_upstreams(server: &ClientCert) -> (SocketAddr, SocketAddr) {
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    let limits = steward_listen::Limits::default();
    tokio::spawn(steward_listen::serve(
        plain,
        upstream_router(),
        limits,
        std::future::pending(),
    ));
    let dir = tempfile::tempdir().unwrap();
    write_cert(server, dir.path(), "upstream");
    let config = steward_listen::tls::server_config(
        &dir.path().join("upstream.pem"),
        &dir.path().join("upstream-key.pem"),
        steward_listen::tls::ClientCertificates::None,
    )
    .unwrap();
    tokio::spawn(steward_listen::tls::serve_tls(
        tls,
        upstream_router(),
        limits,
        config,
        std::future::pending(),
    ));
    addrs
}

/// A gRPC channel to `addr`: h2c, or TLS trusting `server` (ALPN h2), presenting `cert`.
async fn channel(
    addr: SocketAddr,
    tls: Option<(&ClientCert, Option<&ClientCert>)>,
) -> tonic::transport::Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let Some((server, cert)) = tls else {
        return endpoint.connect().await.unwrap();
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(server.der.clone()))
        .unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            use rustls::pki_types::pem::PemObject;
            builder
                .with_client_auth_cert(
                    vec![rustls::pki_types::CertificateDer::from(c.der.clone())],
                    rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap()
}

/// A unary call of `GET` with `token` as a bearer token.
async fn get(
    channel: &tonic::transport::Channel,
    token: Option<&str>,
) -> Result<tonic::Response<CheckResponse>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(CheckRequest::default());
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    // A client's own certificate header: never forwarded.
    request
        .metadata_mut()
        .insert("x-forwarded-client-cert", "Hash=00".parse().unwrap());
    grpc.unary(
        request,
        tonic::codegen::http::uri::PathAndQuery::from_static(GET),
        tonic_prost::ProstCodec::default(),
    )
    .await
}

/// Checks a channel through the gateway: the allowed unary call, the refusals, and a
/// stream answered message by message, its status arriving in the trailers.
async fn calls_through(
    label: &str,
    channel: &tonic::transport::Channel,
    cp: &ControlPlane,
    caller: &str,
) {
    let answer = get(channel, Some(caller))
        .await
        .unwrap_or_else(|s| panic!("{label}: {s:?}"));
    assert_eq!(
        answer.metadata().get("x-upstream").unwrap(),
        "tonic",
        "{label}: the upstream's metadata"
    );
    assert_eq!(
        answer.get_ref().status.as_ref().unwrap().message,
        format!("{CALLER} leaked=false"),
        "{label}"
    );
    let outsider = cp.token(OUTSIDER, AUDIENCE).await;
    let denied = get(channel, Some(&outsider)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{label}: {denied:?}");
    assert!(denied.message().len() > 5, "{label}: {denied:?}");
    assert!(
        denied.metadata().contains_key("x-steward-decision-id"),
        "{label}: {denied:?}"
    );
    let anonymous = get(channel, None).await.unwrap_err();
    assert_eq!(
        anonymous.code(),
        Code::Unauthenticated,
        "{label}: {anonymous:?}"
    );

    // Bidirectional streaming: each answer comes back before the next message is sent.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<ProcessingRequest>(1);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {caller}").parse().unwrap());
    tx.send(ProcessingRequest::default()).await.unwrap();
    let response = grpc
        .streaming(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(LIST),
            tonic_prost::ProstCodec::<ProcessingRequest, ProcessingResponse>::default(),
        )
        .await
        .unwrap_or_else(|s| panic!("{label}: {s:?}"));
    let mut answers = response.into_inner();
    for i in 1..=3 {
        let answer = tokio::time::timeout(Duration::from_secs(5), answers.message())
            .await
            .unwrap_or_else(|_| panic!("{label}: answer {i} held back"));
        assert!(answer.unwrap().is_some(), "{label}: answer {i}");
        if i < 3 {
            tx.send(ProcessingRequest::default()).await.unwrap();
        }
    }
    drop(tx);
    let end = answers.message().await.unwrap_err();
    assert_eq!(end.code(), Code::Aborted, "{label}: {end:?}");
    assert_eq!(end.message(), "answered 3", "{label}");
    assert_eq!(end.metadata().get("x-answered").unwrap(), "3", "{label}");
    let _ = answers.trailers().await;
}

/// What `examples/clients/grpcio_call.py` (Python's grpcio) saw calling `method` through
/// the gateway at `addr` with `token`, `stream` messages on one stream when not zero.
fn grpcio_call(
    python: &std::path::Path,
    addr: SocketAddr,
    method: &str,
    token: Option<&str>,
    stream: usize,
) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/clients/grpcio_call.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .args(["--target", &addr.to_string(), "--method", method])
        .args(["--stream", &stream.to_string()])
        .env_remove("STEWARD_ACCESS_TOKEN");
    if let Some(t) = token {
        command.env("STEWARD_ACCESS_TOKEN", t);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "grpcio_call.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "grpcio_call.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The same calls as [`calls_through`], made by Python's grpcio (h2c): a client no one
/// here wrote reads the upstream's answer and metadata, the refusals as gRPC statuses,
/// and a stream's status from its trailers.
async fn grpcio_calls_through(
    python: &std::path::Path,
    addr: SocketAddr,
    cp: &ControlPlane,
    token: &str,
) {
    let python = python.to_owned();
    let outsider = cp.token(OUTSIDER, AUDIENCE).await;
    let token = token.to_owned();
    let (allowed, denied, anonymous, streamed) = tokio::task::spawn_blocking(move || {
        (
            grpcio_call(&python, addr, GET, Some(&token), 0),
            grpcio_call(&python, addr, GET, Some(&outsider), 0),
            grpcio_call(&python, addr, GET, None, 0),
            grpcio_call(&python, addr, LIST, Some(&token), 3),
        )
    })
    .await
    .unwrap();
    assert_eq!(allowed["code"], "OK", "{allowed}");
    assert_eq!(
        allowed["initial_metadata"]["x-upstream"], "tonic",
        "{allowed}"
    );
    // The answer is a CheckResponse whose status message names the forwarded identity.
    let answer = hex::decode(allowed["answers"][0].as_str().unwrap()).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains(&format!("{CALLER} leaked=false")),
        "grpcio: the upstream's answer: {answer:?}"
    );
    assert_eq!(denied["code"], "PERMISSION_DENIED", "{denied}");
    assert!(
        denied["details"].as_str().unwrap().len() > 5,
        "grpcio: a refusal says why: {denied}"
    );
    assert_eq!(anonymous["code"], "UNAUTHENTICATED", "{anonymous}");
    // Three messages, each sent after the previous answer: a stream, not a buffer; the
    // upstream's status and trailer metadata reach the client.
    assert_eq!(streamed["sent"], 3, "{streamed}");
    assert_eq!(
        streamed["answers"].as_array().unwrap().len(),
        3,
        "{streamed}"
    );
    assert_eq!(streamed["code"], "ABORTED", "{streamed}");
    assert_eq!(streamed["details"], "answered 3", "{streamed}");
    assert_eq!(
        streamed["trailing_metadata"]["x-answered"], "3",
        "{streamed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_reaches_a_grpc_server_through_the_proxy() {
    steward_listen::tls::install_crypto_provider();
    let cp = ControlPlane::start().await;
    let token = cp.token(CALLER, AUDIENCE).await;
    let upstream_cert = ClientCert::generate("127.0.0.1");
    let (h2c, https) = grpc_upstreams(&upstream_cert).await;

    // h2c from the client, h2c with prior knowledge to an http:// upstream (auto).
    let gw = gateway(&cp, h2c, "").await;
    let plain = channel(gw.proxies[0], None).await;
    calls_through("h2c", &plain, &cp, &token).await;
    if let Some(python) = steward_testkit::python_with_grpcio("grpcio through the gateway") {
        grpcio_calls_through(&python, gw.proxies[0], &cp, &token).await;
    }
    gw.shutdown(Duration::from_secs(5)).await;

    // TLS (ALPN h2) from the client, with a certificate-bound token and its
    // certificate; HTTP/2 by ALPN to an https:// upstream.
    let dir = tempfile::tempdir().unwrap();
    write_cert(&upstream_cert, dir.path(), "upstream-ca");
    let server = ClientCert::generate("127.0.0.1");
    let (gw, _files) = tls_gateway(
        &cp,
        &format!("https://{https}"),
        &server,
        &format!(
            "upstream_ca_file = \"{}\"",
            dir.path().join("upstream-ca.pem").display()
        ),
    )
    .await;
    let bound = cp.cert_bound_token(CALLER, AUDIENCE).await;
    let mine = &cp.certs[CALLER];
    let tls = channel(gw.proxies[0], Some((&server, Some(mine)))).await;
    calls_through("TLS, certificate-bound", &tls, &cp, &bound).await;
    // The bound token without its certificate: UNAUTHENTICATED, saying why.
    let bare = channel(gw.proxies[0], Some((&server, None))).await;
    let refused = get(&bare, Some(&bound)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("mutual TLS"), "{refused:?}");
    gw.shutdown(Duration::from_secs(5)).await;
}
