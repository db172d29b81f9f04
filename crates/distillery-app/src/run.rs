//! `distillery run`: every stage in one process over in-memory topics, with the same stage code as the
//! Kafka services. The input is listed lazily and documents enter only while fewer than `max_pending`
//! records are in flight, so memory stays bounded on any input size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use distillery_core::{Discovery, Metrics, RejectReason, StoreKind};
use distillery_docs::pii::Redactor;
use distillery_export::{ACCEPTED, DatasetOut, FolderBackend};
use distillery_runtime::memory::MemoryBus;
use distillery_stages::claims::{MemoryClaims, MemoryVersions};
use distillery_stages::dedup::Dedup;
use distillery_stages::extract::{Extract, WorkerCommand};
use distillery_stages::generate::Generate;
use distillery_stages::ingest::{Ingestor, Outcome};
use distillery_stages::judge::Judge;
use distillery_stages::sink::Sink;
use distillery_stages::stores::Stores;
use distillery_stages::usage::{DocUsage, Ledger};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;
use crate::wiring;

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

/// What one document cost.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DocumentUsage {
    #[serde(flatten)]
    pub tokens: DocUsage,
    pub cost: Option<f64>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub documents: u64,
    /// Objects whose content an earlier object already brought.
    pub duplicate_documents: u64,
    pub chunks: u64,
    /// Drafts generated, regenerations included.
    pub drafts: u64,
    /// Drafts the critic sent back for a regeneration.
    pub regenerated: u64,
    /// First drafts whose answers failed a pre-judge check, sent back for one repair.
    pub repaired: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub dead_letters: u64,
    /// Mean overall judge score of every verdict.
    pub mean_score: Option<f64>,
    /// Share of judged drafts that did not pass the critic.
    pub rejection_rate: Option<f64>,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Tokens per accepted record, prompt plus completion.
    pub tokens_per_accepted: Option<f64>,
    pub cost: Option<f64>,
    /// Tokens (failed and retried calls included) and cost per document id, by role.
    pub per_document: BTreeMap<String, DocumentUsage>,
    pub duration_s: f64,
    pub drafts_per_s: f64,
    pub accepted_per_s: f64,
}

impl Summary {
    /// Adds the per-document ledger, priced by the configuration.
    pub fn with_ledger(mut self, ledger: &Ledger, cfg: &RunConfig) -> Summary {
        let judge = cfg.llm.judge();
        self.per_document = ledger
            .snapshot()
            .into_iter()
            .map(|(doc, u)| {
                let cost = match (
                    cfg.llm.generator.cost(u.generator_prompt, u.generator_completion),
                    judge.cost(u.judge_prompt, u.judge_completion),
                ) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
                };
                (doc, DocumentUsage { tokens: u, cost })
            })
            .collect();
        self
    }

    /// Reads the counters of a run.
    pub fn from_metrics(m: &Metrics, duration: Duration, duplicates: u64, cfg: &RunConfig) -> Summary {
        let out =
            |stage: &str, topic: &str| Metrics::counter_sum(&m.records_out, &[("stage", stage), ("topic", topic)]);
        let mut by_reason = BTreeMap::new();
        for reason in RejectReason::ALL {
            let n = Metrics::counter_sum(&m.rejected, &[("reason", reason.as_str())]);
            if n > 0 {
                by_reason.insert(reason.as_str().to_string(), n);
            }
        }
        let scores: Vec<(u64, u64)> =
            (1..=5).map(|s| (s, Metrics::counter_sum(&m.judge_scores, &[("score", &s.to_string())]))).collect();
        let verdicts: u64 = scores.iter().map(|(_, n)| n).sum();
        let mean_score =
            (verdicts > 0).then(|| scores.iter().map(|(s, n)| (s * n) as f64).sum::<f64>() / verdicts as f64);
        let below = scores.iter().filter(|(s, _)| (*s as i32) < cfg.judge.threshold).map(|(_, n)| n).sum::<u64>();
        let tokens = |role: &str, kind: &str| Metrics::counter_sum(&m.llm_tokens, &[("role", role), ("kind", kind)]);
        let (gp, gc, jp, jc) = (
            tokens("generator", "prompt"),
            tokens("generator", "completion"),
            tokens("judge", "prompt"),
            tokens("judge", "completion"),
        );
        let cost = match (cfg.llm.generator.cost(gp, gc), cfg.llm.judge().cost(jp, jc)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        let accepted = out("dedup", "accepted");
        let secs = duration.as_secs_f64().max(1e-9);
        let drafts = out("generate", "drafts");
        Summary {
            documents: out("source", "documents"),
            duplicate_documents: duplicates,
            chunks: out("extract", "chunks"),
            drafts,
            regenerated: out("judge", "regenerate"),
            repaired: out("generate", "regenerate"),
            accepted,
            rejected: by_reason.values().sum(),
            rejected_by_reason: by_reason,
            dead_letters: Metrics::counter_sum(&m.dead_letters, &[]),
            mean_score,
            rejection_rate: (verdicts > 0).then(|| below as f64 / verdicts as f64),
            llm_calls: Metrics::counter_sum(&m.llm_calls, &[("outcome", "ok")]),
            prompt_tokens: gp + jp,
            completion_tokens: gc + jc,
            tokens_per_accepted: (accepted > 0).then(|| (gp + gc + jp + jc) as f64 / accepted as f64),
            cost,
            per_document: BTreeMap::new(),
            duration_s: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
            drafts_per_s: drafts as f64 / secs,
            accepted_per_s: accepted as f64 / secs,
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
}

/// Runs the whole pipeline in this process and writes the dataset, exports and `summary.json`.
pub async fn run(opts: RunOptions, cancel: CancellationToken) -> anyhow::Result<Summary> {
    let cfg = opts.config;
    let started = Instant::now();
    let spec = InputSpec::parse(&opts.input)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let metrics = Metrics::global();

    let judge_cfg = cfg.llm.judge();
    wiring::check_llm(&cfg.llm.generator).await?;
    if judge_cfg.base_url != cfg.llm.generator.base_url {
        wiring::check_llm(&judge_cfg).await?;
    }
    let (gen_llm, judge_llm) = wiring::llm_clients(&cfg.llm.generator, &judge_cfg, metrics.clone()).await;
    let embedder = wiring::embedder(&cfg.embedder).await?;
    let index = wiring::index(&Default::default(), embedder.dim()).await?;
    let counter: Arc<dyn distillery_docs::TokenCounter> = match &cfg.extract.tokenizer {
        Some(_) => wiring::token_counter(cfg.extract.tokenizer.as_deref())?,
        None => match wiring::served_model_tokenizer(&cfg.llm.generator).await {
            Some(t) => Arc::new(t),
            None => wiring::token_counter(None)?,
        },
    };
    let stores = match spec.store {
        StoreKind::S3 => Stores::with_s3(wiring::s3(&cfg.s3).await),
        StoreKind::File => Stores::local_only(),
    };
    tracing::info!(generator = ?gen_llm, judge = ?judge_llm, embedder = embedder.name(), tokenizer = counter.name(), "starting");

    let versions = Arc::new(MemoryVersions::default());
    let out = DatasetOut::start(FolderBackend::new(&opts.out)?, 1000, Duration::from_millis(20));
    let sink = Arc::new(Sink::new(out, cfg.sink.clone(), Some(versions.clone())));
    let bus = MemoryBus::new(metrics.clone());
    let retry = cfg.runtime.retry.clone();
    let slots = gen_llm.concurrency();
    let stage_cancel = CancellationToken::new();
    let ledger = Arc::new(Ledger::default());
    let handles = vec![
        bus.spawn_stage(
            Arc::new(Extract {
                stores: stores.clone(),
                counter,
                cfg: cfg.extract.clone(),
                redactor: Arc::new(Redactor::new(cfg.extract.pii.clone())),
                worker: WorkerCommand::current_exe().ok(),
                versions: Some(versions.clone()),
                metrics: metrics.clone(),
            }),
            2,
            retry.clone(),
            stage_cancel.clone(),
        ),
        bus.spawn_stage(
            Arc::new(
                Generate::new(gen_llm.clone(), cfg.generate.clone(), Some(ledger.clone()))
                    .map_err(|e| anyhow::anyhow!("generate: {}", e.join("; ")))?,
            ),
            slots,
            retry.clone(),
            stage_cancel.clone(),
        ),
        bus.spawn_stage(
            Arc::new(
                Judge::new(judge_llm.clone(), cfg.judge.clone(), metrics.clone(), Some(ledger.clone()))
                    .map_err(|e| anyhow::anyhow!("judge: {}", e.join("; ")))?,
            ),
            judge_llm.concurrency(),
            retry.clone(),
            stage_cancel.clone(),
        ),
        bus.spawn_stage(
            Arc::new(Dedup::new(embedder, index, cfg.dedup.clone())),
            2,
            retry.clone(),
            stage_cancel.clone(),
        ),
        bus.spawn_stage(sink.clone(), 512, retry, stage_cancel.clone()),
    ];

    let progress = opts.progress.then(|| crate::progress::Progress::start(metrics.clone()));
    let ingestor = Ingestor { stores, claims: Arc::new(MemoryClaims::default()), versions, cfg: cfg.ingest.clone() };
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
            if let Err(e) = distillery_runtime::publish_counted("source", vec![record], &bus, &metrics, &cancel).await {
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
    scanned?;

    let duration = started.elapsed();
    let summary = Summary::from_metrics(&metrics, duration, duplicates, &cfg).with_ledger(&ledger, &cfg);
    if cfg.parquet {
        let path = opts.out.join(distillery_export::Format::Parquet.file_name());
        let accepted = opts.out.join(ACCEPTED);
        if accepted.exists() {
            let rows = distillery_export::parquet::write_parquet(&path, distillery_export::read_unique(&accepted)?)
                .map_err(anyhow::Error::msg)?;
            tracing::info!(rows, path = %path.display(), "parquet written");
        }
    }
    for name in [ACCEPTED, distillery_export::REJECTED, "alpaca.jsonl"] {
        let p = opts.out.join(name);
        if !p.exists() {
            std::fs::write(&p, b"")?;
        }
    }
    std::fs::write(opts.out.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    Ok(summary)
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
