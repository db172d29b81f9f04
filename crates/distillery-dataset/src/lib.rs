//! The durable dataset a user owns: documents and their versions, chunks, contexts, drafts, verdicts,
//! accepted and rejected records, dead letters and DPO pairs, with their relations (document → chunk →
//! draft → verdict → record), in SQLite (embedded, the default of `distillery run`: `<out>/distillery.db`)
//! or PostgreSQL (`postgres://...`).
//!
//! **What it is for.** The JSONL files are exports; the store is what a run knows it has done. The sink
//! writes every record it receives to it (and on start re-appends any line the files lack and never appends
//! a line twice); a resumed `distillery run` asks it what each chunk already produced ([`ChunkState`]) and
//! calls the LLM only for what has no outcome yet ([`resume::Resumable`]); `distillery status` and
//! `summary.json` count the whole dataset from it.
//!
//! **Why sqlx, and how.** sqlx is async on tokio (what every stage runs on), speaks both databases natively
//! (PostgreSQL's wire protocol and a bundled SQLite, so nothing is needed on the machine), and its `Any`
//! driver runs *the same query text* on either backend: one schema (`migrations/`, only TEXT, BIGINT,
//! DOUBLE PRECISION and BYTEA columns, which both read alike) and one set of queries, so the embedded
//! default and a shared PostgreSQL cannot drift apart. Queries are built at run time with `sqlx::query` and
//! binds (no `query!` macros): nothing needs a database at compile time, so the workspace builds offline and
//! without `DATABASE_URL` or a `.sqlx` cache. Migrations are embedded with `sqlx::migrate!` and run when a
//! store opens. Diesel (synchronous, one backend per build) and rusqlite/tokio-postgres (two code paths) did
//! not fit; TLS for a managed PostgreSQL is rustls (aws-lc, as the rest of the workspace), no OpenSSL.
//!
//! **Writes** are idempotent by record id (`INSERT ... ON CONFLICT DO NOTHING`; an upsert where a fuller
//! row replaces a partial one, and for run usage) and group-committed: one writer task gathers what arrives
//! together and writes it in one transaction, so a sink with hundreds of inputs in flight costs one commit
//! per batch, and SQLite never sees two writers.
//!
//! The crate without its default `sql` feature is the [`DatasetStore`] trait and its types only: stages
//! reach the store through `Deps` without linking a database driver.

use std::collections::BTreeMap;

use async_trait::async_trait;
use distillery_core::Record;
use serde::{Deserialize, Serialize};

pub mod resume;
#[cfg(feature = "sql")]
pub mod sql;
pub mod versions;

pub use versions::{DatasetVersion, DecidedBy, Overrides, Review, ReviewAction};

#[cfg(feature = "sql")]
pub use sql::SqlStore;

/// A service's `[store]` section: where the durable dataset lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The dataset store: `postgres://user:password@host/db` (or `sqlite:PATH`), migrated on start. Empty:
    /// none. A secret (the URL may carry a password): never logged, only its host and database are.
    pub url: distillery_core::config::Secret,
}

impl StoreConfig {
    /// The URL, when one is set.
    pub fn url(&self) -> Option<&str> {
        (!self.url.is_empty()).then(|| self.url.expose())
    }

    /// Checks the URL's scheme (`section.url: ...` on error).
    #[cfg(feature = "sql")]
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if let Some(url) = self.url()
            && let Err(e) = sql::check_url(url)
        {
            errors.push(format!("{section}.url: {e}"));
        }
    }

    /// The store, opened and migrated, when a URL is set (its host and database logged, never the URL).
    #[cfg(feature = "sql")]
    pub async fn open(&self) -> Result<Option<SqlStore>, DatasetError> {
        let Some(url) = self.url() else { return Ok(None) };
        let store = SqlStore::open(url).await?;
        tracing::info!(store = %store.describe(), "dataset store open");
        Ok(Some(store))
    }
}

/// What exports put in place of the newer document's id for a deleted document.
pub use distillery_core::DELETED;

/// The file name of the embedded store in a dataset folder.
pub const STORE_FILE: &str = "distillery.db";

/// A store failure (retryable for the stage that hit it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("dataset store: {0}")]
pub struct DatasetError(pub String);

/// What the store knows of a chunk's generation.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkState {
    /// Never generated (or generation was never recorded): generate it.
    New,
    /// Every example of the chunk has a final outcome (accepted, rejected or dead-lettered), or the chunk
    /// itself failed: nothing to do.
    Done,
    /// Generated, but some examples have no outcome yet: the latest recorded record of each of them, to
    /// publish again in place of a new generation (a draft to judge, a regeneration request, a verdict on
    /// its way to dedup, a rejection on its way to the sink).
    Partial(Vec<Record>),
}

/// LLM usage of one document in one run (the run's ledger).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub generator_prompt: u64,
    pub generator_completion: u64,
    pub judge_prompt: u64,
    pub judge_completion: u64,
}

impl Usage {
    pub fn prompt(&self) -> u64 {
        self.generator_prompt + self.judge_prompt
    }
    pub fn completion(&self) -> u64 {
        self.generator_completion + self.judge_completion
    }
}

/// One run's LLM figures so far, flushed to the store as the run goes (an upsert by run id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUsage {
    pub run_id: String,
    pub started_at_ms: i64,
    pub finished: bool,
    pub llm_calls: u64,
    /// Per document id.
    pub documents: BTreeMap<String, Usage>,
}

/// Where one document is, from the store: the `distillery status` line and the `summary.json` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentProgress {
    /// The source object's key (the file's path in the input).
    pub name: String,
    pub document_id: String,
    /// Chunks extraction made (0 for a document rejected before chunking).
    pub chunks: u64,
    /// Chunks whose every example has a final outcome.
    pub chunks_done: u64,
    /// Chunks whose generation failed (rejected or dead-lettered as a whole).
    pub chunks_failed: u64,
    /// Chunks not generated yet or with examples still open.
    pub chunks_pending: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// The source object is gone (deleted, or missing from the input on a rerun): its records are never
    /// exported.
    #[serde(default)]
    pub deleted: bool,
    /// LLM tokens spent on the document over every run (failed and retried calls included).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub tokens: u64,
}

/// The whole dataset's counts, from the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub documents: u64,
    pub chunks: u64,
    pub chunks_done: u64,
    pub chunks_failed: u64,
    pub chunks_pending: u64,
    /// Drafts generate published for judging (regenerations included).
    pub drafts: u64,
    /// Drafts the critic sent back for a regeneration.
    pub regenerated: u64,
    /// First drafts sent back for a repair by a pre-judge check.
    pub repaired: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub dead_letters: u64,
    pub dpo_pairs: u64,
    /// Verdicts recorded, and their mean overall score and share that did not pass.
    pub verdicts: u64,
    pub mean_score: Option<f64>,
    pub rejection_rate: Option<f64>,
    /// LLM calls and tokens over every run that used the store.
    pub runs: u64,
    pub llm_calls: u64,
    pub usage: Usage,
}

/// The kinds of record whose lines the sink writes, for [`DatasetStore::outcomes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Document,
    Accepted,
    Rejected,
    DeadLetter,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 4] =
        [OutcomeKind::Document, OutcomeKind::Accepted, OutcomeKind::Rejected, OutcomeKind::DeadLetter];
}

/// The durable dataset. Every method is safe to call concurrently; writes are idempotent by record id.
#[async_trait]
pub trait DatasetStore: Send + Sync + std::fmt::Debug {
    /// A short description for logs (`sqlite:/path/distillery.db`, `postgres://host/db`; no password).
    fn describe(&self) -> String;

    /// Writes records the sink received (documents, accepted, rejected, dead letters; drafts, verdicts
    /// and chunks they carry too). Resolves once they are durable. A record already stored is left as it
    /// is; a second rejection of the same subject is dropped (the first outcome stands).
    async fn write(&self, records: Vec<Record>) -> Result<(), DatasetError>;

    /// Records what `stage` produced from `input` (a chunk, a draft, a regeneration request), before it is
    /// published: the outputs, the drafts and verdicts among them, and for a chunk the chunk and its
    /// context. Resolves once durable.
    async fn record_step(&self, stage: &str, input: Record, outputs: Vec<Record>) -> Result<(), DatasetError>;

    /// What `stage` produced from the record `input_id`, if that was recorded.
    async fn recorded_outputs(&self, stage: &str, input_id: &str) -> Result<Option<Vec<Record>>, DatasetError>;

    /// What `stage` (generate) already did with a chunk, and what is left of it.
    async fn chunk_state(&self, stage: &str, chunk_id: &str) -> Result<ChunkState, DatasetError>;

    /// Stored records of a kind, in id order after `after`, at most `limit` (pages for the sink's check of
    /// its files on start).
    async fn outcomes(&self, kind: OutcomeKind, after: Option<&str>, limit: usize)
    -> Result<Vec<Record>, DatasetError>;

    /// Upserts a run's LLM figures.
    async fn record_usage(&self, run: &RunUsage) -> Result<(), DatasetError>;

    /// The whole dataset's counts.
    async fn totals(&self) -> Result<Totals, DatasetError>;

    /// Every document with its progress, by name.
    async fn documents(&self) -> Result<Vec<DocumentProgress>, DatasetError>;

    /// Records a dataset version and the outcome (an accepted or rejected record) it gives each draft it
    /// re-decided, with whether that draft was accepted before.
    async fn record_version(
        &self,
        _version: &DatasetVersion,
        _decisions: Vec<(Record, bool)>,
    ) -> Result<(), DatasetError> {
        Err(DatasetError("this store keeps no dataset versions".into()))
    }

    /// The versions after the run's own, oldest first.
    async fn versions(&self) -> Result<Vec<DatasetVersion>, DatasetError> {
        Ok(Vec::new())
    }

    /// What stands above the run's outcomes: the latest version's decisions and the reviews.
    async fn overrides(&self) -> Result<Overrides, DatasetError> {
        Ok(Overrides::default())
    }

    /// What arrived at or after `after_ms` (drafts as generation recorded them, accepted and rejected records),
    /// oldest first, at most `limit`, each with its time: the live view's feed.
    async fn arrivals(&self, _after_ms: i64, _limit: usize) -> Result<Vec<(i64, Record)>, DatasetError> {
        Ok(Vec::new())
    }

    /// Marks the documents stored under `prefix_uri` (a source URI prefix: the input of a run) whose source
    /// URI is not in `present` as deleted, and those whose URI is present as not deleted; gives the ids newly
    /// marked deleted.
    async fn mark_missing(
        &self,
        _prefix_uri: &str,
        _present: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, DatasetError> {
        Ok(Vec::new())
    }

    /// The ids of the documents marked deleted.
    async fn deleted_documents(&self) -> Result<std::collections::HashSet<String>, DatasetError> {
        Ok(Default::default())
    }

    /// Every (source URI, document id) version stored, oldest first: what a rerun's version registry starts
    /// from, so an edited file's new document supersedes the one an earlier run stored.
    async fn document_versions(&self) -> Result<Vec<(String, String)>, DatasetError> {
        Ok(Vec::new())
    }

    /// Stores a person's review of a draft (replacing an earlier one).
    async fn review(&self, _review: &Review) -> Result<(), DatasetError> {
        Err(DatasetError("this store keeps no reviews".into()))
    }
}

/// The subject draft of a record, if it is about one (a draft, its verdict, its regeneration request, its
/// acceptance or rejection).
pub fn subject_draft(record: &Record) -> Option<&distillery_core::Draft> {
    match record {
        Record::Draft(d) => Some(d),
        Record::Judged(j) => Some(&j.draft),
        Record::Regenerate(g) => Some(&g.draft),
        Record::Accepted(a) => Some(&a.judged.draft),
        Record::Rejected(r) => r.draft.as_ref(),
        Record::Document(_) | Record::Chunk(_) | Record::DeadLetter(_) => None,
    }
}

/// The chunk a record derives from, if any.
pub fn chunk_of(record: &Record) -> Option<&str> {
    match record {
        Record::Chunk(c) => Some(&c.id),
        Record::Rejected(r) => r.chunk_id.as_deref().or(r.draft.as_ref().map(|d| d.chunk_id.as_str())),
        other => subject_draft(other).map(|d| d.chunk_id.as_str()),
    }
}
