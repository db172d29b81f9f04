//! The store on SQLite or PostgreSQL through sqlx's `Any` driver: the same query text on both (`$n`
//! placeholders, which SQLite reads as numbered parameters), migrations embedded from `migrations/` and run
//! on open, writes group-committed by one writer task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use async_trait::async_trait;
use distillery_core::{
    Accepted, Chunk, Codec, DeadLetter, Document, Draft, Judged, Record, RegenerateCause, Rejected, Scores,
    SubjectKind, Topic, now_ms,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::versions::{DatasetVersion, DecidedBy, Overrides, Review, ReviewAction};
use crate::{
    ChunkState, DatasetError, DatasetStore, DocumentProgress, OutcomeKind, RunUsage, Totals, Usage, chunk_of,
    subject_draft,
};

static DRIVERS: Once = Once::new();

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Most jobs written in one transaction.
const BATCH_JOBS: usize = 512;
/// Longest wait to fill a batch.
const LINGER: Duration = Duration::from_millis(5);

fn err(e: impl std::fmt::Display) -> DatasetError {
    DatasetError(e.to_string())
}

/// The `sqlite:` URL of a database file (created if missing).
pub fn sqlite_url(path: &Path) -> String {
    let mut s = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => s.push_str(&format!("%{:02X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("?mode=rwc");
    s
}

/// A store URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Checks a store URL's form (`sqlite:...` or `postgres://...`/`postgresql://...`).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(())
    } else {
        Err(format!("{}: a store is sqlite:PATH or postgres://USER@HOST/DB", redact(url)))
    }
}

enum Job {
    Records(Vec<Record>),
    Step { stage: String, input: Record, outputs: Vec<Record> },
    Usage(RunUsage),
}

type Request = (Job, oneshot::Sender<Result<(), DatasetError>>);

/// The dataset in SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    tx: mpsc::Sender<Request>,
    url: String,
}

impl SqlStore {
    /// Opens (creating an SQLite file if missing) and migrates the store at `url`: `sqlite:PATH`,
    /// `postgres://...`, or a plain path (an SQLite file).
    pub async fn open(url: &str) -> Result<SqlStore, DatasetError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let url = if url.contains("://") || url.starts_with("sqlite:") {
            url.to_string()
        } else {
            sqlite_url(Path::new(url))
        };
        check_url(&url).map_err(DatasetError)?;
        let sqlite = url.starts_with("sqlite:");
        // No prepared-statement cache on PostgreSQL: through the `Any` driver a NULL is bound with a type of
        // its own, so a statement cached after a NULL (a first accepted record without a neighbour) refuses a
        // later value of the column's real type ("incorrect binary data format in bind parameter 9").
        // Unnamed statements take each execution's own parameter types.
        let url = if !sqlite && !url.contains("statement-cache-capacity") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}statement-cache-capacity=0")
        } else {
            url
        };
        if sqlite {
            if let Some(dir) = sqlite_path(&url).and_then(|p| p.parent().map(Path::to_path_buf))
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
            }
            // Write-ahead logging: readers (a resumed generate asking about its chunks) never wait for the
            // writer, and a commit is one append. Persistent in the file, so set once before the pool opens.
            use sqlx::Connection;
            let mut conn =
                sqlx::AnyConnection::connect(&url).await.map_err(|e| err(format!("{}: {e}", redact(&url))))?;
            sqlx::query("PRAGMA journal_mode = WAL").execute(&mut conn).await.map_err(err)?;
            conn.close().await.map_err(err)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .map_err(|e| err(format!("{}: {e}", redact(&url))))?;
        MIGRATOR.run(&pool).await.map_err(|e| err(format!("migrating {}: {e}", redact(&url))))?;
        let (tx, rx) = mpsc::channel::<Request>(4096);
        tokio::spawn(writer(pool.clone(), rx));
        Ok(SqlStore { pool, tx, url })
    }

    /// The pool, for queries of your own (tests, tools).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn submit(&self, job: Job) -> Result<(), DatasetError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send((job, reply)).await.map_err(|_| err("the store's writer stopped"))?;
        wait.await.map_err(|_| err("the store's writer stopped"))?
    }

    /// Rows of a table (tests and tools).
    pub async fn count(&self, table: Table) -> Result<u64, DatasetError> {
        let row = sqlx::query(table.count_query()).fetch_one(&self.pool).await.map_err(err)?;
        Ok(row.try_get::<i64, _>(0).map_err(err)? as u64)
    }
}

/// The tables, for [`SqlStore::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Documents,
    DocumentVersions,
    Contexts,
    Chunks,
    Drafts,
    Verdicts,
    Accepted,
    Rejected,
    DeadLetters,
    DpoPairs,
    Processed,
    Steps,
    Runs,
    Usage,
}

impl Table {
    fn count_query(self) -> &'static str {
        match self {
            Table::Documents => "SELECT COUNT(*) FROM documents",
            Table::DocumentVersions => "SELECT COUNT(*) FROM document_versions",
            Table::Contexts => "SELECT COUNT(*) FROM contexts",
            Table::Chunks => "SELECT COUNT(*) FROM chunks",
            Table::Drafts => "SELECT COUNT(*) FROM drafts",
            Table::Verdicts => "SELECT COUNT(*) FROM verdicts",
            Table::Accepted => "SELECT COUNT(*) FROM accepted",
            Table::Rejected => "SELECT COUNT(*) FROM rejected",
            Table::DeadLetters => "SELECT COUNT(*) FROM dead_letters",
            Table::DpoPairs => "SELECT COUNT(*) FROM dpo_pairs",
            Table::Processed => "SELECT COUNT(*) FROM processed",
            Table::Steps => "SELECT COUNT(*) FROM steps",
            Table::Runs => "SELECT COUNT(*) FROM runs",
            Table::Usage => "SELECT COUNT(*) FROM usage",
        }
    }
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let mut out = Vec::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Some(std::path::PathBuf::from(String::from_utf8_lossy(&out).into_owned()))
}

/// The writer: gathers jobs that arrive together and commits them in one transaction; if the batch fails,
/// each job is tried alone so that one bad record fails only its own caller.
async fn writer(pool: AnyPool, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH_JOBS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        let jobs: Vec<&Job> = batch.iter().map(|(j, _)| j).collect();
        match commit(&pool, &jobs).await {
            Ok(()) => {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                tracing::error!(error = %e, "dataset store write failed");
                let (_, reply) = batch.pop().expect("one job");
                let _ = reply.send(Err(e));
            }
            Err(_) => {
                for (job, reply) in batch {
                    let res = commit(&pool, &[&job]).await;
                    if let Err(e) = &res {
                        tracing::error!(error = %e, "dataset store write failed");
                    }
                    let _ = reply.send(res);
                }
            }
        }
    }
}

async fn commit(pool: &AnyPool, jobs: &[&Job]) -> Result<(), DatasetError> {
    let mut tx = pool.begin().await.map_err(err)?;
    for job in jobs {
        match job {
            Job::Records(records) => {
                for r in records {
                    write_record(&mut tx, r).await?;
                }
            }
            Job::Step { stage, input, outputs } => write_step(&mut tx, stage, input, outputs).await?,
            Job::Usage(run) => write_usage(&mut tx, run).await?,
        }
    }
    tx.commit().await.map_err(err)
}

type Tx = Transaction<'static, Any>;

fn encode(record: &Record) -> Result<Vec<u8>, DatasetError> {
    Codec::global().encode(record).map_err(err)
}

fn decode(bytes: &[u8]) -> Result<Record, DatasetError> {
    Codec::global().decode(bytes, None).map_err(err)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn subject_kind(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::Document => "document",
        SubjectKind::Chunk => "chunk",
        SubjectKind::Draft => "draft",
        SubjectKind::Object => "object",
    }
}

/// The first attempt a draft descends from: stored with the draft, else that of the draft it replaced.
async fn root_of(tx: &mut Tx, draft_id: &str) -> Result<Option<String>, DatasetError> {
    let row = sqlx::query("SELECT root_id FROM drafts WHERE id = $1")
        .bind(draft_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(err)?;
    row.map(|r| r.try_get::<String, _>(0)).transpose().map_err(err)
}

/// Stores a draft (once) and gives its root.
async fn put_draft(tx: &mut Tx, d: &Draft) -> Result<String, DatasetError> {
    if let Some(root) = root_of(tx, &d.id).await? {
        return Ok(root);
    }
    let previous = d.previous.as_ref().map(|p| p.draft_id.clone());
    let root = match &previous {
        Some(p) => root_of(tx, p).await?.unwrap_or_else(|| p.clone()),
        None => d.id.clone(),
    };
    put_context(tx, &d.context_id, &d.document_id, &[], &d.context_text).await?;
    put_chunk_ref(tx, &d.chunk_id, &d.document_id, &d.context_id).await?;
    sqlx::query(
        "INSERT INTO drafts (id, root_id, previous_id, document_id, chunk_id, context_id, kind, attempt, question, \
         answer, generator_model, prompt_tokens, completion_tokens, created_at_ms, record) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING",
    )
    .bind(&d.id)
    .bind(&root)
    .bind(previous)
    .bind(&d.document_id)
    .bind(&d.chunk_id)
    .bind(&d.context_id)
    .bind(d.kind.as_str())
    .bind(d.attempt as i64)
    .bind(d.question())
    .bind(d.answer())
    .bind(&d.generator.model)
    .bind(d.generator.prompt_tokens as i64)
    .bind(d.generator.completion_tokens as i64)
    .bind(d.created_at_ms)
    .bind(encode(&Record::Draft(d.clone()))?)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(root)
}

async fn put_context(
    tx: &mut Tx,
    id: &str,
    document_id: &str,
    chunk_ids: &[String],
    text: &str,
) -> Result<(), DatasetError> {
    sqlx::query(
        "INSERT INTO contexts (id, document_id, chunk_ids, body) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE \
         SET chunk_ids = excluded.chunk_ids WHERE contexts.chunk_ids = '[]'",
    )
    .bind(id)
    .bind(document_id)
    .bind(json(&chunk_ids))
    .bind(text)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

/// A chunk known only by id (from a draft or a rejection): a row the chunk's own record completes.
async fn put_chunk_ref(tx: &mut Tx, id: &str, document_id: &str, context_id: &str) -> Result<(), DatasetError> {
    sqlx::query("INSERT INTO chunks (id, document_id, context_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(document_id)
        .bind(context_id)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    Ok(())
}

async fn put_chunk(tx: &mut Tx, c: &Chunk) -> Result<(), DatasetError> {
    put_context(tx, &c.context_id, &c.document_id, &c.context_chunk_ids, &c.context_text).await?;
    // An upsert: a row made from a draft's reference gets the chunk's own fields.
    sqlx::query(
        "INSERT INTO chunks (id, document_id, context_id, ordinal, total, heading_path, token_count, page_start, \
         page_end, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
         document_id = excluded.document_id, context_id = excluded.context_id, ordinal = excluded.ordinal, total = excluded.total, heading_path = excluded.heading_path, \
         token_count = excluded.token_count, page_start = excluded.page_start, page_end = excluded.page_end, \
         body = excluded.body",
    )
    .bind(&c.id)
    .bind(&c.document_id)
    .bind(&c.context_id)
    .bind(c.ordinal as i64)
    .bind(c.total as i64)
    .bind(json(&c.heading_path))
    .bind(c.token_count as i64)
    .bind(c.page_start.map(i64::from))
    .bind(c.page_end.map(i64::from))
    .bind(&c.text)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn put_verdict(
    tx: &mut Tx,
    id: &str,
    draft: &Draft,
    passed: bool,
    scores: &Scores,
    rationale: &str,
    judge: Option<&distillery_core::ModelCall>,
    at_ms: i64,
) -> Result<(), DatasetError> {
    sqlx::query(
        "INSERT INTO verdicts (id, draft_id, document_id, passed, overall, faithfulness, correctness, clarity, \
         usefulness, rationale, judge_model, prompt_tokens, completion_tokens, judged_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&draft.id)
    .bind(&draft.document_id)
    .bind(passed as i64)
    .bind(scores.overall as i64)
    .bind(scores.faithfulness as i64)
    .bind(scores.correctness as i64)
    .bind(scores.clarity as i64)
    .bind(scores.usefulness as i64)
    .bind(rationale)
    .bind(judge.map(|j| j.model.clone()))
    .bind(judge.map(|j| j.prompt_tokens as i64))
    .bind(judge.map(|j| j.completion_tokens as i64))
    .bind(at_ms)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

/// The drafts and verdicts a record carries; gives the root of the draft it is about.
async fn put_carried(tx: &mut Tx, record: &Record) -> Result<Option<String>, DatasetError> {
    let Some(draft) = subject_draft(record) else { return Ok(None) };
    let root = put_draft(tx, draft).await?;
    match record {
        Record::Judged(j) => put_judged(tx, j).await?,
        Record::Accepted(a) => put_judged(tx, &a.judged).await?,
        Record::Regenerate(g) => {
            if let RegenerateCause::Critic(v) = &g.cause {
                put_verdict(tx, &v.judged_id, draft, false, &v.scores, &v.rationale, Some(&v.judge), v.judged_at_ms)
                    .await?;
            }
        }
        // The critic's last word on a draft: a verdict whose call is not on the record.
        Record::Rejected(r) if r.stage == distillery_core::StageName::Judge.as_str() => {
            if let Some(scores) = &r.scores {
                let rationale = r.rationale.as_deref().unwrap_or_default();
                put_verdict(tx, &r.id, draft, false, scores, rationale, None, r.rejected_at_ms).await?;
            }
        }
        _ => {}
    }
    Ok(Some(root))
}

async fn put_judged(tx: &mut Tx, j: &Judged) -> Result<(), DatasetError> {
    put_verdict(tx, &j.id, &j.draft, j.passed, &j.scores, &j.rationale, Some(&j.judge), j.judged_at_ms).await
}

async fn write_record(tx: &mut Tx, record: &Record) -> Result<(), DatasetError> {
    let root = put_carried(tx, record).await?;
    match record {
        Record::Document(d) => put_document(tx, d).await,
        Record::Chunk(c) => put_chunk(tx, c).await,
        Record::Accepted(a) => put_accepted(tx, a, root.unwrap_or_else(|| a.judged.draft.id.clone())).await,
        Record::Rejected(r) => put_rejected(tx, r, root).await,
        Record::DeadLetter(d) => put_dead_letter(tx, d).await,
        Record::Draft(_) | Record::Judged(_) | Record::Regenerate(_) => Ok(()),
    }
}

async fn put_document(tx: &mut Tx, d: &Document) -> Result<(), DatasetError> {
    if d.status == distillery_core::DocumentStatus::Deleted {
        // Its object was deleted (S3 ObjectRemoved): marked, never exported; its rows stay for the record.
        sqlx::query(
            "INSERT INTO deleted_documents (document_id, source_uri, deleted_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&d.id)
        .bind(d.source.uri())
        .bind(d.discovered_at_ms)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO documents (id, name, source_uri, media_type, size_bytes, pages, chunks, pii_counts, \
         discovered_at_ms, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET \
         pages = excluded.pages, chunks = excluded.chunks, pii_counts = excluded.pii_counts, record = excluded.record \
         WHERE excluded.chunks IS NOT NULL AND documents.chunks IS NULL",
    )
    .bind(&d.id)
    .bind(&d.source.key)
    .bind(d.source.uri())
    .bind(&d.media_type)
    .bind(d.size)
    .bind(d.pages.map(i64::from))
    .bind(d.chunks.map(i64::from))
    .bind(json(&d.pii_counts))
    .bind(d.discovered_at_ms)
    .bind(encode(&Record::Document(d.clone()))?)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    // The chunks it lists are its own now: an edit's unchanged chunks (content-based ids) move to the new
    // version, with their records and progress.
    for chunk in &d.chunk_ids {
        sqlx::query("UPDATE chunks SET document_id = $1 WHERE id = $2")
            .bind(&d.id)
            .bind(chunk)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
    }
    sqlx::query(
        "INSERT INTO document_versions (source_uri, document_id, supersedes, discovered_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(d.source.uri())
    .bind(&d.id)
    .bind(d.supersedes.clone())
    .bind(d.discovered_at_ms)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

async fn put_accepted(tx: &mut Tx, a: &Accepted, root: String) -> Result<(), DatasetError> {
    let d = &a.judged.draft;
    sqlx::query(
        "INSERT INTO accepted (id, draft_id, root_id, verdict_id, document_id, chunk_id, kind, overall, \
         nearest_similarity, accepted_at_ms, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&a.id)
    .bind(&d.id)
    .bind(root)
    .bind(&a.judged.id)
    .bind(&d.document_id)
    .bind(&d.chunk_id)
    .bind(d.kind.as_str())
    .bind(a.judged.scores.overall as i64)
    .bind(a.nearest_similarity.map(f64::from))
    .bind(a.accepted_at_ms)
    .bind(encode(&Record::Accepted(a.clone()))?)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    if let Some(prev) = &d.previous {
        sqlx::query(
            "INSERT INTO dpo_pairs (accepted_id, chosen_draft_id, rejected_draft_id, rejected_score, rejected_because) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&a.id)
        .bind(&d.id)
        .bind(&prev.draft_id)
        .bind((prev.scores.overall > 0).then_some(prev.scores.overall as i64))
        .bind(&prev.rationale)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

async fn put_rejected(tx: &mut Tx, r: &Rejected, root: Option<String>) -> Result<(), DatasetError> {
    if let (Some(chunk), Some(doc), None) = (&r.chunk_id, &r.document_id, &r.draft) {
        put_chunk_ref(tx, chunk, doc, "").await?;
    }
    // A rejection about a draft without its copy still belongs to an example.
    let root = match (root, r.subject_kind) {
        (Some(root), _) => Some(root),
        (None, SubjectKind::Draft) => Some(root_of(tx, &r.subject_id).await?.unwrap_or_else(|| r.subject_id.clone())),
        (None, _) => None,
    };
    sqlx::query(
        "INSERT INTO rejected (id, subject_kind, subject_id, root_id, reason, stage, detail, name, document_id, \
         chunk_id, rejected_at_ms, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&r.id)
    .bind(subject_kind(r.subject_kind))
    .bind(&r.subject_id)
    .bind(root)
    .bind(r.reason.as_str())
    .bind(&r.stage)
    .bind(&r.detail)
    .bind(r.source.as_ref().map(|s| s.key.clone()))
    .bind(r.document_id.clone())
    .bind(r.chunk_id.clone().or(r.draft.as_ref().map(|d| d.chunk_id.clone())))
    .bind(r.rejected_at_ms)
    .bind(encode(&Record::Rejected(r.clone()))?)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

async fn put_dead_letter(tx: &mut Tx, d: &DeadLetter) -> Result<(), DatasetError> {
    // What the dead-lettered input was about, when it is a pipeline record.
    let input = Topic::ALL
        .into_iter()
        .find(|t| t.base_name() == d.topic)
        .and_then(|t| t.record_kind())
        .and_then(|kind| Codec::global().decode(&d.payload, Some(kind)).ok());
    let mut kind: Option<&str> = None;
    let (mut subject, mut root, mut document, mut chunk): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (None, None, None, None);
    if let Some(input) = &input {
        let (k, s) = input.subject();
        kind = Some(subject_kind(k));
        subject = Some(s.to_string());
        document = input.document_id().map(str::to_string);
        chunk = chunk_of(input).map(str::to_string);
        root = put_carried(tx, input).await?;
        if let (Record::Chunk(c), None) = (input, &root) {
            put_chunk(tx, c).await?;
        }
    }
    sqlx::query(
        "INSERT INTO dead_letters (id, stage, topic, error_kind, error, subject_kind, subject_id, root_id, \
         document_id, chunk_id, failed_at_ms, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&d.id)
    .bind(&d.stage)
    .bind(&d.topic)
    .bind(&d.error_kind)
    .bind(&d.error)
    .bind(kind)
    .bind(subject)
    .bind(root)
    .bind(document)
    .bind(chunk)
    .bind(d.failed_at_ms)
    .bind(encode(&Record::DeadLetter(d.clone()))?)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

fn kind_name(record: &Record) -> &'static str {
    match record {
        Record::Document(_) => "document",
        Record::Chunk(_) => "chunk",
        Record::Draft(_) => "draft",
        Record::Judged(_) => "judged",
        Record::Regenerate(_) => "regenerate",
        Record::Accepted(_) => "accepted",
        Record::Rejected(_) => "rejected",
        Record::DeadLetter(_) => "dead_letter",
    }
}

async fn write_step(tx: &mut Tx, stage: &str, input: &Record, outputs: &[Record]) -> Result<(), DatasetError> {
    let (chunk, step, input_root) = match input {
        Record::Chunk(c) => {
            put_chunk(tx, c).await?;
            (c.id.clone(), 0i64, None)
        }
        other => {
            let row = sqlx::query("SELECT chunk_id, step, root_id FROM steps WHERE record_id = $1 ORDER BY step DESC")
                .bind(other.id())
                .fetch_optional(&mut **tx)
                .await
                .map_err(err)?;
            match row {
                Some(r) => (
                    r.try_get::<String, _>(0).map_err(err)?,
                    r.try_get::<i64, _>(1).map_err(err)?,
                    r.try_get::<Option<String>, _>(2).map_err(err)?,
                ),
                // Not recorded as an output of an earlier step (a record from elsewhere): its own lineage.
                None => {
                    let root = put_carried(tx, other).await?;
                    (chunk_of(other).unwrap_or_default().to_string(), 0, root)
                }
            }
        }
    };
    let document = input.document_id().unwrap_or_default().to_string();
    for (i, out) in outputs.iter().enumerate() {
        let root = put_carried(tx, out).await?.or_else(|| input_root.clone());
        sqlx::query(
            "INSERT INTO steps (stage, input_id, position, chunk_id, root_id, step, kind, record_id, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(stage)
        .bind(input.id())
        .bind(i as i64)
        .bind(&chunk)
        .bind(root)
        .bind(step + 1)
        .bind(kind_name(out))
        .bind(out.id())
        .bind(encode(out)?)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    sqlx::query(
        "INSERT INTO processed (stage, input_id, chunk_id, document_id, outputs, processed_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(stage)
    .bind(input.id())
    .bind(&chunk)
    .bind(document)
    .bind(outputs.len() as i64)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

async fn write_usage(tx: &mut Tx, run: &RunUsage) -> Result<(), DatasetError> {
    sqlx::query(
        "INSERT INTO runs (id, started_at_ms, updated_at_ms, finished, llm_calls) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET updated_at_ms = excluded.updated_at_ms, finished = excluded.finished, \
         llm_calls = excluded.llm_calls",
    )
    .bind(&run.run_id)
    .bind(run.started_at_ms)
    .bind(now_ms())
    .bind(run.finished as i64)
    .bind(run.llm_calls as i64)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    for (doc, u) in &run.documents {
        sqlx::query(
            "INSERT INTO usage (run_id, document_id, generator_prompt, generator_completion, judge_prompt, \
             judge_completion) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, document_id) DO UPDATE SET \
             generator_prompt = excluded.generator_prompt, generator_completion = excluded.generator_completion, \
             judge_prompt = excluded.judge_prompt, judge_completion = excluded.judge_completion",
        )
        .bind(&run.run_id)
        .bind(doc)
        .bind(u.generator_prompt as i64)
        .bind(u.generator_completion as i64)
        .bind(u.judge_prompt as i64)
        .bind(u.judge_completion as i64)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

fn int(row: &AnyRow, i: usize) -> Result<u64, DatasetError> {
    Ok(row.try_get::<Option<i64>, _>(i).map_err(err)?.unwrap_or(0).max(0) as u64)
}

/// One chunk's state for counting: failed, generated (recorded), open examples, outcomes.
struct ChunkRow {
    document_id: String,
    failed: bool,
    generated: bool,
    open: u64,
    outcomes: u64,
}

impl ChunkRow {
    fn done(&self) -> bool {
        !self.failed && if self.generated { self.open == 0 } else { self.outcomes > 0 }
    }
}

const CHUNK_ROWS: &str = "SELECT c.document_id, \
      (SELECT COUNT(*) FROM rejected r WHERE r.subject_id = c.id) \
        + (SELECT COUNT(*) FROM dead_letters x WHERE x.subject_id = c.id), \
      (SELECT COUNT(*) FROM processed p WHERE p.input_id = c.id), \
      (SELECT COUNT(DISTINCT s.root_id) FROM steps s WHERE s.chunk_id = c.id AND s.root_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM accepted a WHERE a.root_id = s.root_id) \
         AND NOT EXISTS (SELECT 1 FROM rejected r WHERE r.root_id = s.root_id) \
         AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.root_id = s.root_id)), \
      (SELECT COUNT(*) FROM accepted a WHERE a.chunk_id = c.id) \
        + (SELECT COUNT(*) FROM rejected r WHERE r.chunk_id = c.id) \
    FROM chunks c";

impl SqlStore {
    async fn chunk_rows(&self) -> Result<Vec<ChunkRow>, DatasetError> {
        let rows = sqlx::query(CHUNK_ROWS).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(ChunkRow {
                    document_id: r.try_get::<String, _>(0).map_err(err)?,
                    failed: int(r, 1)? > 0,
                    generated: int(r, 2)? > 0,
                    open: int(r, 3)?,
                    outcomes: int(r, 4)?,
                })
            })
            .collect()
    }

    async fn scalar(&self, sql: &'static str, binds: &[&str]) -> Result<u64, DatasetError> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        let row = q.fetch_one(&self.pool).await.map_err(err)?;
        int(&row, 0)
    }

    async fn by_reason(&self) -> Result<Vec<(Option<String>, String, u64)>, DatasetError> {
        let rows = sqlx::query("SELECT document_id, reason, COUNT(*) FROM rejected GROUP BY document_id, reason")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<Option<String>, _>(0).map_err(err)?,
                    r.try_get::<String, _>(1).map_err(err)?,
                    int(r, 2)?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl DatasetStore for SqlStore {
    fn describe(&self) -> String {
        redact(&self.url)
    }

    async fn write(&self, records: Vec<Record>) -> Result<(), DatasetError> {
        if records.is_empty() {
            return Ok(());
        }
        self.submit(Job::Records(records)).await
    }

    async fn record_step(&self, stage: &str, input: Record, outputs: Vec<Record>) -> Result<(), DatasetError> {
        self.submit(Job::Step { stage: stage.to_string(), input, outputs }).await
    }

    async fn recorded_outputs(&self, stage: &str, input_id: &str) -> Result<Option<Vec<Record>>, DatasetError> {
        let done = sqlx::query("SELECT outputs FROM processed WHERE stage = $1 AND input_id = $2")
            .bind(stage)
            .bind(input_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        if done.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query("SELECT record FROM steps WHERE stage = $1 AND input_id = $2 ORDER BY position")
            .bind(stage)
            .bind(input_id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let records =
            rows.iter().map(|r| decode(&r.try_get::<Vec<u8>, _>(0).map_err(err)?)).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(records))
    }

    async fn chunk_state(&self, stage: &str, chunk_id: &str) -> Result<ChunkState, DatasetError> {
        let failed = self
            .scalar(
                "SELECT (SELECT COUNT(*) FROM rejected WHERE subject_id = $1) \
                 + (SELECT COUNT(*) FROM dead_letters WHERE subject_id = $1)",
                &[chunk_id],
            )
            .await?;
        if failed > 0 {
            return Ok(ChunkState::Done);
        }
        let generated = self
            .scalar("SELECT COUNT(*) FROM processed WHERE stage = $1 AND input_id = $2", &[stage, chunk_id])
            .await?;
        if generated == 0 {
            return Ok(ChunkState::New);
        }
        let finals: HashSet<String> = sqlx::query(
            "SELECT root_id FROM accepted WHERE chunk_id = $1 \
             UNION SELECT root_id FROM rejected WHERE chunk_id = $1 AND root_id IS NOT NULL \
             UNION SELECT root_id FROM dead_letters WHERE chunk_id = $1 AND root_id IS NOT NULL",
        )
        .bind(chunk_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(err)?;
        let steps = sqlx::query(
            "SELECT root_id, step, record FROM steps WHERE chunk_id = $1 AND root_id IS NOT NULL \
             ORDER BY step, stage, input_id, position",
        )
        .bind(chunk_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        // The latest step of each example without an outcome (first seen order kept, for a stable output).
        let mut order: Vec<String> = Vec::new();
        let mut latest: HashMap<String, (i64, Vec<u8>)> = HashMap::new();
        for r in &steps {
            let root: String = r.try_get(0).map_err(err)?;
            if finals.contains(&root) {
                continue;
            }
            let step: i64 = r.try_get(1).map_err(err)?;
            let bytes: Vec<u8> = r.try_get(2).map_err(err)?;
            match latest.get_mut(&root) {
                Some(cur) if cur.0 >= step => {}
                Some(cur) => *cur = (step, bytes),
                None => {
                    order.push(root.clone());
                    latest.insert(root, (step, bytes));
                }
            }
        }
        if order.is_empty() {
            return Ok(ChunkState::Done);
        }
        let open = order.iter().map(|root| decode(&latest[root].1)).collect::<Result<Vec<_>, _>>()?;
        Ok(ChunkState::Partial(open))
    }

    async fn outcomes(
        &self,
        kind: OutcomeKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, DatasetError> {
        let sql = match kind {
            OutcomeKind::Document => "SELECT record FROM documents WHERE id > $1 ORDER BY id LIMIT $2",
            OutcomeKind::Accepted => "SELECT record FROM accepted WHERE id > $1 ORDER BY id LIMIT $2",
            OutcomeKind::Rejected => "SELECT record FROM rejected WHERE id > $1 ORDER BY id LIMIT $2",
            OutcomeKind::DeadLetter => "SELECT record FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
        };
        let rows =
            sqlx::query(sql).bind(after.unwrap_or("")).bind(limit as i64).fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(|r| decode(&r.try_get::<Vec<u8>, _>(0).map_err(err)?)).collect()
    }

    async fn record_usage(&self, run: &RunUsage) -> Result<(), DatasetError> {
        self.submit(Job::Usage(run.clone())).await
    }

    async fn totals(&self) -> Result<Totals, DatasetError> {
        let generate = distillery_core::StageName::Generate.as_str();
        let judge = distillery_core::StageName::Judge.as_str();
        let mut t = Totals {
            documents: self.scalar("SELECT COUNT(*) FROM documents", &[]).await?,
            drafts: self.scalar("SELECT COUNT(*) FROM steps WHERE stage = $1 AND kind = 'draft'", &[generate]).await?,
            regenerated: self
                .scalar("SELECT COUNT(*) FROM steps WHERE stage = $1 AND kind = 'regenerate'", &[judge])
                .await?,
            repaired: self
                .scalar("SELECT COUNT(*) FROM steps WHERE stage = $1 AND kind = 'regenerate'", &[generate])
                .await?,
            accepted: self.scalar("SELECT COUNT(*) FROM accepted", &[]).await?,
            dead_letters: self.scalar("SELECT COUNT(*) FROM dead_letters", &[]).await?,
            dpo_pairs: self.scalar("SELECT COUNT(*) FROM dpo_pairs", &[]).await?,
            runs: self.scalar("SELECT COUNT(*) FROM runs", &[]).await?,
            llm_calls: self.scalar("SELECT CAST(COALESCE(SUM(llm_calls), 0) AS BIGINT) FROM runs", &[]).await?,
            ..Totals::default()
        };
        for (_, reason, n) in self.by_reason().await? {
            *t.rejected_by_reason.entry(reason).or_default() += n;
            t.rejected += n;
        }
        let v = sqlx::query(
            "SELECT COUNT(*), AVG(CAST(overall AS DOUBLE PRECISION)), \
             CAST(COALESCE(SUM(CASE WHEN passed = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM verdicts",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        t.verdicts = int(&v, 0)?;
        t.mean_score = v.try_get::<Option<f64>, _>(1).map_err(err)?;
        t.rejection_rate = (t.verdicts > 0).then(|| int(&v, 2).unwrap_or(0) as f64 / t.verdicts as f64);
        let u = sqlx::query(
            "SELECT CAST(COALESCE(SUM(generator_prompt), 0) AS BIGINT), \
             CAST(COALESCE(SUM(generator_completion), 0) AS BIGINT), CAST(COALESCE(SUM(judge_prompt), 0) AS BIGINT), \
             CAST(COALESCE(SUM(judge_completion), 0) AS BIGINT) FROM usage",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        t.usage = Usage {
            generator_prompt: int(&u, 0)?,
            generator_completion: int(&u, 1)?,
            judge_prompt: int(&u, 2)?,
            judge_completion: int(&u, 3)?,
        };
        let docs = self.documents().await?;
        // Per document as `documents()` counts them (a chunk an edit left unchanged counts once, under the
        // version that holds it now).
        t.chunks = docs.iter().map(|d| d.chunks).sum();
        t.chunks_done = docs.iter().map(|d| d.chunks_done).sum();
        t.chunks_failed = docs.iter().map(|d| d.chunks_failed).sum();
        t.chunks_pending = docs.iter().map(|d| d.chunks_pending).sum();
        Ok(t)
    }

    async fn documents(&self) -> Result<Vec<DocumentProgress>, DatasetError> {
        let mut docs: BTreeMap<String, DocumentProgress> = BTreeMap::new();
        for r in sqlx::query("SELECT id, name, chunks FROM documents").fetch_all(&self.pool).await.map_err(err)? {
            let id: String = r.try_get(0).map_err(err)?;
            let p = DocumentProgress {
                name: r.try_get(1).map_err(err)?,
                document_id: id.clone(),
                chunks: int(&r, 2)?,
                ..DocumentProgress::default()
            };
            docs.insert(id, p);
        }
        // Documents rejected before extraction listed them (encrypted, unsupported, ...).
        for r in sqlx::query(
            "SELECT subject_id, name FROM rejected WHERE subject_kind = 'document' \
             AND subject_id NOT IN (SELECT id FROM documents)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        {
            let id: String = r.try_get(0).map_err(err)?;
            let name: Option<String> = r.try_get(1).map_err(err)?;
            docs.entry(id.clone()).or_insert(DocumentProgress {
                name: name.unwrap_or_else(|| id.clone()),
                document_id: id,
                ..DocumentProgress::default()
            });
        }
        let mut chunk_rows: HashMap<String, u64> = HashMap::new();
        for c in self.chunk_rows().await? {
            let Some(p) = docs.get_mut(&c.document_id) else { continue };
            *chunk_rows.entry(c.document_id.clone()).or_default() += 1;
            if c.failed {
                p.chunks_failed += 1;
            } else if c.done() {
                p.chunks_done += 1;
            }
        }
        // By the document that holds the chunk now: an edit's new version counts the records of the chunks it
        // left unchanged (content-based chunk ids), the old version keeps those of the chunks it lost.
        for r in sqlx::query(
            "SELECT COALESCE(c.document_id, a.document_id) AS doc, COUNT(*) FROM accepted a \
             LEFT JOIN chunks c ON c.id = a.chunk_id GROUP BY COALESCE(c.document_id, a.document_id)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        {
            let id: String = r.try_get(0).map_err(err)?;
            if let Some(p) = docs.get_mut(&id) {
                p.accepted = int(&r, 1)?;
            }
        }
        for (doc, reason, n) in self.by_reason().await? {
            if let Some(p) = doc.and_then(|d| docs.get_mut(&d)) {
                *p.rejected_by_reason.entry(reason).or_default() += n;
                p.rejected += n;
            }
        }
        for r in sqlx::query(
            "SELECT document_id, CAST(SUM(generator_prompt + judge_prompt) AS BIGINT), \
             CAST(SUM(generator_completion + judge_completion) AS BIGINT) FROM usage GROUP BY document_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        {
            let id: String = r.try_get(0).map_err(err)?;
            if let Some(p) = docs.get_mut(&id) {
                p.prompt_tokens = int(&r, 1)?;
                p.completion_tokens = int(&r, 2)?;
                p.tokens = p.prompt_tokens + p.completion_tokens;
            }
        }
        let deleted = self.deleted_documents().await?;
        // A version an edit replaced holds only the chunks its successor did not take over (an unchanged
        // section's chunk moves to the new version): those moved are not pending under the old one.
        let replaced: HashSet<String> = sqlx::query(
            "SELECT supersedes FROM document_versions WHERE supersedes IS NOT NULL AND supersedes <> document_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.try_get::<String, _>(0).map_err(err))
        .collect::<Result<_, _>>()?;
        let mut out: Vec<DocumentProgress> = docs
            .into_values()
            .map(|mut p| {
                p.deleted = deleted.contains(&p.document_id);
                let held = chunk_rows.get(&p.document_id).copied().unwrap_or(0);
                p.chunks = if replaced.contains(&p.document_id) { held } else { p.chunks.max(held) };
                p.chunks_pending = p.chunks.saturating_sub(p.chunks_done + p.chunks_failed);
                p
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.document_id.cmp(&b.document_id)));
        Ok(out)
    }

    async fn record_version(&self, v: &DatasetVersion, decisions: Vec<(Record, bool)>) -> Result<(), DatasetError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO dataset_versions (version, kind, judge_model, threshold, judged, newly_accepted, \
             newly_rejected, llm_calls, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(v.version as i64)
        .bind(v.kind.as_str())
        .bind(&v.judge_model)
        .bind(v.threshold as i64)
        .bind(v.judged as i64)
        .bind(v.newly_accepted as i64)
        .bind(v.newly_rejected as i64)
        .bind(v.llm_calls as i64)
        .bind(v.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| err(format!("version {}: {e}", v.version)))?;
        for (record, was_accepted) in &decisions {
            let Some(draft) = subject_draft(record) else { continue };
            let (accepted, overall) = match record {
                Record::Accepted(a) => (1i64, Some(a.judged.scores.overall as i64)),
                Record::Rejected(r) => (0, r.scores.map(|s| s.overall as i64)),
                _ => continue,
            };
            sqlx::query(
                "INSERT INTO decisions (draft_id, version, document_id, accepted, was_accepted, overall, record) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&draft.id)
            .bind(v.version as i64)
            .bind(&draft.document_id)
            .bind(accepted)
            .bind(*was_accepted as i64)
            .bind(overall)
            .bind(encode(record)?)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn versions(&self) -> Result<Vec<DatasetVersion>, DatasetError> {
        let rows = sqlx::query(
            "SELECT version, kind, judge_model, threshold, judged, newly_accepted, newly_rejected, llm_calls, \
             created_at_ms FROM dataset_versions ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(1).map_err(err)?;
                Ok(DatasetVersion {
                    version: int(r, 0)?,
                    kind: if kind == DecidedBy::Review.as_str() { DecidedBy::Review } else { DecidedBy::Rejudge },
                    judge_model: r.try_get(2).map_err(err)?,
                    threshold: int(r, 3)? as i32,
                    judged: int(r, 4)?,
                    newly_accepted: int(r, 5)?,
                    newly_rejected: int(r, 6)?,
                    llm_calls: int(r, 7)?,
                    created_at_ms: r.try_get(8).map_err(err)?,
                })
            })
            .collect()
    }

    async fn overrides(&self) -> Result<Overrides, DatasetError> {
        let mut out = Overrides::default();
        // Each draft's decision of the latest version that decided it.
        let rows = sqlx::query(
            "SELECT d.draft_id, d.record FROM decisions d WHERE d.version = \
             (SELECT MAX(e.version) FROM decisions e WHERE e.draft_id = d.draft_id)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        for r in rows {
            let draft: String = r.try_get(0).map_err(err)?;
            out.decided.insert(draft, decode(&r.try_get::<Vec<u8>, _>(1).map_err(err)?)?);
        }
        let rows = sqlx::query("SELECT draft_id, action, question, answer, note, reviewed_at_ms FROM reviews")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        for r in rows {
            let action: String = r.try_get(1).map_err(err)?;
            let Some(action) = ReviewAction::from_name(&action) else { continue };
            let review = Review {
                draft_id: r.try_get(0).map_err(err)?,
                action,
                question: r.try_get(2).map_err(err)?,
                answer: r.try_get(3).map_err(err)?,
                note: r.try_get(4).map_err(err)?,
                reviewed_at_ms: r.try_get(5).map_err(err)?,
            };
            out.reviews.insert(review.draft_id.clone(), review);
        }
        Ok(out)
    }

    async fn arrivals(&self, after_ms: i64, limit: usize) -> Result<Vec<(i64, Record)>, DatasetError> {
        let mut out = Vec::new();
        for sql in [
            "SELECT created_at_ms, record FROM drafts WHERE created_at_ms >= $1 ORDER BY created_at_ms LIMIT $2",
            "SELECT accepted_at_ms, record FROM accepted WHERE accepted_at_ms >= $1 ORDER BY accepted_at_ms LIMIT $2",
            "SELECT rejected_at_ms, record FROM rejected WHERE rejected_at_ms >= $1 ORDER BY rejected_at_ms LIMIT $2",
        ] {
            let rows = sqlx::query(sql).bind(after_ms).bind(limit as i64).fetch_all(&self.pool).await.map_err(err)?;
            for r in rows {
                let at: i64 = r.try_get(0).map_err(err)?;
                out.push((at, decode(&r.try_get::<Vec<u8>, _>(1).map_err(err)?)?));
            }
        }
        // The first `limit` of the merge: whatever comes after them is in the next call.
        out.sort_by_key(|(at, _)| *at);
        out.truncate(limit);
        Ok(out)
    }

    async fn mark_missing(
        &self,
        prefix_uri: &str,
        present: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, DatasetError> {
        let rows = sqlx::query("SELECT id, source_uri FROM documents").fetch_all(&self.pool).await.map_err(err)?;
        let deleted = self.deleted_documents().await?;
        let mut newly = Vec::new();
        let mut tx = self.pool.begin().await.map_err(err)?;
        for r in rows {
            let (id, uri): (String, String) = (r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?);
            if !uri.starts_with(prefix_uri) {
                continue;
            }
            if present.contains(&uri) {
                if deleted.contains(&id) {
                    sqlx::query("DELETE FROM deleted_documents WHERE document_id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
            } else if !deleted.contains(&id) {
                sqlx::query(
                    "INSERT INTO deleted_documents (document_id, source_uri, deleted_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(&uri)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                newly.push(id);
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(newly)
    }

    async fn document_versions(&self) -> Result<Vec<(String, String)>, DatasetError> {
        let rows =
            sqlx::query("SELECT source_uri, document_id FROM document_versions ORDER BY discovered_at_ms, document_id")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        rows.iter().map(|r| Ok((r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?))).collect()
    }

    async fn deleted_documents(&self) -> Result<HashSet<String>, DatasetError> {
        let rows = sqlx::query("SELECT document_id FROM deleted_documents").fetch_all(&self.pool).await.map_err(err)?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(err)).collect()
    }

    async fn review(&self, review: &Review) -> Result<(), DatasetError> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM reviews WHERE draft_id = $1")
            .bind(&review.draft_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        sqlx::query(
            "INSERT INTO reviews (draft_id, action, question, answer, note, reviewed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&review.draft_id)
        .bind(review.action.as_str())
        .bind(review.question.clone())
        .bind(review.answer.clone())
        .bind(review.note.clone())
        .bind(review.reviewed_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }
}
