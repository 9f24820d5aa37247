//! The gateway proxy over TLS: client certificates reach the enforcement core from the
//! proxy's own handshake, certificate-bound tokens (RFC 8705, `cnf.x5t#S256`) pass only
//! with their certificate, DPoP proofs name `https://`, and a client's own certificate
//! headers never reach the upstream.

use std::path::Path;

use super::*;

/// Writes `cert` and its key as `<stem>.pem` and `<stem>-key.pem` under `dir`.
pub fn write_cert(cert: &ClientCert, dir: &Path, stem: &str) {
    std::fs::write(dir.join(format!("{stem}.pem")), &cert.pem).unwrap();
    std::fs::write(dir.join(format!("{stem}-key.pem")), &cert.key_pem).unwrap();
}

/// The claims of a token, unverified (the test looks at what was issued).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A gateway following `cp` with three proxies to `upstream`: TLS asking for client
/// certificates, TLS requiring them, and plain HTTP. `extra` goes into each `[[proxy]]`.
pub async fn tls_gateway(
    cp: &ControlPlane,
    upstream: &str,
    server: &ClientCert,
    extra: &str,
) -> (steward_gateway::Running, tempfile::TempDir) {
    let credential = cp.credential("gateway-tls-test", "ingestor").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credential"), &credential).unwrap();
    write_cert(server, dir.path(), "gateway");
    let text = format!(
        r#"
name = "edge-tls"
environment = "prod"
[control_plane]
url = "{base}"
credential_file = "credential"
refresh_secs = 1
[[proxy]]
listen = "127.0.0.1:0"
upstream = "{upstream}"
audience = "{AUDIENCE}"
{extra}
[proxy.tls]
cert_file = "gateway.pem"
key_file = "gateway-key.pem"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "{upstream}"
audience = "{AUDIENCE}"
header_read_timeout_secs = 1
{extra}
[proxy.tls]
cert_file = "gateway.pem"
key_file = "gateway-key.pem"
client_certificates = "required"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "{upstream}"
audience = "{AUDIENCE}"
{extra}
"#,
        base = cp.base,
    );
    let config = GatewayConfig::parse(&text, dir.path()).unwrap();
    let running = steward_gateway::start(config).await.unwrap();
    running
        .source
        .wait_ready(Duration::from_secs(20))
        .await
        .unwrap();
    (running, dir)
}

/// An HTTPS client trusting `server`, presenting `cert` if given.
pub fn https_client(server: &ClientCert, cert: Option<&ClientCert>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.pem.as_bytes()).unwrap());
    if let Some(c) = cert {
        b = b.identity(c.identity());
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_pass_the_proxy_only_with_their_certificate() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let server = ClientCert::generate("127.0.0.1");
    let (gw, _dir) = tls_gateway(&cp, &format!("http://{upstream}"), &server, "").await;
    let (optional, required, plain) = (gw.proxies[0], gw.proxies[1], gw.proxies[2]);
    let (mine, theirs) = (&cp.certs[CALLER], &cp.certs[OUTSIDER]);
    let bound = cp.cert_bound_token(CALLER, AUDIENCE).await;
    assert_eq!(claims_of(&bound)["cnf"]["x5t#S256"], mine.thumbprint());
    let outsider = cp.cert_bound_token(OUTSIDER, AUDIENCE).await;
    let bearer = cp.token(CALLER, AUDIENCE).await;
    let with_mine = https_client(&server, Some(mine));
    let with_theirs = https_client(&server, Some(theirs));
    let without = https_client(&server, None);
    let http = reqwest::Client::new();

    // Row: (label, client, url, token, status, what the refusal's record says).
    let at = |addr: SocketAddr, scheme: &str| format!("{scheme}://{addr}/v1/charges/ch_1");
    type Row<'a> = (
        &'a str,
        &'a reqwest::Client,
        String,
        &'a str,
        u16,
        Option<&'a str>,
    );
    let rows: Vec<Row> = vec![
        (
            "its certificate",
            &with_mine,
            at(optional, "https"),
            &bound,
            200,
            None,
        ),
        (
            "its certificate, required listener",
            &with_mine,
            at(required, "https"),
            &bound,
            200,
            None,
        ),
        (
            "another certificate",
            &with_theirs,
            at(optional, "https"),
            &bound,
            401,
            Some("another client certificate"),
        ),
        (
            "no certificate",
            &without,
            at(optional, "https"),
            &bound,
            401,
            Some("mutual TLS"),
        ),
        (
            "plain HTTP",
            &http,
            at(plain, "http"),
            &bound,
            401,
            Some("mutual TLS"),
        ),
        (
            "an outsider with its own certificate",
            &with_theirs,
            at(optional, "https"),
            &outsider,
            403,
            None,
        ),
        (
            "an unbound token without a certificate",
            &without,
            at(optional, "https"),
            &bearer,
            200,
            None,
        ),
        (
            "an unbound token beside a certificate",
            &with_theirs,
            at(optional, "https"),
            &bearer,
            200,
            None,
        ),
    ];
    for (row, (label, client, url, token, status, reason)) in rows.into_iter().enumerate() {
        let trace_id = format!("{:032x}", 0x3715_0000_u128 + row as u128);
        let resp = client
            .get(&url)
            .bearer_auth(token)
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            // A client's own certificate headers: never taken, never forwarded.
            .header("x-forwarded-client-cert", "Hash=00;Subject=\"CN=admin\"")
            .header("x-ssl-client-cert", "-----BEGIN%20CERTIFICATE-----")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(resp.status().as_u16(), status, "{label}");
        if url.starts_with("https") {
            // reqwest offers h2 by ALPN, and the listener takes it.
            assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{label}");
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = resp.json().await.unwrap();
        match status {
            200 => {
                let who = if token == outsider { OUTSIDER } else { CALLER };
                assert_eq!(
                    body["headers"]["x-steward-identity"],
                    json!([who]),
                    "{label}"
                );
                for h in [
                    "authorization",
                    "x-forwarded-client-cert",
                    "x-ssl-client-cert",
                ] {
                    assert!(
                        body["headers"].get(h).is_none(),
                        "{label}: {h} forwarded: {body}"
                    );
                }
            }
            401 => {
                assert_eq!(
                    challenge.as_deref(),
                    Some("Bearer error=\"invalid_token\""),
                    "{label}"
                );
                let why = body["reason"].as_str().unwrap();
                assert!(why.contains(reason.unwrap()), "{label}: {why}");
            }
            _ => assert_eq!(body["error"], "forbidden", "{label}: {body}"),
        }
        // Recorded like every refusal, with the reason.
        let events = cp.decisions_for(&trace_id, 1).await;
        assert_eq!(events.len(), 1, "{label}: {events:?}");
        let e = &events[0];
        assert_eq!(e["enforcement_point"], "gateway:edge-tls", "{label}");
        let outcome = if status == 200 { "allow" } else { "deny" };
        assert_eq!(e["decision"]["outcome"], outcome, "{label}: {e}");
        if let Some(why) = reason {
            assert_eq!(e["principal"], "unauthenticated", "{label}: {e}");
            assert!(
                e["decision"]["reasons"][0].as_str().unwrap().contains(why),
                "{label}: {e}"
            );
        }
    }

    // A listener that requires a certificate ends the handshake without one.
    assert!(
        without
            .get(at(required, "https"))
            .bearer_auth(&bearer)
            .send()
            .await
            .is_err(),
        "served without a client certificate"
    );

    // A DPoP proof names the URL with `https`: the listener speaks TLS.
    let holder = SigningKey::generate().unwrap().0;
    let dpop_bound = cp.bound_token(CALLER, AUDIENCE, &holder).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let url = at(optional, "https");
    for (htu, status) in [(url.clone(), 200), (url.replacen("https", "http", 1), 401)] {
        let proof =
            steward_token::new_dpop_proof(&holder, "GET", &htu, Some(&dpop_bound), now).unwrap();
        let resp = without
            .get(&url)
            .header("authorization", format!("DPoP {dpop_bound}"))
            .header("dpop", proof)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "proof for {htu}");
    }
    gw.shutdown(Duration::from_secs(5)).await;
}

/// A bad `[proxy.tls]` stops the configuration with the field and what to fix.
#[test]
fn proxy_tls_settings_are_checked_when_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credential"), "stw_x_y").unwrap();
    write_cert(&ClientCert::generate("127.0.0.1"), dir.path(), "ok");
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let parse = |tls: &str| {
        GatewayConfig::parse(
            &format!(
                r#"
name = "t"
environment = "prod"
[control_plane]
url = "http://127.0.0.1:1"
credential_file = "credential"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:2"
audience = "spiffe://acme.example/api"
[proxy.tls]
{tls}
"#
            ),
            dir.path(),
        )
    };
    let ok = parse("cert_file = \"ok.pem\"\nkey_file = \"ok-key.pem\"").unwrap();
    assert_eq!(
        ok.proxies[0].tls.as_ref().unwrap().client_certificates,
        steward_listen::tls::ClientCertificates::Optional
    );
    for (tls, says) in [
        (
            "cert_file = \"missing.pem\"\nkey_file = \"ok-key.pem\"",
            "missing.pem",
        ),
        (
            "cert_file = \"empty.pem\"\nkey_file = \"ok-key.pem\"",
            "holds no PEM certificate",
        ),
        (
            "cert_file = \"ok.pem\"\nkey_file = \"ok.pem\"",
            "private key",
        ),
        (
            "cert_file = \"ok.pem\"\nkey_file = \"ok-key.pem\"\nclient_certificates = \"maybe\"",
            "proxy[0].tls.client_certificates",
        ),
        ("cert_file = \"ok.pem\"", "key_file"),
    ] {
        let e = parse(tls).unwrap_err().to_string();
        assert!(e.contains(says), "{tls}: {e}");
    }

    // `[mcp.tls]` is read the same way; the resource agents name must then be https://.
    let mcp = |resource: &str| {
        GatewayConfig::parse(
            &format!(
                r#"
name = "t"
environment = "prod"
[control_plane]
url = "http://127.0.0.1:1"
credential_file = "credential"
[[mcp]]
listen = "127.0.0.1:0"
server = "support"
upstream = "http://127.0.0.1:2/mcp"
resource = "{resource}"
[mcp.tls]
cert_file = "ok.pem"
key_file = "ok-key.pem"
client_certificates = "required"
"#
            ),
            dir.path(),
        )
    };
    let ok = mcp("https://mcp.example.com/mcp").unwrap();
    assert_eq!(
        ok.mcp[0].tls.as_ref().unwrap().client_certificates,
        steward_listen::tls::ClientCertificates::Required
    );
    let e = mcp("http://mcp.example.com/mcp").unwrap_err().to_string();
    assert!(
        e.contains("mcp[0].resource") && e.contains("https://"),
        "{e}"
    );
}
