//! Vector indexes for near-duplicate search: brute force in-process (the embedded run), or Qdrant over
//! gRPC (the deployment), both cosine on unit vectors.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, Distance, PointStruct, QueryPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
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

/// The most similar stored vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

#[async_trait]
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// The most similar stored vector, if any.
    async fn nearest(&self, v: &[f32]) -> Result<Option<Hit>, IndexError>;
    /// Stores (or replaces) a vector under an id.
    async fn upsert(&self, id: &str, v: &[f32]) -> Result<(), IndexError>;
    /// How many vectors are stored.
    async fn count(&self) -> Result<usize, IndexError>;
}

/// Brute-force cosine search in memory.
#[derive(Debug)]
pub struct MemoryIndex {
    dim: usize,
    inner: RwLock<MemInner>,
}

#[derive(Debug, Default)]
struct MemInner {
    ids: Vec<String>,
    slot: HashMap<String, usize>,
    data: Vec<f32>,
}

impl MemoryIndex {
    pub fn new(dim: usize) -> Self {
        MemoryIndex { dim, inner: RwLock::new(MemInner::default()) }
    }
}

#[async_trait]
impl VectorIndex for MemoryIndex {
    async fn nearest(&self, v: &[f32]) -> Result<Option<Hit>, IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: v.len() });
        }
        let inner = self.inner.read().expect("index lock");
        let best = inner
            .data
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, row)| (i, dot(row, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        Ok(best.map(|(i, score)| Hit { id: inner.ids[i].clone(), score }))
    }

    async fn upsert(&self, id: &str, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: v.len() });
        }
        let mut inner = self.inner.write().expect("index lock");
        if let Some(&i) = inner.slot.get(id) {
            inner.data[i * self.dim..(i + 1) * self.dim].copy_from_slice(v);
        } else {
            let i = inner.ids.len();
            inner.ids.push(id.to_string());
            inner.slot.insert(id.to_string(), i);
            inner.data.extend_from_slice(v);
        }
        Ok(())
    }

    async fn count(&self) -> Result<usize, IndexError> {
        Ok(self.inner.read().expect("index lock").ids.len())
    }
}

/// A Qdrant collection (cosine). Point ids are UUIDs derived from the record id, which is kept in the
/// payload as `record_id`.
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

/// A UUID (8-4-4-4-12) from a hex content hash.
pub fn point_uuid(record_id: &str) -> String {
    let h = distillery_core::ids::hash_parts(&[record_id]);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

impl QdrantIndex {
    /// Connects and creates the collection if missing.
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
        }
        Ok(QdrantIndex { client, collection: collection.to_string(), dim })
    }
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    async fn nearest(&self, v: &[f32]) -> Result<Option<Hit>, IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: v.len() });
        }
        let res = self
            .client
            .query(QueryPointsBuilder::new(&self.collection).query(v.to_vec()).limit(1).with_payload(true))
            .await
            .map_err(backend)?;
        Ok(res.result.into_iter().next().map(|p| Hit {
            id: p
                .payload
                .get("record_id")
                .and_then(|v| match &v.kind {
                    Some(qdrant_client::qdrant::value::Kind::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            score: p.score,
        }))
    }

    async fn upsert(&self, id: &str, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension { expected: self.dim, got: v.len() });
        }
        let payload = Payload::from(HashMap::from([("record_id", qdrant_client::qdrant::Value::from(id.to_string()))]));
        let point = PointStruct::new(point_uuid(id), v.to_vec(), payload);
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, vec![point]).wait(true))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn count(&self) -> Result<usize, IndexError> {
        let r = self
            .client
            .count(qdrant_client::qdrant::CountPointsBuilder::new(&self.collection).exact(true))
            .await
            .map_err(backend)?;
        Ok(r.result.map(|c| c.count as usize).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::normalize;

    #[tokio::test]
    async fn memory_index_finds_the_nearest_and_replaces() {
        let idx = MemoryIndex::new(3);
        assert_eq!(idx.nearest(&[1.0, 0.0, 0.0]).await.unwrap(), None);
        idx.upsert("a", &normalize(vec![1.0, 0.0, 0.0])).await.unwrap();
        idx.upsert("b", &normalize(vec![0.0, 1.0, 0.0])).await.unwrap();
        let hit = idx.nearest(&normalize(vec![0.9, 0.1, 0.0])).await.unwrap().unwrap();
        assert_eq!(hit.id, "a");
        assert!(hit.score > 0.99);
        idx.upsert("a", &normalize(vec![0.0, 0.0, 1.0])).await.unwrap();
        assert_eq!(idx.count().await.unwrap(), 2);
        assert_eq!(idx.nearest(&[0.0, 0.0, 1.0]).await.unwrap().unwrap().id, "a");
        assert!(matches!(idx.upsert("c", &[1.0]).await, Err(IndexError::Dimension { .. })));
    }

    #[test]
    fn point_ids_are_uuid_shaped_and_stable() {
        let u = point_uuid("abc");
        assert_eq!(u.len(), 36);
        assert_eq!(u, point_uuid("abc"));
        assert_eq!(u.matches('-').count(), 4);
    }
}
