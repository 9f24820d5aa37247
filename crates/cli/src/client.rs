//! A small typed client of the admin API, used by every CLI command, the demo and tests.

use anyhow::{Context, Result, anyhow};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An error answer from the server, with its diagnostics.
#[derive(Debug, Clone, Deserialize, thiserror::Error)]
#[error("{message} ({error})")]
pub struct ServerError {
    #[serde(skip)]
    pub status: u16,
    pub error: String,
    pub message: String,
    #[serde(default)]
    pub diagnostics: Vec<steward_governance::Diagnostic>,
}

/// The admin API at `base`, authenticated with `token`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        check_server_url(base)?;
        let http = reqwest::Client::builder()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
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

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Percent-encodes one path segment (SPIFFE IDs contain `/` and `:`).
    pub fn segment(value: &str) -> String {
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
    }

    /// Sends a request; on an error status returns [`ServerError`] inside the anyhow error.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            // Say what the usual mistake is: TLS spoken to a plain-HTTP server.
            let chain = format!("{:#}", anyhow::Error::from(e));
            let hint = if self.base.starts_with("https://")
                && (chain.contains("InvalidContentType") || chain.contains("corrupt message"))
            {
                " The server answered in plain HTTP: use an http:// URL (or give `steward serve` a [tls] section)."
            } else {
                " Is `steward serve` running there (STEWARD_SERVER or --server)?"
            };
            anyhow!(
                "cannot reach the control plane at {}: {chain}.{hint}",
                self.base
            )
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .context("the control plane closed the connection mid-answer")?;
        if status.is_success() {
            let raw: &[u8] = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                b"null"
            } else {
                &bytes
            };
            return serde_json::from_slice(raw)
                .with_context(|| format!("unexpected answer to {method} {path}"));
        }
        let mut err: ServerError = serde_json::from_slice(&bytes).unwrap_or_else(|_| ServerError {
            status: status.as_u16(),
            error: "http".into(),
            message: format!("HTTP {status}"),
            diagnostics: Vec::new(),
        });
        err.status = status.as_u16();
        Err(anyhow!(err))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::DELETE, path, None).await
    }

    /// Posts a form (an OAuth token request) without the admin credential; returns the
    /// status and the JSON answer, error or not (OAuth errors are answers to show).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, serde_json::Value)> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.base))?;
        let status = resp.status();
        let value = resp
            .json()
            .await
            .with_context(|| format!("unexpected answer to POST {path}"))?;
        Ok((status, value))
    }
}

/// The server error behind an anyhow error, if that is what it is.
pub fn server_error(e: &anyhow::Error) -> Option<&ServerError> {
    e.downcast_ref::<ServerError>()
}

/// Refuses a server address that is not an `http://` or `https://` URL with a host,
/// saying what to write (reqwest's own words for it are "relative URL without a base").
fn check_server_url(base: &str) -> Result<()> {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(anyhow!(
            "the control plane address `{base}` is not a URL: write it with its scheme, e.g. http://127.0.0.1:8470 (STEWARD_SERVER or --server)"
        )),
    }
}
