//! What every runtime shares: turning one input into published records (running the stage, retrying,
//! routing failures to `rejected` or the dead-letter topic with one `match`), and the process plumbing
//! (metrics endpoint, shutdown signal). [`memory`] is the in-process runtime; the Kafka runtime lives in
//! `distillery-kafka`.

pub mod boot;
pub mod breaker;
pub mod http;
pub mod memory;
pub mod shutdown;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use distillery_core::{
    Codec, DeadLetter, Disposition, Input, Metrics, Payload, Record, Rejected, StageError, SubjectKind, Topic, ids,
    now_ms,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use breaker::{Breaker, BreakerConfig};
pub use shutdown::shutdown_signal;

/// How a runtime retries an input whose processing failed with a retryable error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Failed attempts before the input is dead-lettered, counting only failures while the stage's
    /// dependencies answer (the circuit breaker closed): during an outage inputs wait and retry without limit.
    pub max_attempts: u32,
    /// Backoff before the second attempt, in milliseconds; doubles each time, with full jitter.
    pub initial_backoff_ms: u64,
    /// Upper bound of one backoff, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 4, initial_backoff_ms: 1000, max_backoff_ms: 30_000 }
    }
}

impl RetryPolicy {
    /// The backoff after `attempt` failed attempts (1-based), with full jitter, never over
    /// `max_backoff_ms` nor [`MAX_WAIT`].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial_backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_backoff_ms).min(MAX_WAIT.as_millis() as u64).max(1);
        Duration::from_millis(rand::random_range(cap / 2..=cap))
    }
}

/// The longest a runtime ever sleeps between two attempts, whatever the configuration says.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// Settings every runtime shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Inputs processed at once; unset means the stage's default (for LLM stages: the server's slots).
    pub concurrency: Option<usize>,
    /// Retries of an input that failed with a retryable error.
    pub retry: RetryPolicy,
    /// How long shutdown waits for in-flight inputs to finish, in seconds; what is still running then is
    /// cancelled (LLM calls included) and left uncommitted, to be processed again.
    pub drain_timeout_secs: u64,
    /// Pausing consumption while a dependency is down (see [`breaker`]).
    pub breaker: BreakerConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            concurrency: None,
            retry: RetryPolicy::default(),
            drain_timeout_secs: 60,
            breaker: BreakerConfig::default(),
        }
    }
}

/// Publishing failed; the input must not be committed.
#[derive(Debug, thiserror::Error)]
#[error("publish to {topic} failed: {message}")]
pub struct PublishError {
    pub topic: Topic,
    pub message: String,
    /// Trying again cannot succeed (a record over the broker's size limit, one that does not encode): the
    /// input is dead-lettered with this error instead of being retried.
    pub permanent: bool,
}

impl PublishError {
    /// A failure worth retrying (the broker unreachable, a timeout).
    pub fn transient(topic: Topic, message: impl Into<String>) -> PublishError {
        PublishError { topic, message: message.into(), permanent: false }
    }
    /// A failure no retry can mend.
    pub fn permanent(topic: Topic, message: impl Into<String>) -> PublishError {
        PublishError { topic, message: message.into(), permanent: true }
    }
}

/// Why [`handle`] returned without the input being done: it must stay uncommitted (processed again after a
/// restart).
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("interrupted by shutdown while retrying")]
    Interrupted,
}

/// Where a runtime publishes records. `publish` resolves once every record is acknowledged.
pub trait Publisher: Send + Sync + 'static {
    fn publish(&self, records: Vec<Record>) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// The dead-letter record of an input.
pub fn dead_letter(stage: &str, input: &Input, kind: &str, error: &str, attempts: u32) -> DeadLetter {
    let payload: Vec<u8> = match &input.payload {
        Payload::Raw(b) => b.to_vec(),
        Payload::Record(r) => Codec::global().encode(r).unwrap_or_default(),
    };
    dead_letter_raw(
        stage,
        input.topic,
        input.partition,
        input.offset,
        input.key.clone(),
        payload,
        kind,
        error,
        attempts,
    )
}

/// The dead-letter record of a message that never became an input (it could not be decoded).
#[allow(clippy::too_many_arguments)]
pub fn dead_letter_raw(
    stage: &str,
    topic: Topic,
    partition: i32,
    offset: i64,
    key: Option<Bytes>,
    payload: Vec<u8>,
    kind: &str,
    error: &str,
    attempts: u32,
) -> DeadLetter {
    DeadLetter {
        id: ids::hash_parts(&[
            "dead-letter",
            stage,
            topic.base_name(),
            &partition.to_string(),
            &offset.to_string(),
            &ids::hash_bytes(&payload),
        ]),
        stage: stage.to_string(),
        topic: topic.base_name().to_string(),
        partition,
        offset,
        key: key.map(|k| k.to_vec()),
        payload,
        error_kind: kind.to_string(),
        error: error.to_string(),
        attempts: attempts as i32,
        failed_at_ms: now_ms(),
    }
}

/// The `Rejected` record for an input the stage refused.
pub fn rejection(stage: &str, input: &Input, err: &StageError, reason: distillery_core::RejectReason) -> Rejected {
    let r = match &input.payload {
        Payload::Record(record) => Rejected::of(record, stage, reason, err.message.clone()),
        Payload::Raw(bytes) => {
            Rejected::new(stage, reason, SubjectKind::Object, &ids::hash_bytes(bytes), err.message.clone())
        }
    };
    r.with_raw_output(err.raw_output.clone())
}

/// Runs a stage on one input until it yields records (or a routed failure) and publishes them.
/// Returns once everything produced is acknowledged, so the caller may then commit the input.
/// Publishing is retried until it succeeds or `cancel` fires (then the input stays uncommitted).
/// No circuit breaker: a retryable failure counts toward `retry.max_attempts` (see [`handle_with`]).
pub async fn handle<S, P>(
    stage: &S,
    input: Input,
    publisher: &P,
    metrics: &Metrics,
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<(), Unfinished>
where
    S: distillery_core::Stage,
    P: Publisher,
{
    handle_with(stage, input, publisher, metrics, retry, None, cancel).await
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs the stage once on `input`; a panic becomes a dead-letter error carrying its message.
async fn process_caught<S: distillery_core::Stage>(stage: &S, input: Input) -> Result<Vec<Record>, StageError> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(stage.process(input)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(StageError::dead_letter("panic", format!("the stage panicked: {}", panic_message(&*panic)))),
    }
}

/// [`handle`] behind a circuit breaker: a retryable failure while the breaker is open (or that opens it)
/// does not count toward `retry.max_attempts`; the input waits (backoff, or until the breaker closes) and
/// tries again without limit. A stage that panics has that input dead-lettered with the panic's message.
/// A record the publisher refuses for good (over the size limit) dead-letters the input instead.
pub async fn handle_with<S, P>(
    stage: &S,
    input: Input,
    publisher: &P,
    metrics: &Metrics,
    retry: &RetryPolicy,
    breaker: Option<&Breaker>,
    cancel: &CancellationToken,
) -> Result<(), Unfinished>
where
    S: distillery_core::Stage,
    P: Publisher,
{
    let name = stage.name();
    let started = Instant::now();
    metrics.records_in.with_label_values(&[name, input.topic.base_name()]).inc();
    metrics.in_flight.with_label_values(&[name]).inc();
    let _gauge = GaugeGuard(metrics.in_flight.with_label_values(&[name]));

    let mut attempt = 0u32;
    // Failures that count toward `max_attempts`: those while the stage's dependencies answer.
    let mut counted = 0u32;
    let records = loop {
        attempt += 1;
        match process_caught(stage, input.clone()).await {
            Ok(records) => {
                if let Some(b) = breaker {
                    b.on_success();
                }
                break records;
            }
            Err(err) => {
                metrics.errors.with_label_values(&[name, err.kind]).inc();
                match err.disposition {
                    Disposition::Retry => {
                        let was_open = breaker.is_some_and(Breaker::is_open);
                        let open = breaker.is_some_and(|b| b.on_failure(err.kind, &err.message));
                        if !was_open && !open {
                            counted += 1;
                        }
                        if counted >= retry.max_attempts {
                            tracing::error!(stage = name, topic = %input.topic, offset = input.offset, attempt, kind = err.kind,
                                error = %err.message, "dead-lettering input after its retries");
                            metrics.dead_letters.with_label_values(&[name, err.kind]).inc();
                            break vec![Record::DeadLetter(dead_letter(name, &input, err.kind, &err.message, attempt))];
                        }
                        if cancel.is_cancelled() {
                            return Err(Unfinished::Interrupted);
                        }
                        metrics.retries.with_label_values(&[name, err.kind]).inc();
                        let wait = retry.backoff(counted.max(1));
                        tracing::warn!(stage = name, topic = %input.topic, offset = input.offset, attempt, kind = err.kind,
                            error = %err.message, backoff_ms = wait.as_millis() as u64, paused = open, "retrying input");
                        let mut closed = breaker.map(Breaker::subscribe);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            // The dependency is back (another input succeeded): try again at once.
                            _ = async { match closed.as_mut() {
                                Some(rx) if open => { let _ = rx.wait_for(|open| !open).await; }
                                _ => std::future::pending::<()>().await,
                            } } => {}
                            _ = cancel.cancelled() => return Err(Unfinished::Interrupted),
                        }
                    }
                    Disposition::DeadLetter => {
                        tracing::error!(stage = name, topic = %input.topic, offset = input.offset, attempt, kind = err.kind,
                            error = %err.message, "dead-lettering input");
                        metrics.dead_letters.with_label_values(&[name, err.kind]).inc();
                        break vec![Record::DeadLetter(dead_letter(name, &input, err.kind, &err.message, attempt))];
                    }
                    Disposition::Reject(reason) => {
                        tracing::info!(stage = name, topic = %input.topic, reason = %reason, detail = %err.message, "rejected input");
                        break vec![Record::Rejected(rejection(name, &input, &err, reason))];
                    }
                }
            }
        }
    };
    match publish_counted(name, records, publisher, metrics, cancel).await {
        Ok(()) => {}
        Err(e) if e.permanent => {
            // What the input produced can never be published (e.g. a record over the broker's size limit):
            // the input goes to the dead-letter topic with the reason; without its payload if even that is
            // refused.
            let kind = "publish_refused";
            tracing::error!(stage = name, topic = %input.topic, offset = input.offset, error = %e, "output refused for good; dead-lettering the input");
            metrics.dead_letters.with_label_values(&[name, kind]).inc();
            let dl = dead_letter(name, &input, kind, &e.to_string(), attempt);
            if let Err(again) =
                publish_counted(name, vec![Record::DeadLetter(dl.clone())], publisher, metrics, cancel).await
            {
                if !again.permanent {
                    return Err(again.into());
                }
                let bare = DeadLetter {
                    payload: Vec::new(),
                    error: format!("{e}; the input itself ({} bytes) was left out: {again}", dl.payload.len()),
                    ..dl
                };
                publish_counted(name, vec![Record::DeadLetter(bare)], publisher, metrics, cancel).await?;
            }
        }
        Err(e) => return Err(e.into()),
    }
    metrics.process_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Publishes with retry, counting what goes out (records per topic, rejections per reason). A permanent
/// failure is returned at once.
pub async fn publish_counted<P: Publisher>(
    stage: &str,
    records: Vec<Record>,
    publisher: &P,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<(), PublishError> {
    if records.is_empty() {
        return Ok(());
    }
    let counts: Vec<(Topic, Option<&'static str>)> = records
        .iter()
        .map(|r| {
            let reason = if let Record::Rejected(rej) = r { Some(rej.reason.as_str()) } else { None };
            (Topic::for_kind(r.kind()), reason)
        })
        .collect();
    let policy = RetryPolicy { max_attempts: u32::MAX, initial_backoff_ms: 200, max_backoff_ms: 10_000 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match publisher.publish(records.clone()).await {
            Ok(()) => break,
            Err(e) => {
                metrics
                    .errors
                    .with_label_values(&[stage, if e.permanent { "publish_refused" } else { "publish" }])
                    .inc();
                if e.permanent {
                    tracing::error!(stage, attempt, error = %e, "publish refused");
                    return Err(e);
                }
                tracing::error!(stage, attempt, error = %e, "publish failed; retrying");
                if cancel.is_cancelled() {
                    return Err(e);
                }
                tokio::select! {
                    _ = tokio::time::sleep(policy.backoff(attempt)) => {}
                    _ = cancel.cancelled() => return Err(e),
                }
            }
        }
    }
    for (topic, reason) in counts {
        metrics.records_out.with_label_values(&[stage, topic.base_name()]).inc();
        if let Some(reason) = reason {
            metrics.rejected.with_label_values(&[stage, reason]).inc();
        }
    }
    Ok(())
}

struct GaugeGuard(distillery_core::prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A stage shared between workers.
pub type SharedStage<S> = Arc<S>;
