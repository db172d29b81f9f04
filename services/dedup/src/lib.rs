//! Dedup: a judged example that repeats an accepted one is rejected as a `duplicate` naming the accepted
//! record and the similarity; otherwise it is accepted and stored in the vector index.
//!
//! Each example first goes through the lexical pass (exact text after normalisation, the same answer to a
//! contained question, MinHash over word shingles), then its sentence embedding's cosine is compared. What
//! is a duplicate of an already accepted example is answered at once; what looks new is appended as a claim
//! to the claims log, and the verdict is the one every worker's [`replica`] reaches there: with N workers,
//! of concurrent near-duplicates exactly the first claim in the log is accepted (see `replica`).

use std::sync::Arc;
use std::time::Duration;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::ordered_log::{MemoryLog, OrderedLog};
use distillery_core::prometheus::IntCounterVec;
use distillery_core::{
    Accepted, Input, Judged, Metrics, Record, RejectReason, Rejected, Stage, StageError, StageName, Topic, now_ms,
};
use distillery_vector::lexical::Features;
use distillery_vector::{Diversity, Embedder, Scope, VectorIndex};
use serde::{Deserialize, Serialize};

pub mod decide;
pub mod replica;
pub mod service;
pub mod vectors;

use crate::decide::{Claim, DuplicateOf, Verdict, cosine_match, lexical, nearest_other};
use crate::replica::Replica;
use crate::vectors::{EmbedderConfig, VectorConfig};

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Dedup;

/// Near-duplicate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Cosine similarity of sentence embeddings at or above which an example duplicates an accepted one.
    pub threshold: f32,
    /// Estimated Jaccard similarity of word 3-shingles (MinHash) at or above which an example duplicates an
    /// accepted one, before any embedding.
    pub minhash_threshold: f32,
    /// With the same normalised answer, the share of the shorter question's words found in the other's at
    /// or above which an example duplicates an accepted one ("... in Larkspur Instruments?" added).
    pub question_containment: f32,
    /// The dataset examples are compared within (a payload field of the index: one collection can hold
    /// several datasets).
    pub dataset: String,
    /// How long a worker waits for the verdict on its claim before the input is retried, in seconds.
    pub verdict_timeout_secs: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            threshold: 0.95,
            minhash_threshold: 0.8,
            question_containment: 0.9,
            dataset: "default".into(),
            verdict_timeout_secs: 60,
        }
    }
}

impl DedupConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !(0.5..=1.0).contains(&self.threshold) {
            errors.push(format!("{section}.threshold must be in [0.5, 1] (got {})", self.threshold));
        }
        if !(0.3..=1.0).contains(&self.minhash_threshold) {
            errors.push(format!("{section}.minhash_threshold must be in [0.3, 1] (got {})", self.minhash_threshold));
        }
        if !(0.5..=1.0).contains(&self.question_containment) {
            errors.push(format!(
                "{section}.question_containment must be in [0.5, 1] (got {})",
                self.question_containment
            ));
        }
        if self.dataset.trim().is_empty() {
            errors.push(format!("{section}.dataset must not be empty"));
        }
        if self.verdict_timeout_secs == 0 {
            errors.push(format!("{section}.verdict_timeout_secs must be > 0"));
        }
    }
}

/// The text whose embedding represents an example.
pub fn embedding_text(judged: &Judged) -> String {
    judged.draft.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n")
}

/// The lexical features of an example.
pub fn features(judged: &Judged) -> Features {
    Features::of(&embedding_text(judged), judged.draft.question(), judged.draft.answer())
}

/// What builds the dedup stage: its settings, the sentence encoder, the vector index and the claims log.
#[derive(Debug, Clone)]
pub struct DedupComponent<'a> {
    pub dedup: &'a DedupConfig,
    pub embedder: &'a EmbedderConfig,
    pub vectors: &'a VectorConfig,
    /// The claims log shared by every worker (a Kafka topic); unset: one in this process's memory.
    pub log: Option<Arc<dyn OrderedLog>>,
}

impl Component for DedupComponent<'_> {
    type Stage = Dedup;

    async fn build(&self, deps: &Deps) -> Result<Dedup, BuildError> {
        let fail = |e: String| BuildError::one(NAME.as_str(), e);
        let embedder = vectors::embedder(self.embedder).await.map_err(fail)?;
        let index = vectors::index(self.vectors, embedder.dim()).await.map_err(fail)?;
        let log = self.log.clone().unwrap_or_else(|| Arc::new(MemoryLog::new(format!("local-{}", now_ms()))));
        Ok(Dedup::new(embedder, index, self.dedup.clone(), log, &deps.metrics)
            .with_diversity_gauge(&deps.metrics, &self.vectors.collection))
    }
}

/// The dedup stage.
#[derive(Debug)]
pub struct Dedup {
    pub embedder: Arc<dyn Embedder>,
    pub index: Arc<dyn VectorIndex>,
    pub cfg: DedupConfig,
    replica: Replica,
    log_name: String,
    /// Duplicates found, by method and by where (`precheck`: against examples accepted before; `claim`: in
    /// the claims log, against concurrent ones).
    duplicates: IntCounterVec,
    /// Mean pairwise cosine distance of the records this process accepted (seed 001's diversity KPI).
    pub diversity: std::sync::Mutex<Diversity>,
    /// `distillery_dataset_diversity{dataset}`: the figure above, per dataset (the vector collection).
    gauge: Option<distillery_core::prometheus::Gauge>,
}

/// Accepted records up to which the diversity figure is exact (a uniform sample of this many beyond).
pub const DIVERSITY_EXACT: usize = 2000;

impl Dedup {
    /// The stage, with its replica of `log` reading into `index` from now on.
    pub fn new(
        embedder: Arc<dyn Embedder>,
        index: Arc<dyn VectorIndex>,
        cfg: DedupConfig,
        log: Arc<dyn OrderedLog>,
        metrics: &Metrics,
    ) -> Self {
        let log_name = log.name().to_string();
        Dedup {
            replica: Replica::start(log, index.clone(), cfg.clone(), metrics),
            log_name,
            embedder,
            index,
            cfg,
            duplicates: metrics.counter_vec(
                "dedup_duplicates_total",
                "Duplicates found by dedup, by method (exact, same_answer, minhash, cosine) and path (precheck, claim)",
                &["method", "path"],
            ),
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

    async fn embed(&self, judged: &Judged) -> Result<Vec<f32>, StageError> {
        self.embedder
            .embed(vec![embedding_text(judged)])
            .await
            .map_err(|e| StageError::retry("embed", e.to_string()))?
            .pop()
            .ok_or_else(|| StageError::retry("embed", "no embedding returned"))
    }

    fn duplicate(&self, judged: &Judged, d: DuplicateOf, path: &str) -> Vec<Record> {
        self.duplicates.with_label_values(&[d.method.as_str(), path]).inc();
        tracing::debug!(id = %judged.draft.id, of = %d.id, method = d.method.as_str(), similarity = d.similarity, path, "duplicate");
        vec![Record::Rejected(Rejected::of(
            &Record::Judged(judged.clone()),
            NAME.as_str(),
            RejectReason::Duplicate,
            d.detail(),
        ))]
    }

    fn accepted(judged: &Judged, nearest: Option<f32>) -> Vec<Record> {
        vec![Record::Accepted(Accepted {
            id: judged.draft.id.clone(),
            judged: judged.clone(),
            nearest_similarity: nearest,
            accepted_at_ms: now_ms(),
        })]
    }
}

fn index_error(e: distillery_vector::IndexError) -> StageError {
    StageError::retry("vector_index", e.to_string())
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
        let id = judged.draft.id.as_str();
        let f = features(judged);
        // Against what is accepted already: a final answer without the log (accepted points never leave).
        let seen = Scope { dataset: &self.cfg.dataset, log: &self.log_name, before: None };
        let index = &*self.index;
        if index.contains(&seen, id).await.map_err(index_error)? {
            let vector = self.embed(judged).await?;
            let nearest = nearest_other(index, &seen, id, &vector).await.map_err(index_error)?;
            return Ok(Self::accepted(judged, nearest.map(|h| h.score)));
        }
        if let Some(d) = lexical(index, &seen, id, &f, &self.cfg).await.map_err(index_error)? {
            return Ok(self.duplicate(judged, d, "precheck"));
        }
        let vector = self.embed(judged).await?;
        let nearest = nearest_other(index, &seen, id, &vector).await.map_err(index_error)?;
        if let Some(d) = cosine_match(&nearest, &self.cfg) {
            return Ok(self.duplicate(judged, d, "precheck"));
        }
        // New as far as this worker knows: the claims log decides against concurrent claims.
        let claim = Claim::new(uuid::Uuid::new_v4().to_string(), &self.cfg.dataset, id, vector.clone(), f);
        let timeout = Duration::from_secs(self.cfg.verdict_timeout_secs);
        match self.replica.claim(&claim, timeout).await.map_err(|e| StageError::retry("claims_log", e))? {
            Verdict::Accepted { nearest } => {
                self.count_diversity(&vector);
                Ok(Self::accepted(judged, nearest))
            }
            Verdict::Replay { nearest } => Ok(Self::accepted(judged, nearest)),
            Verdict::Duplicate(d) => Ok(self.duplicate(judged, d, "claim")),
        }
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

    fn stage(log: &MemoryLog, threshold: f32) -> Dedup {
        let cfg = DedupConfig { threshold, ..DedupConfig::default() };
        Dedup::new(Arc::new(Letters), Arc::new(MemoryIndex::new(26)), cfg, Arc::new(log.clone()), &Metrics::isolated())
    }

    async fn run(d: &Dedup, j: Judged) -> Record {
        d.process(Input::record(Topic::Judged, Record::Judged(j))).await.unwrap().remove(0)
    }

    fn duplicate_of(r: &Record) -> DuplicateOf {
        let Record::Rejected(r) = r else { panic!("not rejected: {r:?}") };
        assert_eq!(r.reason, RejectReason::Duplicate);
        DuplicateOf::parse(&r.detail).unwrap_or_else(|| panic!("detail {}", r.detail))
    }

    #[tokio::test]
    async fn duplicates_are_rejected_and_replays_are_not() {
        let log = MemoryLog::new("claims");
        let d = stage(&log, 0.97);
        let out = run(&d, judged("a", "How many leave days?", "Twenty-five.")).await;
        assert!(matches!(&out, Record::Accepted(a) if a.id == "a" && a.nearest_similarity.is_none()));
        // The same question reworded, the same answer: the lexical pass finds it.
        let dup = duplicate_of(&run(&d, judged("q", "Leave days: how many?", "Twenty-five.")).await);
        assert_eq!((dup.id.as_str(), dup.method, dup.similarity), ("a", decide::Method::SameAnswer, 1.0));
        // Other words of the same letters: nothing lexical in common, the embedding is identical.
        let dup = duplicate_of(&run(&d, judged("b", "Yam nowh evael sady?", "Twenty-five.")).await);
        assert_eq!((dup.id.as_str(), dup.method), ("a", decide::Method::Cosine));
        assert!(dup.similarity >= 0.97);
        // Verbatim but for case and punctuation: found before any embedding.
        let dup = duplicate_of(&run(&d, judged("c", "how many leave days", "twenty five")).await);
        assert_eq!((dup.id.as_str(), dup.method, dup.similarity), ("a", decide::Method::Exact, 1.0));
        // A replay of an accepted example is accepted again (same id), not a duplicate of itself.
        let out = run(&d, judged("a", "How many leave days?", "Twenty-five.")).await;
        assert!(matches!(&out, Record::Accepted(a) if a.id == "a"));
        let out = run(&d, judged("e", "Who approves expense claims?", "The finance controller.")).await;
        assert!(matches!(&out, Record::Accepted(a) if a.nearest_similarity.is_some_and(|s| s < 0.97)));
        // Only the two new examples were claimed; duplicates and the replay were answered without the log.
        assert_eq!(log.len(), 2);
    }

    #[tokio::test]
    async fn two_replicas_on_one_log_accept_exactly_one_of_concurrent_duplicates() {
        // Two workers with indexes of their own, sharing only the claims log.
        let log = MemoryLog::new("claims");
        let (w1, w2) = (Arc::new(stage(&log, 0.97)), Arc::new(stage(&log, 0.97)));
        let variants = [
            ("v1", "How many leave days do staff get?", "Twenty-five."),
            ("v2", "how many leave-days do staff get", "Twenty-five"),
            ("v3", "Staff get how many leave days?", "Twenty-five."),
            ("v4", "Do staff get how many leave days?", "Twenty-five."),
        ];
        let mut tasks = Vec::new();
        for (i, (id, q, a)) in variants.into_iter().enumerate() {
            let w = if i % 2 == 0 { w1.clone() } else { w2.clone() };
            tasks.push(tokio::spawn(async move { run(&w, judged(id, q, a)).await }));
        }
        let mut accepted = Vec::new();
        let mut dups = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Record::Accepted(a) => accepted.push(a.id),
                r => dups.push(duplicate_of(&r)),
            }
        }
        assert_eq!(accepted.len(), 1, "accepted {accepted:?}, duplicates {dups:?}");
        assert_eq!(dups.len(), 3);
        assert!(dups.iter().all(|d| d.id == accepted[0] && d.similarity >= d.threshold), "{dups:?}");
    }

    #[tokio::test]
    async fn an_index_kept_in_a_folder_finds_duplicates_of_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        let cfg = DedupConfig { threshold: 0.97, ..DedupConfig::default() };
        let open = |run: &str| {
            let index: Arc<dyn VectorIndex> = Arc::new(distillery_vector::EdgeIndex::open(&path, 26).unwrap());
            let d = Dedup::new(
                Arc::new(Letters),
                index.clone(),
                cfg.clone(),
                Arc::new(MemoryLog::new(run)),
                &Metrics::isolated(),
            );
            (d, Arc::downgrade(&index))
        };
        let (run1, index1) = open("run-1");
        assert!(matches!(run(&run1, judged("a", "How many leave days?", "Twenty-five.")).await, Record::Accepted(_)));
        // The run ends: its stage and replica let go of the folder.
        drop(run1);
        while index1.strong_count() > 0 {
            tokio::task::yield_now().await;
        }
        // A later run, with a claims log of its own, opens the same folder.
        let (run2, index2) = open("run-2");
        let dup = duplicate_of(&run(&run2, judged("b", "Yam nowh evael sady?", "Twenty-five.")).await);
        assert_eq!((dup.id.as_str(), dup.method), ("a", decide::Method::Cosine));
        let dup = duplicate_of(&run(&run2, judged("c", "how many leave days", "twenty five")).await);
        assert_eq!((dup.id.as_str(), dup.method), ("a", decide::Method::Exact));
        // The earlier run's record again (a resumed run republishes it): accepted, not a duplicate of itself.
        assert!(
            matches!(run(&run2, judged("a", "How many leave days?", "Twenty-five.")).await, Record::Accepted(a) if a.id == "a")
        );
        assert_eq!(run2.index.count(&cfg.dataset).await.unwrap(), 1);
        // The engine writes its segments when the last handle goes: before the folder is removed.
        drop(run2);
        while index2.strong_count() > 0 {
            tokio::task::yield_now().await;
        }
    }
}
