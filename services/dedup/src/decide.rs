//! The dedup decision: what a claim becomes, as a deterministic function of the accepted examples in view.
//!
//! Order of checks: a record already accepted (a replay) stays accepted; then the lexical pass (exact text,
//! same answer to a contained question, MinHash); then the embedding's cosine. A claim that passes them all
//! is accepted and stored. Ties go to the higher similarity, then the lower record id, so every replica that
//! decides the same claim against the same points names the same duplicate.

use distillery_vector::lexical::{Features, containment, jaccard_estimate};
use distillery_vector::{Hit, IndexError, Point, Scope, Stored, VectorIndex};
use serde::{Deserialize, Serialize};

use crate::DedupConfig;

/// Candidates a lexical lookup considers at most.
pub const LEXICAL_CANDIDATES: usize = 64;
/// A question needs this many distinct words for the same-answer check (a two-word question contained in
/// another says little).
pub const MIN_QUESTION_WORDS: usize = 3;

/// How a duplicate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The same text after normalisation.
    Exact,
    /// The same normalised answer, and one question's words contain the other's.
    SameAnswer,
    /// MinHash estimate of the shingles' Jaccard similarity.
    MinHash,
    /// Cosine of the sentence embeddings.
    Cosine,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Exact, Method::SameAnswer, Method::MinHash, Method::Cosine];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::SameAnswer => "same_answer",
            Method::MinHash => "minhash",
            Method::Cosine => "cosine",
        }
    }

    pub fn from_name(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What an example duplicates: the accepted record, how similar, and by which measure.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateOf {
    pub id: String,
    pub similarity: f32,
    pub method: Method,
    /// The threshold the similarity reached.
    pub threshold: f32,
}

impl DuplicateOf {
    /// The rejection's `detail`: `duplicate of <id>: <method> similarity <s> (threshold <t>)`.
    pub fn detail(&self) -> String {
        format!(
            "duplicate of {}: {} similarity {:.4} (threshold {})",
            self.id,
            self.method.as_str(),
            self.similarity,
            self.threshold
        )
    }

    /// Reads a [`detail`](Self::detail) back.
    pub fn parse(detail: &str) -> Option<DuplicateOf> {
        let rest = detail.strip_prefix("duplicate of ")?;
        let (id, rest) = rest.split_once(": ")?;
        let (method, rest) = rest.split_once(" similarity ")?;
        let (similarity, rest) = rest.split_once(" (threshold ")?;
        Some(DuplicateOf {
            id: id.to_string(),
            similarity: similarity.parse().ok()?,
            method: Method::from_name(method)?,
            threshold: rest.strip_suffix(')')?.parse().ok()?,
        })
    }
}

/// What dedup says about an example.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// New: stored; `nearest` is the cosine to the most similar other accepted example.
    Accepted {
        nearest: Option<f32>,
    },
    /// Accepted before (a replayed input): accepted again, nothing stored.
    Replay {
        nearest: Option<f32>,
    },
    Duplicate(DuplicateOf),
}

/// An example offered for acceptance: what the claims log carries (every replica decides it from this alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Unique per append: how the worker that wrote it finds its verdict.
    pub nonce: String,
    pub dataset: String,
    /// The record id.
    pub id: String,
    pub vector: Vec<f32>,
    pub exact: String,
    pub answer: Option<String>,
    pub bands: Vec<String>,
    pub signature: Vec<u32>,
    pub question: Vec<u32>,
}

impl Claim {
    pub fn new(nonce: String, dataset: &str, id: &str, vector: Vec<f32>, f: Features) -> Claim {
        Claim {
            nonce,
            dataset: dataset.to_string(),
            id: id.to_string(),
            vector,
            exact: f.exact,
            answer: f.answer,
            bands: f.bands,
            signature: f.signature,
            question: f.question,
        }
    }

    pub fn features(&self) -> Features {
        Features {
            exact: self.exact.clone(),
            answer: self.answer.clone(),
            bands: self.bands.clone(),
            signature: self.signature.clone(),
            question: self.question.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a claim serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Claim, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// The lexical duplicate among `candidates`, if any (never `own_id` itself).
pub fn lexical_match(f: &Features, own_id: &str, candidates: &[Stored], cfg: &DedupConfig) -> Option<DuplicateOf> {
    let mut best: Option<DuplicateOf> = None;
    for c in candidates.iter().filter(|c| c.id != own_id) {
        let found = if c.keys.contains(&f.exact) {
            Some((Method::Exact, 1.0, 1.0))
        } else if f.answer.as_ref().is_some_and(|a| c.keys.contains(a))
            && f.question.len().min(c.question.len()) >= MIN_QUESTION_WORDS
            && containment(&f.question, &c.question) >= cfg.question_containment
        {
            Some((Method::SameAnswer, containment(&f.question, &c.question), cfg.question_containment))
        } else {
            let j = jaccard_estimate(&f.signature, &c.signature);
            (j >= cfg.minhash_threshold).then_some((Method::MinHash, j, cfg.minhash_threshold))
        };
        if let Some((method, similarity, threshold)) = found {
            let better =
                best.as_ref().is_none_or(|b| similarity > b.similarity || (similarity == b.similarity && c.id < b.id));
            if better {
                best = Some(DuplicateOf { id: c.id.clone(), similarity, method, threshold });
            }
        }
    }
    best
}

/// The lexical pass against the index (before any embedding).
pub async fn lexical(
    index: &dyn VectorIndex,
    scope: &Scope<'_>,
    id: &str,
    f: &Features,
    cfg: &DedupConfig,
) -> Result<Option<DuplicateOf>, IndexError> {
    let candidates = index.by_keys(scope, &f.keys(), LEXICAL_CANDIDATES).await?;
    Ok(lexical_match(f, id, &candidates, cfg))
}

/// The most similar other example by embedding.
pub async fn nearest_other(
    index: &dyn VectorIndex,
    scope: &Scope<'_>,
    id: &str,
    vector: &[f32],
) -> Result<Option<Hit>, IndexError> {
    Ok(index.nearest(scope, vector, 2).await?.into_iter().find(|h| h.id != id))
}

/// The cosine duplicate, if the nearest other example reaches the threshold.
pub fn cosine_match(nearest: &Option<Hit>, cfg: &DedupConfig) -> Option<DuplicateOf> {
    nearest.as_ref().filter(|h| h.score >= cfg.threshold).map(|h| DuplicateOf {
        id: h.id.clone(),
        similarity: h.score,
        method: Method::Cosine,
        threshold: cfg.threshold,
    })
}

/// Decides claim `claim` at position `seq` of log `log`, against the points accepted before it (and every
/// point of other logs), and stores it when accepted. The same claim, position and points give the same
/// verdict on every replica.
pub async fn decide(
    index: &dyn VectorIndex,
    cfg: &DedupConfig,
    log: &str,
    seq: u64,
    claim: &Claim,
) -> Result<Verdict, IndexError> {
    let scope = Scope { dataset: &claim.dataset, log, before: Some(seq) };
    if index.contains(&scope, &claim.id).await? {
        let nearest = nearest_other(index, &scope, &claim.id, &claim.vector).await?;
        return Ok(Verdict::Replay { nearest: nearest.map(|h| h.score) });
    }
    let features = claim.features();
    if let Some(d) = lexical(index, &scope, &claim.id, &features, cfg).await? {
        return Ok(Verdict::Duplicate(d));
    }
    let nearest = nearest_other(index, &scope, &claim.id, &claim.vector).await?;
    if let Some(d) = cosine_match(&nearest, cfg) {
        return Ok(Verdict::Duplicate(d));
    }
    let keys = features.keys();
    index
        .upsert(Point {
            id: claim.id.clone(),
            dataset: claim.dataset.clone(),
            log: log.to_string(),
            seq,
            vector: claim.vector.clone(),
            keys,
            signature: features.signature,
            question: features.question,
        })
        .await?;
    Ok(Verdict::Accepted { nearest: nearest.map(|h| h.score) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_vector::{MemoryIndex, normalize};

    fn claim(id: &str, v: Vec<f32>, q: &str, a: &str) -> Claim {
        Claim::new(format!("n-{id}"), "d", id, normalize(v), Features::of(&format!("{q}\n{a}"), q, a))
    }

    #[test]
    fn detail_round_trips() {
        let d = DuplicateOf { id: "abc".into(), similarity: 0.9731, method: Method::Cosine, threshold: 0.95 };
        assert_eq!(d.detail(), "duplicate of abc: cosine similarity 0.9731 (threshold 0.95)");
        assert_eq!(DuplicateOf::parse(&d.detail()), Some(d));
        assert_eq!(DuplicateOf::parse("cosine 0.9 to accepted example x"), None);
    }

    #[test]
    fn claims_round_trip() {
        let c = claim("a", vec![0.3, 0.4, 0.5], "How many leave days?", "Twenty-five.");
        assert_eq!(Claim::decode(&c.encode()).unwrap(), c);
        assert!(Claim::decode(b"{not a claim").is_err());
    }

    #[tokio::test]
    async fn decisions_follow_the_log_order_and_name_what_they_duplicate() {
        let idx = MemoryIndex::new(3);
        let cfg = DedupConfig::default();
        let a = claim("a", vec![1.0, 0.0, 0.0], "What is the notice period for resignations?", "One month.");
        // The same question qualified, the same answer: lexical, though the vectors differ.
        let b = claim(
            "b",
            vec![0.0, 1.0, 0.0],
            "What is the notice period for resignations in Larkspur Instruments?",
            "One month.",
        );
        // Different words, nearly the same vector.
        let c = claim("c", vec![0.99, 0.05, 0.0], "How long must staff wait before leaving?", "Four weeks.");
        let e = claim("e", vec![0.0, 0.0, 1.0], "Who signs off expenses?", "The finance controller.");
        assert_eq!(decide(&idx, &cfg, "log", 0, &a).await.unwrap(), Verdict::Accepted { nearest: None });
        let Verdict::Duplicate(d) = decide(&idx, &cfg, "log", 1, &b).await.unwrap() else { panic!() };
        assert_eq!((d.id.as_str(), d.method, d.similarity), ("a", Method::SameAnswer, 1.0));
        let Verdict::Duplicate(d) = decide(&idx, &cfg, "log", 2, &c).await.unwrap() else { panic!() };
        assert_eq!((d.id.as_str(), d.method), ("a", Method::Cosine));
        assert!(d.similarity > 0.95);
        assert!(
            matches!(decide(&idx, &cfg, "log", 3, &e).await.unwrap(), Verdict::Accepted { nearest: Some(s) } if s < 0.1)
        );
        // A's claim again, later (a redelivered input): a replay, not a duplicate of itself.
        assert!(matches!(decide(&idx, &cfg, "log", 4, &a).await.unwrap(), Verdict::Replay { .. }));
        // The exact text again under another id.
        let a2 = claim("a2", vec![0.0, 1.0, 1.0], "what is the notice period for resignations", "one month");
        let Verdict::Duplicate(d) = decide(&idx, &cfg, "log", 5, &a2).await.unwrap() else { panic!() };
        assert_eq!((d.id.as_str(), d.method), ("a", Method::Exact));
        assert_eq!(idx.count("d").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_replica_deciding_an_earlier_position_does_not_see_later_points() {
        // Replica 1 has decided positions 0 and 1 into a shared index; replica 2, still at position 0,
        // must reach the verdict replica 1 reached there.
        let idx = MemoryIndex::new(3);
        let cfg = DedupConfig::default();
        let x = claim("x", vec![1.0, 0.0, 0.0], "Where is the office?", "In Lyon.");
        let y = claim("y", vec![1.0, 0.01, 0.0], "Where is the head office located?", "Lyon, France.");
        assert_eq!(decide(&idx, &cfg, "log", 0, &x).await.unwrap(), Verdict::Accepted { nearest: None });
        assert!(matches!(decide(&idx, &cfg, "log", 1, &y).await.unwrap(), Verdict::Duplicate(_)));
        assert_eq!(decide(&idx, &cfg, "log", 0, &x).await.unwrap(), Verdict::Accepted { nearest: None });
        assert!(matches!(decide(&idx, &cfg, "log", 1, &y).await.unwrap(), Verdict::Duplicate(d) if d.id == "x"));
    }
}
