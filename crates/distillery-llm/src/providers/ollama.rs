//! Ollama's native chat API (`POST {base_url}/api/chat`, non-streaming). Structured output uses `format`
//! with the JSON schema; sampling goes in `options`; thinking models return `message.thinking`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{ChatApi, merge_extra, post_json};
use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Usage, split_think};

pub struct Ollama {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl Ollama {
    pub fn new(cfg: LlmConfig, http: reqwest::Client) -> Self {
        Ollama { cfg, http }
    }

    pub fn body(&self, req: &ChatRequest) -> Value {
        let messages: Vec<Value> =
            req.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect();
        let mut options = json!({
            "temperature": req.temperature.unwrap_or(self.cfg.temperature),
            "num_predict": req.max_tokens.unwrap_or(self.cfg.max_tokens),
        });
        if let Some(seed) = req.seed {
            options["seed"] = json!(seed);
        }
        if let Some(p) = self.cfg.top_p {
            options["top_p"] = json!(p);
        }
        // Configured `options` (top_k, repeat_penalty, num_ctx, stop, ...) merge into the request's.
        if let Some(Value::Object(extra)) = self.cfg.extra.get("options") {
            for (k, v) in extra {
                options[k] = v.clone();
            }
        }
        let mut body = json!({"model": self.cfg.model, "messages": messages, "stream": false, "options": options});
        if let Some(schema) = &req.schema {
            body["format"] = if self.cfg.json_schema { schema.schema.clone() } else { json!("json") };
        }
        let mut cfg = self.cfg.clone();
        cfg.extra.remove("options");
        merge_extra(&mut body, &cfg);
        body
    }

    /// `Authorization: Bearer <key>` when a key is set: a local server needs none, ollama.com's API requires it
    /// (docs/api/authentication.mdx).
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if !self.cfg.api_key.is_empty()
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", self.cfg.api_key.expose()))
        {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    pub fn parse(body: &Value, latency: Duration) -> Result<ChatResponse, LlmError> {
        let message = body.get("message").ok_or_else(|| LlmError::InvalidResponse("no message in response".into()))?;
        let raw = message.get("content").and_then(Value::as_str).unwrap_or_default();
        let (content, think) = split_think(raw);
        let thinking = message
            .get("thinking")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let finish_reason = match body.get("done_reason").and_then(Value::as_str) {
            Some("stop") | None => FinishReason::Stop,
            Some("length") => FinishReason::Length,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        Ok(ChatResponse {
            content,
            reasoning: thinking.or(think),
            finish_reason,
            usage: Usage {
                prompt_tokens: body.get("prompt_eval_count").and_then(Value::as_u64).unwrap_or(0) as u32,
                completion_tokens: body.get("eval_count").and_then(Value::as_u64).unwrap_or(0) as u32,
            },
            model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
            refusal: None,
            latency,
            cached_prompt_tokens: None,
        })
    }
}

#[async_trait]
impl ChatApi for Ollama {
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/api/chat", self.cfg.base_url.trim_end_matches('/'));
        let (body, latency) =
            post_json(&self.http, &url, self.headers(), &self.body(req), Duration::from_secs(self.cfg.timeout_secs))
                .await?;
        if let Some(err) = body.get("error").and_then(Value::as_str) {
            return Err(LlmError::InvalidResponse(err.to_string()));
        }
        Self::parse(&body, latency)
    }
}
