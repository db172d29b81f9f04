//! Anthropic's Messages API (`POST {base_url}/v1/messages`). The system prompt is a top-level field;
//! structured output forces a single tool whose `input_schema` is the schema, and the tool input is the
//! JSON; `thinking` content blocks are the reasoning trace.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{ChatApi, merge_extra, post_json};
use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ChatRole, FinishReason, Usage};

pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl Anthropic {
    pub fn new(cfg: LlmConfig, http: reqwest::Client) -> Self {
        Anthropic { cfg, http }
    }

    pub fn body(&self, req: &ChatRequest) -> Value {
        let system: Vec<&str> =
            req.messages.iter().filter(|m| m.role == ChatRole::System).map(|m| m.content.as_str()).collect();
        let messages: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role != ChatRole::System)
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.cfg.model,
            "max_tokens": req.max_tokens.unwrap_or(self.cfg.max_tokens),
            "messages": messages,
            "temperature": req.temperature.unwrap_or(self.cfg.temperature).min(1.0),
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(p) = self.cfg.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(schema) = &req.schema {
            body["tools"] = json!([{
                "name": schema.name,
                "description": "Record the answer. Always call this tool with the complete result.",
                "input_schema": schema.schema,
            }]);
            body["tool_choice"] = json!({"type": "tool", "name": schema.name});
        }
        merge_extra(&mut body, &self.cfg);
        body
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(self.cfg.api_key.expose()) {
            h.insert("x-api-key", v);
        }
        h.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        h
    }

    pub fn parse(body: &Value, latency: Duration) -> Result<ChatResponse, LlmError> {
        if body.get("type").and_then(Value::as_str) == Some("error") {
            let msg = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(LlmError::InvalidResponse(msg.to_string()));
        }
        let blocks = body
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| LlmError::InvalidResponse("no content array".into()))?;
        let mut text = String::new();
        let mut tool_input: Option<String> = None;
        let mut thinking = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
                Some("tool_use") => tool_input = b.get("input").map(Value::to_string),
                Some("thinking") => {
                    if let Some(t) = b.get("thinking").and_then(Value::as_str) {
                        thinking.push(t.to_string());
                    }
                }
                _ => {}
            }
        }
        let stop = body.get("stop_reason").and_then(Value::as_str);
        let finish_reason = match stop {
            Some("end_turn") | Some("tool_use") | Some("stop_sequence") | None => FinishReason::Stop,
            // "model_context_window_exceeded": the response filled the context window; the docs say to treat it
            // as truncated (platform.claude.com/docs/en/build-with-claude/handling-stop-reasons).
            Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
            Some("refusal") => FinishReason::Refusal,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        let refusal =
            (stop == Some("refusal")).then(|| if text.is_empty() { "refused".to_string() } else { text.clone() });
        Ok(ChatResponse {
            content: tool_input.unwrap_or(text),
            reasoning: (!thinking.is_empty()).then(|| thinking.join("\n")),
            finish_reason,
            usage: Usage {
                prompt_tokens: body.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0) as u32,
                completion_tokens: body.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0) as u32,
            },
            model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
            refusal,
            latency,
            cached_prompt_tokens: None,
        })
    }
}

#[async_trait]
impl ChatApi for Anthropic {
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/v1/messages", self.cfg.base_url.trim_end_matches('/'));
        let (body, latency) =
            post_json(&self.http, &url, self.headers(), &self.body(req), Duration::from_secs(self.cfg.timeout_secs))
                .await?;
        Self::parse(&body, latency)
    }
}
