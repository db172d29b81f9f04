//! The circuit breaker a runtime puts in front of a stage's dependencies (the LLM server, S3, the dataset
//! store, Qdrant, ...). A run of transient failures (`Disposition::Retry`) across the stage's inputs opens
//! it: the runtime stops taking new inputs (Kafka: pauses its partitions, still polling; in memory: stops
//! receiving), the inputs in flight keep retrying without limit and without counting toward
//! `retry.max_attempts`, `/readyz` answers 503 with the cause and `distillery_breaker_open{stage}` is 1.
//! While open, one new input is let through every probe interval (doubling up to a bound), so that an input
//! that fails by itself (a poison input, not an outage) is told apart: the first success anywhere closes
//! the breaker and consumption resumes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use distillery_core::Metrics;
use distillery_core::prometheus::{IntCounterVec, IntGauge};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::Ready;

/// When a stage stops consuming because its dependencies fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Transient failures in a row (across inputs, no success between them) that open the breaker; 0 never
    /// opens it (retryable failures then count toward `retry.max_attempts` as before).
    pub failures_to_open: u32,
    /// While open, the first probe (one new input let through) after this many milliseconds; it doubles after
    /// every probe up to `max_probe_interval_ms`.
    pub probe_interval_ms: u64,
    /// Upper bound of the probe interval, in milliseconds.
    pub max_probe_interval_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failures_to_open: 3, probe_interval_ms: 2_000, max_probe_interval_ms: 30_000 }
    }
}

/// The breaker's own metrics, declared beside the code that emits them.
#[derive(Clone)]
struct BreakerMetrics {
    open: IntGauge,
    transitions: IntCounterVec,
}

#[derive(Debug)]
struct State {
    /// Transient failures since the last success.
    consecutive: u32,
    /// Set while open.
    open_since: Option<Instant>,
    /// What the last failure was (kind: message), for `/readyz` and the log.
    cause: String,
    /// While open: when the next new input may go through as a probe.
    next_probe: Instant,
    probe_interval: Duration,
}

/// A stage's circuit breaker (see the module documentation). Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Breaker {
    stage: &'static str,
    cfg: BreakerConfig,
    state: Arc<Mutex<State>>,
    open_tx: Arc<watch::Sender<bool>>,
    metrics: BreakerMetrics,
    ready: Option<Ready>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("stage", &self.stage).field("open", &self.is_open()).finish()
    }
}

impl Breaker {
    /// A closed breaker for `stage`; `ready` (the ops endpoint's flag) reports it while open.
    pub fn new(stage: &'static str, cfg: BreakerConfig, metrics: &Metrics, ready: Option<Ready>) -> Breaker {
        let m = BreakerMetrics {
            open: metrics
                .gauge_vec(
                    "breaker_open",
                    "1 while the stage has paused consumption for a dependency outage",
                    &["stage"],
                )
                .with_label_values(&[stage]),
            transitions: metrics.counter_vec(
                "breaker_transitions_total",
                "Circuit breaker transitions, by the state entered (open, closed)",
                &["stage", "state"],
            ),
        };
        m.open.set(0);
        let interval = Duration::from_millis(cfg.probe_interval_ms.max(1));
        Breaker {
            stage,
            state: Arc::new(Mutex::new(State {
                consecutive: 0,
                open_since: None,
                cause: String::new(),
                next_probe: Instant::now(),
                probe_interval: interval,
            })),
            cfg,
            open_tx: Arc::new(watch::channel(false).0),
            metrics: m,
            ready,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the breaker is open (consumption paused).
    pub fn is_open(&self) -> bool {
        self.lock().open_since.is_some()
    }

    /// Watches the open state (true while open).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.open_tx.subscribe()
    }

    /// A success anywhere: the dependency answers; closes the breaker.
    pub fn on_success(&self) {
        let mut s = self.lock();
        s.consecutive = 0;
        if let Some(since) = s.open_since.take() {
            s.probe_interval = Duration::from_millis(self.cfg.probe_interval_ms.max(1));
            drop(s);
            tracing::warn!(
                stage = self.stage,
                paused_secs = since.elapsed().as_secs(),
                "dependency answers again; resuming consumption"
            );
            self.metrics.open.set(0);
            self.metrics.transitions.with_label_values(&[self.stage, "closed"]).inc();
            if let Some(r) = &self.ready {
                r.set_paused(None);
            }
            self.open_tx.send_replace(false);
        }
    }

    /// A transient failure; returns whether the breaker is open afterwards.
    pub fn on_failure(&self, kind: &str, message: &str) -> bool {
        if self.cfg.failures_to_open == 0 {
            return false;
        }
        let mut s = self.lock();
        s.consecutive = s.consecutive.saturating_add(1);
        s.cause = format!("{kind}: {}", short(message));
        if s.open_since.is_some() {
            return true;
        }
        if s.consecutive < self.cfg.failures_to_open {
            return false;
        }
        let now = Instant::now();
        s.open_since = Some(now);
        s.probe_interval = Duration::from_millis(self.cfg.probe_interval_ms.max(1));
        s.next_probe = now + s.probe_interval;
        let cause = s.cause.clone();
        let consecutive = s.consecutive;
        drop(s);
        tracing::error!(stage = self.stage, consecutive, cause = %cause,
            "a dependency is failing: consumption paused, inputs in flight keep retrying");
        self.metrics.open.set(1);
        self.metrics.transitions.with_label_values(&[self.stage, "open"]).inc();
        if let Some(r) = &self.ready {
            r.set_paused(Some(format!("paused: a dependency is failing ({cause})")));
        }
        self.open_tx.send_replace(true);
        true
    }

    /// Whether a new input may be taken now: always while closed; while open, once per probe interval.
    /// Does not use up the probe (see [`take_probe`](Self::take_probe)).
    pub fn admits(&self) -> bool {
        let s = self.lock();
        s.open_since.is_none() || Instant::now() >= s.next_probe
    }

    /// Records that a new input went through while open (a probe): the next one waits a longer interval.
    pub fn take_probe(&self) {
        let mut s = self.lock();
        if s.open_since.is_some() {
            let max = Duration::from_millis(self.cfg.max_probe_interval_ms.max(self.cfg.probe_interval_ms).max(1));
            s.probe_interval = (s.probe_interval * 2).min(max);
            s.next_probe = Instant::now() + s.probe_interval;
            tracing::info!(
                stage = self.stage,
                next_probe_ms = s.probe_interval.as_millis() as u64,
                "probing a paused dependency with one new input"
            );
        }
    }

    /// While open, how long until the next probe may go (zero when closed or due).
    pub fn until_probe(&self) -> Duration {
        let s = self.lock();
        match s.open_since {
            Some(_) => s.next_probe.saturating_duration_since(Instant::now()),
            None => Duration::ZERO,
        }
    }

    /// Why consumption is paused, while it is.
    pub fn cause(&self) -> Option<String> {
        let s = self.lock();
        s.open_since.map(|_| s.cause.clone())
    }
}

/// The first line of a message, at most 200 characters (for `/readyz` and logs).
fn short(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cfg: BreakerConfig) -> (Breaker, Arc<Metrics>, Ready) {
        let metrics = Metrics::isolated();
        let ready = Ready::default();
        ready.set(true);
        (Breaker::new("stage", cfg, &metrics, Some(ready.clone())), metrics, ready)
    }

    #[test]
    fn opens_after_a_run_of_failures_and_closes_on_success() {
        let (b, metrics, ready) = breaker(BreakerConfig { failures_to_open: 3, ..Default::default() });
        assert!(!b.on_failure("llm_connect", "refused"));
        b.on_success();
        assert!(!b.on_failure("llm_connect", "refused"));
        assert!(!b.on_failure("llm_connect", "refused"));
        assert!(b.on_failure("llm_connect", "connection refused\nmore"), "the third in a row opens it");
        assert!(b.is_open() && !b.admits());
        assert!(!ready.get(), "/readyz reports the pause");
        assert_eq!(
            ready.paused().as_deref(),
            Some("paused: a dependency is failing (llm_connect: connection refused)")
        );
        let text = metrics.render();
        assert!(text.contains("distillery_breaker_open{stage=\"stage\"} 1"), "{text}");
        b.on_success();
        assert!(!b.is_open() && b.admits() && ready.get());
        assert!(metrics.render().contains("distillery_breaker_open{stage=\"stage\"} 0"));
    }

    #[test]
    fn probes_are_spaced_and_back_off() {
        let (b, _, _) = breaker(BreakerConfig { failures_to_open: 1, probe_interval_ms: 1, max_probe_interval_ms: 4 });
        assert!(b.on_failure("s3", "down"));
        std::thread::sleep(Duration::from_millis(3));
        assert!(b.admits(), "a probe is due");
        b.take_probe();
        assert!(!b.admits(), "one probe per interval");
        assert!(b.until_probe() > Duration::ZERO && b.until_probe() <= Duration::from_millis(4));
    }

    #[test]
    fn zero_never_opens() {
        let (b, _, _) = breaker(BreakerConfig { failures_to_open: 0, ..Default::default() });
        for _ in 0..100 {
            assert!(!b.on_failure("x", "y"));
        }
        assert!(b.admits());
    }
}
