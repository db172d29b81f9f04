//! Indexes of accepted examples for near-duplicate search: each point is one accepted example with its
//! unit vector (cosine), its dataset, the claims log and position it was accepted at, and its lexical
//! features. Queries see one dataset, and of the points accepted from one log only those before a position
//! (so replicas deciding the same log position see the same points).
//!
//! Implementations: [`MemoryIndex`] (brute force, tests), [`crate::edge::EdgeIndex`] (Qdrant's engine
//! in-process, on disk: the embedded run and a service without Qdrant) and [`QdrantIndex`] (a Qdrant server
//! over gRPC).

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType,
    Filter, GetPointsBuilder, PointStruct, QueryPointsBuilder, Range, ScrollPointsBuilder, UpsertPointsBuilder, Value,
    VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};

use crate::embed::dot;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    #[error("vector index: {0}")]
    Backend(String),
    #[error("vector has {got} dimensions, the index {expected}")]
    Dimension { expected: usize, got: usize },
}

/// A similar stored example.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// One accepted example.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The record id (a content hash).
    pub id: String,
    pub dataset: String,
    /// The claims log it was accepted from, and its position there.
    pub log: String,
    pub seq: u64,
    pub vector: Vec<f32>,
    /// Lexical lookup keys (`x:`, `a:`, `b<i>:`; see `lexical::Features::keys`).
    pub keys: Vec<String>,
    /// MinHash signature of the whole text.
    pub signature: Vec<u32>,
    /// Hashes of the question's words.
    pub question: Vec<u32>,
}

/// What a lexical lookup returns: a stored example without its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: String,
    pub keys: Vec<String>,
    pub signature: Vec<u32>,
    pub question: Vec<u32>,
}

/// The points a query sees: one dataset; of log `log`, only points before `before` (the other logs' points,
/// earlier runs', are all seen). `before: None` sees every point of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub dataset: &'a str,
    pub log: &'a str,
    pub before: Option<u64>,
}

impl Scope<'_> {
    /// Whether a stored point is in view.
    pub fn sees(&self, dataset: &str, log: &str, seq: u64) -> bool {
        dataset == self.dataset && (log != self.log || self.before.is_none_or(|b| seq < b))
    }
}

/// Orders hits best first: higher score, then lower id (so every replica names the same one).
pub fn rank(hits: &mut [Hit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

#[async_trait]
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// The `limit` most similar points in scope, best first.
    async fn nearest(&self, scope: &Scope<'_>, v: &[f32], limit: usize) -> Result<Vec<Hit>, IndexError>;
    /// Points in scope sharing at least one of `keys`, at most `limit`.
    async fn by_keys(&self, scope: &Scope<'_>, keys: &[String], limit: usize) -> Result<Vec<Stored>, IndexError>;
    /// Whether the example `id` is stored and in scope.
    async fn contains(&self, scope: &Scope<'_>, id: &str) -> Result<bool, IndexError>;
    /// Stores (or replaces) a point.
    async fn upsert(&self, p: Point) -> Result<(), IndexError>;
    /// Points of a dataset.
    async fn count(&self, dataset: &str) -> Result<usize, IndexError>;
}

/// A UUID (8-4-4-4-12) from a dataset and a record id: one point per example and dataset.
pub fn point_uuid(dataset: &str, record_id: &str) -> String {
    let h = distillery_core::ids::hash_parts(&[dataset, record_id]);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Brute-force cosine search in memory.
#[derive(Debug)]
pub struct MemoryIndex {
    dim: usize,
    points: RwLock<Vec<Point>>,
    slot: RwLock<HashMap<(String, String), usize>>,
}

impl MemoryIndex {
    pub fn new(dim: usize) -> Self {
        MemoryIndex { dim, points: RwLock::new(Vec::new()), slot: RwLock::new(HashMap::new()) }
    }

    fn check(&self, v: &[f32]) -> Result<(), IndexError> {
        if v.len() == self.dim { Ok(()) } else { Err(IndexError::Dimension { expected: self.dim, got: v.len() }) }
    }
}

#[async_trait]
impl VectorIndex for MemoryIndex {
    async fn nearest(&self, scope: &Scope<'_>, v: &[f32], limit: usize) -> Result<Vec<Hit>, IndexError> {
        self.check(v)?;
        let points = self.points.read().expect("index lock");
        let mut hits: Vec<Hit> = points
            .iter()
            .filter(|p| scope.sees(&p.dataset, &p.log, p.seq))
            .map(|p| Hit { id: p.id.clone(), score: dot(&p.vector, v) })
            .collect();
        rank(&mut hits);
        hits.truncate(limit);
        Ok(hits)
    }

    async fn by_keys(&self, scope: &Scope<'_>, keys: &[String], limit: usize) -> Result<Vec<Stored>, IndexError> {
        let points = self.points.read().expect("index lock");
        Ok(points
            .iter()
            .filter(|p| scope.sees(&p.dataset, &p.log, p.seq) && p.keys.iter().any(|k| keys.contains(k)))
            .take(limit)
            .map(|p| Stored {
                id: p.id.clone(),
                keys: p.keys.clone(),
                signature: p.signature.clone(),
                question: p.question.clone(),
            })
            .collect())
    }

    async fn contains(&self, scope: &Scope<'_>, id: &str) -> Result<bool, IndexError> {
        let slot = self.slot.read().expect("index lock");
        let points = self.points.read().expect("index lock");
        Ok(slot
            .get(&(scope.dataset.to_string(), id.to_string()))
            .is_some_and(|&i| scope.sees(&points[i].dataset, &points[i].log, points[i].seq)))
    }

    async fn upsert(&self, p: Point) -> Result<(), IndexError> {
        self.check(&p.vector)?;
        let mut slot = self.slot.write().expect("index lock");
        let mut points = self.points.write().expect("index lock");
        match slot.get(&(p.dataset.clone(), p.id.clone())) {
            Some(&i) => points[i] = p,
            None => {
                slot.insert((p.dataset.clone(), p.id.clone()), points.len());
                points.push(p);
            }
        }
        Ok(())
    }

    async fn count(&self, dataset: &str) -> Result<usize, IndexError> {
        Ok(self.points.read().expect("index lock").iter().filter(|p| p.dataset == dataset).count())
    }
}

/// Payload field names, shared by the Qdrant server and the in-process engine.
pub mod field {
    pub const RECORD_ID: &str = "record_id";
    pub const DATASET: &str = "dataset";
    pub const LOG: &str = "log";
    pub const SEQ: &str = "seq";
    pub const KEYS: &str = "keys";
    pub const SIGNATURE: &str = "signature";
    pub const QUESTION: &str = "question";
}

/// A Qdrant collection (cosine) over gRPC. Point ids are UUIDs of dataset and record id; the record id and
/// the rest are payload, with keyword indexes on dataset, log and keys and an integer index on seq.
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
    dim: usize,
}

impl std::fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QdrantIndex({})", self.collection)
    }
}

fn backend(e: impl std::fmt::Display) -> IndexError {
    IndexError::Backend(e.to_string())
}

/// The Qdrant filter of a scope: `dataset == d AND (log != l OR seq < before)`.
fn qdrant_filter(scope: &Scope<'_>) -> Filter {
    let mut must = vec![Condition::matches(field::DATASET, scope.dataset.to_string())];
    if let Some(before) = scope.before {
        must.push(
            Filter::should([
                Filter::must_not([Condition::matches(field::LOG, scope.log.to_string())]).into(),
                Condition::range(field::SEQ, Range { lt: Some(before as f64), ..Default::default() }),
            ])
            .into(),
        );
    }
    Filter::must(must)
}

fn payload_str(p: &HashMap<String, Value>, k: &str) -> String {
    match p.get(k).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

fn payload_list<T>(p: &HashMap<String, Value>, k: &str, f: impl Fn(&Kind) -> Option<T>) -> Vec<T> {
    match p.get(k).and_then(|v| v.kind.as_ref()) {
        Some(Kind::ListValue(l)) => l.values.iter().filter_map(|v| v.kind.as_ref().and_then(&f)).collect(),
        _ => Vec::new(),
    }
}

fn stored_of(p: &HashMap<String, Value>) -> Stored {
    let int = |k: &Kind| match k {
        Kind::IntegerValue(i) => u32::try_from(*i).ok(),
        Kind::DoubleValue(d) => Some(*d as u32),
        _ => None,
    };
    Stored {
        id: payload_str(p, field::RECORD_ID),
        keys: payload_list(p, field::KEYS, |k| match k {
            Kind::StringValue(s) => Some(s.clone()),
            _ => None,
        }),
        signature: payload_list(p, field::SIGNATURE, int),
        question: payload_list(p, field::QUESTION, int),
    }
}

impl QdrantIndex {
    /// Connects and creates the collection (and its payload indexes) if missing.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        collection: &str,
        dim: usize,
    ) -> Result<QdrantIndex, IndexError> {
        let mut b = Qdrant::from_url(url).skip_compatibility_check();
        if let Some(k) = api_key {
            b = b.api_key(k);
        }
        let client = b.build().map_err(backend)?;
        if !client.collection_exists(collection).await.map_err(backend)? {
            let res = client
                .create_collection(
                    CreateCollectionBuilder::new(collection)
                        .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine)),
                )
                .await;
            if let Err(e) = res {
                // Another replica may have created it meanwhile.
                if !client.collection_exists(collection).await.map_err(backend)? {
                    return Err(backend(e));
                }
            }
            for (name, kind) in [
                (field::DATASET, FieldType::Keyword),
                (field::LOG, FieldType::Keyword),
                (field::KEYS, FieldType::Keyword),
                (field::RECORD_ID, FieldType::Keyword),
                (field::SEQ, FieldType::Integer),
            ] {
                client
                    .create_field_index(CreateFieldIndexCollectionBuilder::new(collection, name, kind).wait(true))
                    .await
                    .map_err(backend)?;
            }
        }
        Ok(QdrantIndex { client, collection: collection.to_string(), dim })
    }
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn nearest(&self, scope: &Scope<'_>, v: &[f32], limit: usize) -> Result<Vec<Hit>, IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: v.len() });
        }
        let res = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(v.to_vec())
                    .filter(qdrant_filter(scope))
                    .limit(limit as u64)
                    .with_payload(true),
            )
            .await
            .map_err(backend)?;
        let mut hits: Vec<Hit> = res
            .result
            .into_iter()
            .map(|p| Hit { id: payload_str(&p.payload, field::RECORD_ID), score: p.score })
            .collect();
        rank(&mut hits);
        Ok(hits)
    }

    async fn by_keys(&self, scope: &Scope<'_>, keys: &[String], limit: usize) -> Result<Vec<Stored>, IndexError> {
        let mut filter = qdrant_filter(scope);
        filter.must.push(Condition::matches(field::KEYS, keys.to_vec()));
        let res = self
            .client
            .scroll(ScrollPointsBuilder::new(&self.collection).filter(filter).limit(limit as u32).with_payload(true))
            .await
            .map_err(backend)?;
        Ok(res.result.iter().map(|p| stored_of(&p.payload)).collect())
    }

    async fn contains(&self, scope: &Scope<'_>, id: &str) -> Result<bool, IndexError> {
        let res = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, vec![point_uuid(scope.dataset, id).into()]).with_payload(true),
            )
            .await
            .map_err(backend)?;
        Ok(res.result.iter().any(|p| {
            let seq = match p.payload.get(field::SEQ).and_then(|v| v.kind.as_ref()) {
                Some(Kind::IntegerValue(i)) => *i as u64,
                _ => 0,
            };
            scope.sees(&payload_str(&p.payload, field::DATASET), &payload_str(&p.payload, field::LOG), seq)
        }))
    }

    async fn upsert(&self, p: Point) -> Result<(), IndexError> {
        if p.vector.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: p.vector.len() });
        }
        let ints = |v: &[u32]| Value::from(v.iter().map(|x| Value::from(i64::from(*x))).collect::<Vec<Value>>());
        let payload = Payload::from(HashMap::from([
            (field::RECORD_ID, Value::from(p.id.clone())),
            (field::DATASET, Value::from(p.dataset.clone())),
            (field::LOG, Value::from(p.log.clone())),
            (field::SEQ, Value::from(p.seq as i64)),
            (field::KEYS, Value::from(p.keys.iter().map(|k| Value::from(k.clone())).collect::<Vec<Value>>())),
            (field::SIGNATURE, ints(&p.signature)),
            (field::QUESTION, ints(&p.question)),
        ]));
        let point = PointStruct::new(point_uuid(&p.dataset, &p.id), p.vector, payload);
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, vec![point]).wait(true))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn count(&self, dataset: &str) -> Result<usize, IndexError> {
        let r = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(Filter::must([Condition::matches(field::DATASET, dataset.to_string())]))
                    .exact(true),
            )
            .await
            .map_err(backend)?;
        Ok(r.result.map(|c| c.count as usize).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_index_answers_like_every_index() {
        crate::conformance::check_index(&MemoryIndex::new(3)).await;
    }

    #[test]
    fn ties_go_to_the_lower_id() {
        let mut hits = vec![
            Hit { id: "b".into(), score: 0.9 },
            Hit { id: "a".into(), score: 0.9 },
            Hit { id: "c".into(), score: 0.95 },
        ];
        rank(&mut hits);
        assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["c", "a", "b"]);
    }

    #[test]
    fn point_ids_are_uuid_shaped_and_stable() {
        let u = point_uuid("d", "abc");
        assert_eq!(u.len(), 36);
        assert_eq!(u, point_uuid("d", "abc"));
        assert_ne!(u, point_uuid("e", "abc"));
        assert_eq!(u.matches('-').count(), 4);
    }
}
