//! The extract stage as a Kafka service: `documents` to `chunks` (and the extracted document back to
//! `documents`).

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_kafka::service::{ServiceError, run_component};
use distillery_store::registry::ClaimsConfig;
use distillery_store::{S3Config, S3Store, Stores};
use tokio_util::sync::CancellationToken;

use crate::ExtractConfig;

distillery_kafka::service_config!(
    /// The extract service: `documents` to `chunks` (and the extracted document back to `documents`).
    ExtractServiceConfig {
        /// The S3-compatible store.
        s3: S3Config,
        /// Extraction, chunking, context and redaction settings.
        extract: ExtractConfig,
        /// The registry, to mark chunks of superseded documents.
        claims: ClaimsConfig,
    }
    validate(s, errors) {
        s.s3.validate("s3", errors);
        s.extract.validate("extract", errors);
    }
);

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: ExtractServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let s3: Arc<dyn distillery_store::ObjectStore> = Arc::new(S3Store::connect(&c.s3).await);
    let mut deps = Deps::local(Metrics::global());
    deps.versions = c.claims.versions(&s3);
    deps.stores = Stores::with_s3(s3);
    run_component(&c.kafka, &c.runtime, &c.ops, &c.extract, &deps, Router::new(), cancel).await
}

/// The `distillery-extract` binary (also the extraction worker it starts for each document).
pub fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some(crate::WORKER_ARG) {
        return crate::worker_main();
    }
    distillery_runtime::boot::service_main("distillery-extract", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}
