//! Extract: a Document's bytes become redacted chunks with their generation context, and the document is
//! published again with what extraction found (pages, chunks, PII counts).
//!
//! Parsers of untrusted files run isolated: by default in a child process (the same binary, invoked with
//! [`WORKER_ARG`]) under a memory limit and a wall-clock limit, so a zip bomb, a pathological PDF or a
//! parser crash costs that document (rejected with a reason) and never the service.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Chunk, Document, DocumentStatus, Input, Metrics, Record, RejectReason, Stage, StageError, StageName, Topic, ids,
};
use distillery_docs::ApproxCounter;
use distillery_docs::pii::{PiiConfig, PiiKind, Redactor};
use distillery_docs::{ChunkConfig, ExtractError, Extracted, MediaType, TokenCounter, chunk, context_text, contexts};
use distillery_store::registry::Versions;
use distillery_store::{StoreError, Stores};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

pub mod limits;
pub mod service;

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Extract;

/// The token counter for chunk budgets: a `tokenizer.json` or a `.gguf` model, else ~4 chars per token.
pub fn token_counter(tokenizer: Option<&std::path::Path>) -> Result<Arc<dyn TokenCounter>, String> {
    Ok(match tokenizer {
        Some(p) => Arc::new(distillery_docs::tokens::load_tokenizer(p)?),
        None => Arc::new(ApproxCounter),
    })
}

impl Component for ExtractConfig {
    type Stage = Extract;

    async fn build(&self, deps: &Deps) -> Result<Extract, BuildError> {
        let counter = token_counter(self.tokenizer.as_deref()).map_err(|e| BuildError::one(NAME.as_str(), e))?;
        let limits = limits::Limits::of_this_process(self.max_memory_mib);
        tracing::info!(
            concurrency = limits.concurrency,
            worker_memory_mib = limits.worker_memory_mib,
            max_text_chars = self.max_text_chars,
            max_chunks = self.max_chunks,
            "extraction limits (from the cgroup)"
        );
        Ok(Extract {
            limits,
            stores: deps.stores.clone(),
            counter,
            cfg: self.clone(),
            redactor: Arc::new(Redactor::new(self.pii.clone())),
            worker: WorkerCommand::current_exe().ok(),
            versions: deps.versions.clone(),
            metrics: deps.metrics.clone(),
        })
    }
}

/// The argument that turns a Distillery binary into an extraction worker.
pub const WORKER_ARG: &str = "__extract-worker";

/// Where parsers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A child process per document, killed at the time limit, under the memory limit.
    Process,
    /// A blocking thread in this process (tests, trusted input): a runaway parser is abandoned at the time
    /// limit but keeps its thread.
    Thread,
}

/// Extraction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Documents larger than this many bytes are rejected, not fetched.
    pub max_object_bytes: u64,
    /// Wall-clock limit of extracting one document, in seconds.
    pub timeout_secs: u64,
    /// Memory limit of one extraction worker process, in MiB; lowered to a share of the container's memory
    /// (its cgroup) when that is smaller.
    pub max_memory_mib: u64,
    /// Most characters of extracted text per document; more is rejected as `too_large` (a 100 MB text file, a
    /// PDF that inflates).
    pub max_text_chars: u64,
    /// Most chunks per document; more is rejected as `too_large`.
    pub max_chunks: usize,
    /// Most uncompressed bytes a DOCX package may expand to (zip bombs are refused).
    pub max_uncompressed_bytes: u64,
    /// Where parsers run.
    pub isolation: Isolation,
    /// Chunking and context budgets.
    pub chunking: ChunkConfig,
    /// A `tokenizer.json` matching the generation model; unset counts ~4 characters per token.
    pub tokenizer: Option<std::path::PathBuf>,
    /// PII redaction.
    pub pii: PiiConfig,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            max_object_bytes: 100 * 1024 * 1024,
            timeout_secs: 120,
            max_memory_mib: 2048,
            max_text_chars: 16_000_000,
            max_chunks: 10_000,
            max_uncompressed_bytes: 512 * 1024 * 1024,
            isolation: Isolation::Process,
            chunking: ChunkConfig::default(),
            tokenizer: None,
            pii: PiiConfig::default(),
        }
    }
}

impl ExtractConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.timeout_secs == 0 {
            errors.push(format!("{section}.timeout_secs must be > 0"));
        }
        if self.max_memory_mib < 64 {
            errors.push(format!("{section}.max_memory_mib must be >= 64"));
        }
        if self.max_text_chars == 0 || self.max_chunks == 0 {
            errors.push(format!("{section}.max_text_chars and {section}.max_chunks must be > 0"));
        }
        self.chunking.validate(&format!("{section}.chunking"), errors);
        self.pii.validate(&format!("{section}.pii"), errors);
        if let Some(t) = &self.tokenizer
            && !t.exists()
        {
            errors.push(format!("{section}.tokenizer {} does not exist", t.display()));
        }
    }
}

/// What extraction made of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub chunks: Vec<Chunk>,
    pub pii_counts: BTreeMap<PiiKind, u64>,
    pub pages: Option<u32>,
}

/// Redacts and chunks extracted text (no I/O): the part `distillery extract` runs too.
pub fn chunk_extracted(
    doc: &Document,
    mut extracted: Extracted,
    counter: &dyn TokenCounter,
    cfg: &ChunkConfig,
    redactor: &Redactor,
) -> Result<Extraction, ExtractError> {
    chunk_extracted_within(doc, &mut extracted, counter, cfg, redactor, &Caps::default())
}

/// Per-document caps of extraction: text and chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_text_chars: u64,
    pub max_chunks: usize,
}

impl Default for Caps {
    fn default() -> Self {
        let c = ExtractConfig::default();
        Caps { max_text_chars: c.max_text_chars, max_chunks: c.max_chunks }
    }
}

impl Caps {
    /// The text is over the cap: `too_large`, with the figures.
    fn check_text(&self, extracted: &Extracted) -> Result<(), ExtractError> {
        let chars = extracted.text_chars() as u64;
        if chars > self.max_text_chars {
            return Err(ExtractError::TooLarge(format!(
                "{chars} characters of text, over the {}-character limit (extract.max_text_chars)",
                self.max_text_chars
            )));
        }
        Ok(())
    }
}

/// [`chunk_extracted`] under `caps`: more text or more chunks than they allow is `too_large`.
pub fn chunk_extracted_within(
    doc: &Document,
    extracted: &mut Extracted,
    counter: &dyn TokenCounter,
    cfg: &ChunkConfig,
    redactor: &Redactor,
    caps: &Caps,
) -> Result<Extraction, ExtractError> {
    caps.check_text(extracted)?;
    let pii_counts = redactor.redact_document(extracted);
    let pages = extracted.pages;
    let pieces = chunk(extracted, counter, cfg);
    if pieces.is_empty() {
        return Err(ExtractError::Empty);
    }
    if pieces.len() > caps.max_chunks {
        return Err(ExtractError::TooLarge(format!(
            "{} chunks, over the {}-chunk limit (extract.max_chunks)",
            pieces.len(),
            caps.max_chunks
        )));
    }
    let ids: Vec<String> =
        pieces.iter().enumerate().map(|(i, p)| ids::hash_parts(&["chunk", &doc.id, &i.to_string(), &p.text])).collect();
    let groups = contexts(&pieces, cfg);
    let total = pieces.len() as i32;
    let chunks = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let members = &groups[i];
            let member_ids: Vec<String> = members.iter().map(|&m| ids[m].clone()).collect();
            let refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
            Chunk {
                id: ids[i].clone(),
                document_id: doc.id.clone(),
                source: doc.source.clone(),
                ordinal: i as i32,
                total,
                text: p.text.clone(),
                heading_path: p.heading_path.clone(),
                page_start: p.page_start.map(|x| x as i32),
                page_end: p.page_end.map(|x| x as i32),
                char_start: p.char_start as i64,
                char_end: p.char_end as i64,
                token_count: p.tokens as i32,
                context_id: ids::hash_parts(&refs),
                context_chunk_ids: member_ids,
                context_text: context_text(&pieces, members),
                superseded_by: None,
            }
        })
        .collect();
    Ok(Extraction { chunks, pii_counts, pages })
}

/// Extracts, redacts and chunks a document's bytes in this thread (`distillery extract`, tests).
pub fn chunk_document(
    doc: &Document,
    bytes: &[u8],
    counter: &dyn TokenCounter,
    cfg: &ChunkConfig,
    redactor: &Redactor,
) -> Result<Extraction, ExtractError> {
    let extracted = distillery_docs::extract_guarded(MediaType::from_mime(&doc.media_type), bytes)?;
    chunk_extracted(doc, extracted, counter, cfg, redactor)
}

/// The request a worker reads from its standard input (one JSON line, then the document's bytes).
#[derive(Debug, Serialize, Deserialize)]
struct WorkerRequest {
    media_type: String,
    max_memory_bytes: u64,
    max_uncompressed_bytes: u64,
    /// Text over this many characters is `too_large` (the worker never sends it back).
    #[serde(default = "unlimited")]
    max_text_chars: u64,
}

fn unlimited() -> u64 {
    u64::MAX
}

/// Runs the extraction worker: reads one request from stdin, answers with a JSON result on stdout.
pub fn worker_main() -> std::process::ExitCode {
    use std::io::{BufRead, Read, Write};
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut header = String::new();
    if input.read_line(&mut header).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let Ok(req) = serde_json::from_str::<WorkerRequest>(&header) else {
        eprintln!("extract worker: bad request header");
        return std::process::ExitCode::FAILURE;
    };
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, req.max_memory_bytes, req.max_memory_bytes) {
        eprintln!("extract worker: cannot set the memory limit: {e}");
    }
    distillery_docs::docx::set_limits(req.max_uncompressed_bytes);
    let mut bytes = Vec::new();
    if input.read_to_end(&mut bytes).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let caps = Caps { max_text_chars: req.max_text_chars, max_chunks: usize::MAX };
    let result = distillery_docs::extract_guarded(MediaType::from_mime(&req.media_type), &bytes)
        .and_then(|x| caps.check_text(&x).map(|()| x));
    let out = serde_json::to_vec(&result).unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// How to start a worker: a program and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// This executable in worker mode.
    pub fn current_exe() -> std::io::Result<WorkerCommand> {
        Ok(WorkerCommand { program: std::env::current_exe()?, args: vec![WORKER_ARG.to_string()] })
    }
}

/// The extract stage.
#[derive(Debug)]
pub struct Extract {
    /// Parses at once and worker memory, from the container's cgroup.
    pub limits: limits::Limits,
    pub stores: Stores,
    pub counter: Arc<dyn TokenCounter>,
    pub cfg: ExtractConfig,
    pub redactor: Arc<Redactor>,
    /// Required with `Isolation::Process`.
    pub worker: Option<WorkerCommand>,
    pub versions: Option<Arc<dyn Versions>>,
    pub metrics: Arc<Metrics>,
}

impl Extract {
    async fn extract_bytes(&self, media_type: &str, bytes: bytes::Bytes) -> Result<Extracted, ExtractError> {
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        match (self.cfg.isolation, &self.worker) {
            (Isolation::Process, Some(worker)) => self.in_worker(worker, media_type, &bytes, timeout).await,
            _ => {
                let media = MediaType::from_mime(media_type);
                let limit = self.cfg.max_uncompressed_bytes;
                let work = tokio::task::spawn_blocking(move || {
                    distillery_docs::docx::set_limits(limit);
                    distillery_docs::extract_guarded(media, &bytes)
                });
                match tokio::time::timeout(timeout, work).await {
                    Err(_) => Err(ExtractError::Timeout(self.cfg.timeout_secs)),
                    Ok(Err(join)) => Err(ExtractError::Corrupt(format!("extractor crashed: {join}"))),
                    Ok(Ok(r)) => r,
                }
            }
        }
    }

    async fn in_worker(
        &self,
        worker: &WorkerCommand,
        media_type: &str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Extracted, ExtractError> {
        let mut child = tokio::process::Command::new(&worker.program)
            .args(&worker.args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExtractError::Corrupt(format!("cannot start the extraction worker: {e}")))?;
        let header = serde_json::to_string(&WorkerRequest {
            media_type: media_type.to_string(),
            max_memory_bytes: self.limits.worker_memory_mib * 1024 * 1024,
            max_uncompressed_bytes: self.cfg.max_uncompressed_bytes,
            max_text_chars: self.cfg.max_text_chars,
        })
        .expect("serializable");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let run = async move {
            // A worker that dies early closes its stdin; its exit status tells why.
            let fed: std::io::Result<()> = async {
                stdin.write_all(header.as_bytes()).await?;
                stdin.write_all(b"\n").await?;
                stdin.write_all(bytes).await?;
                stdin.shutdown().await
            }
            .await;
            drop(stdin);
            if let Err(e) = fed {
                tracing::debug!(error = %e, "the extraction worker stopped reading");
            }
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(timeout, run).await {
            Err(_) => return Err(ExtractError::Timeout(self.cfg.timeout_secs)),
            Ok(Err(e)) => return Err(ExtractError::Corrupt(format!("extraction worker: {e}"))),
            Ok(Ok(o)) => o,
        };
        if let Ok(result) = serde_json::from_slice::<Result<Extracted, ExtractError>>(&output.stdout) {
            return result;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("memory allocation")
            || stderr.contains("out of memory")
            || stderr.contains("capacity overflow")
        {
            return Err(ExtractError::TooLarge(format!(
                "extraction needed more than {} MiB (extract.max_memory_mib, within the container's memory)",
                self.limits.worker_memory_mib
            )));
        }
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        Err(ExtractError::Corrupt(format!("the extraction worker failed ({}): {tail}", output.status)))
    }
}

impl Stage for Extract {
    fn name(&self) -> &'static str {
        NAME.as_str()
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Documents]
    }

    fn default_concurrency(&self) -> usize {
        // CPU- and memory-bound: one parse per CPU the container may use, each worker within its share.
        self.limits.concurrency
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Document(doc)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "extract consumes documents"));
        };
        if doc.status == DocumentStatus::Extracted {
            // Our own report on the document changelog.
            return Ok(Vec::new());
        }
        let store = self.stores.get(doc.source.store).map_err(|e| StageError::dead_letter("store", e))?;
        let bytes = match store.get(&doc.source.bucket, &doc.source.key, self.cfg.max_object_bytes).await {
            Ok((_, b)) => b,
            Err(StoreError::TooLarge { size, limit }) => {
                return Err(StageError::reject(
                    RejectReason::TooLarge,
                    format!("{size} bytes is over the {limit}-byte limit"),
                ));
            }
            Err(StoreError::NotFound(k)) => {
                return Err(StageError::reject(RejectReason::Other, format!("object {k} no longer exists")));
            }
            Err(e) if e.is_retryable() => return Err(StageError::retry("store_read", e.to_string())),
            Err(e) => return Err(StageError::dead_letter("store_read", e.to_string())),
        };
        if ids::hash_bytes(&bytes) != doc.id {
            // The object changed since ingest; its new content arrives with its own notification.
            return Err(StageError::reject(RejectReason::Other, "object content changed since it was ingested"));
        }
        // Plain text and Markdown have at least one character per four bytes: far over the text cap is
        // refused without parsing.
        let media = MediaType::from_mime(&doc.media_type);
        if matches!(media, MediaType::Text | MediaType::Markdown) && bytes.len() as u64 / 4 > self.cfg.max_text_chars {
            return Err(StageError::reject(
                RejectReason::TooLarge,
                format!(
                    "{} bytes of text, over the {}-character limit (extract.max_text_chars)",
                    bytes.len(),
                    self.cfg.max_text_chars
                ),
            ));
        }
        let extracted = self
            .extract_bytes(&doc.media_type, bytes)
            .await
            .map_err(|e| StageError::reject(e.reason(), e.to_string()))?;
        let (doc2, counter, chunking, redactor) =
            (doc.clone(), self.counter.clone(), self.cfg.chunking.clone(), self.redactor.clone());
        let caps = Caps { max_text_chars: self.cfg.max_text_chars, max_chunks: self.cfg.max_chunks };
        let extraction = tokio::task::spawn_blocking(move || {
            let mut extracted = extracted;
            chunk_extracted_within(&doc2, &mut extracted, counter.as_ref(), &chunking, &redactor, &caps)
        })
        .await
        .map_err(|e| StageError::reject(RejectReason::Corrupt, format!("chunking crashed: {e}")))?
        .map_err(|e| StageError::reject(e.reason(), e.to_string()))?;
        let superseded_by = match &self.versions {
            Some(v) => v.superseded_by(&doc.id).await.map_err(|e| StageError::retry("versions", e.to_string()))?,
            None => None,
        };
        let redactions = self.metrics.counter_vec("pii_redactions_total", "PII entities redacted", &["type"]);
        for (kind, n) in &extraction.pii_counts {
            redactions.with_label_values(&[kind.label()]).inc_by(*n);
        }
        tracing::info!(document = %doc.id, uri = %doc.source.uri(), chunks = extraction.chunks.len(),
            pii = ?extraction.pii_counts, "extracted");
        let report = Document {
            status: DocumentStatus::Extracted,
            pii_counts: extraction.pii_counts.iter().map(|(k, n)| (k.label().to_string(), *n as i64)).collect(),
            pages: extraction.pages.map(|p| p as i32),
            chunks: Some(extraction.chunks.len() as i32),
            ..doc.clone()
        };
        let mut out = Vec::with_capacity(extraction.chunks.len() + 1);
        out.push(Record::Document(report));
        out.extend(extraction.chunks.into_iter().map(|mut c| {
            c.superseded_by = superseded_by.clone();
            Record::Chunk(c)
        }));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_docs::ApproxCounter;
    use distillery_docs::pii::PiiConfig;

    fn redactor() -> Redactor {
        Redactor::new(PiiConfig::default())
    }

    #[test]
    fn chunks_carry_ids_spans_contexts_and_redactions() {
        let md = b"# Leave\n\nEmployees get 25 days. Ask hr@larkspur.example for help.\n\nCarry-over is capped at 5 days.\n\n# Pay\n\nSalaries are paid monthly; questions to hr@larkspur.example.";
        let mut doc = fixtures::document();
        doc.media_type = "text/markdown".into();
        let cfg = ChunkConfig { min_tokens: 0, ..Default::default() };
        let x = chunk_document(&doc, md, &ApproxCounter, &cfg, &redactor()).unwrap();
        let chunks = &x.chunks;
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, vec!["Leave"]);
        assert_eq!(chunks[0].text, "Employees get 25 days. Ask [EMAIL_1] for help.\n\nCarry-over is capped at 5 days.");
        assert!(
            chunks[1].text.contains("questions to [EMAIL_1]."),
            "same address, same placeholder: {}",
            chunks[1].text
        );
        assert_eq!(x.pii_counts[&PiiKind::Email], 2);
        assert!(
            !chunks.iter().any(|c| c.context_text.contains("larkspur.example")),
            "nothing unredacted leaves extract"
        );
        assert_eq!(chunks[1].context_chunk_ids, vec![chunks[1].id.clone()]);
        assert!(chunks[0].context_text.contains("## Leave"));
        assert!(chunks.iter().all(|c| c.total == 2 && c.document_id == doc.id));
        let again = chunk_document(&doc, md, &ApproxCounter, &cfg, &redactor()).unwrap();
        assert_eq!(x, again, "same input, same ids");
    }

    #[test]
    fn empty_and_unsupported_documents_are_refused() {
        let mut doc = fixtures::document();
        doc.media_type = "text/plain".into();
        assert_eq!(
            chunk_document(&doc, b"   \n\n ", &ApproxCounter, &ChunkConfig::default(), &redactor()),
            Err(ExtractError::Empty)
        );
        doc.media_type = "image/png".into();
        assert!(matches!(
            chunk_document(&doc, b"\x89PNG", &ApproxCounter, &ChunkConfig::default(), &redactor()),
            Err(ExtractError::Unsupported(_))
        ));
    }
}
