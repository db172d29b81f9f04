//! Sink: accepted and rejected records (and dead letters) land durably in the dataset, and every accepted
//! record is also written in the configured training formats as it arrives. An input is acknowledged only
//! once its lines are durable (group-committed). Replays are dropped by id within a process; readers of the
//! dataset drop repeated ids across restarts (`distillery_export::read_unique`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{DocumentStatus, Input, Record, Stage, StageError, StageName, Topic};
use distillery_export::{
    ACCEPTED, DEAD_LETTER, DOCUMENTS, DatasetOut, DeadLetterView, DocumentView, ExampleView, ExportOptions,
    FolderBackend, Format, ObjectBackend, REJECTED, formats,
};
use distillery_store::registry::Versions;
use serde::{Deserialize, Serialize};

pub mod service;

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Sink;

/// Where the sink writes the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// A folder (local disk or a mounted volume)...
    pub dir: Option<PathBuf>,
    /// ...or an S3 bucket, with part files under `prefix`.
    pub bucket: Option<String>,
    /// Key prefix in the bucket.
    pub prefix: String,
    /// Most lines per durable write.
    pub batch_lines: usize,
    /// Longest wait to fill a batch, in milliseconds.
    pub linger_ms: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: None, bucket: None, prefix: "dataset/".into(), batch_lines: 2000, linger_ms: 1000 }
    }
}

/// What builds the sink: its formats and where the dataset goes (a bucket is written through the S3 store
/// of `Deps`).
#[derive(Debug, Clone, Copy)]
pub struct SinkComponent<'a> {
    pub sink: &'a SinkConfig,
    pub output: &'a OutputConfig,
}

impl Component for SinkComponent<'_> {
    type Stage = Sink;

    async fn build(&self, deps: &Deps) -> Result<Sink, BuildError> {
        let o = self.output;
        let linger = Duration::from_millis(o.linger_ms);
        let out = match (&o.dir, &o.bucket) {
            (Some(dir), _) => {
                let backend = FolderBackend::new(dir)
                    .map_err(|e| BuildError::one(NAME.as_str(), format!("output folder {}: {e}", dir.display())))?;
                DatasetOut::start(backend, o.batch_lines, linger)
            }
            (None, Some(bucket)) => {
                let s3 = deps.stores.s3.clone().ok_or_else(|| {
                    BuildError::one(NAME.as_str(), "output.bucket is set but no S3 store is configured")
                })?;
                DatasetOut::start(ObjectBackend::new(s3, bucket.clone(), o.prefix.clone()), o.batch_lines, linger)
            }
            (None, None) => return Err(BuildError::one(NAME.as_str(), "no output configured")),
        };
        Ok(Sink::new(out, self.sink.clone(), deps.versions.clone()))
    }
}

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
        NAME.as_str()
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
