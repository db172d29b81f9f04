//! Sink: accepted and rejected records (and dead letters) land durably in the dataset, and every accepted
//! record is also written in the configured training formats as it arrives. An input is acknowledged only
//! once it is durable: first in the dataset store when there is one (`Deps::dataset`), then as lines
//! (group-committed). Replays are dropped by id: within a process by what this sink wrote, across restarts
//! by what the store already holds (read when the sink starts); without a store, readers of the dataset drop
//! repeated ids (`distillery_export::read_unique`). An id counts as written only once its write succeeded,
//! so a failed write is retried in full. [`rewrite_folder`] rebuilds a folder's files from the store (the
//! end of `distillery run`): exactly one line per stored outcome, whatever a crash left behind.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{DocumentStatus, Input, Record, Stage, StageError, StageName, Topic};
use distillery_dataset::{DatasetStore, OutcomeKind};
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
        let mut sink = Sink::new(out, self.sink.clone(), deps.versions.clone());
        if let Some(store) = &deps.dataset {
            sink = sink.with_dataset(store.clone()).await.map_err(|e| BuildError::one(NAME.as_str(), e))?;
        }
        Ok(sink)
    }
}

/// The dedupe key of a dataset line: one line per id, a rejection keyed by its subject (the first outcome
/// of an example stands).
fn line_key(topic: Topic, record: &Record) -> String {
    let id = match record {
        Record::Rejected(r) => r.subject_id.as_str(),
        other => other.id(),
    };
    format!("{}:{id}", topic.base_name())
}

/// The topic whose lines an outcome kind makes.
fn outcome_topic(kind: OutcomeKind) -> Topic {
    match kind {
        OutcomeKind::Document => Topic::Documents,
        OutcomeKind::Accepted => Topic::Accepted,
        OutcomeKind::Rejected => Topic::Rejected,
        OutcomeKind::DeadLetter => Topic::DeadLetter,
    }
}

/// Records read per page from the store.
const PAGE: usize = 1000;

/// Every stored outcome, page by page, to `each`.
async fn for_each_outcome(
    store: &dyn DatasetStore,
    mut each: impl FnMut(OutcomeKind, &Record) -> Result<(), String>,
) -> Result<(), String> {
    for kind in OutcomeKind::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = store.outcomes(kind, after.as_deref(), PAGE).await.map_err(|e| e.to_string())?;
            for r in &page {
                each(kind, r)?;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.id().to_string()),
                _ => break,
            }
        }
    }
    Ok(())
}

/// What [`rewrite_folder`] wrote: lines per file.
pub type Rewritten = std::collections::BTreeMap<String, u64>;

/// Rebuilds the dataset files of `dir` from the store, one line per stored outcome (in id order), each file
/// written beside and renamed over the old one. What a crash left (a torn last line, a line the store never
/// acknowledged, a batch cut between two files) is gone; what the store holds is all there, once.
pub async fn rewrite_folder(
    dir: &std::path::Path,
    store: &dyn DatasetStore,
    cfg: &SinkConfig,
    versions: Option<&dyn Versions>,
) -> Result<Rewritten, String> {
    use std::io::Write;
    // Superseded marks first (async), then the lines (sync writes into temporary files).
    let mut superseded = std::collections::HashMap::new();
    if let Some(v) = versions {
        let mut docs = Vec::new();
        for_each_outcome(store, |_, r| {
            if let Some(d) = r.document_id() {
                docs.push(d.to_string());
            }
            Ok(())
        })
        .await?;
        docs.sort();
        docs.dedup();
        for d in docs {
            if let Some(by) = v.superseded_by(&d).await.map_err(|e| e.to_string())? {
                superseded.insert(d, by);
            }
        }
    }
    let no_exports = SinkConfig { formats: Vec::new(), ..cfg.clone() };
    let mut files: std::collections::BTreeMap<String, std::io::BufWriter<std::fs::File>> = Default::default();
    let mut counts = Rewritten::new();
    let mut names = vec![DOCUMENTS.to_string(), ACCEPTED.to_string(), REJECTED.to_string(), DEAD_LETTER.to_string()];
    names.extend(cfg.formats.iter().map(|f| f.file_name().to_string()));
    for name in &names {
        let tmp = dir.join(format!(".{name}.rewrite"));
        let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        files.insert(name.clone(), std::io::BufWriter::new(f));
        counts.insert(name.clone(), 0);
    }
    for_each_outcome(store, |_, r| {
        let by = r.document_id().and_then(|d| superseded.get(d).cloned());
        // A superseded record keeps its (marked) line in the dataset files, but no line in an export.
        let exports = if by.is_some() { &no_exports } else { cfg };
        for (name, line) in dataset_lines(exports, r, by).map_err(|e| e.to_string())? {
            let f = files.get_mut(&name).ok_or_else(|| format!("no file {name}"))?;
            f.write_all(&line).and_then(|_| f.write_all(b"\n")).map_err(|e| format!("{name}: {e}"))?;
            *counts.get_mut(&name).expect("counted") += 1;
        }
        Ok(())
    })
    .await?;
    for (name, f) in files {
        let f = f.into_inner().map_err(|e| format!("{name}: {e}"))?;
        f.sync_all().map_err(|e| format!("{name}: {e}"))?;
        let tmp = dir.join(format!(".{name}.rewrite"));
        let path = dir.join(&name);
        if counts[&name] == 0 && !path.exists() {
            // Empty files are not created (the README's table says which files are always there).
            let _ = std::fs::remove_file(&tmp);
            continue;
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(counts)
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
    /// The durable dataset, written before the lines.
    pub dataset: Option<Arc<dyn DatasetStore>>,
    seen: Mutex<HashSet<String>>,
}

impl Sink {
    pub fn new(out: DatasetOut, cfg: SinkConfig, versions: Option<Arc<dyn Versions>>) -> Self {
        Sink { out, cfg, versions, dataset: None, seen: Mutex::new(HashSet::new()) }
    }

    /// Writes every record to `store` before its lines, and takes what the store already holds as written
    /// (a restarted sink, a resumed run: no line twice).
    pub async fn with_dataset(mut self, store: Arc<dyn DatasetStore>) -> Result<Self, String> {
        let mut keys = Vec::new();
        for_each_outcome(&*store, |kind, r| {
            keys.push(line_key(outcome_topic(kind), r));
            Ok(())
        })
        .await
        .map_err(|e| format!("reading the dataset store {}: {e}", store.describe()))?;
        tracing::info!(stored = keys.len(), store = %store.describe(), "sink: outcomes already in the store");
        self.remember(keys);
        self.dataset = Some(store);
        Ok(self)
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

    /// Claims `key` for this write; `false` when it is written or being written.
    fn first_time(&self, key: String) -> bool {
        self.seen.lock().expect("seen lock").insert(key)
    }

    /// Gives a key back after a failed write, so the retry writes it.
    fn forget(&self, key: &str) {
        self.seen.lock().expect("seen lock").remove(key);
    }

    /// The lines a record adds to the dataset (`superseded_by` marks records of replaced documents).
    pub fn lines(&self, record: &Record, superseded_by: Option<String>) -> Result<Vec<(String, Vec<u8>)>, StageError> {
        dataset_lines(&self.cfg, record, superseded_by)
    }

    async fn write(&self, record: &Record) -> Result<(), StageError> {
        let superseded_by = self.superseded(record.document_id()).await?;
        let lines = self.lines(record, superseded_by)?;
        if let Some(store) = &self.dataset {
            store.write(vec![record.clone()]).await.map_err(|e| StageError::retry("dataset_store", e.0))?;
        }
        self.out.append(lines).await.map_err(|e| StageError::retry("dataset_write", e.to_string()))
    }
}

/// The lines a record adds to the dataset files (`superseded_by` marks records of replaced documents).
pub fn dataset_lines(
    cfg: &SinkConfig,
    record: &Record,
    superseded_by: Option<String>,
) -> Result<Vec<(String, Vec<u8>)>, StageError> {
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
            for f in &cfg.formats {
                if let Some(line) = formats::line(*f, &view, &cfg.export) {
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
        let key = line_key(input.topic, record);
        if !self.first_time(key.clone()) {
            return Ok(Vec::new());
        }
        if let Err(e) = self.write(record).await {
            self.forget(&key);
            return Err(e);
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_core::{Accepted, RejectReason, Rejected, SubjectKind};
    use distillery_export::FolderBackend;
    use std::io::Write;
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

    #[tokio::test]
    async fn a_restarted_sink_writes_nothing_twice_and_the_rewrite_mends_torn_files() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn DatasetStore> = Arc::new(
            distillery_dataset::SqlStore::open(&distillery_dataset::sql::sqlite_url(&dir.path().join("ds.db")))
                .await
                .unwrap(),
        );
        let acc = Record::Accepted(Accepted {
            id: "a1".into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: 1,
        });
        let rej = Record::Rejected(Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, "d9", "2/5"));
        let start = || async {
            let out = DatasetOut::start(FolderBackend::new(dir.path()).unwrap(), 100, Duration::from_millis(1));
            Sink::new(out, SinkConfig::default(), None).with_dataset(store.clone()).await.unwrap()
        };
        let sink = start().await;
        sink.process(Input::record(Topic::Accepted, acc.clone())).await.unwrap();
        drop(sink);
        // A restarted sink gets the same record again (an uncommitted offset) and a new one.
        let sink = start().await;
        sink.process(Input::record(Topic::Accepted, acc.clone())).await.unwrap();
        sink.process(Input::record(Topic::Rejected, rej.clone())).await.unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        assert_eq!(read(ACCEPTED).lines().count(), 1, "what the store holds is not written again");
        assert_eq!(read(REJECTED).lines().count(), 1);
        // A crash left a torn line and a line the store never acknowledged.
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(ACCEPTED)).unwrap();
        f.write_all(b"{\"id\": \"ghost\"}\n{\"id\": \"to").unwrap();
        let counts = rewrite_folder(dir.path(), &*store, &SinkConfig::default(), None).await.unwrap();
        assert_eq!(counts[ACCEPTED], 1);
        assert_eq!(counts[REJECTED], 1);
        assert_eq!(counts["alpaca.jsonl"], 1);
        let accepted = read(ACCEPTED);
        assert_eq!(accepted.lines().count(), 1, "{accepted}");
        let line: serde_json::Value = serde_json::from_str(accepted.lines().next().unwrap()).unwrap();
        assert_eq!(line["id"], "a1");
        assert!(!dir.path().join(DEAD_LETTER).exists(), "no empty dead-letter file");
    }
}
