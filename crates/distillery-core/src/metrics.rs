//! Prometheus metrics. Labels are low-cardinality by construction: stage names, topic names, error kinds,
//! reject reasons, model names — never ids.
//!
//! The runtime's own metrics (records in and out, errors, rejections, dead letters, retries, in-flight work,
//! offsets, lag) are fields here. A component's metrics are declared beside the code that emits them (the
//! LLM client's in `distillery-llm`, the judge's in its stage, ...) through [`Metrics::counter_vec`] and
//! friends, which register a family once per registry and hand back the same family afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A family a component declared.
#[derive(Clone)]
enum Family {
    Counter(IntCounterVec),
    FloatCounter(CounterVec),
    Gauge(IntGaugeVec),
    FloatGauge(GaugeVec),
    Histogram(HistogramVec),
}

/// The runtime's metrics, and the registry every component's metrics join.
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
    /// Families declared by components, by name.
    families: Arc<Mutex<HashMap<&'static str, Family>>>,
    /// Committed consumer positions, by stage, topic and partition.
    pub committed_offset: IntGaugeVec,
    /// Consumer lag reported by the Kafka client, by stage, topic and partition.
    pub consumer_lag: IntGaugeVec,
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
            families: Arc::default(),
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

    fn family(&self, name: &'static str, make: impl FnOnce() -> Family) -> Family {
        let mut families = self.families.lock().expect("metric families lock");
        families
            .entry(name)
            .or_insert_with(|| {
                let family = make();
                let collector: Box<dyn prometheus::core::Collector> = match &family {
                    Family::Counter(c) => Box::new(c.clone()),
                    Family::FloatCounter(c) => Box::new(c.clone()),
                    Family::Gauge(g) => Box::new(g.clone()),
                    Family::FloatGauge(g) => Box::new(g.clone()),
                    Family::Histogram(h) => Box::new(h.clone()),
                };
                self.registry.register(collector).expect("a metric family is declared once per name");
                family
            })
            .clone()
    }

    /// The integer counter family `distillery_<name>`, registered on first use.
    pub fn counter_vec(&self, name: &'static str, help: &str, labels: &[&str]) -> IntCounterVec {
        match self.family(name, || {
            Family::Counter(
                IntCounterVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric"),
            )
        }) {
            Family::Counter(c) => c,
            _ => panic!("metric {name} is declared with two types"),
        }
    }

    /// The float counter family `distillery_<name>`, registered on first use.
    pub fn float_counter_vec(&self, name: &'static str, help: &str, labels: &[&str]) -> CounterVec {
        match self.family(name, || {
            Family::FloatCounter(
                CounterVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric"),
            )
        }) {
            Family::FloatCounter(c) => c,
            _ => panic!("metric {name} is declared with two types"),
        }
    }

    /// The integer gauge family `distillery_<name>`, registered on first use.
    pub fn gauge_vec(&self, name: &'static str, help: &str, labels: &[&str]) -> IntGaugeVec {
        match self.family(name, || {
            Family::Gauge(
                IntGaugeVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric"),
            )
        }) {
            Family::Gauge(g) => g,
            _ => panic!("metric {name} is declared with two types"),
        }
    }

    /// The floating-point gauge family `distillery_<name>`, registered on first use.
    pub fn float_gauge_vec(&self, name: &'static str, help: &str, labels: &[&str]) -> GaugeVec {
        match self.family(name, || {
            Family::FloatGauge(
                GaugeVec::new(Opts::new(name, help).namespace("distillery"), labels).expect("valid metric"),
            )
        }) {
            Family::FloatGauge(g) => g,
            _ => panic!("metric {name} is declared with two types"),
        }
    }

    /// The latency histogram family `distillery_<name>` (seconds), registered on first use.
    pub fn histogram_vec(&self, name: &'static str, help: &str, labels: &[&str]) -> HistogramVec {
        match self.family(name, || {
            let opts = HistogramOpts::new(name, help).namespace("distillery").buckets(LATENCY_BUCKETS.to_vec());
            Family::Histogram(HistogramVec::new(opts, labels).expect("valid metric"))
        }) {
            Family::Histogram(h) => h,
            _ => panic!("metric {name} is declared with two types"),
        }
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

    #[test]
    fn a_component_family_is_registered_once_and_shared() {
        let m = Metrics::isolated();
        m.counter_vec("widgets_total", "Widgets", &["kind"]).with_label_values(&["a"]).inc();
        m.counter_vec("widgets_total", "Widgets", &["kind"]).with_label_values(&["a"]).inc();
        assert_eq!(Metrics::counter_sum(&m.counter_vec("widgets_total", "Widgets", &["kind"]), &[]), 2);
        assert!(m.render().contains("distillery_widgets_total{kind=\"a\"} 2"));
        let other = Metrics::isolated();
        assert_eq!(Metrics::counter_sum(&other.counter_vec("widgets_total", "Widgets", &["kind"]), &[]), 0);
    }
}
