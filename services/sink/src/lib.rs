//! Sink: accepted and rejected records (and dead letters) land durably in the dataset, and every accepted
//! record is also written in the configured training formats as it arrives. An input is acknowledged only
//! once it is durable: first in the dataset store when there is one (`Deps::dataset`), then as lines
//! (group-committed). Replays are dropped by id: within a process by what this sink wrote, across restarts
//! by what the store already holds (read when the sink starts), or, without a store, by the lines already
//! in the output folder (a line a crash cut short is truncated away first); readers of the dataset drop
//! repeated ids too (`distillery_export::read_unique`). An id counts as written only once its write
//! succeeded, so a failed write is retried in full, and a replay arriving while the same id is being written
//! waits for that write instead of being acknowledged before anything is durable. [`rewrite_folder`]
//! rebuilds a folder's files from the store (the end of `distillery run`): exactly one line per stored
//! outcome, whatever a crash left behind.

use std::collections::HashMap;
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
            sink = sink
                .with_dataset(store.clone(), o.dir.as_deref())
                .await
                .map_err(|e| BuildError::one(NAME.as_str(), e))?;
        } else if let Some(dir) = &o.dir {
            // No store: what the folder already holds is written (a restarted sink writes nothing twice).
            let keys =
                folder_keys(dir).map_err(|e| BuildError::one(NAME.as_str(), format!("{}: {e}", dir.display())))?;
            tracing::info!(lines = keys.len(), dir = %dir.display(), "sink: lines already in the output folder");
            sink.remember(keys);
        }
        Ok(sink)
    }
}

/// The dedupe key of a dataset line: one line per id, a rejection keyed by its subject, and an example's
/// acceptance and rejection under one key: the first outcome of an example stands, so a replay that a
/// non-deterministic model ended otherwise never lists the same draft as both accepted and rejected.
fn line_key(topic: Topic, record: &Record) -> String {
    let id = match record {
        Record::Rejected(r) => r.subject_id.as_str(),
        // A document's deletion is a line of its own, after the one it was extracted with.
        Record::Document(d) if d.status == DocumentStatus::Deleted => {
            return key_of(topic, &format!("{}#deleted", d.id));
        }
        other => other.id(),
    };
    key_of(topic, id)
}

/// The dedupe key of an id on a topic's lines.
fn key_of(topic: Topic, id: &str) -> String {
    match topic {
        Topic::Accepted | Topic::Rejected => format!("outcome:{id}"),
        other => format!("{}:{id}", other.base_name()),
    }
}

/// The dedupe keys of the lines already in an output folder's dataset files.
fn folder_keys(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    for (file, topic) in [
        (DOCUMENTS, Topic::Documents),
        (ACCEPTED, Topic::Accepted),
        (REJECTED, Topic::Rejected),
        (DEAD_LETTER, Topic::DeadLetter),
    ] {
        keys.extend(FolderBackend::existing_ids(dir, file)?.into_iter().map(|id| key_of(topic, &id)));
    }
    Ok(keys)
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
    let mut replaced = std::collections::HashMap::new();
    let mut chunks_of: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(v) = versions {
        let mut docs = Vec::new();
        for_each_outcome(store, |_, r| {
            if let Some(d) = r.document_id() {
                docs.push(d.to_string());
            }
            if let Record::Document(d) = r {
                chunks_of.push((d.id.clone(), d.chunk_ids.clone()));
            }
            Ok(())
        })
        .await?;
        docs.sort();
        docs.dedup();
        for d in docs {
            if let Some(by) = v.superseded_by(&d).await.map_err(|e| e.to_string())? {
                replaced.insert(d, by);
            }
        }
    }
    let supersession = distillery_export::Supersession::new(replaced, chunks_of);
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
        let by = match supersession.place(r.document_id(), r.chunk_id(), None) {
            distillery_export::Place::Superseded { by } => Some(by.to_string()),
            distillery_export::Place::Current { .. } => None,
        };
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

/// Where a line key stands.
#[derive(Debug)]
enum Seen {
    /// Durable.
    Written,
    /// Being written by one input; replays wait for the outcome (`Some(true)` written, `Some(false)` failed).
    Writing(tokio::sync::watch::Receiver<Option<bool>>),
}

/// What an input may do with a key.
enum Claim {
    /// Durable already: nothing to write.
    Done,
    /// Another input is writing it: wait, then look again.
    Wait(tokio::sync::watch::Receiver<Option<bool>>),
    /// Ours to write.
    Mine(Writing),
}

/// The claim on a key being written; dropped without [`Writing::finish`] (the input was cancelled), it
/// gives the key back and wakes those waiting.
struct Writing {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    key: String,
    tx: tokio::sync::watch::Sender<Option<bool>>,
    finished: bool,
}

impl Writing {
    fn finish(mut self, ok: bool) {
        {
            let mut seen = self.seen.lock().expect("seen lock");
            if ok {
                seen.insert(self.key.clone(), Seen::Written);
            } else {
                seen.remove(&self.key);
            }
        }
        self.finished = true;
        self.tx.send_replace(Some(ok));
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if !self.finished {
            self.seen.lock().expect("seen lock").remove(&self.key);
            self.tx.send_replace(Some(false));
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
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Sink {
    pub fn new(out: DatasetOut, cfg: SinkConfig, versions: Option<Arc<dyn Versions>>) -> Self {
        Sink { out, cfg, versions, dataset: None, seen: Arc::default() }
    }

    /// Writes every record to `store` before its lines, and takes what the store already holds as written
    /// (a restarted sink, a resumed run: no line twice). With an output `folder`, the lines of stored
    /// outcomes the folder lacks (a sink killed between its store write and its lines) are appended first.
    pub async fn with_dataset(
        mut self,
        store: Arc<dyn DatasetStore>,
        folder: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let present: Option<std::collections::HashSet<String>> = match folder {
            Some(dir) => Some(folder_keys(dir).map_err(|e| format!("{}: {e}", dir.display()))?.into_iter().collect()),
            None => None,
        };
        let mut keys = Vec::new();
        let mut lacking = Vec::new();
        for_each_outcome(&*store, |kind, r| {
            let key = line_key(outcome_topic(kind), r);
            if present.as_ref().is_some_and(|p| !p.contains(&key)) {
                lacking.push(r.clone());
            }
            keys.push(key);
            Ok(())
        })
        .await
        .map_err(|e| format!("reading the dataset store {}: {e}", store.describe()))?;
        tracing::info!(stored = keys.len(), store = %store.describe(), "sink: outcomes already in the store");
        if !lacking.is_empty() {
            let mut lines = Vec::new();
            for r in &lacking {
                let by = self.superseded(r.document_id()).await.map_err(|e| e.to_string())?;
                lines.extend(self.lines(r, by).map_err(|e| e.to_string())?);
            }
            self.out.append(lines).await.map_err(|e| format!("appending the lines the folder lacked: {e}"))?;
            tracing::warn!(records = lacking.len(), "sink: stored outcomes whose lines the folder lacked, appended");
        }
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
    pub fn remember(&self, keys: impl IntoIterator<Item = String>) {
        self.seen.lock().expect("seen lock").extend(keys.into_iter().map(|k| (k, Seen::Written)));
    }

    /// What this input may do with `key`: it is written, being written by another input, or ours to write.
    fn claim(&self, key: &str) -> Claim {
        let mut seen = self.seen.lock().expect("seen lock");
        match seen.get(key) {
            Some(Seen::Written) => Claim::Done,
            Some(Seen::Writing(rx)) => Claim::Wait(rx.clone()),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                seen.insert(key.to_string(), Seen::Writing(rx));
                Claim::Mine(Writing { seen: self.seen.clone(), key: key.to_string(), tx, finished: false })
            }
        }
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
            view.superseded_by = if d.status == DocumentStatus::Deleted {
                Some(distillery_store::registry::DELETED.to_string())
            } else {
                superseded_by
            };
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
            && d.status == DocumentStatus::Discovered
        {
            // The manifest lists documents once extracted (or deleted); discovery alone says little.
            return Ok(Vec::new());
        }
        // One dataset line per id: a rejected line is keyed by its subject, so a replayed input that a
        // non-deterministic model ended differently the second time (e.g. judge restarted, the same draft
        // regenerated twice) does not list the same example twice; the first outcome stands.
        // An id counts as written only once its write succeeded: a replay that arrives while it is being
        // written waits for that write (and writes it itself if that write failed).
        let key = line_key(input.topic, record);
        loop {
            match self.claim(&key) {
                Claim::Done => return Ok(Vec::new()),
                Claim::Wait(mut rx) => {
                    let _ = rx.wait_for(Option::is_some).await;
                }
                Claim::Mine(writing) => {
                    let result = self.write(record).await;
                    writing.finish(result.is_ok());
                    return result.map(|()| Vec::new());
                }
            }
        }
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
        // A replay that ended the accepted example otherwise: its first outcome stands.
        let flipped =
            Record::Rejected(Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, "d1", "replayed: 2/5"));
        for (t, r) in [
            (Topic::Accepted, &acc),
            (Topic::Accepted, &acc),
            (Topic::Rejected, &flipped),
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

    /// Lines in memory; the writes listed in `fail` fail (1-based), and the first write can be held until
    /// `release` is notified.
    #[derive(Clone, Default)]
    struct Flaky {
        writes: Arc<std::sync::atomic::AtomicUsize>,
        fail: Vec<usize>,
        hold_first: Option<Arc<tokio::sync::Notify>>,
        lines: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl distillery_export::Backend for Flaky {
        async fn write(
            &mut self,
            batch: std::collections::BTreeMap<String, Vec<u8>>,
        ) -> Result<(), distillery_export::OutError> {
            let n = self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == 1
                && let Some(release) = &self.hold_first
            {
                release.notified().await;
            }
            if self.fail.contains(&n) {
                return Err(distillery_export::OutError("No space left on device (os error 28)".into()));
            }
            for (file, bytes) in batch {
                for line in String::from_utf8(bytes).unwrap().lines() {
                    self.lines.lock().unwrap().push(format!("{file}:{line}"));
                }
            }
            Ok(())
        }
    }

    fn accepted(id: &str) -> Record {
        Record::Accepted(Accepted {
            id: id.into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: 1,
        })
    }

    fn accepted_lines(backend: &Flaky) -> usize {
        backend.lines.lock().unwrap().iter().filter(|l| l.starts_with("accepted.jsonl:")).count()
    }

    /// Issue 14, defect 1: the id used to be marked seen before its write succeeded, so the retry of a failed
    /// write (disk full, S3 down) found it "seen", wrote nothing and was committed: the record was lost.
    #[tokio::test]
    async fn a_failed_write_is_retried_in_full() {
        let backend = Flaky { fail: vec![1], ..Flaky::default() };
        let sink =
            Sink::new(DatasetOut::start(backend.clone(), 100, Duration::from_millis(1)), SinkConfig::default(), None);
        let input = Input::record(Topic::Accepted, accepted("a1"));
        let first = sink.process(input.clone()).await;
        assert!(matches!(&first, Err(e) if e.disposition == distillery_core::Disposition::Retry), "{first:?}");
        sink.process(input).await.unwrap();
        assert_eq!(accepted_lines(&backend), 1, "the retry wrote the record");
    }

    /// A replay arriving while the same id is being written used to be acknowledged at once, before anything
    /// was durable (and lost if that write then failed for good). It waits for the write, and writes the
    /// record itself when that write failed.
    #[tokio::test]
    async fn a_replay_during_a_write_waits_for_it() {
        let release = Arc::new(tokio::sync::Notify::new());
        let backend = Flaky { fail: vec![1], hold_first: Some(release.clone()), ..Flaky::default() };
        let sink = Arc::new(Sink::new(
            DatasetOut::start(backend.clone(), 1, Duration::from_millis(1)),
            SinkConfig::default(),
            None,
        ));
        let input = Input::record(Topic::Accepted, accepted("a1"));
        let (s1, i1) = (sink.clone(), input.clone());
        let first = tokio::spawn(async move { s1.process(i1).await });
        while backend.writes.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (s2, i2, b2) = (sink.clone(), input.clone(), backend.clone());
        let replay = tokio::spawn(async move {
            let r = s2.process(i2).await;
            (r.is_ok(), accepted_lines(&b2))
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.notify_one();
        assert!(first.await.unwrap().is_err(), "the first write failed");
        let (ok, lines_when_acknowledged) = replay.await.unwrap();
        assert!(ok);
        assert_eq!(lines_when_acknowledged, 1, "the replay was acknowledged only once its record was durable");
    }

    /// Issue 14, defect 5: without a dataset store the sink's dedupe was only in memory, so a restarted sink
    /// wrote every replayed record again into every export. It reads what the folder holds first (after
    /// truncating a line a crash cut short).
    #[tokio::test]
    async fn a_restarted_sink_without_a_store_writes_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let output = OutputConfig { dir: Some(dir.path().to_path_buf()), linger_ms: 1, ..OutputConfig::default() };
        let cfg = SinkConfig::default();
        let component = SinkComponent { sink: &cfg, output: &output };
        let deps = Deps::local(distillery_core::Metrics::isolated());
        let rej = Record::Rejected(Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, "d9", "2/5"));
        let sink = component.build(&deps).await.unwrap();
        sink.process(Input::record(Topic::Accepted, accepted("a1"))).await.unwrap();
        sink.process(Input::record(Topic::Rejected, rej.clone())).await.unwrap();
        drop(sink);
        // The crash also cut a line short.
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join(ACCEPTED)).unwrap();
        f.write_all(b"{\"id\": \"a2\", \"ki").unwrap();
        let sink = component.build(&deps).await.unwrap();
        for (t, r) in [(Topic::Accepted, accepted("a1")), (Topic::Rejected, rej), (Topic::Accepted, accepted("a2"))] {
            sink.process(Input::record(t, r)).await.unwrap();
        }
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let ids: Vec<String> = read(ACCEPTED)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("every line is whole")["id"]
                    .as_str()
                    .unwrap()
                    .into()
            })
            .collect();
        assert_eq!(ids, vec!["a1", "a2"]);
        assert_eq!(read(REJECTED).lines().count(), 1);
        assert_eq!(read("alpaca.jsonl").lines().count(), 2, "one export line per accepted record");
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
            Sink::new(out, SinkConfig::default(), None).with_dataset(store.clone(), Some(dir.path())).await.unwrap()
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

    #[tokio::test]
    async fn a_sink_killed_between_its_store_write_and_its_lines_appends_them_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn DatasetStore> = Arc::new(
            distillery_dataset::SqlStore::open(&distillery_dataset::sql::sqlite_url(&dir.path().join("ds.db")))
                .await
                .unwrap(),
        );
        let accepted = |id: &str| {
            Record::Accepted(Accepted {
                id: id.into(),
                judged: fixtures::judged(),
                nearest_similarity: None,
                accepted_at_ms: 1,
            })
        };
        let start = || async {
            let out = DatasetOut::start(FolderBackend::new(dir.path()).unwrap(), 100, Duration::from_millis(1));
            Sink::new(out, SinkConfig::default(), None).with_dataset(store.clone(), Some(dir.path())).await.unwrap()
        };
        let sink = start().await;
        sink.process(Input::record(Topic::Accepted, accepted("a1"))).await.unwrap();
        drop(sink);
        // The store write of a2 happened, its lines did not (the process died in between); its offset was
        // committed by no one, but the restarted sink takes the store's records as written.
        store.write(vec![accepted("a2")]).await.unwrap();
        let sink = start().await;
        sink.process(Input::record(Topic::Accepted, accepted("a2"))).await.unwrap();
        drop(sink);
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
        let ids: Vec<String> = read(ACCEPTED)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, vec!["a1", "a2"], "a2's line appended once on restart, not again for its redelivery");
        assert_eq!(read("alpaca.jsonl").lines().count(), 2, "and its export lines");
        // A third start finds nothing lacking.
        drop(start().await);
        assert_eq!(read(ACCEPTED).lines().count(), 2);
    }
}
