//! `distillery run`: every stage in one process over in-memory topics, built by the same components as
//! the Kafka services. The input is listed lazily and documents enter only while fewer than `max_pending`
//! records are in flight, so memory stays bounded on any input size.
//!
//! The run's dataset store (`<out>/distillery.db`, or `--store URL`) makes it resumable: generate and
//! judge record what they produce before it is published and skip what is already recorded
//! (`distillery_dataset::resume`), the sink writes every outcome to the store before its lines, and at the
//! end the folder's files are rebuilt from the store, so an interrupted run continues where it stopped
//! (no LLM call repeated, no line twice) and a finished one is left as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use distillery_component::{Component, Deps};
use distillery_core::{Discovery, Metrics, Stage, StageName, StoreKind};
use distillery_dataset::resume::Resumable;
use distillery_dataset::{DatasetStore, RunUsage, STORE_FILE, SqlStore, Usage};
use distillery_dedup::DedupComponent;
use distillery_dedup::vectors::VectorConfig;
use distillery_export::ACCEPTED;
use distillery_generate::GenerateComponent;
use distillery_ingest::{Ingestor, Outcome};
use distillery_judge::JudgeComponent;
use distillery_llm::{Ledger, LlmClients, LlmConfig, ProviderKind};
use distillery_runtime::RuntimeConfig;
use distillery_runtime::memory::MemoryBus;
use distillery_sink::{OutputConfig, SinkComponent};
use distillery_store::registry::{MemoryClaims, MemoryVersions, Versions};
use distillery_store::{S3Store, Stores};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;
use crate::summary::Summary;

/// Where the documents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub store: StoreKind,
    pub bucket: String,
    pub prefix: String,
}

impl InputSpec {
    /// `s3://bucket/prefix`, a folder, or a single file.
    pub fn parse(input: &str) -> anyhow::Result<InputSpec> {
        if let Some(rest) = input.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("{input}: no bucket name");
            }
            return Ok(InputSpec { store: StoreKind::S3, bucket: bucket.into(), prefix: prefix.into() });
        }
        let path = Path::new(input);
        let meta = std::fs::metadata(path).with_context(|| format!("input {input}"))?;
        let abs = std::fs::canonicalize(path)?;
        if meta.is_dir() {
            Ok(InputSpec { store: StoreKind::File, bucket: abs.to_string_lossy().into(), prefix: String::new() })
        } else {
            let parent = abs.parent().context("a file has a parent folder")?;
            let name = abs.file_name().context("a file has a name")?;
            Ok(InputSpec {
                store: StoreKind::File,
                bucket: parent.to_string_lossy().into(),
                prefix: name.to_string_lossy().into(),
            })
        }
    }
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub input: String,
    pub out: PathBuf,
    pub config: RunConfig,
    pub progress: bool,
    /// The dataset store's URL (`postgres://...`, `sqlite:PATH`); default `<out>/distillery.db`.
    pub store: Option<String>,
}

/// Opens the run's dataset store.
pub async fn open_store(out: &Path, url: Option<&str>) -> anyhow::Result<Arc<SqlStore>> {
    let url = match url {
        Some(u) => u.to_string(),
        None => distillery_dataset::sql::sqlite_url(&out.join(STORE_FILE)),
    };
    let store = SqlStore::open(&url).await.map_err(|e| anyhow::anyhow!("opening the dataset store: {e}"))?;
    Ok(Arc::new(store))
}

/// The model file an OpenAI-compatible llama.cpp server is serving, when it is on this machine (the local
/// default): chunk budgets then count exactly what the model counts.
async fn served_model_file(cfg: &LlmConfig) -> Option<PathBuf> {
    if cfg.provider != ProviderKind::Openai {
        return None;
    }
    let base = cfg.base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    let props: serde_json::Value = reqwest::Client::new()
        .get(format!("{root}/props"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let path = PathBuf::from(props.get("model_path")?.as_str()?);
    path.exists().then_some(path)
}

/// Builds a stage from its component and runs it on the bus with `concurrency` (unset: the stage's own).
async fn spawn<C: Component>(
    bus: &MemoryBus,
    component: &C,
    deps: &Deps,
    concurrency: Option<usize>,
    runtime: &RuntimeConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let stage = Arc::new(component.build(deps).await?);
    let concurrency = concurrency.unwrap_or_else(|| distillery_core::Stage::default_concurrency(&*stage));
    Ok(bus.spawn_stage(stage, concurrency, runtime, cancel.clone()))
}

/// As [`spawn`], with the stage's work recorded in and skipped by the dataset store.
async fn spawn_resumable<C: Component>(
    bus: &MemoryBus,
    component: &C,
    deps: &Deps,
    store: Arc<dyn DatasetStore>,
    runtime: &RuntimeConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<(JoinHandle<()>, Arc<Resumable<C::Stage>>)> {
    let stage = Arc::new(Resumable::new(component.build(deps).await?, store).with_metrics(&deps.metrics));
    let concurrency = stage.default_concurrency();
    Ok((bus.spawn_stage(stage.clone(), concurrency, runtime, cancel.clone()), stage))
}

/// The diversity of the whole dataset (mean pairwise cosine distance of accepted records' embeddings):
/// this run's own figure when it accepted every record the dataset holds, else measured again over
/// `accepted.jsonl` (a uniform sample of at most [`distillery_dedup::DIVERSITY_EXACT`] records beyond that,
/// an unbiased estimate).
async fn dataset_diversity(
    out: &Path,
    cfg: &RunConfig,
    metrics: &Metrics,
    collection: &str,
    accepted_this_run: u64,
    accepted_total: u64,
) -> anyhow::Result<Option<f64>> {
    if accepted_total < 2 {
        return Ok(None);
    }
    if accepted_this_run == accepted_total {
        let g = metrics.float_gauge_vec("dataset_diversity", "", &["dataset"]).with_label_values(&[collection]);
        return Ok(Some(g.get()));
    }
    let cap = distillery_dedup::DIVERSITY_EXACT;
    let mut sample: Vec<String> = Vec::new();
    let mut seen = 0u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for v in distillery_export::read_unique(&out.join(ACCEPTED))? {
        if v.superseded_by.is_some() {
            continue;
        }
        seen += 1;
        let text = v.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        if sample.len() < cap {
            sample.push(text);
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let j = (rng % seen) as usize;
            if j < cap {
                sample[j] = text;
            }
        }
    }
    let embedder = distillery_dedup::vectors::embedder(&cfg.embedder).await.map_err(anyhow::Error::msg)?;
    let mut d = distillery_vector::Diversity::new(cap);
    for batch in sample.chunks(64) {
        for v in embedder.embed(batch.to_vec()).await.map_err(|e| anyhow::anyhow!("embedding: {e}"))? {
            d.add(&v);
        }
    }
    Ok(d.mean())
}

/// The run's LLM figures for the store.
fn run_usage(run_id: &str, started_at_ms: i64, finished: bool, ledger: &Ledger, metrics: &Metrics) -> RunUsage {
    let llm = distillery_llm::LlmMetrics::of(metrics);
    RunUsage {
        run_id: run_id.to_string(),
        started_at_ms,
        finished,
        llm_calls: Metrics::counter_sum(&llm.calls, &[("outcome", "ok")]),
        documents: ledger
            .snapshot()
            .into_iter()
            .map(|(doc, u)| {
                let usage = Usage {
                    generator_prompt: u.generator_prompt,
                    generator_completion: u.generator_completion,
                    judge_prompt: u.judge_prompt,
                    judge_completion: u.judge_completion,
                };
                (doc, usage)
            })
            .collect(),
    }
}

/// The folder of the output folder the near-duplicate index is kept in (Qdrant's engine, in process).
pub const VECTORS_DIR: &str = "vectors";

/// Runs the whole pipeline in this process and writes the dataset, exports and `summary.json`.
pub async fn run(opts: RunOptions, cancel: CancellationToken) -> anyhow::Result<Summary> {
    let cfg = opts.config;
    let started = Instant::now();
    let spec = InputSpec::parse(&opts.input)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let metrics = Metrics::global();
    let dataset = open_store(&opts.out, opts.store.as_deref()).await?;
    let store: Arc<dyn DatasetStore> = dataset.clone();
    tracing::info!(store = %store.describe(), "dataset store open");
    let started_at_ms = distillery_core::now_ms();
    let run_id = format!("run-{started_at_ms}-{}", std::process::id());

    let judge_llm = cfg.llm.judge();
    let ledger = Arc::new(Ledger::default());
    // The versions an earlier run into this folder stored: an edited file's new document supersedes them.
    let versions = Arc::new(MemoryVersions::default());
    for (uri, document) in store.document_versions().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        versions.record(&uri, &document).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let stores = match spec.store {
        StoreKind::S3 => Stores::with_s3(Arc::new(S3Store::connect(&cfg.s3).await)),
        StoreKind::File => Stores::local_only(),
    };
    let deps = Deps {
        metrics: metrics.clone(),
        llm: Arc::new(LlmClients::new(metrics.clone())),
        ledger: Some(ledger.clone()),
        stores: stores.clone(),
        claims: Arc::new(MemoryClaims::default()),
        versions: Some(versions.clone()),
        dataset: Some(store.clone()),
    };
    let generate = GenerateComponent { llm: &cfg.llm.generator, generate: &cfg.generate, embedder: &cfg.embedder };
    let judge = JudgeComponent { llm: &judge_llm, judge: &cfg.judge };
    generate.check(&deps).await?;
    if judge_llm.base_url != cfg.llm.generator.base_url {
        judge.check(&deps).await?;
    }
    // Chunk budgets count the served model's tokens when its file is here and no tokenizer is configured.
    let mut extract = cfg.extract.clone();
    let served = match &extract.tokenizer {
        Some(_) => None,
        None => served_model_file(&cfg.llm.generator).await,
    };
    if served.is_some() {
        extract.tokenizer = served.clone();
    }
    // The accepted examples' index lives in the output folder: a later run into it compares against them.
    let vectors = VectorConfig { path: Some(opts.out.join(VECTORS_DIR)), ..VectorConfig::default() };
    let dedup = DedupComponent { dedup: &cfg.dedup, embedder: &cfg.embedder, vectors: &vectors, log: None };
    let output =
        OutputConfig { dir: Some(opts.out.clone()), batch_lines: 1000, linger_ms: 20, ..OutputConfig::default() };
    let sink = SinkComponent { sink: &cfg.sink, output: &output };

    let bus = MemoryBus::new(metrics.clone());
    let runtime = cfg.runtime.clone();
    let stage_cancel = CancellationToken::new();
    let extract_stage = match (extract.build(&deps).await, served) {
        (Ok(stage), _) => stage,
        // The served model's file could not be read as a tokenizer: count approximately, as without one.
        (Err(e), Some(_)) => {
            tracing::warn!(error = %e, "the served model's tokenizer is unusable; counting tokens approximately");
            extract.tokenizer = None;
            extract.build(&deps).await?
        }
        (Err(e), None) => return Err(e.into()),
    };
    let (generate_handle, generate_stage) =
        spawn_resumable(&bus, &generate, &deps, store.clone(), &runtime, &stage_cancel).await?;
    let (judge_handle, judge_stage) =
        spawn_resumable(&bus, &judge, &deps, store.clone(), &runtime, &stage_cancel).await?;
    let handles = vec![
        bus.spawn_stage(Arc::new(extract_stage), 2, &runtime, stage_cancel.clone()),
        generate_handle,
        judge_handle,
        spawn(&bus, &dedup, &deps, Some(2), &runtime, &stage_cancel).await?,
        spawn(&bus, &sink, &deps, Some(512), &runtime, &stage_cancel).await?,
    ];
    // The run's LLM usage reaches the store as it goes (a killed run's tokens are still counted).
    let usage_task = {
        let (store, ledger, metrics, run_id) = (store.clone(), ledger.clone(), metrics.clone(), run_id.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Err(e) = store.record_usage(&run_usage(&run_id, started_at_ms, false, &ledger, &metrics)).await {
                    tracing::warn!(error = %e, "could not record the run's usage");
                }
            }
        })
    };
    tracing::info!(tokenizer = ?extract.tokenizer, "pipeline started");

    let progress = opts.progress.then(|| crate::progress::Progress::start(metrics.clone()));
    let ingestor = Ingestor::new(&cfg.ingest, &deps);
    let discovered = if spec.store == StoreKind::S3 { Discovery::Scan } else { Discovery::Local };
    let mut duplicates = 0u64;
    let scan = ingestor.scan(spec.store, &spec.bucket, &spec.prefix, discovered, |outcome| {
        if matches!(outcome, Outcome::Duplicate { .. }) {
            duplicates += 1;
        }
        let record = outcome.into_record();
        let (bus, metrics, max_pending, cancel) =
            (bus.clone(), metrics.clone(), cfg.max_pending as i64, cancel.clone());
        async move {
            let Some(record) = record else { return };
            bus.wait_pending_at_most(max_pending).await;
            let source = StageName::Source.as_str();
            if let Err(e) = distillery_runtime::publish_counted(source, vec![record], &bus, &metrics, &cancel).await {
                tracing::error!(error = %e, "could not enqueue a document");
            }
        }
    });
    let scanned = tokio::select! {
        r = scan => r.map_err(|e| anyhow::anyhow!("listing the input: {}", e.message)),
        _ = cancel.cancelled() => Ok(()),
    };
    tokio::select! {
        _ = bus.wait_idle() => {}
        _ = cancel.cancelled() => tracing::warn!("interrupted: finishing what is in flight"),
    }
    if cancel.is_cancelled() {
        stage_cancel.cancel();
    }
    bus.close();
    for h in handles {
        let _ = h.await;
    }
    drop(progress);
    usage_task.abort();
    store
        .record_usage(&run_usage(&run_id, started_at_ms, true, &ledger, &metrics))
        .await
        .map_err(|e| anyhow::anyhow!("recording the run's usage: {e}"))?;
    // A listing that failed as a whole still leaves a summary of what was found (objects that could not be
    // read were rejected one by one); documents gone from the input are marked only after a complete listing.
    let input_error = scanned.err().map(|e| format!("{e:#}"));
    if input_error.is_none() && !cancel.is_cancelled() {
        mark_missing(&stores, &spec, &*store, &metrics).await?;
    }

    // The folder's files, rebuilt from the store: one line per stored outcome, whatever an earlier
    // interrupted run left in them.
    let rewritten = distillery_sink::rewrite_folder(&opts.out, &*store, &cfg.sink, Some(&*versions))
        .await
        .map_err(|e| anyhow::anyhow!("rewriting the dataset files from the store: {e}"))?;
    tracing::info!(?rewritten, "dataset files rebuilt from the store");

    let duration = started.elapsed();
    let mut summary = Summary::from_metrics(&metrics, duration, duplicates, &cfg).with_ledger(&ledger, &cfg);
    let (g, j) = (generate_stage.counts(), judge_stage.counts());
    summary.resumed =
        crate::summary::Resumed { chunks_skipped: g.0, chunks_continued: g.1, records_republished: g.2 + j.2 };
    summary.store = store.describe();
    summary.input_error = input_error;
    summary.interrupted = cancel.is_cancelled();
    summary.dataset = Some(store.totals().await.map_err(|e| anyhow::anyhow!("dataset totals: {e}"))?);
    summary.document_status = store.documents().await.map_err(|e| anyhow::anyhow!("document status: {e}"))?;
    let total = summary.dataset.as_ref().map_or(0, |t| t.accepted);
    summary.diversity =
        match dataset_diversity(&opts.out, &cfg, &metrics, &vectors.collection, summary.accepted, total).await {
            Ok(d) => d.map(|d| (d * 10_000.0).round() / 10_000.0),
            Err(e) => {
                tracing::warn!(error = %e, "could not measure the dataset's diversity");
                None
            }
        };
    for name in [ACCEPTED, distillery_export::REJECTED, "alpaca.jsonl"] {
        let p = opts.out.join(name);
        if !p.exists() {
            std::fs::write(&p, b"")?;
        }
    }
    if cfg.parquet {
        let path = opts.out.join(distillery_export::Format::Parquet.file_name());
        let rows =
            distillery_export::parquet::write_parquet(&path, distillery_export::read_unique(&opts.out.join(ACCEPTED))?)
                .map_err(anyhow::Error::msg)?;
        tracing::info!(rows, path = %path.display(), "parquet written");
    }
    // Exports follow the store where the run's own files cannot show it (deleted documents, a rejudged
    // version, reviews).
    crate::commands::export::refresh_folder(&opts.out).await?;
    std::fs::write(opts.out.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    Ok(summary)
}

/// Marks the stored documents of this input whose object is no longer there as deleted (and those back
/// again as not): their records are never exported again.
async fn mark_missing(
    stores: &Stores,
    spec: &InputSpec,
    store: &dyn DatasetStore,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let objects = stores.get(spec.store).map_err(anyhow::Error::msg)?;
    let object = |key: &str| distillery_core::ObjectRef {
        store: spec.store,
        bucket: spec.bucket.clone(),
        key: key.to_string(),
        version_id: None,
        etag: None,
    };
    let mut present = std::collections::HashSet::new();
    let mut listing = objects.list(&spec.bucket, &spec.prefix);
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| anyhow::anyhow!("listing the input: {e}"))?;
        present.insert(object(&meta.key).uri());
    }
    let gone = store
        .mark_missing(&object(&spec.prefix).uri(), &present)
        .await
        .map_err(|e| anyhow::anyhow!("marking deleted documents: {e}"))?;
    let deleted = metrics.counter_vec(
        "documents_deleted_total",
        "Documents whose source object is gone (missing from the input on a rerun), by how it was found",
        &["found_by"],
    );
    if !gone.is_empty() {
        deleted.with_label_values(&["scan"]).inc_by(gone.len() as u64);
        tracing::info!(documents = gone.len(), "documents missing from the input marked deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse() {
        assert_eq!(
            InputSpec::parse("s3://docs/hr/").unwrap(),
            InputSpec { store: StoreKind::S3, bucket: "docs".into(), prefix: "hr/".into() }
        );
        assert_eq!(InputSpec::parse("s3://docs").unwrap().prefix, "");
        assert!(InputSpec::parse("s3:///x").is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.md"), "x").unwrap();
        let d = InputSpec::parse(dir.path().to_str().unwrap()).unwrap();
        assert_eq!((d.store, d.prefix.as_str()), (StoreKind::File, ""));
        let f = InputSpec::parse(dir.path().join("a.md").to_str().unwrap()).unwrap();
        assert_eq!(f.prefix, "a.md");
        assert!(InputSpec::parse("/definitely/not/here").is_err());
    }
}
