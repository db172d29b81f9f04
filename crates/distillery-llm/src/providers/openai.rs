//! OpenAI Chat Completions (`POST {base_url}/chat/completions`), spoken by OpenAI, vLLM, llama.cpp's
//! server, LM Studio and others. Reasoning arrives as `<think>` in the content or as `reasoning_content`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{ChatApi, merge_extra, post_json};
use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Usage, split_think};

pub struct OpenAi {
    cfg: LlmConfig,
    http: reqwest::Client,
}

impl OpenAi {
    pub fn new(cfg: LlmConfig, http: reqwest::Client) -> Self {
        OpenAi { cfg, http }
    }

    /// The request body for a chat request.
    pub fn body(&self, req: &ChatRequest) -> Value {
        let messages: Vec<Value> =
            req.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect();
        let mut body = json!({
            "model": self.cfg.model,
            "messages": messages,
            "temperature": req.temperature.unwrap_or(self.cfg.temperature),
            "max_tokens": req.max_tokens.unwrap_or(self.cfg.max_tokens),
            "stream": false,
        });
        if let Some(seed) = req.seed {
            body["seed"] = json!(seed);
        }
        if let Some(p) = self.cfg.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(schema) = &req.schema {
            body["response_format"] = if self.cfg.json_schema {
                json!({"type": "json_schema", "json_schema": {"name": schema.name, "strict": true, "schema": schema.schema}})
            } else {
                json!({"type": "json_object"})
            };
        }
        merge_extra(&mut body, &self.cfg);
        body
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if !self.cfg.api_key.is_empty()
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", self.cfg.api_key.expose()))
        {
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    /// Maps a response body.
    pub fn parse(body: &Value, latency: Duration) -> Result<ChatResponse, LlmError> {
        let choice = body
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| LlmError::InvalidResponse("no choices[0] in response".into()))?;
        let message = choice.get("message").ok_or_else(|| LlmError::InvalidResponse("no choices[0].message".into()))?;
        let raw_content = message.get("content").and_then(Value::as_str).unwrap_or_default();
        let (content, think) = split_think(raw_content);
        let field_reasoning = message
            .get("reasoning_content")
            .or_else(|| message.get("reasoning"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let refusal = message.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
            Some("stop") | Some("tool_calls") | None => FinishReason::Stop,
            Some("length") => FinishReason::Length,
            Some("content_filter") => FinishReason::Refusal,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        let usage = body.get("usage").map_or(Usage::default(), |u| Usage {
            prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0) as u32,
            completion_tokens: u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0) as u32,
        });
        let cached_prompt_tokens = body
            .pointer("/timings/cache_n")
            .or_else(|| body.pointer("/usage/prompt_tokens_details/cached_tokens"))
            .and_then(Value::as_u64)
            .map(|n| n as u32);
        Ok(ChatResponse {
            content,
            reasoning: field_reasoning.or(think),
            finish_reason,
            usage,
            model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
            refusal,
            latency,
            cached_prompt_tokens,
        })
    }
}

#[async_trait]
impl ChatApi for OpenAi {
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/chat/completions", self.cfg.base_url.trim_end_matches('/'));
        let (body, latency) =
            post_json(&self.http, &url, self.headers(), &self.body(req), Duration::from_secs(self.cfg.timeout_secs))
                .await?;
        Self::parse(&body, latency)
    }

    async fn server_slots(&self) -> Option<usize> {
        // llama.cpp serves /props next to /v1 and reports its parallel slots there.
        let base = self.cfg.base_url.trim_end_matches('/');
        let root = base.strip_suffix("/v1").unwrap_or(base);
        let resp = self
            .http
            .get(format!("{root}/props"))
            .headers(self.headers())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        v.get("total_slots").and_then(Value::as_u64).map(|n| n as usize).filter(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChatMessage, OutputSchema};

    #[test]
    fn body_follows_the_chat_completions_api() {
        let cfg = LlmConfig { model: "m".into(), temperature: 0.3, max_tokens: 100, ..LlmConfig::default() };
        let api = OpenAi::new(cfg, reqwest::Client::new());
        let mut req = ChatRequest::new(vec![ChatMessage::system("s"), ChatMessage::user("u")]);
        req.seed = Some(7);
        req.schema = Some(OutputSchema { name: "qa".into(), schema: json!({"type": "object"}) });
        let b = api.body(&req);
        assert_eq!(b["model"], "m");
        assert_eq!(b["messages"][0], json!({"role": "system", "content": "s"}));
        assert_eq!(b["max_tokens"], 100);
        assert_eq!(b["seed"], 7);
        assert_eq!(b["response_format"]["type"], "json_schema");
        assert_eq!(b["response_format"]["json_schema"]["name"], "qa");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
    }

    #[test]
    fn response_maps_content_reasoning_usage_and_finish() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "<think>hmm</think>{\"a\":1}", "refusal": null},
                         "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        });
        let r = OpenAi::parse(&body, Duration::ZERO).unwrap();
        assert_eq!(r.content, "{\"a\":1}");
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage, Usage { prompt_tokens: 11, completion_tokens: 7 });
        assert_eq!(r.refusal, None);

        let body = json!({"model": "x", "choices": [{"message": {"role": "assistant", "content": "ok", "reasoning_content": "trace"}, "finish_reason": "stop"}]});
        let r = OpenAi::parse(&body, Duration::ZERO).unwrap();
        assert_eq!((r.content.as_str(), r.reasoning.as_deref()), ("ok", Some("trace")));

        assert!(matches!(OpenAi::parse(&json!({"choices": []}), Duration::ZERO), Err(LlmError::InvalidResponse(_))));
    }

    #[test]
    fn cached_prompt_tokens_come_from_the_server_timings() {
        let choice = json!([{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]);
        let llama = json!({"choices": choice, "usage": {"prompt_tokens": 500, "completion_tokens": 9},
                           "timings": {"cache_n": 420, "prompt_n": 80}});
        assert_eq!(OpenAi::parse(&llama, Duration::ZERO).unwrap().cached_prompt_tokens, Some(420));
        let openai = json!({"choices": choice,
                            "usage": {"prompt_tokens": 500, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 384}}});
        assert_eq!(OpenAi::parse(&openai, Duration::ZERO).unwrap().cached_prompt_tokens, Some(384));
        let neither = json!({"choices": choice, "usage": {"prompt_tokens": 5, "completion_tokens": 1}});
        assert_eq!(OpenAi::parse(&neither, Duration::ZERO).unwrap().cached_prompt_tokens, None);
    }
}
