//! The one error type a stage returns, classed so that the runtime routes it with a single `match`.

use crate::records::RejectReason;

/// What the runtime does with a failed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A transient failure (a peer down, a timeout): process the same input again after a backoff; when the
    /// retries run out, dead-letter it.
    Retry,
    /// The input is fine but cannot become training data: publish a `Rejected` record with this reason.
    Reject(RejectReason),
    /// The input cannot be handled at all (undecodable, a bug): publish it whole to the dead-letter topic.
    DeadLetter,
}

/// A stage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StageError {
    /// Low-cardinality class, used as a metric label (`llm_timeout`, `s3_get`, `decode`, ...).
    pub kind: &'static str,
    pub disposition: Disposition,
    pub message: String,
    /// What a model returned, when that is why.
    pub raw_output: Option<String>,
}

impl StageError {
    pub fn retry(kind: &'static str, message: impl Into<String>) -> Self {
        Self { kind, disposition: Disposition::Retry, message: message.into(), raw_output: None }
    }

    pub fn reject(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            kind: reason.as_str(),
            disposition: Disposition::Reject(reason),
            message: message.into(),
            raw_output: None,
        }
    }

    pub fn dead_letter(kind: &'static str, message: impl Into<String>) -> Self {
        Self { kind, disposition: Disposition::DeadLetter, message: message.into(), raw_output: None }
    }

    pub fn with_raw_output(mut self, raw: impl Into<String>) -> Self {
        self.raw_output = Some(raw.into());
        self
    }
}

/// Anything that knows how the runtime should treat it.
pub trait Classify {
    fn disposition(&self) -> Disposition;
}

impl Classify for StageError {
    fn disposition(&self) -> Disposition {
        self.disposition
    }
}
