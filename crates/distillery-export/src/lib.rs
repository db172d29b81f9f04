//! Dataset records and the formats they export to.

pub mod card;
pub mod formats;
pub mod job;
pub mod parquet;
pub mod qa_json;
pub mod supersession;
pub mod view;
pub mod writer;

pub use formats::{ExportOptions, Format};
pub use job::{ExportError, ExportJob, Target, Written, targets};
pub use supersession::{Place, Supersession};
pub use view::{DeadLetterView, DocumentView, ExampleView};
pub use writer::{Backend, DatasetOut, FolderBackend, ObjectBackend, OutError};

/// Dataset file names.
pub const ACCEPTED: &str = "accepted.jsonl";
pub const REJECTED: &str = "rejected.jsonl";
pub const DEAD_LETTER: &str = "dead-letter.jsonl";
pub const DOCUMENTS: &str = "documents.jsonl";
/// The run's summary (the card reads its `diversity`).
pub const SUMMARY: &str = "summary.json";

/// Reads a JSONL file of records, keeping the first record of each id (replays write repeats); unreadable
/// lines are skipped and counted (see [`JsonlReader`]).
pub fn read_unique(path: &std::path::Path) -> std::io::Result<JsonlReader<ExampleView>> {
    read_unique_as(path, |v: &ExampleView| v.id.clone())
}

/// Reads a JSONL file of any view, keeping the first of each key; unreadable lines (invalid UTF-8 or JSON:
/// a line a crash cut, or two glued together) are skipped and counted, never the end of the reading.
pub fn read_unique_as<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    key: impl Fn(&T) -> String + 'static,
) -> std::io::Result<JsonlReader<T>> {
    let file = std::fs::File::open(path)?;
    let mut seen = std::collections::HashSet::new();
    Ok(JsonlReader {
        path: path.to_path_buf(),
        reader: std::io::BufReader::new(file),
        keep: Box::new(move |v: &T| seen.insert(key(v))),
        skipped: SkippedLines::default(),
        line: 0,
        done: false,
    })
}

/// How many lines a [`JsonlReader`] skipped; a handle that stays valid while the reader is consumed.
#[derive(Debug, Clone, Default)]
pub struct SkippedLines(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SkippedLines {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn add(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The records of a JSONL file, line by line: the first of each key, unreadable lines skipped and counted
/// (a warning names the file and the count when the reading ends).
pub struct JsonlReader<T> {
    path: std::path::PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    keep: Box<dyn FnMut(&T) -> bool>,
    skipped: SkippedLines,
    line: u64,
    done: bool,
}

impl<T> JsonlReader<T> {
    /// The count of skipped lines (read it after consuming the reader).
    pub fn skipped(&self) -> SkippedLines {
        self.skipped.clone()
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for JsonlReader<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        use std::io::BufRead;
        let mut buf = Vec::new();
        while !self.done {
            buf.clear();
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<T>(text) {
                        Ok(v) if (self.keep)(&v) => return Some(v),
                        Ok(_) => {}
                        Err(e) => {
                            self.skipped.add();
                            tracing::debug!(path = %self.path.display(), line = self.line, error = %e, "unreadable line skipped");
                        }
                    }
                }
                Err(e) => {
                    self.skipped.add();
                    tracing::warn!(path = %self.path.display(), error = %e, "reading stopped by an I/O error");
                    self.done = true;
                }
            }
        }
        if self.skipped.get() > 0 {
            tracing::warn!(path = %self.path.display(), skipped = self.skipped.get(), "unreadable lines skipped");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14, defect 5: the reader used to stop silently at the first invalid line (a torn line, invalid
    /// UTF-8), dropping everything after it. Bad lines are skipped and counted; the rest is read.
    #[test]
    fn bad_lines_are_skipped_and_counted_not_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accepted.jsonl");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(br#"{"id": "a", "kind": "qa", "at_ms": 1}"#);
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
        // A line a crash cut, glued to the next append.
        bytes.extend_from_slice(br#"{"id": "to{"id": "b2", "kind": "qa", "at_ms": 2}"#);
        bytes.push(b'\n');
        bytes.extend_from_slice(b"\n");
        bytes.extend_from_slice(br#"{"id": "c", "kind": "qa", "at_ms": 3}"#);
        bytes.push(b'\n');
        bytes.extend_from_slice(br#"{"id": "a", "kind": "qa", "at_ms": 4}"#);
        bytes.push(b'\n');
        bytes.extend_from_slice(br#"{"id": "d", "kind": "qa", "at_ms": 5}"#);
        std::fs::write(&path, bytes).unwrap();
        let reader = read_unique(&path).unwrap();
        let skipped = reader.skipped();
        let ids: Vec<String> = reader.map(|v| v.id).collect();
        assert_eq!(ids, vec!["a", "c", "d"], "everything readable, each id once");
        assert_eq!(skipped.get(), 2);
    }
}
