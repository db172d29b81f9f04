//! [`EdgeIndex`]: accepted examples in Qdrant's own engine run in-process (qdrant-edge: segments, HNSW,
//! payload indexes and a write-ahead log in one folder). The embedded run keeps it in its output folder, so a
//! later run into the same folder compares against what every earlier run accepted; a dedup service without
//! a Qdrant server can keep it on a volume.
//!
//! Points and filters are the ones [`crate::QdrantIndex`] sends a Qdrant server: a UUID per dataset and record
//! id, the record id and the rest as payload (keyword indexes on dataset, log, keys and record id, an integer
//! index on seq), cosine distance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter, JsonPath, Match, NamedQuery, Payload,
    PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStructPersisted,
    QueryEnum, QueryRequest, Record, ScoringQuery, ScrollRequest, UpdateOperation, VectorInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde_json::{Value, json};

use crate::index::{Hit, IndexError, Point, Scope, Stored, VectorIndex, field, point_uuid, rank};

/// A Qdrant shard in a folder, in this process.
pub struct EdgeIndex {
    shard: Arc<EdgeShard>,
    dim: usize,
    path: PathBuf,
}

impl std::fmt::Debug for EdgeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EdgeIndex({})", self.path.display())
    }
}

fn backend(e: impl std::fmt::Display) -> IndexError {
    IndexError::Backend(e.to_string())
}

fn key(name: &str) -> JsonPath {
    name.parse().expect("a plain field name is a JSON path")
}

fn keyword(name: &str, value: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(key(name), Match::from(value.to_string())))
}

/// The filter of a scope: `dataset == d AND (log != l OR seq < before)` (the same as the Qdrant server's).
pub fn scope_filter(scope: &Scope<'_>) -> Filter {
    let mut must = vec![keyword(field::DATASET, scope.dataset)];
    if let Some(before) = scope.before {
        let other_log = Filter { must_not: Some(vec![keyword(field::LOG, scope.log)]), ..Filter::new() };
        let earlier = Condition::Field(FieldCondition::new_range(
            key(field::SEQ),
            qdrant_edge::Range { lt: Some((before as f64).into()), gt: None, gte: None, lte: None },
        ));
        must.push(Condition::Filter(Filter {
            should: Some(vec![Condition::Filter(other_log), earlier]),
            ..Filter::new()
        }));
    }
    Filter { must: Some(must), ..Filter::new() }
}

fn point_id(dataset: &str, record_id: &str) -> Result<PointId, IndexError> {
    point_uuid(dataset, record_id).parse().map_err(|e| backend(format!("point id: {e:?}")))
}

fn str_of(p: &Payload, k: &str) -> String {
    p.0.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn ints_of(p: &Payload, k: &str) -> Vec<u32> {
    p.0.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok())).collect())
        .unwrap_or_default()
}

fn stored_of(p: &Payload) -> Stored {
    Stored {
        id: str_of(p, field::RECORD_ID),
        keys: p
            .0
            .get(field::KEYS)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        signature: ints_of(p, field::SIGNATURE),
        question: ints_of(p, field::QUESTION),
    }
}

fn payload_of(r: &Record) -> Payload {
    r.payload.clone().unwrap_or_default()
}

impl EdgeIndex {
    /// Opens the index in `path`, creating it (cosine vectors of `dim`, the payload indexes) when the folder
    /// has none yet.
    pub fn open(path: &Path, dim: usize) -> Result<EdgeIndex, IndexError> {
        let exists = path.join("edge_config.json").exists();
        let shard = if exists {
            EdgeShard::load(path, None).map_err(|e| backend(format!("opening {}: {e}", path.display())))?
        } else {
            // The engine creates its files in the folder, not the folder.
            std::fs::create_dir_all(path).map_err(|e| backend(format!("creating {}: {e}", path.display())))?;
            let config = EdgeConfigBuilder::new()
                .vector(DEFAULT_VECTOR_NAME, EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build())
                .build();
            let shard =
                EdgeShard::new(path, config).map_err(|e| backend(format!("creating {}: {e}", path.display())))?;
            for (name, kind) in [
                (field::DATASET, PayloadSchemaType::Keyword),
                (field::LOG, PayloadSchemaType::Keyword),
                (field::KEYS, PayloadSchemaType::Keyword),
                (field::RECORD_ID, PayloadSchemaType::Keyword),
                (field::SEQ, PayloadSchemaType::Integer),
            ] {
                shard
                    .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name: key(name),
                        field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                    })))
                    .map_err(backend)?;
            }
            shard
        };
        let index = EdgeIndex { shard: Arc::new(shard), dim, path: path.to_path_buf() };
        let stored = index.stored_dim()?;
        if stored.is_some_and(|d| d != dim) {
            return Err(IndexError::Dimension { expected: stored.unwrap_or_default(), got: dim });
        }
        Ok(index)
    }

    /// The vector size the folder was created with.
    fn stored_dim(&self) -> Result<Option<usize>, IndexError> {
        Ok(self.shard.config().vectors.get(DEFAULT_VECTOR_NAME).map(|v| v.size))
    }

    /// Writes what is in memory to the folder's segments (the write-ahead log has it already).
    pub fn flush(&self) {
        self.shard.flush();
    }

    /// Runs the engine's optimizers now (merging segments, building the HNSW graph of a segment past the
    /// indexing threshold); returns whether anything changed. Searches are exact until then.
    pub fn optimize(&self) -> Result<bool, IndexError> {
        self.shard.optimize().map_err(backend)
    }

    fn check(&self, v: &[f32]) -> Result<(), IndexError> {
        if v.len() == self.dim { Ok(()) } else { Err(IndexError::Dimension { expected: self.dim, got: v.len() }) }
    }

    /// Runs `f` on the shard off the async workers (the engine's calls block).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EdgeShard) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let shard = self.shard.clone();
        tokio::task::spawn_blocking(move || f(&shard)).await.map_err(backend)?
    }
}

#[async_trait]
impl VectorIndex for EdgeIndex {
    async fn nearest(&self, scope: &Scope<'_>, v: &[f32], limit: usize) -> Result<Vec<Hit>, IndexError> {
        self.check(v)?;
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::from(v.to_vec()),
                DEFAULT_VECTOR_NAME,
            )))),
            filter: Some(scope_filter(scope)),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Fields(vec![key(field::RECORD_ID)]),
        };
        let found = self.blocking(move |s| s.query(request).map_err(backend)).await?;
        let mut hits: Vec<Hit> = found
            .into_iter()
            .map(|p| Hit { id: str_of(&p.payload.unwrap_or_default(), field::RECORD_ID), score: p.score })
            .collect();
        rank(&mut hits);
        Ok(hits)
    }

    async fn by_keys(&self, scope: &Scope<'_>, keys: &[String], limit: usize) -> Result<Vec<Stored>, IndexError> {
        let mut filter = scope_filter(scope);
        filter
            .must
            .get_or_insert_default()
            .push(Condition::Field(FieldCondition::new_match(key(field::KEYS), Match::from(keys.to_vec()))));
        let request = ScrollRequest {
            offset: None,
            limit: Some(limit),
            filter: Some(filter),
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let (records, _) = self.blocking(move |s| s.scroll(request).map_err(backend)).await?;
        Ok(records.iter().map(|r| stored_of(&payload_of(r))).collect())
    }

    async fn contains(&self, scope: &Scope<'_>, id: &str) -> Result<bool, IndexError> {
        let ids = [point_id(scope.dataset, id)?];
        let records = self
            .blocking(move |s| {
                s.retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(false))).map_err(backend)
            })
            .await?;
        Ok(records.iter().any(|r| {
            let p = payload_of(r);
            let seq = p.0.get(field::SEQ).and_then(Value::as_u64).unwrap_or(0);
            scope.sees(&str_of(&p, field::DATASET), &str_of(&p, field::LOG), seq)
        }))
    }

    async fn upsert(&self, p: Point) -> Result<(), IndexError> {
        self.check(&p.vector)?;
        let payload = json!({
            field::RECORD_ID: p.id,
            field::DATASET: p.dataset,
            field::LOG: p.log,
            field::SEQ: p.seq,
            field::KEYS: p.keys,
            field::SIGNATURE: p.signature,
            field::QUESTION: p.question,
        });
        let Value::Object(map) = payload else { unreachable!("a JSON object") };
        let point = PointStructPersisted {
            id: point_id(&p.dataset, &p.id)?,
            vector: VectorStructPersisted::Single(p.vector),
            payload: Some(Payload(map)),
        };
        self.blocking(move |s| {
            s.update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(
                vec![point],
            ))))
            .map_err(backend)
        })
        .await
    }

    async fn count(&self, dataset: &str) -> Result<usize, IndexError> {
        let request = CountRequest {
            filter: Some(Filter { must: Some(vec![keyword(field::DATASET, dataset)]), ..Filter::new() }),
            exact: true,
        };
        self.blocking(move |s| s.count(request).map_err(backend)).await
    }
}

impl Drop for EdgeIndex {
    fn drop(&mut self) {
        if Arc::strong_count(&self.shard) == 1 {
            self.shard.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{check_index, point};

    #[tokio::test]
    async fn edge_index_answers_like_every_index() {
        let dir = tempfile::tempdir().unwrap();
        check_index(&EdgeIndex::open(&dir.path().join("vectors"), 3).unwrap()).await;
    }

    #[tokio::test]
    async fn edge_index_keeps_its_points_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        {
            let idx = EdgeIndex::open(&path, 3).unwrap();
            idx.upsert(point("a", "d", "run-1", 0, vec![1.0, 0.0, 0.0], &["x:1"])).await.unwrap();
            idx.upsert(point("b", "d", "run-1", 1, vec![0.0, 1.0, 0.0], &["x:2"])).await.unwrap();
        }
        // A later run (another log) opens the same folder and sees both.
        let idx = EdgeIndex::open(&path, 3).unwrap();
        let run2 = Scope { dataset: "d", log: "run-2", before: Some(0) };
        assert_eq!(idx.count("d").await.unwrap(), 2);
        let hits = idx.nearest(&run2, &[0.0, 1.0, 0.0], 1).await.unwrap();
        assert_eq!(hits[0].id, "b");
        assert!(hits[0].score > 0.999);
        assert!(idx.contains(&run2, "a").await.unwrap());
        assert_eq!(idx.by_keys(&run2, &["x:1".into()], 5).await.unwrap()[0].id, "a");
        drop(idx);
        // The folder's vectors have 3 dimensions: another encoder's are refused.
        assert!(matches!(EdgeIndex::open(&path, 384), Err(IndexError::Dimension { expected: 3, got: 384 })));
    }
}
