//! Dataset records and the formats they export to.

pub mod card;
pub mod formats;
pub mod job;
pub mod parquet;
pub mod qa_json;
pub mod view;
pub mod writer;

pub use formats::{ExportOptions, Format};
pub use job::{ExportError, ExportJob, Target, Written, targets};
pub use view::{DeadLetterView, DocumentView, ExampleView};
pub use writer::{Backend, DatasetOut, FolderBackend, ObjectBackend, OutError};

/// Dataset file names.
pub const ACCEPTED: &str = "accepted.jsonl";
pub const REJECTED: &str = "rejected.jsonl";
pub const DEAD_LETTER: &str = "dead-letter.jsonl";
pub const DOCUMENTS: &str = "documents.jsonl";
/// The run's summary (the card reads its `diversity`).
pub const SUMMARY: &str = "summary.json";

/// Reads a JSONL file of records, keeping the first record of each id (replays write repeats).
pub fn read_unique(path: &std::path::Path) -> std::io::Result<impl Iterator<Item = ExampleView>> {
    read_unique_as(path, |v: &ExampleView| v.id.clone())
}

/// Reads a JSONL file of any view, keeping the first of each key; unreadable lines are skipped.
pub fn read_unique_as<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    key: impl Fn(&T) -> String,
) -> std::io::Result<impl Iterator<Item = T>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut seen = std::collections::HashSet::new();
    Ok(std::io::BufReader::new(file).lines().map_while(Result::ok).filter_map(move |l| {
        let v: T = serde_json::from_str(&l).ok()?;
        seen.insert(key(&v)).then_some(v)
    }))
}
