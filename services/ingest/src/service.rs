//! The ingest service: notifications (Kafka topic and webhook) and reconcile scans to `documents`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::config::load;
use distillery_core::{Metrics, Topic};
use distillery_kafka::KafkaPublisher;
use distillery_kafka::service::{ServiceError, run_component};
use distillery_store::registry::ClaimsConfig;
use distillery_store::{S3Config, S3Store, Stores};
use tokio_util::sync::CancellationToken;

use crate::scan::{ScanConfig, scan_loop};
use crate::webhook::{WebhookConfig, WebhookState};
use crate::{IngestConfig, Ingestor};

distillery_kafka::service_config!(
    /// The ingest service: notifications (Kafka topic and webhook) and reconcile scans to `documents`.
    IngestServiceConfig {
        /// The S3-compatible store.
        s3: S3Config,
        /// Filters and limits.
        ingest: IngestConfig,
        /// Where content claims are kept.
        claims: ClaimsConfig,
        /// The HTTP notification endpoint.
        webhook: WebhookConfig,
        /// The reconcile scan.
        scan: ScanConfig,
    }
    validate(s, errors) {
        s.s3.validate("s3", errors);
        s.ingest.validate("ingest", errors);
        s.webhook.validate("webhook", errors);
        for t in &s.scan.targets {
            if t.trim().is_empty() {
                errors.push("scan.targets must not contain empty entries".into());
            }
        }
    }
);

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: IngestServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let s3: Arc<dyn distillery_store::ObjectStore> = Arc::new(S3Store::connect(&c.s3).await);
    let metrics = Metrics::global();
    let mut deps = Deps::local(metrics.clone());
    deps.claims = c.claims.claims(&s3);
    deps.versions = c.claims.versions(&s3);
    deps.stores = Stores::with_s3(s3);
    let ingestor = Arc::new(Ingestor::new(&c.ingest, &deps));
    let publisher = Arc::new(KafkaPublisher::new(&c.kafka).map_err(|e| ServiceError::Other(e.to_string()))?);
    let mut extra = Router::new();
    if c.webhook.enabled {
        let state = WebhookState::new(&c.webhook, ingestor.clone(), publisher.clone(), metrics.clone(), cancel.clone());
        extra = crate::webhook::router(&c.webhook, state);
    }
    if c.kafka.create_topics {
        distillery_kafka::ensure_topics(&c.kafka, &Topic::ALL).await?;
    }
    if !c.scan.targets.is_empty() {
        tokio::spawn(scan_loop(ingestor, publisher, c.scan.clone(), metrics, cancel.clone()));
    }
    run_component(&c.kafka, &c.runtime, &c.ops, &c.ingest, &deps, extra, cancel).await
}

/// The `distillery-ingest` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-ingest", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}
