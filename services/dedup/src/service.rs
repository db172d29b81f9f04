//! The dedup stage as a Kafka service: `judged` to `accepted` or `rejected`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_kafka::KafkaLog;
use distillery_kafka::service::{ServiceError, run_component};
use tokio_util::sync::CancellationToken;

use crate::vectors::{EmbedderConfig, VectorConfig};
use crate::{DedupComponent, DedupConfig};

distillery_kafka::service_config!(
    /// The dedup service: `judged` to `accepted` or `rejected`.
    DedupServiceConfig {
        /// Similarity threshold.
        dedup: DedupConfig,
        /// The sentence encoder.
        embedder: EmbedderConfig,
        /// The vector index.
        vectors: VectorConfig,
    }
    validate(s, errors) {
        s.dedup.validate("dedup", errors);
    }
);

/// The claims log's topic: `<topic_prefix>dedup-claims`, one partition, records kept.
pub const CLAIMS_LOG: &str = "dedup-claims";

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: DedupServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let deps = Deps::local(Metrics::global());
    // Every dedup worker of the pipeline decides the claims of this one log (see `replica`).
    let log = KafkaLog::open(&c.kafka, CLAIMS_LOG).await?;
    let component =
        DedupComponent { dedup: &c.dedup, embedder: &c.embedder, vectors: &c.vectors, log: Some(Arc::new(log)) };
    run_component(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), cancel).await
}

/// The `distillery-dedup` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-dedup", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}
