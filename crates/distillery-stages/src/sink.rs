//! Sink: accepted and rejected records (and dead letters) land durably in the dataset, and every accepted
//! record is also written in the configured training formats as it arrives. An input is acknowledged only
//! once its lines are durable (group-committed). Replays are dropped by id within a process; readers of the
//! dataset drop repeated ids across restarts (`distillery_export::read_unique`).

use std::collections::HashSet;
use std::sync::Mutex;

use std::sync::Arc;

use distillery_core::{DocumentStatus, Input, Record, Stage, StageError, Topic};
use distillery_export::{
    ACCEPTED, DEAD_LETTER, DOCUMENTS, DatasetOut, DeadLetterView, DocumentView, ExampleView, ExportOptions, Format,
    REJECTED, formats,
};
use serde::{Deserialize, Serialize};

use crate::claims::Versions;

/// What the sink writes besides the dataset itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Training formats written as records arrive (JSONL): alpaca, sharegpt, openai, dpo.
    /// Parquet is written by `distillery export` and at the end of `distillery run`.
    pub formats: Vec<Format>,
    /// SFT options (reasoning traces, system prompt).
    pub export: ExportOptions,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            formats: vec![Format::Alpaca, Format::Sharegpt, Format::Openai, Format::Dpo],
            export: ExportOptions::default(),
        }
    }
}

/// The sink stage.
#[derive(Debug)]
pub struct Sink {
    pub out: DatasetOut,
    pub cfg: SinkConfig,
    /// Marks records of documents a newer version has replaced.
    pub versions: Option<Arc<dyn Versions>>,
    seen: Mutex<HashSet<String>>,
}

impl Sink {
    pub fn new(out: DatasetOut, cfg: SinkConfig, versions: Option<Arc<dyn Versions>>) -> Self {
        Sink { out, cfg, versions, seen: Mutex::new(HashSet::new()) }
    }

    async fn superseded(&self, document: Option<&str>) -> Result<Option<String>, StageError> {
        match (&self.versions, document) {
            (Some(v), Some(d)) => v.superseded_by(d).await.map_err(|e| StageError::retry("versions", e.to_string())),
            _ => Ok(None),
        }
    }

    /// Forget nothing already in the dataset (a resumed local run).
    pub fn remember(&self, ids: impl IntoIterator<Item = String>) {
        self.seen.lock().expect("seen lock").extend(ids);
    }

    fn first_time(&self, key: String) -> bool {
        self.seen.lock().expect("seen lock").insert(key)
    }

    /// The lines a record adds to the dataset (`superseded_by` marks records of replaced documents).
    pub fn lines(&self, record: &Record, superseded_by: Option<String>) -> Result<Vec<(String, Vec<u8>)>, StageError> {
        let mut out = Vec::new();
        match record {
            Record::Document(d) => {
                let mut view = DocumentView::from(d);
                view.superseded_by = superseded_by;
                out.push((DOCUMENTS.to_string(), to_json(&view)?));
            }
            Record::Accepted(a) => {
                let mut view = ExampleView::accepted(a);
                view.superseded_by = view.superseded_by.or(superseded_by);
                out.push((ACCEPTED.to_string(), to_json(&view)?));
                for f in &self.cfg.formats {
                    if let Some(line) = formats::line(*f, &view, &self.cfg.export) {
                        out.push((f.file_name().to_string(), to_json(&line)?));
                    }
                }
            }
            Record::Rejected(r) => {
                let mut view = ExampleView::rejected(r);
                view.superseded_by = view.superseded_by.or(superseded_by);
                out.push((REJECTED.to_string(), to_json(&view)?));
            }
            Record::DeadLetter(d) => out.push((DEAD_LETTER.to_string(), to_json(&DeadLetterView::from(d))?)),
            _ => {
                return Err(StageError::dead_letter(
                    "unexpected_input",
                    "sink consumes accepted, rejected and dead-letter records",
                ));
            }
        }
        Ok(out)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StageError> {
    serde_json::to_vec(v).map_err(|e| StageError::dead_letter("serialize", e.to_string()))
}

impl Stage for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Accepted, Topic::Rejected, Topic::DeadLetter, Topic::Documents]
    }

    fn default_concurrency(&self) -> usize {
        // Inputs wait for a group commit; many in flight keep batches full.
        256
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(record) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "sink consumes records"));
        };
        if let Record::Document(d) = record
            && d.status != DocumentStatus::Extracted
        {
            // The manifest lists documents once extracted; discovery alone says little.
            return Ok(Vec::new());
        }
        // One dataset line per id: a rejected line is keyed by its subject, so a replayed input that a
        // non-deterministic model ended differently the second time (e.g. judge restarted, the same draft
        // regenerated twice) does not list the same example twice; the first outcome stands.
        let line_id = match record {
            Record::Rejected(r) => r.subject_id.as_str(),
            other => other.id(),
        };
        let key = format!("{}:{}", input.topic.base_name(), line_id);
        if !self.first_time(key) {
            return Ok(Vec::new());
        }
        let superseded_by = self.superseded(record.document_id()).await?;
        let lines = self.lines(record, superseded_by)?;
        self.out.append(lines).await.map_err(|e| StageError::retry("dataset_write", e.to_string()))?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_core::{Accepted, RejectReason, Rejected, SubjectKind};
    use distillery_export::FolderBackend;
    use std::time::Duration;

    #[tokio::test]
    async fn writes_dataset_and_formats_once_per_id() {
        let dir = tempfile::tempdir().unwrap();
        let out = DatasetOut::start(FolderBackend::new(dir.path()).unwrap(), 100, Duration::from_millis(1));
        let sink = Sink::new(out, SinkConfig::default(), None);
        let acc = Record::Accepted(Accepted {
            id: "d1".into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: 1,
        });
        let rej = Record::Rejected(Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, "d9", "2/5"));
        // The same draft ended otherwise on a replay: still one line for it.
        let again =
            Record::Rejected(Rejected::new("generate", RejectReason::Ungrounded, SubjectKind::Draft, "d9", "35"));
        let doc = Record::Document(fixtures::document());
        let mut discovered = fixtures::document();
        discovered.status = DocumentStatus::Discovered;
        let discovered = Record::Document(discovered);
        for (t, r) in [
            (Topic::Accepted, &acc),
            (Topic::Accepted, &acc),
            (Topic::Rejected, &rej),
            (Topic::Rejected, &again),
            (Topic::Documents, &doc),
            (Topic::Documents, &discovered),
        ] {
            sink.process(Input::record(t, r.clone())).await.unwrap();
        }
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read(ACCEPTED).lines().count(), 1);
        assert_eq!(read(REJECTED).lines().count(), 1);
        assert_eq!(read("alpaca.jsonl").lines().count(), 1);
        assert_eq!(read("dpo.jsonl").lines().count(), 1, "the fixture is an accepted regeneration");
        let alpaca: serde_json::Value = serde_json::from_str(read("alpaca.jsonl").lines().next().unwrap()).unwrap();
        assert_eq!(alpaca["output"], "25 days.");
        let rejected: serde_json::Value = serde_json::from_str(read(REJECTED).lines().next().unwrap()).unwrap();
        assert_eq!(rejected["reason"], "low_score");
        let docs: Vec<serde_json::Value> = read(DOCUMENTS).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.len(), 1, "only the extracted report is listed");
        assert_eq!(docs[0]["pii_counts"]["EMAIL"], 2);
        assert_eq!(docs[0]["chunks"], 2);
    }
}
