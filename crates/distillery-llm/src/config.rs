//! Client settings.

use std::collections::BTreeMap;

use distillery_core::config::Secret;
use serde::{Deserialize, Serialize};

/// The API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's /v1/chat/completions: OpenAI, vLLM, llama.cpp, LM Studio, ...
    Openai,
    /// Ollama's native /api/chat.
    Ollama,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google Gemini's generateContent.
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }
}

/// Price per million tokens, for cost accounting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    /// Currency units per million prompt tokens.
    pub prompt_per_million: f64,
    /// Currency units per million completion tokens.
    pub completion_per_million: f64,
}

/// One model endpoint (the generator or the judge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The API the server speaks.
    pub provider: ProviderKind,
    /// Base URL: `http://host:port/v1` for OpenAI-compatible servers, `http://host:11434` for Ollama,
    /// `https://api.anthropic.com` for Anthropic, `https://generativelanguage.googleapis.com` for Gemini.
    pub base_url: String,
    /// Model name as the server knows it.
    pub model: String,
    /// API key (secret; never logged).
    pub api_key: Secret,
    /// Sampling temperature.
    pub temperature: f32,
    /// Upper bound of completion tokens per call.
    pub max_tokens: u32,
    /// Nucleus sampling, when set.
    pub top_p: Option<f32>,
    /// Timeout of one call, in seconds.
    pub timeout_secs: u64,
    /// Requests in flight at once. Unset: ask the server (llama.cpp reports its parallel slots), else 4.
    pub max_concurrency: Option<usize>,
    /// Request rate limit per second (unset: none).
    pub requests_per_second: Option<f64>,
    /// Token rate limit per minute, prompt plus completion (unset: none).
    pub tokens_per_minute: Option<u32>,
    /// The three limits above are the endpoint's, shared by every replica that calls this endpoint and
    /// model (a Kafka service agrees on its part over the control topic); false: each process has them all.
    pub shared_limits: bool,
    /// Adapt concurrency within the limits (AIMD): a 429 or 503, or a call slower than
    /// `latency_target_secs`, halves it; each successful call adds back a fraction of a request.
    pub adaptive: bool,
    /// A call slower than this counts as congestion (unset: only 429 and 503 do).
    pub latency_target_secs: Option<f64>,
    /// Retries of a retryable failure (429, 5xx, timeout, connection) within one call.
    pub max_retries: u32,
    /// First retry backoff in milliseconds (doubles, full jitter, capped by `max_backoff_ms`).
    pub initial_backoff_ms: u64,
    /// Upper bound of one backoff in milliseconds.
    pub max_backoff_ms: u64,
    /// Constrain output with the provider's JSON-schema mode (else JSON mode plus the schema in the prompt).
    pub json_schema: bool,
    /// Price table for cost accounting.
    pub price: Option<Price>,
    /// Extra provider-specific body fields merged into every request (e.g. `top_k`, Ollama `options`).
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: ProviderKind::Openai,
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "local".into(),
            api_key: Secret::default(),
            temperature: 0.7,
            max_tokens: 1024,
            top_p: None,
            timeout_secs: 300,
            max_concurrency: None,
            requests_per_second: None,
            tokens_per_minute: None,
            shared_limits: true,
            adaptive: true,
            latency_target_secs: None,
            max_retries: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            json_schema: true,
            price: None,
            extra: BTreeMap::new(),
        }
    }
}

impl LlmConfig {
    /// Adds one line per problem, prefixed with `section`.
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if url::Url::parse(&self.base_url).is_err() {
            errors.push(format!("{section}.base_url {:?} is not a URL", self.base_url));
        }
        if self.model.trim().is_empty() {
            errors.push(format!("{section}.model must not be empty"));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            errors.push(format!("{section}.temperature must be in [0, 2] (got {})", self.temperature));
        }
        if self.max_tokens == 0 {
            errors.push(format!("{section}.max_tokens must be > 0"));
        }
        if self.timeout_secs == 0 {
            errors.push(format!("{section}.timeout_secs must be > 0"));
        }
        if self.max_concurrency == Some(0) {
            errors.push(format!("{section}.max_concurrency must be > 0"));
        }
        if self.requests_per_second.is_some_and(|r| r <= 0.0) {
            errors.push(format!("{section}.requests_per_second must be > 0"));
        }
        if self.tokens_per_minute == Some(0) {
            errors.push(format!("{section}.tokens_per_minute must be > 0"));
        }
        if self.latency_target_secs.is_some_and(|t| t <= 0.0) {
            errors.push(format!("{section}.latency_target_secs must be > 0"));
        }
        if matches!(self.provider, ProviderKind::Anthropic | ProviderKind::Gemini) && self.api_key.is_empty() {
            errors.push(format!("{section}.api_key is required for provider {}", self.provider.as_str()));
        }
    }

    /// Cost of a usage under the price table.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.price.map(|p| {
            prompt_tokens as f64 * p.prompt_per_million / 1e6
                + completion_tokens as f64 * p.completion_per_million / 1e6
        })
    }
}
