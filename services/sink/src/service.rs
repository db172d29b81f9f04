//! The sink stage as a Kafka service: `accepted`, `rejected`, `dead-letter` and extracted `documents` into
//! the dataset.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_export::Format;
use distillery_kafka::service::{ServiceError, run_component};
use distillery_store::registry::ClaimsConfig;
use distillery_store::{S3Config, S3Store, Stores};
use tokio_util::sync::CancellationToken;

use crate::{OutputConfig, SinkComponent, SinkConfig};

distillery_kafka::service_config!(
    /// The sink service: `accepted`, `rejected`, `dead-letter` and extracted `documents` into the dataset.
    SinkServiceConfig {
        /// The S3-compatible store (when the output is a bucket).
        s3: S3Config,
        /// Where the dataset goes.
        output: OutputConfig,
        /// Formats written as records arrive.
        sink: SinkConfig,
        /// The registry, to mark records of superseded documents.
        claims: ClaimsConfig,
        /// The dataset store every record is written to before its lines (`[store] url`, a secret); unset:
        /// files only (and readers drop repeated ids).
        store: distillery_dataset::StoreConfig,
    }
    validate(s, errors) {
        if s.output.dir.is_none() == s.output.bucket.is_none() {
            errors.push("output: set exactly one of output.dir and output.bucket".into());
        }
        if s.sink.formats.contains(&Format::Parquet) {
            errors.push("sink.formats: parquet is written by `distillery export`, not per record".into());
        }
        s.s3.validate("s3", errors);
        s.store.validate("store", errors);
    }
);

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: SinkServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let s3: Arc<dyn distillery_store::ObjectStore> = Arc::new(S3Store::connect(&c.s3).await);
    let mut deps = Deps::local(Metrics::global());
    deps.versions = c.claims.versions(&s3);
    deps.stores = Stores::with_s3(s3);
    if let Some(store) = c.store.open().await.map_err(|e| ServiceError::Config(format!("store: {e}")))? {
        deps.dataset = Some(Arc::new(store));
    }
    let component = SinkComponent { sink: &c.sink, output: &c.output };
    run_component(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), cancel).await
}

/// The `distillery-sink` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-sink", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::config::from_toml;

    #[test]
    fn the_sink_needs_one_output() {
        assert!(from_toml::<SinkServiceConfig>("").is_err(), "the sink needs an output");
        from_toml::<SinkServiceConfig>("[output]\ndir = \"/tmp/x\"").unwrap();
        let bad = from_toml::<SinkServiceConfig>("[store]\nurl = \"mysql://x\"\n[output]\ndir = \"/tmp/x\"");
        assert!(bad.unwrap_err().to_string().contains("store"), "an unknown database scheme is refused");
        let ok = from_toml::<SinkServiceConfig>("[store]\nurl = \"postgres://u:pw@db/ds\"\n[output]\ndir = \"/tmp/x\"");
        assert!(!format!("{:?}", ok.unwrap()).contains("pw"), "the store URL is a secret");
    }
}
