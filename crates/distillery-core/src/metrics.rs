//! Prometheus metrics. Labels are low-cardinality by construction: stage names, topic names, error kinds,
//! reject reasons, model names — never ids.

use std::sync::{Arc, OnceLock};

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric a Distillery process exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Inputs consumed, by stage and topic.
    pub records_in: IntCounterVec,
    /// Records published, by stage and topic.
    pub records_out: IntCounterVec,
    /// Failures, by stage and error kind (every failure is counted and logged).
    pub errors: IntCounterVec,
    /// Rejections, by stage and reason.
    pub rejected: IntCounterVec,
    /// Messages sent to the dead-letter topic, by stage and error kind.
    pub dead_letters: IntCounterVec,
    /// Retries of an input by the runtime, by stage and error kind.
    pub retries: IntCounterVec,
    /// Inputs being processed right now.
    pub in_flight: IntGaugeVec,
    /// Time to process one input (including publishing what it produced).
    pub process_seconds: HistogramVec,
    /// Committed consumer positions, by stage, topic and partition.
    pub committed_offset: IntGaugeVec,
    /// Consumer lag reported by the Kafka client, by stage, topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// LLM calls, by role (generator/judge), model and outcome.
    pub llm_calls: IntCounterVec,
    /// LLM call latency in seconds, by role and model.
    pub llm_latency: HistogramVec,
    /// Tokens, by role, model and kind (prompt/completion).
    pub llm_tokens: IntCounterVec,
    /// Cost of LLM calls under the configured price table, in its currency units, by role and model.
    pub llm_cost: CounterVec,
    /// LLM requests in flight, by role.
    pub llm_in_flight: IntGaugeVec,
    /// LLM retries, by role and cause.
    pub llm_retries: IntCounterVec,
    /// Judge verdicts by overall score (1-5).
    pub judge_scores: IntCounterVec,
    /// Judge verdicts by outcome (pass, regenerate, reject) and attempt: the rejection rate is
    /// `reject / sum`.
    pub judge_verdicts: IntCounterVec,
    /// PII entities redacted, by type.
    pub pii_redactions: IntCounterVec,
    /// Synthetic-table requests by outcome (ok, invalid, design_failed, llm_error, aborted) and schema
    /// source (given, cache, llm).
    pub tabular_requests: IntCounterVec,
    /// Synthetic-table rows written, by format.
    pub tabular_rows: IntCounterVec,
    /// Synthetic-table bytes written, by format.
    pub tabular_bytes: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const LATENCY_BUCKETS: &[f64] = &[0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

impl Metrics {
    /// A fresh set registered into `registry`.
    pub fn new(registry: Registry) -> Arc<Metrics> {
        fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            let c = IntCounterVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("metric registered once");
            c
        }
        fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
            let g = IntGaugeVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric");
            r.register(Box::new(g.clone())).expect("metric registered once");
            g
        }
        fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).namespace("distillery").buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            r.register(Box::new(h.clone())).expect("metric registered once");
            h
        }
        let r = &registry;
        Arc::new(Metrics {
            records_in: counter(r, "records_in_total", "Inputs consumed", &["stage", "topic"]),
            records_out: counter(r, "records_out_total", "Records published", &["stage", "topic"]),
            errors: counter(r, "errors_total", "Failures by kind", &["stage", "kind"]),
            rejected: counter(r, "rejected_total", "Rejections by reason", &["stage", "reason"]),
            dead_letters: counter(r, "dead_letters_total", "Dead-lettered inputs", &["stage", "kind"]),
            retries: counter(r, "retries_total", "Runtime retries of an input", &["stage", "kind"]),
            in_flight: gauge(r, "in_flight", "Inputs being processed", &["stage"]),
            process_seconds: histogram(r, "process_seconds", "Time to process one input", &["stage"]),
            committed_offset: gauge(
                r,
                "committed_offset",
                "Committed consumer position",
                &["stage", "topic", "partition"],
            ),
            consumer_lag: gauge(
                r,
                "consumer_lag",
                "Messages behind the partition end",
                &["stage", "topic", "partition"],
            ),
            llm_calls: counter(r, "llm_calls_total", "LLM calls by outcome", &["role", "model", "outcome"]),
            llm_latency: histogram(r, "llm_latency_seconds", "LLM call latency", &["role", "model"]),
            llm_tokens: counter(r, "llm_tokens_total", "LLM tokens", &["role", "model", "kind"]),
            llm_cost: {
                let c = CounterVec::new(
                    Opts::new("llm_cost_total", "LLM cost under the price table").namespace("distillery"),
                    &["role", "model"],
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("metric registered once");
                c
            },
            llm_in_flight: gauge(r, "llm_in_flight", "LLM requests in flight", &["role"]),
            llm_retries: counter(r, "llm_retries_total", "LLM retries by cause", &["role", "cause"]),
            judge_scores: counter(r, "judge_scores_total", "Judge verdicts by overall score", &["score"]),
            judge_verdicts: counter(r, "judge_verdicts_total", "Judge verdicts by outcome", &["outcome", "attempt"]),
            pii_redactions: counter(r, "pii_redactions_total", "PII entities redacted", &["type"]),
            tabular_requests: counter(
                r,
                "tabular_requests_total",
                "Synthetic-table requests by outcome and schema source",
                &["outcome", "schema"],
            ),
            tabular_rows: counter(r, "tabular_rows_total", "Synthetic-table rows written", &["format"]),
            tabular_bytes: counter(r, "tabular_bytes_total", "Synthetic-table bytes written", &["format"]),
            registry,
        })
    }

    /// The process-wide set, in the default registry.
    pub fn global() -> Arc<Metrics> {
        static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
        GLOBAL.get_or_init(|| Metrics::new(prometheus::default_registry().clone())).clone()
    }

    /// A private set for a test.
    pub fn isolated() -> Arc<Metrics> {
        Metrics::new(Registry::new())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Sum of a counter over all label values matching `filter` (used by summaries and tests).
    pub fn counter_sum(c: &IntCounterVec, filter: &[(&str, &str)]) -> u64 {
        let mut total = 0;
        for mf in prometheus::core::Collector::collect(c) {
            for m in mf.get_metric() {
                let labels = m.get_label();
                let ok = filter.iter().all(|(k, v)| labels.iter().any(|l| l.name() == *k && l.value() == *v));
                if ok {
                    total += m.get_counter().get_value() as u64;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_sums() {
        let m = Metrics::isolated();
        m.records_in.with_label_values(&["extract", "documents"]).inc_by(3);
        m.records_in.with_label_values(&["generate", "chunks"]).inc_by(2);
        assert_eq!(Metrics::counter_sum(&m.records_in, &[]), 5);
        assert_eq!(Metrics::counter_sum(&m.records_in, &[("stage", "extract")]), 3);
        let text = m.render();
        assert!(text.contains("distillery_records_in_total{stage=\"extract\",topic=\"documents\"} 3"), "{text}");
    }
}
