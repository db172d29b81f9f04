//! Dataset records and the formats they export to.

pub mod formats;
pub mod parquet;
pub mod view;
pub mod writer;

pub use formats::{ExportOptions, Format};
pub use view::{DeadLetterView, DocumentView, ExampleView};
pub use writer::{Backend, DatasetOut, FolderBackend, ObjectBackend, OutError};

/// Dataset file names.
pub const ACCEPTED: &str = "accepted.jsonl";
pub const REJECTED: &str = "rejected.jsonl";
pub const DEAD_LETTER: &str = "dead-letter.jsonl";
pub const DOCUMENTS: &str = "documents.jsonl";

/// Reads a JSONL file of records, keeping the first record of each id (replays write repeats).
pub fn read_unique(path: &std::path::Path) -> std::io::Result<impl Iterator<Item = ExampleView>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut seen = std::collections::HashSet::new();
    Ok(std::io::BufReader::new(file).lines().map_while(Result::ok).filter_map(move |l| {
        let v: ExampleView = serde_json::from_str(&l).ok()?;
        seen.insert(v.id.clone()).then_some(v)
    }))
}
