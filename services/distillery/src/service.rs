//! `distillery service <stage>`: one stage as a Kafka service, the same code as its `distillery-<stage>`
//! binary.

use std::path::Path;

use tokio_util::sync::CancellationToken;

/// The deployable services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    Ingest,
    Extract,
    Generate,
    Judge,
    Dedup,
    Sink,
    /// The HTTP API (the dataset when `api.store` is set, synthetic tables); no Kafka.
    Api,
}

/// Runs a service until SIGTERM/ctrl-c (or `cancel`).
pub async fn run_service(kind: ServiceKind, config: Option<&Path>, cancel: CancellationToken) -> anyhow::Result<()> {
    match kind {
        ServiceKind::Ingest => distillery_ingest::service::run(config, cancel).await?,
        ServiceKind::Extract => distillery_extract::service::run(config, cancel).await?,
        ServiceKind::Generate => distillery_generate::service::run(config, cancel).await?,
        ServiceKind::Judge => distillery_judge::service::run(config, cancel).await?,
        ServiceKind::Dedup => distillery_dedup::service::run(config, cancel).await?,
        ServiceKind::Sink => distillery_sink::service::run(config, cancel).await?,
        ServiceKind::Api => crate::commands::serve::service_api(config, cancel).await?,
    }
    Ok(())
}
