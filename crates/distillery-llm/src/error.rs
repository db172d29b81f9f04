//! LLM failures, each classed: transport and server trouble is retryable; output that cannot be used
//! becomes a precise rejection with the raw text kept.

use std::time::Duration;

use distillery_core::{Classify, Disposition, RejectReason, StageError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("rate limited (429){}", .retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error {status}: {body}")]
    Server { status: u16, body: String, retry_after: Option<Duration> },
    #[error("request refused with {status}: {body}")]
    Client { status: u16, body: String },
    #[error("provider response is malformed: {0}")]
    InvalidResponse(String),
    #[error("output was cut off at the token limit")]
    Truncated { raw: String },
    #[error("output is not valid JSON for the schema: {error}")]
    Unparseable { raw: String, error: String },
    #[error("output was empty")]
    Empty { raw: String },
    #[error("the model refused: {reason}")]
    Refusal { raw: String, reason: String },
}

impl LlmError {
    /// Worth trying the same request again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::Timeout(_) | LlmError::Connect(_) | LlmError::RateLimited { .. } | LlmError::Server { .. }
        )
    }

    /// A server-requested wait before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } | LlmError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Low-cardinality label.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Timeout(_) => "llm_timeout",
            LlmError::Connect(_) => "llm_connect",
            LlmError::RateLimited { .. } => "llm_rate_limited",
            LlmError::Server { .. } => "llm_server_error",
            LlmError::Client { .. } => "llm_client_error",
            LlmError::InvalidResponse(_) => "llm_invalid_response",
            LlmError::Truncated { .. } => "truncated",
            LlmError::Unparseable { .. } => "unparseable",
            LlmError::Empty { .. } => "empty_output",
            LlmError::Refusal { .. } => "refusal",
        }
    }

    /// The model's raw output, when there was one.
    pub fn raw_output(&self) -> Option<&str> {
        match self {
            LlmError::Truncated { raw }
            | LlmError::Unparseable { raw, .. }
            | LlmError::Empty { raw }
            | LlmError::Refusal { raw, .. } => Some(raw),
            _ => None,
        }
    }
}

impl Classify for LlmError {
    fn disposition(&self) -> Disposition {
        match self {
            e if e.is_retryable() => Disposition::Retry,
            LlmError::Truncated { .. } => Disposition::Reject(RejectReason::Truncated),
            LlmError::Unparseable { .. } => Disposition::Reject(RejectReason::Unparseable),
            LlmError::Empty { .. } => Disposition::Reject(RejectReason::EmptyOutput),
            LlmError::Refusal { .. } => Disposition::Reject(RejectReason::Refusal),
            // A malformed provider envelope or a refused request (context too long, bad parameters) will not
            // get better by retrying the same record.
            _ => Disposition::Reject(RejectReason::LlmError),
        }
    }
}

impl From<LlmError> for StageError {
    fn from(e: LlmError) -> StageError {
        let raw = e.raw_output().map(str::to_string);
        let err = StageError { kind: e.kind(), disposition: e.disposition(), message: e.to_string(), raw_output: None };
        match raw {
            Some(r) => err.with_raw_output(r),
            None => err,
        }
    }
}
