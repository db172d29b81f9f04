//! Resume: a stage wrapped so that what it produced is recorded in the store before it is published, and
//! an input whose work is already recorded is not done again.
//!
//! Why nothing is lost and nothing is done twice:
//! - An input's outputs are recorded (one transaction) *before* the runtime publishes them; a crash before
//!   the record leaves no trace, so the input is simply processed again on the next run.
//! - A chunk is [`ChunkState::Done`] only when every example it started (each first-attempt draft, its
//!   `root`) has a final outcome stored by the sink (accepted, rejected, dead-lettered), or the chunk itself
//!   failed. Outcomes are written only by the sink, and the sink writes the store before the JSONL lines
//!   and re-appends on start any line the files lack, so a `Done` chunk's lines are all in the files.
//! - A chunk generated but not done is [`ChunkState::Partial`]: for each example without an outcome, the
//!   latest record of its history (a draft waiting for its verdict, a regeneration request, a verdict on its
//!   way to dedup, a rejection on its way to the sink) is published again, so the run continues where that
//!   example stopped and only the LLM calls that never completed are made again.
//! - Any other input (a draft for the judge, a regeneration request for generate) whose outputs are
//!   already recorded gets them back without an LLM call (a replay).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use distillery_core::{Input, Metrics, Output, Record, Stage, StageError, Topic};
use prometheus::IntCounterVec;

use crate::{ChunkState, DatasetError, DatasetStore};

/// What a resumable stage did instead of working (the `outcome` label).
#[derive(Debug, Clone, Copy)]
enum Resumed {
    Skipped,
    Continued,
    Republished,
}

impl Resumed {
    fn as_str(self) -> &'static str {
        match self {
            Resumed::Skipped => "skipped",
            Resumed::Continued => "continued",
            Resumed::Republished => "republished",
        }
    }
}

/// A stage whose work is recorded in, and skipped by, the dataset store.
#[derive(Debug)]
pub struct Resumable<S> {
    pub inner: S,
    pub store: Arc<dyn DatasetStore>,
    counts: Counts,
    /// `distillery_resumed_total{stage, outcome}`: the same counts, on `/metrics` (a service's).
    counter: Option<IntCounterVec>,
}

/// What a resumable stage did instead of working.
#[derive(Debug, Default)]
pub struct Counts {
    /// Chunks skipped because every example of them has an outcome.
    pub skipped: AtomicU64,
    /// Chunks continued from their recorded state.
    pub continued: AtomicU64,
    /// Records published again from the store instead of an LLM call.
    pub republished: AtomicU64,
}

fn retry(e: DatasetError) -> StageError {
    StageError::retry("dataset_store", e.0)
}

impl<S: Stage> Resumable<S> {
    pub fn new(inner: S, store: Arc<dyn DatasetStore>) -> Self {
        Resumable { inner, store, counts: Counts::default(), counter: None }
    }

    /// Also counts what it did instead of working on `metrics` (`distillery_resumed_total`).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.counter = Some(metrics.counter_vec(
            "resumed_total",
            "Work taken from the dataset store instead of done again: chunks skipped (every example has an \
             outcome) or continued, records published again without an LLM call",
            &["stage", "outcome"],
        ));
        self
    }

    fn count(&self, outcome: Resumed, n: u64) {
        let field = match outcome {
            Resumed::Skipped => &self.counts.skipped,
            Resumed::Continued => &self.counts.continued,
            Resumed::Republished => &self.counts.republished,
        };
        field.fetch_add(n, Ordering::Relaxed);
        if let Some(c) = &self.counter {
            c.with_label_values(&[self.inner.name(), outcome.as_str()]).inc_by(n);
        }
    }

    /// Chunks skipped, chunks continued, records published again from the store.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.skipped.load(Ordering::Relaxed),
            self.counts.continued.load(Ordering::Relaxed),
            self.counts.republished.load(Ordering::Relaxed),
        )
    }
}

impl<S: Stage> Stage for Resumable<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn inputs(&self) -> &'static [Topic] {
        self.inner.inputs()
    }

    fn default_concurrency(&self) -> usize {
        self.inner.default_concurrency()
    }

    async fn process(&self, input: Input) -> Result<Output, StageError> {
        let Some(record) = input.as_record().cloned() else {
            return self.inner.process(input).await;
        };
        let stage = self.inner.name();
        match &record {
            Record::Chunk(c) => match self.store.chunk_state(stage, &c.id).await.map_err(retry)? {
                ChunkState::New => {}
                ChunkState::Done => {
                    self.count(Resumed::Skipped, 1);
                    tracing_debug(stage, "chunk already done", &c.id);
                    return Ok(Vec::new());
                }
                ChunkState::Partial(open) => {
                    self.count(Resumed::Continued, 1);
                    self.count(Resumed::Republished, open.len() as u64);
                    tracing_debug(stage, "chunk continued from the store", &c.id);
                    return Ok(open);
                }
            },
            other => {
                if let Some(out) = self.store.recorded_outputs(stage, other.id()).await.map_err(retry)? {
                    self.count(Resumed::Republished, out.len() as u64);
                    return Ok(out);
                }
            }
        }
        let out = self.inner.process(input).await?;
        self.store.record_step(stage, record, out.clone()).await.map_err(retry)?;
        Ok(out)
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

fn tracing_debug(stage: &str, what: &str, id: &str) {
    tracing::debug!(stage, chunk = id, "{what}");
}
