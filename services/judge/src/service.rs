//! The judge stage as a Kafka service: `drafts` to `judged`, `regenerate` or `rejected`.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use distillery_component::Deps;
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_dataset::resume::Resumable;
use distillery_kafka::KafkaConfig;
use distillery_kafka::service::{ServiceError, run_component, run_component_with};
use distillery_llm::LlmConfig;
use distillery_runtime::RuntimeConfig;
use distillery_runtime::boot::OpsConfig;
use tokio_util::sync::CancellationToken;

use crate::{JudgeComponent, JudgeConfig};

distillery_kafka::service_config!(
    no_default
    /// The judge service: `drafts` to `judged`, `regenerate` or `rejected`.
    JudgeServiceConfig {
        /// The judge model.
        llm: LlmConfig,
        /// Threshold and attempts.
        judge: JudgeConfig,
        /// The dataset store the sink writes (`[store] url`, a secret). Set: a draft whose verdict is already
        /// recorded there (redelivered after a crash or a rebalance) gets it back without a judge call, and
        /// each verdict is recorded before it is published. Unset: every draft is judged.
        store: distillery_dataset::StoreConfig,
    }
    validate(s, errors) {
        s.llm.validate("llm", errors);
        s.judge.validate("judge", errors);
        s.store.validate("store", errors);
    }
);

/// A judge's model settings on the generator's server: it samples cold and answers short.
pub fn judge_llm(generator: &LlmConfig) -> LlmConfig {
    LlmConfig { temperature: 0.1, max_tokens: 256, ..generator.clone() }
}

impl Default for JudgeServiceConfig {
    /// The same model defaults as the judge of the one-process run.
    fn default() -> Self {
        JudgeServiceConfig {
            kafka: KafkaConfig::default(),
            runtime: RuntimeConfig::default(),
            ops: OpsConfig::default(),
            llm: judge_llm(&LlmConfig::default()),
            judge: JudgeConfig::default(),
            store: distillery_dataset::StoreConfig::default(),
        }
    }
}

/// Runs the service until `cancel`.
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> Result<(), ServiceError> {
    let c: JudgeServiceConfig = load(config).map_err(|e| ServiceError::Config(e.to_string()))?;
    let deps = Deps::local(Metrics::global());
    let component = JudgeComponent { llm: &c.llm, judge: &c.judge };
    match c.store.open().await.map_err(|e| ServiceError::Config(format!("store: {e}")))? {
        Some(store) => {
            let metrics = deps.metrics.clone();
            let wrap = move |stage| Resumable::new(stage, Arc::new(store)).with_metrics(&metrics);
            run_component_with(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), wrap, cancel).await
        }
        None => run_component(&c.kafka, &c.runtime, &c.ops, &component, &deps, Router::new(), cancel).await,
    }
}

/// The `distillery-judge` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-judge", |config, cancel| async move {
        run(config.as_deref(), cancel).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::config::from_toml;

    #[test]
    fn the_judge_service_samples_like_the_run_judge() {
        let c: JudgeServiceConfig = from_toml("").unwrap();
        assert_eq!((c.llm.temperature, c.llm.max_tokens), (0.1, 256));
    }
}
