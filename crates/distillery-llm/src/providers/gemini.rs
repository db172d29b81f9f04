//! Google Gemini `generateContent` (`POST {base_url}/v1beta/models/{model}:generateContent`). The system
//! prompt is `systemInstruction`; assistant turns have role `model`; structured output sets
//! `responseMimeType` to JSON with `responseJsonSchema`; parts flagged `thought` are the reasoning trace.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{ChatApi, merge_extra, post_json};
use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ChatRole, FinishReason, Usage};

pub struct Gemini {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl Gemini {
    pub fn new(cfg: LlmConfig, http: reqwest::Client) -> Self {
        Gemini { cfg, http }
    }

    pub fn body(&self, req: &ChatRequest) -> Value {
        let system: Vec<&str> =
            req.messages.iter().filter(|m| m.role == ChatRole::System).map(|m| m.content.as_str()).collect();
        let contents: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role != ChatRole::System)
            .map(|m| {
                let role = if m.role == ChatRole::Assistant { "model" } else { "user" };
                json!({"role": role, "parts": [{"text": m.content}]})
            })
            .collect();
        let mut generation = json!({
            "temperature": req.temperature.unwrap_or(self.cfg.temperature),
            "maxOutputTokens": req.max_tokens.unwrap_or(self.cfg.max_tokens),
        });
        if let Some(seed) = req.seed {
            generation["seed"] = json!(seed as i64 & 0x7fff_ffff);
        }
        if let Some(p) = self.cfg.top_p {
            generation["topP"] = json!(p);
        }
        if let Some(schema) = &req.schema {
            generation["responseMimeType"] = json!("application/json");
            if self.cfg.json_schema {
                generation["responseJsonSchema"] = schema.schema.clone();
            }
        }
        let mut body = json!({"contents": contents, "generationConfig": generation});
        if !system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
        }
        merge_extra(&mut body, &self.cfg);
        body
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(self.cfg.api_key.expose()) {
            h.insert("x-goog-api-key", v);
        }
        h
    }

    pub fn parse(body: &Value, latency: Duration) -> Result<ChatResponse, LlmError> {
        let usage = Usage {
            prompt_tokens: body.pointer("/usageMetadata/promptTokenCount").and_then(Value::as_u64).unwrap_or(0) as u32,
            completion_tokens: (body
                .pointer("/usageMetadata/candidatesTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                + body.pointer("/usageMetadata/thoughtsTokenCount").and_then(Value::as_u64).unwrap_or(0))
                as u32,
        };
        let model = body.get("modelVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(candidate) = body.get("candidates").and_then(|c| c.get(0)) else {
            // The prompt itself was blocked.
            if let Some(reason) = body.pointer("/promptFeedback/blockReason").and_then(Value::as_str) {
                return Ok(ChatResponse {
                    content: String::new(),
                    reasoning: None,
                    finish_reason: FinishReason::Refusal,
                    usage,
                    model,
                    refusal: Some(format!("prompt blocked: {reason}")),
                    latency,
                    cached_prompt_tokens: None,
                });
            }
            return Err(LlmError::InvalidResponse("no candidates in response".into()));
        };
        let mut text = String::new();
        let mut thoughts = Vec::new();
        for part in candidate.pointer("/content/parts").and_then(Value::as_array).into_iter().flatten() {
            let t = part.get("text").and_then(Value::as_str).unwrap_or_default();
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                thoughts.push(t.to_string());
            } else {
                text.push_str(t);
            }
        }
        let reason = candidate.get("finishReason").and_then(Value::as_str);
        let finish_reason = match reason {
            Some("STOP") | None => FinishReason::Stop,
            Some("MAX_TOKENS") => FinishReason::Length,
            Some("SAFETY") | Some("RECITATION") | Some("BLOCKLIST") | Some("PROHIBITED_CONTENT") | Some("SPII") => {
                FinishReason::Refusal
            }
            Some(other) => FinishReason::Other(other.to_string()),
        };
        let refusal =
            (finish_reason == FinishReason::Refusal).then(|| format!("finishReason {}", reason.unwrap_or("")));
        Ok(ChatResponse {
            content: text,
            reasoning: (!thoughts.is_empty()).then(|| thoughts.join("\n")),
            finish_reason,
            usage,
            model,
            refusal,
            latency,
            cached_prompt_tokens: None,
        })
    }
}

#[async_trait]
impl ChatApi for Gemini {
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let url =
            format!("{}/v1beta/models/{}:generateContent", self.cfg.base_url.trim_end_matches('/'), self.cfg.model);
        let (body, latency) =
            post_json(&self.http, &url, self.headers(), &self.body(req), Duration::from_secs(self.cfg.timeout_secs))
                .await?;
        Self::parse(&body, latency)
    }
}
