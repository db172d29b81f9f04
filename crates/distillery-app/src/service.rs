//! The Kafka services: each stage as a consumer-group member with its ops endpoint. Ingest also serves
//! the notification webhook and runs the reconcile scan.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use distillery_core::config::{Secret, Settings, load};
use distillery_core::{Discovery, Metrics, ObjectRef, Stage, StoreKind, Topic};
use distillery_docs::pii::Redactor;
use distillery_export::{DatasetOut, FolderBackend, ObjectBackend};
use distillery_kafka::{KafkaConfig, KafkaPublisher, run_stage};
use distillery_llm::LlmClient;
use distillery_runtime::http::{Ready, ops_router, serve};
use distillery_runtime::{RuntimeConfig, publish_counted};
use distillery_stages::claims::{Claims, MemoryClaims, MemoryVersions, StoreClaims, StoreVersions, Versions};
use distillery_stages::dedup::Dedup;
use distillery_stages::events;
use distillery_stages::extract::{Extract, WorkerCommand};
use distillery_stages::generate::Generate;
use distillery_stages::ingest::{Ingest, Ingestor};
use distillery_stages::judge::Judge;
use distillery_stages::sink::Sink;
use distillery_stages::stores::Stores;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::*;
use crate::wiring;

/// The deployable services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    Ingest,
    Extract,
    Generate,
    Judge,
    Dedup,
    Sink,
    /// The HTTP API (synthetic tables); no Kafka.
    Api,
}

fn load_cfg<T: Settings>(path: Option<&Path>) -> anyhow::Result<T> {
    load::<T>(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs a service until SIGTERM/ctrl-c (or `cancel`).
pub async fn run_service(kind: ServiceKind, config: Option<&Path>, cancel: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::global();
    match kind {
        ServiceKind::Ingest => ingest(load_cfg(config)?, metrics, cancel).await,
        ServiceKind::Extract => {
            let c: ExtractServiceConfig = load_cfg(config)?;
            let ready = ops(&c.ops, metrics.clone(), Router::new(), &cancel).await?;
            let s3 = wiring::s3(&c.s3).await;
            let stage = Extract {
                stores: Stores::with_s3(s3.clone()),
                counter: wiring::token_counter(c.extract.tokenizer.as_deref())?,
                cfg: c.extract.clone(),
                redactor: Arc::new(Redactor::new(c.extract.pii.clone())),
                worker: Some(WorkerCommand::current_exe()?),
                versions: versions(&c.claims, &s3),
                metrics: metrics.clone(),
            };
            consume(&c.kafka, &c.runtime, stage, metrics, ready, cancel).await
        }
        ServiceKind::Generate => {
            let c: GenerateServiceConfig = load_cfg(config)?;
            let ready = ops(&c.ops, metrics.clone(), Router::new(), &cancel).await?;
            let llm = Arc::new(LlmClient::connect(c.llm.clone(), "generator", metrics.clone()).await);
            tracing::info!(llm = ?llm, "generator model");
            let stage = Generate::new(llm, c.generate.clone(), None)
                .map_err(|e| anyhow::anyhow!("generate: {}", e.join("; ")))?;
            consume(&c.kafka, &c.runtime, stage, metrics, ready, cancel).await
        }
        ServiceKind::Judge => {
            let c: JudgeServiceConfig = load_cfg(config)?;
            let ready = ops(&c.ops, metrics.clone(), Router::new(), &cancel).await?;
            let llm = Arc::new(LlmClient::connect(c.llm.clone(), "judge", metrics.clone()).await);
            tracing::info!(llm = ?llm, "judge model");
            let stage = Judge::new(llm, c.judge.clone(), metrics.clone(), None)
                .map_err(|e| anyhow::anyhow!("judge: {}", e.join("; ")))?;
            consume(&c.kafka, &c.runtime, stage, metrics, ready, cancel).await
        }
        ServiceKind::Dedup => {
            let c: DedupServiceConfig = load_cfg(config)?;
            let ready = ops(&c.ops, metrics.clone(), Router::new(), &cancel).await?;
            let embedder = wiring::embedder(&c.embedder).await?;
            let index = wiring::index(&c.vectors, embedder.dim()).await?;
            consume(&c.kafka, &c.runtime, Dedup::new(embedder, index, c.dedup.clone()), metrics, ready, cancel).await
        }
        ServiceKind::Api => {
            let c: crate::tabular::ApiServiceConfig = load_cfg(config)?;
            let llm = Arc::new(LlmClient::connect(c.llm.clone(), "schema", metrics.clone()).await);
            tracing::info!(llm = ?llm, "schema model");
            let state = crate::tabular::ApiState {
                llm,
                cache: c.tabular.cache()?.map(Arc::new),
                cfg: c.tabular.clone(),
                metrics: metrics.clone(),
            };
            // Served here rather than spawned: on SIGTERM the API stops accepting, reports not ready, and
            // returns only once the tables still streaming have been sent.
            let ready = Ready::default();
            let router = ops_router(metrics, ready.clone()).merge(crate::tabular::api_router(state));
            let listener = tokio::net::TcpListener::bind(c.ops.listen)
                .await
                .with_context(|| format!("binding {}", c.ops.listen))?;
            ready.set(true);
            tracing::info!(listen = %c.ops.listen, "API serving POST /v1/tabular and /v1/tabular/schema");
            let shutdown = async move {
                cancel.cancelled().await;
                ready.set(false);
                tracing::info!("shutting down: finishing the responses in flight");
            };
            axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("API server")?;
            tracing::info!("API stopped");
            Ok(())
        }
        ServiceKind::Sink => {
            let c: SinkServiceConfig = load_cfg(config)?;
            let ready = ops(&c.ops, metrics.clone(), Router::new(), &cancel).await?;
            let linger = Duration::from_millis(c.output.linger_ms);
            let s3 = wiring::s3(&c.s3).await;
            let out = match (&c.output.dir, &c.output.bucket) {
                (Some(dir), _) => DatasetOut::start(FolderBackend::new(dir)?, c.output.batch_lines, linger),
                (None, Some(bucket)) => DatasetOut::start(
                    ObjectBackend::new(s3.clone(), bucket.clone(), c.output.prefix.clone()),
                    c.output.batch_lines,
                    linger,
                ),
                (None, None) => anyhow::bail!("no output configured"),
            };
            let sink = Sink::new(out, c.sink.clone(), versions(&c.claims, &s3));
            consume(&c.kafka, &c.runtime, sink, metrics, ready, cancel).await
        }
    }
}

/// The shared version registry, when a bucket is configured for it.
fn versions(c: &ClaimsConfig, s3: &Arc<dyn distillery_store::ObjectStore>) -> Option<Arc<dyn Versions>> {
    c.bucket
        .as_ref()
        .map(|b| Arc::new(StoreVersions::new(s3.clone(), b.clone(), c.prefix.clone())) as Arc<dyn Versions>)
}

/// Serves the ops endpoint right away (alive, not ready), before any slow startup work, so probes and
/// metrics answer while models load and servers are reached.
async fn ops(
    cfg: &OpsConfig,
    metrics: Arc<Metrics>,
    extra: Router,
    cancel: &CancellationToken,
) -> anyhow::Result<Ready> {
    let ready = Ready::default();
    let router = ops_router(metrics, ready.clone()).merge(extra);
    serve(cfg.listen, router, cancel.clone()).await.with_context(|| format!("binding {}", cfg.listen))?;
    Ok(ready)
}

async fn consume<S: Stage>(
    kafka: &KafkaConfig,
    runtime: &RuntimeConfig,
    stage: S,
    metrics: Arc<Metrics>,
    ready: Ready,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    run_stage(kafka, runtime, Arc::new(stage), metrics, ready, cancel).await?;
    Ok(())
}

#[derive(Clone)]
struct WebhookState {
    ingestor: Arc<Ingestor>,
    publisher: Arc<KafkaPublisher>,
    token: Secret,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `POST /events`: an S3 notification; answers 200 only once the documents are in Kafka, so the store
/// retries anything we could not take.
async fn webhook(
    State(s): State<WebhookState>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !s.token.is_empty() {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if bearer != Some(s.token.expose()) && q.token.as_deref() != Some(s.token.expose()) {
            s.metrics.errors.with_label_values(&["ingest", "webhook_auth"]).inc();
            return (StatusCode::UNAUTHORIZED, "bad token".into());
        }
    }
    let created = match events::parse(&body) {
        Ok(c) => c,
        Err(e) => {
            s.metrics.errors.with_label_values(&["ingest", "bad_event"]).inc();
            tracing::warn!(error = %e, "webhook body is not an S3 event");
            return (StatusCode::BAD_REQUEST, e);
        }
    };
    s.metrics.records_in.with_label_values(&["ingest", "webhook"]).inc();
    let mut records = Vec::new();
    for ev in created {
        let source = ObjectRef {
            store: StoreKind::S3,
            bucket: ev.bucket,
            key: ev.key,
            version_id: ev.version_id,
            etag: ev.etag,
        };
        match s.ingestor.object(source, ev.size, &ev.event_id, Discovery::Webhook).await {
            Ok(outcome) => records.extend(outcome.into_record()),
            Err(e) => {
                s.metrics.errors.with_label_values(&["ingest", e.kind]).inc();
                tracing::error!(error = %e, "webhook event failed");
                return (StatusCode::SERVICE_UNAVAILABLE, e.message);
            }
        }
    }
    let n = records.len();
    match publish_counted("ingest", records, &*s.publisher, &s.metrics, &s.cancel).await {
        Ok(()) => (StatusCode::OK, format!("{n} record(s) published")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn ingest(c: IngestServiceConfig, metrics: Arc<Metrics>, cancel: CancellationToken) -> anyhow::Result<()> {
    let s3 = wiring::s3(&c.s3).await;
    let claims: Arc<dyn Claims> = match &c.claims.bucket {
        Some(bucket) => {
            Arc::new(StoreClaims { store: s3.clone(), bucket: bucket.clone(), prefix: c.claims.prefix.clone() })
        }
        None => Arc::new(MemoryClaims::default()),
    };
    let versions = versions(&c.claims, &s3).unwrap_or_else(|| Arc::new(MemoryVersions::default()));
    let ingestor = Arc::new(Ingestor { stores: Stores::with_s3(s3), claims, versions, cfg: c.ingest.clone() });
    let publisher = Arc::new(KafkaPublisher::new(&c.kafka)?);
    let mut extra = Router::new();
    if c.webhook.enabled {
        if c.webhook.token.is_empty() {
            tracing::warn!("the notification webhook accepts requests without a token; set webhook.token");
        }
        let state = WebhookState {
            ingestor: ingestor.clone(),
            publisher: publisher.clone(),
            token: c.webhook.token.clone(),
            metrics: metrics.clone(),
            cancel: cancel.clone(),
        };
        extra = Router::new().route("/events", post(webhook)).with_state(state);
    }
    let ready = ops(&c.ops, metrics.clone(), extra, &cancel).await?;
    if c.kafka.create_topics {
        distillery_kafka::ensure_topics(&c.kafka, &Topic::ALL).await?;
    }
    if !c.scan.targets.is_empty() {
        tokio::spawn(scan_loop(ingestor.clone(), publisher, c.scan.clone(), metrics.clone(), cancel.clone()));
    }
    let stage = Ingest { ingestor: (*ingestor).clone() };
    consume(&c.kafka, &c.runtime, stage, metrics, ready, cancel).await
}

/// Lists every target periodically and publishes what it finds; claims make already-seen content a no-op.
async fn scan_loop(
    ingestor: Arc<Ingestor>,
    publisher: Arc<KafkaPublisher>,
    cfg: ScanConfig,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        for target in &cfg.targets {
            let (bucket, prefix) = target.split_once('/').unwrap_or((target.as_str(), ""));
            let res = ingestor
                .scan(StoreKind::S3, bucket, prefix, Discovery::Scan, |outcome| {
                    let (publisher, metrics, cancel) = (publisher.clone(), metrics.clone(), cancel.clone());
                    async move {
                        if let Some(r) = outcome.into_record()
                            && let Err(e) = publish_counted("ingest", vec![r], &*publisher, &metrics, &cancel).await
                        {
                            tracing::error!(error = %e, "scan publish failed");
                        }
                    }
                })
                .await;
            if let Err(e) = res {
                metrics.errors.with_label_values(&["ingest", "scan"]).inc();
                tracing::error!(target, error = %e, "reconcile scan failed");
            }
        }
        if cfg.interval_secs == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(cfg.interval_secs)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Entry point of the per-service binaries: `--config FILE` (or `DISTILLERY_CONFIG`) and env overrides.
pub fn main(kind: ServiceKind) -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some(distillery_stages::extract::WORKER_ARG) {
        return distillery_stages::extract::worker_main();
    }
    crate::cli::init_tracing("info");
    let mut args = std::env::args().skip(1);
    let mut config = std::env::var_os("DISTILLERY_CONFIG").map(std::path::PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(Into::into),
            "-h" | "--help" => {
                println!(
                    "usage: distillery-<stage> [--config FILE]\nSettings: defaults, then FILE, then DISTILLERY__SECTION__FIELD variables."
                );
                return std::process::ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: unknown argument {other}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(async { run_service(kind, config.as_deref(), distillery_runtime::shutdown_signal()).await }) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
