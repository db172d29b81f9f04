//! How a stage builds itself from its configuration (as vector's `SinkConfig::build(cx)`): each stage's
//! configuration implements [`Component`], taking what is shared from [`Deps`]. The one-process run and
//! every Kafka service build their stages through it, so a stage is wired in exactly one place.

use std::future::Future;
use std::sync::Arc;

use distillery_core::{Metrics, Stage};
use distillery_dataset::DatasetStore;
use distillery_llm::{Ledger, LlmClients};
use distillery_store::Stores;
use distillery_store::registry::{Claims, MemoryClaims, Versions};

/// What stages of one process share.
#[derive(Debug, Clone)]
pub struct Deps {
    pub metrics: Arc<Metrics>,
    /// LLM clients by role; roles on one server share its slots.
    pub llm: Arc<LlmClients>,
    /// Tokens per document (the one-process run's summary); unset in services.
    pub ledger: Option<Arc<Ledger>>,
    /// The object stores documents are read from.
    pub stores: Stores,
    /// Which object first brought a content (ingest).
    pub claims: Arc<dyn Claims>,
    /// Which document is current at a key; unset: records of superseded documents are not marked.
    pub versions: Option<Arc<dyn Versions>>,
    /// The durable dataset (documents, drafts, verdicts, outcomes); unset: the sink writes files only and
    /// nothing is resumable.
    pub dataset: Option<Arc<dyn DatasetStore>>,
}

impl Deps {
    /// Local files only, claims in memory, no version registry, no ledger.
    pub fn local(metrics: Arc<Metrics>) -> Deps {
        Deps {
            llm: Arc::new(LlmClients::new(metrics.clone())),
            metrics,
            ledger: None,
            stores: Stores::local_only(),
            claims: Arc::new(MemoryClaims::default()),
            versions: None,
            dataset: None,
        }
    }
}

/// A component that cannot be built, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {}", problems.join("; "))]
pub struct BuildError {
    pub component: &'static str,
    pub problems: Vec<String>,
}

impl BuildError {
    pub fn new(component: &'static str, problems: Vec<String>) -> BuildError {
        BuildError { component, problems }
    }

    pub fn one(component: &'static str, problem: impl Into<String>) -> BuildError {
        BuildError { component, problems: vec![problem.into()] }
    }
}

/// A stage's configuration, which builds the stage.
pub trait Component: Sync {
    type Stage: Stage;

    /// Builds the stage with what it needs from `deps`.
    fn build(&self, deps: &Deps) -> impl Future<Output = Result<Self::Stage, BuildError>> + Send;

    /// Checks, before any input is taken, that what the stage depends on answers (an LLM server, say).
    fn check(&self, _deps: &Deps) -> impl Future<Output = Result<(), BuildError>> + Send {
        async { Ok(()) }
    }
}
