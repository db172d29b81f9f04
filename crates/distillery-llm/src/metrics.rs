//! The LLM client's metrics: calls by outcome, latency, tokens, cost, requests in flight and retries, by
//! role and model.

use distillery_core::Metrics;
use distillery_core::prometheus::{CounterVec, HistogramVec, IntCounterVec, IntGaugeVec};

/// The LLM client's families, registered in a process's [`Metrics`] registry.
#[derive(Debug, Clone)]
pub struct LlmMetrics {
    /// LLM calls, by role (generator/judge/schema), model and outcome.
    pub calls: IntCounterVec,
    /// LLM call latency in seconds, by role and model.
    pub latency: HistogramVec,
    /// Tokens, by role, model and kind (prompt/completion).
    pub tokens: IntCounterVec,
    /// Prompt tokens the server served from its prefix cache, by role and model: with `tokens{kind="prompt"}`
    /// the prefix-cache hit rate (stable prefixes make it high).
    pub prompt_cached: IntCounterVec,
    /// Cost of LLM calls under the configured price table, in its currency units, by role and model.
    pub cost: CounterVec,
    /// LLM requests in flight, by role.
    pub in_flight: IntGaugeVec,
    /// LLM retries, by role and cause.
    pub retries: IntCounterVec,
    /// Requests this process may keep in flight now (its part of the shared budget, narrowed by the
    /// congestion window), by model.
    pub concurrency_limit: IntGaugeVec,
    /// Replicas sharing the budget of this process's endpoint and model, by model.
    pub budget_members: IntGaugeVec,
    /// Times the congestion window was halved, by model and cause (rate_limited, overloaded, latency).
    pub backoffs: IntCounterVec,
}

impl LlmMetrics {
    pub fn of(m: &Metrics) -> LlmMetrics {
        LlmMetrics {
            calls: m.counter_vec("llm_calls_total", "LLM calls by outcome", &["role", "model", "outcome"]),
            latency: m.histogram_vec("llm_latency_seconds", "LLM call latency", &["role", "model"]),
            tokens: m.counter_vec("llm_tokens_total", "LLM tokens", &["role", "model", "kind"]),
            prompt_cached: m.counter_vec(
                "llm_prompt_cached_tokens_total",
                "Prompt tokens served from the server's prefix cache",
                &["role", "model"],
            ),
            cost: m.float_counter_vec("llm_cost_total", "LLM cost under the price table", &["role", "model"]),
            in_flight: m.gauge_vec("llm_in_flight", "LLM requests in flight", &["role"]),
            retries: m.counter_vec("llm_retries_total", "LLM retries by cause", &["role", "cause"]),
            concurrency_limit: m.gauge_vec(
                "llm_concurrency_limit",
                "LLM requests this process may keep in flight (its part of the shared budget, AIMD-narrowed)",
                &["model"],
            ),
            budget_members: m.gauge_vec(
                "llm_budget_members",
                "Replicas sharing this endpoint and model's LLM budget",
                &["model"],
            ),
            backoffs: m.counter_vec(
                "llm_backoffs_total",
                "Halvings of the LLM congestion window, by cause",
                &["model", "cause"],
            ),
        }
    }
}
