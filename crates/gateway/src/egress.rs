//! Egress credential brokering: the gateway in front of a third-party API that only
//! takes a static key. After the workload's own token and the policy allow the call, the
//! gateway injects the real key — fetched from the control plane, where it is kept sealed
//! — so the key never reaches the workload. For AI APIs the tools a request offers the
//! model are decided one by one (`tools_from_body`), with the token's task scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::Value;

use crate::GatewayError;

/// How often a gateway rereads its egress secrets (rotations reach it within this time).
pub const SECRET_REFRESH: Duration = Duration::from_secs(60);

/// The egress secrets one gateway injects, refreshed from the control plane.
pub struct EgressSecrets {
    base: String,
    credential: steward_enforce::ControlPlaneAuth,
    http: reqwest::Client,
    max_staleness: Duration,
    values: RwLock<HashMap<String, (String, String, Instant)>>,
}

impl EgressSecrets {
    pub fn new(
        base: &str,
        credential: steward_enforce::ControlPlaneAuth,
        http: reqwest::Client,
        max_staleness: Duration,
    ) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            credential,
            http,
            max_staleness,
            values: RwLock::new(HashMap::new()),
        }
    }

    /// Fetches one secret now.
    pub async fn refresh(&self, id: &str) -> Result<(), GatewayError> {
        let problem = |problem: String| GatewayError::Egress {
            id: id.to_owned(),
            problem,
        };
        let response = self
            .http
            .get(format!(
                "{}{}",
                self.base,
                steward_api::RouteId::ReleaseEgressSecret
                    .route()
                    .path_with(&[id])
            ))
            .bearer_auth(
                self.credential
                    .bearer()
                    .map_err(|e| problem(e.to_string()))?,
            )
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| problem(format!("cannot reach the control plane: {e}")))?;
        if !response.status().is_success() {
            return Err(problem(format!(
                "the control plane refused it: {}",
                response.status()
            )));
        }
        let released: steward_api::ReleasedSecret = response
            .json()
            .await
            .map_err(|e| problem(format!("the control plane's answer is malformed: {e}")))?;
        let mut values = self.values.write();
        let rotated = values
            .get(id)
            .is_some_and(|(_, created, _)| *created != released.created_at);
        values.insert(
            id.to_owned(),
            (released.value, released.created_at, Instant::now()),
        );
        if rotated {
            tracing::info!(id, "egress secret rotated");
        }
        Ok(())
    }

    /// The value to inject, unless it was not confirmed for longer than the staleness.
    pub fn get(&self, id: &str) -> Result<String, GatewayError> {
        let values = self.values.read();
        let problem = match values.get(id) {
            Some((v, _, at)) if at.elapsed() <= self.max_staleness => return Ok(v.clone()),
            Some(_) => "it could not be refreshed for longer than max_staleness_secs",
            None => "it has not been loaded from the control plane",
        };
        Err(GatewayError::Egress {
            id: id.to_owned(),
            problem: problem.to_owned(),
        })
    }

    /// Refreshes `ids` now and then every [`SECRET_REFRESH`].
    pub fn spawn_refresher(
        self: &std::sync::Arc<Self>,
        ids: Vec<String>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                for id in &ids {
                    if let Err(e) = me.refresh(id).await {
                        tracing::error!(error = %e, "egress secret refresh failed; the last value is used until it is stale");
                    }
                }
                tokio::time::sleep(SECRET_REFRESH).await;
            }
        })
    }
}

/// What an AI API request body names: the model and the tools offered to it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AiRequest {
    pub model: Option<String>,
    pub tools: Vec<String>,
}

/// Longest model or tool name taken from a body: each is recorded with its decision.
pub const MAX_AI_NAME_BYTES: usize = 256;

/// Reads the model and the tool names of an AI API request body: OpenAI chat
/// (`tools[].function.name`), OpenAI responses and Anthropic (`tools[].name`). A body
/// that is not a JSON object is an error (it cannot be decided).
pub fn ai_request(body: &[u8]) -> Result<AiRequest, GatewayError> {
    let bad = |why: &str| GatewayError::AiBody(why.to_owned());
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| bad("the request body is not JSON; the tools it offers cannot be decided"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("the request body is not a JSON object"))?;
    let model = obj.get("model").and_then(Value::as_str).map(str::to_owned);
    if model.as_ref().is_some_and(|m| m.len() > MAX_AI_NAME_BYTES) {
        return Err(GatewayError::AiBody(format!(
            "`model` is longer than the {MAX_AI_NAME_BYTES} bytes a model name may have"
        )));
    }
    let mut tools = Vec::new();
    if let Some(list) = obj.get("tools") {
        let list = list
            .as_array()
            .ok_or_else(|| bad("`tools` is not a list"))?;
        for (i, t) in list.iter().enumerate() {
            let name = t
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GatewayError::AiBody(format!(
                        "tools[{i}] names no tool (`function.name` or `name`)"
                    ))
                })?;
            if name.len() > MAX_AI_NAME_BYTES {
                return Err(GatewayError::AiBody(format!(
                    "tools[{i}] has a name longer than the {MAX_AI_NAME_BYTES} bytes a tool name may have"
                )));
            }
            tools.push(name.to_owned());
        }
    }
    Ok(AiRequest { model, tools })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_models_and_tools_of_the_common_shapes() {
        let openai = br#"{"model":"gpt-x","tools":[{"type":"function","function":{"name":"lookup_order"}}]}"#;
        assert_eq!(
            ai_request(openai).unwrap(),
            AiRequest {
                model: Some("gpt-x".into()),
                tools: vec!["lookup_order".into()]
            }
        );
        let anthropic =
            br#"{"model":"claude","tools":[{"name":"refund_payment","input_schema":{}}]}"#;
        assert_eq!(ai_request(anthropic).unwrap().tools, vec!["refund_payment"]);
        assert!(ai_request(br#"{"model":"m"}"#).unwrap().tools.is_empty());
        for bad in [
            &b"not json"[..],
            b"[1]",
            br#"{"tools":{}}"#,
            br#"{"tools":[{"type":"x"}]}"#,
        ] {
            assert!(ai_request(bad).is_err());
        }
    }

    proptest::proptest! {
        /// Any bytes get an answer; what is accepted keeps every name within bounds.
        #[test]
        fn ai_request_answers_any_bytes_within_bounds(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(r) = ai_request(&body) {
                proptest::prop_assert!(r.model.is_none_or(|m| m.len() <= MAX_AI_NAME_BYTES));
                proptest::prop_assert!(r.tools.iter().all(|t| t.len() <= MAX_AI_NAME_BYTES));
            }
        }

        /// The tools a request offers are read whole, in order, whichever shape names them.
        #[test]
        fn every_offered_tool_is_read(names in proptest::collection::vec("[a-z_]{1,20}", 0..8), openai in proptest::bool::ANY) {
            let tools: Vec<serde_json::Value> = names
                .iter()
                .map(|n| if openai {
                    serde_json::json!({"type": "function", "function": {"name": n}})
                } else {
                    serde_json::json!({"name": n})
                })
                .collect();
            let body = serde_json::json!({"model": "m", "tools": tools}).to_string();
            let r = ai_request(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(r.tools, names);
        }
    }
}
