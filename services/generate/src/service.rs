//! The generate stage as a Kafka service: `chunks` and `regenerate` to `drafts`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_dataset::resume::Resumable;
use distillery_kafka::service::{ServiceError, run_component, run_component_with};
use distillery_llm::LlmConfig;
use distillery_vector::EmbedderConfig;
use tokio_util::sync::CancellationToken;

use crate::{GenerateComponent, GenerateConfig};

distillery_kafka::service_config!(
    /// The generate service: `chunks` and `regenerate` to `drafts`.
    GenerateServiceConfig {
        /// The generator model.
        llm: LlmConfig,
        /// What to generate.
        generate: GenerateConfig,
        /// The sentence encoder comparing questions by meaning.
        embedder: EmbedderConfig,
        /// The dataset store the sink writes (`[store] url`, a secret). Set: a chunk whose every example
        /// already has an outcome there (an unchanged section of an edited document, a replayed chunk) costs
        /// no LLM call, one generated but unfinished continues from its recorded drafts, and each chunk's
        /// drafts are recorded before they are published. Unset: every chunk is generated.
        store: distillery_dataset::StoreConfig,
    }
    validate(s, errors) {
        s.llm.validate("llm", errors);
        s.generate.validate("generate", errors);
        s.store.validate("store", errors);
    }
);

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: GenerateServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let deps = Deps::local(Metrics::global());
    let component = GenerateComponent { llm: &c.llm, generate: &c.generate, embedder: &c.embedder };
    match c.store.open().await.map_err(|e| ServiceError::Config(format!("store: {e}")))? {
        Some(store) => {
            let metrics = deps.metrics.clone();
            let wrap = move |stage| Resumable::new(stage, Arc::new(store)).with_metrics(&metrics);
            run_component_with(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), wrap, cancel).await
        }
        None => run_component(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), cancel).await,
    }
}

/// The `distillery-generate` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-generate", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}
