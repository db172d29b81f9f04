//! The generate stage as a Kafka service: `chunks` and `regenerate` to `drafts`.

use std::path::Path;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_kafka::service::{ServiceError, run_component};
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
    }
    validate(s, errors) {
        s.llm.validate("llm", errors);
        s.generate.validate("generate", errors);
    }
);

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: GenerateServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let deps = Deps::local(Metrics::global());
    let component = GenerateComponent { llm: &c.llm, generate: &c.generate, embedder: &c.embedder };
    run_component(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), cancel).await
}

/// The `distillery-generate` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-generate", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}
