//! The one error type of the crate.

use std::path::PathBuf;

use distillery_llm::LlmError;

/// Everything that can go wrong between a description and a written table.
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    /// The request itself is unusable (empty description, zero rows, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A schema failed validation; every problem is listed.
    #[error("invalid table schema ({} problem{}):\n{}", .0.len(), plural(.0.len()), bullets(.0))]
    InvalidSchema(Vec<String>),
    /// Schema JSON that is neither the typed form nor the flat design form.
    #[error("schema JSON could not be read: {0}")]
    SchemaJson(String),
    /// The model's schema was still invalid after the one repair round trip.
    #[error(
        "the model could not design a valid schema for this description (still {} problem{} after one repair):\n{}",
        .errors.len(), plural(.errors.len()), bullets(.errors)
    )]
    DesignFailed {
        /// What is wrong with the model's last schema.
        errors: Vec<String>,
        /// The model's raw replies, first and repaired, for debugging.
        raw: String,
    },
    /// The LLM call failed (transport, refusal, unparseable output after its own repair).
    #[error("schema design call failed: {0}")]
    Llm(#[from] LlmError),
    /// The schema cache could not be read or written.
    #[error("schema cache {}: {source}", .path.display())]
    Cache {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Writing the output failed (for a stream: usually the client went away).
    #[error("writing the table failed: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV encoder failed.
    #[error("CSV encoding failed: {0}")]
    Csv(String),
    /// The Parquet/Arrow encoder failed.
    #[error("Parquet encoding failed: {0}")]
    Parquet(String),
    /// A generation worker thread panicked or vanished.
    #[error("generation worker failed: {0}")]
    Worker(String),
}

impl TabularError {
    /// The list of schema problems, for a 422-style answer, when this error is about the schema.
    pub fn problems(&self) -> Option<&[String]> {
        match self {
            TabularError::InvalidSchema(errors) | TabularError::DesignFailed { errors, .. } => Some(errors),
            _ => None,
        }
    }

    /// True when the caller's input is at fault (bad request or schema), false for infrastructure failures.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            TabularError::InvalidRequest(_)
                | TabularError::InvalidSchema(_)
                | TabularError::SchemaJson(_)
                | TabularError::DesignFailed { .. }
        )
    }
}

impl From<csv::Error> for TabularError {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => TabularError::Io(io),
            other => TabularError::Csv(format!("{other:?}")),
        }
    }
}

impl From<parquet::errors::ParquetError> for TabularError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        match e {
            parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
                Ok(io) => TabularError::Io(*io),
                Err(other) => TabularError::Parquet(other.to_string()),
            },
            other => TabularError::Parquet(other.to_string()),
        }
    }
}

impl From<arrow_schema::ArrowError> for TabularError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        match e {
            arrow_schema::ArrowError::IoError(_, io) => TabularError::Io(io),
            other => TabularError::Parquet(other.to_string()),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn bullets(items: &[String]) -> String {
    items.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}
