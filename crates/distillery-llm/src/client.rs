//! The client every LLM stage uses: a [`Budget`] (rate limits in requests/s and tokens/min and a concurrency
//! cap sized to the server's parallel slots, shared by the replicas calling the endpoint and adapted to 429s
//! and latency), retries with exponential backoff and full jitter that honour `Retry-After`, a per-call
//! timeout, metrics, and schema-constrained JSON with one repair round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::Metrics;
use serde::de::DeserializeOwned;

use crate::budget::{Alone, Budget, BudgetShare};
use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::json::{extract_json, looks_like_refusal};
use crate::metrics::LlmMetrics;
use crate::providers::{self, ChatApi, truncate};
use crate::role::LlmRole;
use crate::types::{ChatMessage, ChatRequest, ChatResponse, FinishReason, Usage};

/// Default concurrency when the server does not report its slots.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A client for one model endpoint in one role (`generator`, `judge`, ...).
pub struct LlmClient {
    api: Box<dyn ChatApi>,
    cfg: LlmConfig,
    role: LlmRole,
    budget: Arc<Budget>,
    concurrency: usize,
    metrics: LlmMetrics,
    process_metrics: Arc<Metrics>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("role", &self.role)
            .field("provider", &self.cfg.provider)
            .field("model", &self.cfg.model)
            // Credentials in a configured URL never reach a log.
            .field("base_url", &distillery_core::config::redact_url(&self.cfg.base_url))
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// A parsed structured answer with what it cost.
#[derive(Debug, Clone)]
pub struct Structured<T> {
    pub value: T,
    /// The response the value was parsed from.
    pub response: ChatResponse,
    /// Usage over every call it took (a repair adds one).
    pub usage: Usage,
    /// Calls it took: 1, or 2 after a repair.
    pub calls: u32,
}

impl LlmClient {
    /// Builds a client with the whole budget of its endpoint (one process alone), asking the server for its
    /// parallel slots when `max_concurrency` is unset.
    pub async fn connect(cfg: LlmConfig, role: LlmRole, metrics: Arc<Metrics>) -> LlmClient {
        Self::connect_shared(cfg, role, metrics, &Alone).await
    }

    /// Builds a client whose budget `share` divides among the replicas calling the same endpoint and model
    /// (when `shared_limits` is set; else the whole budget).
    pub async fn connect_shared(
        cfg: LlmConfig,
        role: LlmRole,
        metrics: Arc<Metrics>,
        share: &dyn BudgetShare,
    ) -> LlmClient {
        let http = http_client();
        let api = providers::build(&cfg, http);
        let concurrency = match cfg.max_concurrency {
            Some(n) => n,
            None => api.server_slots().await.unwrap_or(DEFAULT_CONCURRENCY),
        }
        .max(1);
        let share = if cfg.shared_limits { share } else { &Alone };
        let budget = Arc::new(Budget::join(share, &cfg, concurrency, &LlmMetrics::of(&metrics)).await);
        Self::from_parts(api, cfg, role, metrics, budget, concurrency)
    }

    /// A client sharing another's budget (generator and judge on one endpoint and model share its slots).
    pub fn sharing(other: &LlmClient, cfg: LlmConfig, role: LlmRole) -> LlmClient {
        let api = providers::build(&cfg, http_client());
        Self::from_parts(api, cfg, role, other.process_metrics.clone(), other.budget.clone(), other.concurrency)
    }

    /// A client over any [`ChatApi`] (tests, custom providers).
    pub fn from_parts(
        api: Box<dyn ChatApi>,
        cfg: LlmConfig,
        role: LlmRole,
        metrics: Arc<Metrics>,
        budget: Arc<Budget>,
        concurrency: usize,
    ) -> LlmClient {
        LlmClient {
            api,
            cfg,
            role,
            budget,
            concurrency: concurrency.max(1),
            metrics: LlmMetrics::of(&metrics),
            process_metrics: metrics,
        }
    }

    /// The budget this client acquires from.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// Requests the endpoint takes in flight at most (the server's slots by default): this process's part of
    /// them is [`Budget::limit`].
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn role(&self) -> LlmRole {
        self.role
    }

    /// One chat call with rate limits, the concurrency cap and retries.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let model = self.cfg.model.as_str();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let want = req.estimated_prompt_tokens() + req.max_tokens.unwrap_or(self.cfg.max_tokens);
            let permit = self.budget.acquire(want).await;
            let gauge = self.metrics.in_flight.with_label_values(&[self.role.as_str()]);
            gauge.inc();
            let started = Instant::now();
            // A retry samples with another seed: a server error caused by what the model wrote (llama.cpp
            // answers 500 when it cannot parse the output) would otherwise repeat exactly.
            let result = if attempt > 1 && req.seed.is_some() {
                let mut reseeded = req.clone();
                reseeded.seed = req.seed.map(|s| s.wrapping_add(attempt as u64 - 1));
                self.api.chat(&reseeded).await
            } else {
                self.api.chat(req).await
            };
            self.budget.observe(result.as_ref().map(|_| ()), started.elapsed());
            gauge.dec();
            drop(permit);
            match result {
                Ok(resp) => {
                    self.metrics.calls.with_label_values(&[self.role.as_str(), model, "ok"]).inc();
                    if let Some(cached) = resp.cached_prompt_tokens {
                        self.metrics
                            .prompt_cached
                            .with_label_values(&[self.role.as_str(), model])
                            .inc_by(u64::from(cached.min(resp.usage.prompt_tokens)));
                    }
                    self.metrics
                        .latency
                        .with_label_values(&[self.role.as_str(), model])
                        .observe(resp.latency.as_secs_f64());
                    self.metrics
                        .tokens
                        .with_label_values(&[self.role.as_str(), model, "prompt"])
                        .inc_by(resp.usage.prompt_tokens as u64);
                    self.metrics
                        .tokens
                        .with_label_values(&[self.role.as_str(), model, "completion"])
                        .inc_by(resp.usage.completion_tokens as u64);
                    if let Some(cost) =
                        self.cfg.cost(resp.usage.prompt_tokens as u64, resp.usage.completion_tokens as u64)
                    {
                        self.metrics.cost.with_label_values(&[self.role.as_str(), model]).inc_by(cost);
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    self.metrics.calls.with_label_values(&[self.role.as_str(), model, e.kind()]).inc();
                    if !e.is_retryable() || attempt > self.cfg.max_retries {
                        tracing::warn!(role = self.role.as_str(), model, attempt, error = %e, "LLM call failed");
                        return Err(e);
                    }
                    self.metrics.retries.with_label_values(&[self.role.as_str(), e.kind()]).inc();
                    // A server's Retry-After is honoured up to max_backoff_ms: never a wait without bound.
                    let asked = e.retry_after().unwrap_or_default().min(Duration::from_millis(self.cfg.max_backoff_ms));
                    let wait = self.backoff(attempt).max(asked);
                    tracing::info!(role = self.role.as_str(), model, attempt, error = %e, wait_ms = wait.as_millis() as u64, "LLM call retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.cfg.initial_backoff_ms.saturating_mul(1u64 << (attempt - 1).min(20));
        let cap = exp.min(self.cfg.max_backoff_ms).max(1);
        Duration::from_millis(rand::random_range(0..=cap))
    }

    /// A structured answer: the response must be JSON that deserializes to `T` and passes `check`.
    /// Invalid, truncated or empty output gets one repair round trip that tells the model what was wrong;
    /// a second failure (or a refusal) is an error carrying every raw output.
    pub async fn chat_json<T, F>(&self, req: ChatRequest, check: F) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned,
        F: Fn(&T) -> Result<(), String>,
    {
        let mut usage = Usage::default();
        self.chat_json_metered(req, check, &mut usage).await
    }

    /// [`chat_json`](Self::chat_json), adding the tokens of every call to `usage`, also when it fails:
    /// a failed example still cost what it cost.
    pub async fn chat_json_metered<T, F>(
        &self,
        mut req: ChatRequest,
        check: F,
        usage: &mut Usage,
    ) -> Result<Structured<T>, LlmError>
    where
        T: DeserializeOwned,
        F: Fn(&T) -> Result<(), String>,
    {
        let spent_before = *usage;
        let mut raws: Vec<String> = Vec::new();
        for call in 1..=2u32 {
            let resp = self.chat(&req).await?;
            *usage += resp.usage;
            let content = resp.content.trim().to_string();
            raws.push(if content.is_empty() { resp.reasoning.clone().unwrap_or_default() } else { content.clone() });
            let raw_all = || raws.join("\n--- repair ---\n");

            if let Some(reason) = resp.refusal.clone() {
                return Err(LlmError::Refusal { raw: raw_all(), reason });
            }
            if resp.finish_reason == FinishReason::Refusal {
                return Err(LlmError::Refusal { raw: raw_all(), reason: "the provider filtered the output".into() });
            }
            let truncated = resp.finish_reason == FinishReason::Length;
            let problem = if content.is_empty() {
                if truncated { Problem::Truncated } else { Problem::Empty }
            } else {
                match extract_json(&content) {
                    Ok(value) => match serde_json::from_value::<T>(value) {
                        Ok(parsed) => match check(&parsed) {
                            Ok(()) => {
                                let spent = Usage {
                                    prompt_tokens: usage.prompt_tokens - spent_before.prompt_tokens,
                                    completion_tokens: usage.completion_tokens - spent_before.completion_tokens,
                                };
                                return Ok(Structured { value: parsed, response: resp, usage: spent, calls: call });
                            }
                            Err(e) => Problem::Invalid(e),
                        },
                        Err(e) => Problem::Invalid(e.to_string()),
                    },
                    Err(_) if truncated => Problem::Truncated,
                    Err(_) if looks_like_refusal(&content) => {
                        return Err(LlmError::Refusal { raw: raw_all(), reason: truncate(&content, 200) });
                    }
                    Err(e) => Problem::Invalid(e),
                }
            };
            if call == 2 {
                return Err(match problem {
                    Problem::Truncated => LlmError::Truncated { raw: raw_all() },
                    Problem::Empty => LlmError::Empty { raw: raw_all() },
                    Problem::Invalid(error) => LlmError::Unparseable { raw: raw_all(), error },
                });
            }
            tracing::debug!(role = self.role.as_str(), problem = ?problem, "repairing structured output");
            self.metrics.retries.with_label_values(&[self.role.as_str(), problem.label()]).inc();
            match &problem {
                Problem::Truncated => {
                    let max = req.max_tokens.unwrap_or(self.cfg.max_tokens);
                    req.max_tokens = Some(max.saturating_mul(2));
                    req.messages.push(ChatMessage::user(
                        "Your previous reply was cut off before the JSON was complete. Reply again with the \
                         complete JSON object only, keeping every string short.",
                    ));
                }
                Problem::Empty => req
                    .messages
                    .push(ChatMessage::user("Your previous reply was empty. Reply with the JSON object only.")),
                Problem::Invalid(error) => {
                    req.messages.push(ChatMessage::assistant(truncate(&content, 4000)));
                    req.messages.push(ChatMessage::user(format!(
                        "That reply is not valid for the required JSON schema: {error}. Reply again with only \
                         the corrected JSON object."
                    )));
                }
            }
        }
        unreachable!("the loop returns on its second call")
    }
}

#[derive(Debug)]
enum Problem {
    Truncated,
    Empty,
    Invalid(String),
}

impl Problem {
    fn label(&self) -> &'static str {
        match self {
            Problem::Truncated => "repair_truncated",
            Problem::Empty => "repair_empty",
            Problem::Invalid(_) => "repair_invalid",
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client builds")
}
