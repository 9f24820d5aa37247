//! Cutting off a revoked identity's open broker connections.
//!
//! RabbitMQ caches the HTTP backend's answers per channel, so a revoked identity keeps
//! publishing and consuming on channels it already opened. When revocations are applied,
//! every broker session whose token they now cover is forgotten (its next check is
//! denied) and its open connections are closed through the broker's management API —
//! before the revocation is acknowledged, so "acknowledged" means "cut off".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use steward_enforce::RevocationHook;
use steward_model::Revocation;

use crate::auth_endpoints::AuthEndpoints;
use crate::config::ManagementConfig;

/// The hook the gateway registers with its revocation feed.
pub struct BrokerSessions {
    endpoints: Arc<AuthEndpoints>,
    management: Option<ManagementConfig>,
    http: reqwest::Client,
}

impl BrokerSessions {
    pub fn new(
        endpoints: Arc<AuthEndpoints>,
        management: Option<ManagementConfig>,
        http: reqwest::Client,
    ) -> Self {
        if management.is_none() {
            tracing::warn!(
                "[auth] has no rabbitmq_management_url: a revoked identity's open broker channels keep their cached permissions until they close"
            );
        }
        Self {
            endpoints,
            management,
            http,
        }
    }

    async fn cut_off(&self) {
        for (user, why) in self.endpoints.forget_revoked_sessions() {
            let Some(m) = &self.management else {
                tracing::info!(username = %user, reason = %why, "broker session revoked");
                continue;
            };
            match close_connections(&self.http, m, &user, &why).await {
                Ok(n) => {
                    tracing::info!(username = %user, connections = n, reason = %why, "revoked broker connections closed")
                }
                Err(e) => {
                    tracing::error!(username = %user, error = %e, "cannot close a revoked identity's broker connections")
                }
            }
        }
    }
}

impl RevocationHook for BrokerSessions {
    fn applied<'a>(
        &'a self,
        _revocations: &'a [Revocation],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.cut_off())
    }
}

#[derive(serde::Deserialize)]
struct Connection {
    #[serde(default)]
    user: String,
}

/// A path segment, percent-encoded (user names are SPIFFE IDs: `:` and `/`).
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Closes every connection of `user`; returns how many. The per-user endpoints use the
/// broker's connection tracking, current at once (`/api/connections` and closing by name
/// go through the statistics database, which lags by its collection interval).
async fn close_connections(
    http: &reqwest::Client,
    m: &ManagementConfig,
    user: &str,
    why: &str,
) -> Result<usize, String> {
    let path = format!("/api/connections/username/{}", segment(user));
    let list = http
        .get(format!("{}{path}", m.url))
        .basic_auth(&m.user, Some(&m.password))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if !list.status().is_success() {
        return Err(format!(
            "GET {path} answered {} (is `{}` an administrator?)",
            list.status(),
            m.user
        ));
    }
    let connections: Vec<Connection> = list.json().await.map_err(|e| format!("GET {path}: {e}"))?;
    let reason: String = format!("steward: {why}")
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect();
    let mine = connections.iter().filter(|c| c.user == user).count();
    if mine == 0 {
        return Ok(0);
    }
    // Closes them all through connection tracking too (closing by name looks the name up
    // in the statistics database, which may not know a new connection yet).
    let answer = http
        .delete(format!("{}{path}", m.url))
        .basic_auth(&m.user, Some(&m.password))
        .header("x-reason", &reason)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("DELETE {path}: {e}"))?;
    if answer.status().is_success() {
        Ok(mine)
    } else {
        Err(format!("DELETE {path} answered {}", answer.status()))
    }
}
