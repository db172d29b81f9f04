//! Dedup: a judged example whose question+answer embedding is within the cosine threshold of an accepted
//! one is rejected as a duplicate; otherwise it is indexed and accepted. The check and the insert are
//! serialised in-process so two near-identical examples arriving together cannot both pass.

use std::sync::Arc;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Accepted, Input, Judged, Metrics, Record, RejectReason, Rejected, Stage, StageError, StageName, Topic, now_ms,
};
use distillery_vector::{Diversity, Embedder, VectorIndex};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

pub mod service;
pub mod vectors;

use crate::vectors::{EmbedderConfig, VectorConfig};

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Dedup;

/// Near-duplicate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Cosine similarity at or above which an example duplicates an accepted one.
    pub threshold: f32,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { threshold: 0.95 }
    }
}

impl DedupConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !(0.5..=1.0).contains(&self.threshold) {
            errors.push(format!("{section}.threshold must be in [0.5, 1] (got {})", self.threshold));
        }
    }
}

/// The text whose embedding represents an example.
pub fn embedding_text(judged: &Judged) -> String {
    judged.draft.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")
}

/// What builds the dedup stage: its threshold, the sentence encoder and the vector index.
#[derive(Debug, Clone, Copy)]
pub struct DedupComponent<'a> {
    pub dedup: &'a DedupConfig,
    pub embedder: &'a EmbedderConfig,
    pub vectors: &'a VectorConfig,
}

impl Component for DedupComponent<'_> {
    type Stage = Dedup;

    async fn build(&self, deps: &Deps) -> Result<Dedup, BuildError> {
        let fail = |e: String| BuildError::one(NAME.as_str(), e);
        let embedder = vectors::embedder(self.embedder).await.map_err(fail)?;
        let index = vectors::index(self.vectors, embedder.dim()).await.map_err(fail)?;
        Ok(Dedup::new(embedder, index, self.dedup.clone())
            .with_diversity_gauge(&deps.metrics, &self.vectors.collection))
    }
}

/// The dedup stage.
#[derive(Debug)]
pub struct Dedup {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<dyn VectorIndex>,
    pub cfg: DedupConfig,
    pub gate: Mutex<()>,
    /// Mean pairwise cosine distance of the records this process accepted (seed 001's diversity KPI).
    pub diversity: std::sync::Mutex<Diversity>,
    /// `distillery_dataset_diversity{dataset}`: the figure above, per dataset (the vector collection).
    gauge: Option<distillery_core::prometheus::Gauge>,
}

/// Accepted records up to which the diversity figure is exact (a uniform sample of this many beyond).
pub const DIVERSITY_EXACT: usize = 2000;

impl Dedup {
    pub fn new(embedder: Arc<dyn Embedder>, index: Arc<dyn VectorIndex>, cfg: DedupConfig) -> Self {
        Dedup {
            embedder,
            index,
            cfg,
            gate: Mutex::new(()),
            diversity: std::sync::Mutex::new(Diversity::new(DIVERSITY_EXACT)),
            gauge: None,
        }
    }

    /// Publishes the diversity of accepted records as `distillery_dataset_diversity{dataset}`.
    pub fn with_diversity_gauge(mut self, metrics: &Metrics, dataset: &str) -> Self {
        let g = metrics.float_gauge_vec(
            "dataset_diversity",
            "Mean pairwise cosine distance of accepted records' embeddings (exact up to 2000 records, sampled beyond)",
            &["dataset"],
        );
        self.gauge = Some(g.with_label_values(&[dataset]));
        self
    }

    fn count_diversity(&self, vector: &[f32]) {
        let mean = {
            let mut d = self.diversity.lock().expect("diversity lock");
            d.add(vector);
            d.mean()
        };
        if let (Some(g), Some(m)) = (&self.gauge, mean) {
            g.set(m);
        }
    }
}

impl Stage for Dedup {
    fn name(&self) -> &'static str {
        NAME.as_str()
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Judged]
    }

    fn default_concurrency(&self) -> usize {
        4
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Judged(judged)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "dedup consumes judged drafts"));
        };
        if !judged.passed {
            return Err(StageError::reject(RejectReason::LowScore, "reached dedup without passing the critic"));
        }
        let vector = self
            .embedder
            .embed(vec![embedding_text(judged)])
            .await
            .map_err(|e| StageError::retry("embed", e.to_string()))?
            .pop()
            .ok_or_else(|| StageError::retry("embed", "no embedding returned"))?;
        let own_id = judged.draft.id.as_str();
        let _gate = self.gate.lock().await;
        let nearest =
            self.index.nearest(&vector).await.map_err(|e| StageError::retry("vector_index", e.to_string()))?;
        if let Some(hit) = &nearest
            && hit.score >= self.cfg.threshold
            && hit.id != own_id
        {
            let detail =
                format!("cosine {:.3} to accepted example {} (threshold {})", hit.score, hit.id, self.cfg.threshold);
            return Ok(vec![Record::Rejected(Rejected::of(
                &Record::Judged(judged.clone()),
                NAME.as_str(),
                RejectReason::Duplicate,
                detail,
            ))]);
        }
        self.index.upsert(own_id, &vector).await.map_err(|e| StageError::retry("vector_index", e.to_string()))?;
        self.count_diversity(&vector);
        Ok(vec![Record::Accepted(Accepted {
            id: own_id.to_string(),
            judged: judged.clone(),
            nearest_similarity: nearest.filter(|h| h.id != own_id).map(|h| h.score),
            accepted_at_ms: now_ms(),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use distillery_core::codec::fixtures;
    use distillery_vector::{EmbedError, MemoryIndex, normalize};

    /// Embeds by letter frequencies: equal texts get equal vectors, different texts differ.
    #[derive(Debug)]
    struct Letters;

    #[async_trait]
    impl Embedder for Letters {
        fn dim(&self) -> usize {
            26
        }
        fn name(&self) -> String {
            "letters".into()
        }
        async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0; 26];
                    for c in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
                        v[(c - b'a') as usize] += 1.0;
                    }
                    normalize(v)
                })
                .collect())
        }
    }

    fn judged(id: &str, q: &str, a: &str) -> Judged {
        let mut j = fixtures::judged();
        j.draft.id = id.into();
        j.draft.messages[0].content = q.into();
        j.draft.messages[1].content = a.into();
        j
    }

    #[tokio::test]
    async fn duplicates_are_rejected_and_replays_are_not() {
        let d = Dedup::new(Arc::new(Letters), Arc::new(MemoryIndex::new(26)), DedupConfig { threshold: 0.97 });
        let run = |j: Judged| {
            let d = &d;
            async move { d.process(Input::record(Topic::Judged, Record::Judged(j))).await.unwrap() }
        };
        let out = run(judged("a", "How many leave days?", "Twenty-five.")).await;
        assert!(matches!(&out[0], Record::Accepted(a) if a.id == "a" && a.nearest_similarity.is_none()));
        // Same words reordered: near-identical letters.
        let out = run(judged("b", "Leave days: how many?", "Twenty-five.")).await;
        let Record::Rejected(r) = &out[0] else { panic!("{out:?}") };
        assert_eq!(r.reason, RejectReason::Duplicate);
        assert!(r.detail.contains("accepted example a"));
        // A replay of an accepted example is accepted again (same id), not a duplicate of itself.
        let out = run(judged("a", "How many leave days?", "Twenty-five.")).await;
        assert!(matches!(&out[0], Record::Accepted(a) if a.id == "a"));
        let out = run(judged("c", "Who approves expense claims?", "The finance controller.")).await;
        assert!(matches!(&out[0], Record::Accepted(a) if a.nearest_similarity.is_some_and(|s| s < 0.97)));
    }
}
