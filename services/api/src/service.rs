//! The API service process: no Kafka; it serves the tables API beside /metrics, /healthz and /readyz.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_llm::{LlmClient, LlmRole};
use distillery_runtime::http::{Ready, ops_router};
use tokio_util::sync::CancellationToken;

use crate::tabular::{ApiServiceConfig, ApiState, api_router};

/// Serves until `cancel`. Served here rather than spawned: on SIGTERM the API stops accepting, reports not
/// ready, and returns only once the tables still streaming have been sent.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> anyhow::Result<()> {
    let c: ApiServiceConfig = load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let metrics = Metrics::global();
    let llm = Arc::new(LlmClient::connect(c.llm.clone(), LlmRole::Schema, metrics.clone()).await);
    tracing::info!(llm = ?llm, "schema model");
    let state =
        ApiState { llm, cache: c.tabular.cache()?.map(Arc::new), cfg: c.tabular.clone(), metrics: metrics.clone() };
    let ready = Ready::default();
    let router = ops_router(metrics, ready.clone()).merge(api_router(state));
    let listener =
        tokio::net::TcpListener::bind(c.ops.listen).await.with_context(|| format!("binding {}", c.ops.listen))?;
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

/// The `distillery-api` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-api", |config, cancel| async move {
        run(config.as_deref(), cancel).await.map_err(|e| format!("{e:#}"))
    })
}
