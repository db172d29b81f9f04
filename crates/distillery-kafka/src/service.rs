//! A stage as a Kafka service: the settings every service has (Kafka, runtime, ops endpoint, declared by
//! [`service_config!`](crate::service_config)) and the one routine every service runs: serve the ops
//! endpoint, build the stage through its component, consume until SIGTERM, drain.

use std::sync::Arc;

use axum::Router;
use distillery_component::{BuildError, Component, Deps};
use distillery_core::Stage;
use distillery_runtime::RuntimeConfig;
use distillery_runtime::boot::{OpsConfig, serve_ops};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::consumer::run_stage;
use crate::error::KafkaRuntimeError;
use crate::llm_budget::{KafkaBudgetShare, Timing};

#[doc(hidden)]
pub mod __private {
    pub use distillery_core::config::Settings;
    pub use distillery_runtime::RuntimeConfig;
    pub use distillery_runtime::boot::OpsConfig;
}

/// Why a service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("binding the ops endpoint {addr}: {source}")]
    Ops { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Kafka(#[from] KafkaRuntimeError),
    #[error("{0}")]
    Other(String),
}

/// Checks the runtime settings every service shares.
pub fn validate_runtime(r: &RuntimeConfig, errors: &mut Vec<String>) {
    if r.concurrency == Some(0) {
        errors.push("runtime.concurrency must be > 0".into());
    }
    if r.retry.max_attempts == 0 {
        errors.push("runtime.retry.max_attempts must be >= 1".into());
    }
}

/// The settings of a Kafka service: `kafka`, `runtime` and `ops` sections, then the stage's own fields;
/// validation checks the shared sections, then runs the given body.
#[macro_export]
macro_rules! service_config {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        $crate::service_config!(@def [Default] $(#[$m])* $name { $($(#[$fm])* $field : $ty),* } validate($s, $e) $body);
    };
    (no_default $(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        $crate::service_config!(@def [] $(#[$m])* $name { $($(#[$fm])* $field : $ty),* } validate($s, $e) $body);
    };
    (@def [$($d:ident)?] $(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize $(, $d)?)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Kafka connection and topics.
            pub kafka: $crate::KafkaConfig,
            /// Concurrency, retries and draining.
            pub runtime: $crate::service::__private::RuntimeConfig,
            /// The /metrics endpoint.
            pub ops: $crate::service::__private::OpsConfig,
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $crate::service::__private::Settings for $name {
            fn validate(&self, $e: &mut Vec<String>) {
                self.kafka.validate($e);
                $crate::service::validate_runtime(&self.runtime, $e);
                let $s = self;
                $body
            }
        }
    };
}

/// Serves the ops endpoint (with `extra` routes), builds the stage from `component`, marks the service ready
/// and consumes its topics until `cancel`.
pub async fn run_component<C: Component>(
    kafka: &KafkaConfig,
    runtime: &RuntimeConfig,
    ops: &OpsConfig,
    component: &C,
    deps: &Deps,
    extra: Router,
    cancel: CancellationToken,
) -> Result<(), ServiceError> {
    run_component_with(kafka, runtime, ops, component, deps, extra, |stage| stage, cancel).await
}

/// As [`run_component`], with the built stage wrapped by `wrap` before it consumes (a stage whose work is
/// recorded in and skipped by a store, for one).
#[allow(clippy::too_many_arguments)]
pub async fn run_component_with<C: Component, S: Stage>(
    kafka: &KafkaConfig,
    runtime: &RuntimeConfig,
    ops: &OpsConfig,
    component: &C,
    deps: &Deps,
    extra: Router,
    wrap: impl FnOnce(C::Stage) -> S,
    cancel: CancellationToken,
) -> Result<(), ServiceError> {
    let ready = serve_ops(ops, deps.metrics.clone(), extra, &cancel)
        .await
        .map_err(|source| ServiceError::Ops { addr: ops.listen, source })?;
    // The LLM clients this stage builds share their endpoints' budgets with the other replicas.
    let share = KafkaBudgetShare::new(kafka, Timing::default());
    deps.llm.share_budgets(Arc::new(share.clone()));
    let stage = wrap(component.build(deps).await?);
    let result = run_stage(kafka, runtime, Arc::new(stage), deps.metrics.clone(), ready, cancel).await;
    // Drained: nothing in flight, so this replica's part goes back to the others now.
    share.leave().await;
    result?;
    Ok(())
}
