//! A Qdrant stand-in for the tests: a gRPC server speaking Qdrant's own protocol (the `qdrant.Collections` and
//! `qdrant.Points` services generated from Qdrant's proto files, as shipped in qdrant-client), backed by
//! qdrant-edge, Qdrant's engine in-process. Each collection is an edge shard in a folder of its own; filters,
//! payload indexes, cosine scoring and point ids are the engine's. It answers what Distillery's
//! `QdrantIndex` sends (collections: create, exists; points: upsert, get, query, scroll, count, create field
//! index) and refuses everything else as UNIMPLEMENTED, so a client call outside that set fails loudly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use qdrant_client::qdrant as q;
use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_edge as e;
use serde_json::{Number, Value as Json};
use tonic::{Request, Response, Status};

/// A running stand-in: its gRPC URL, and what it was asked (method names), for assertions.
pub struct QdrantStandIn {
    pub url: String,
    pub calls: Arc<Mutex<Vec<String>>>,
    shards: Arc<Mutex<HashMap<String, Arc<e::EdgeShard>>>>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for QdrantStandIn {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The engine writes its segments when a shard goes: while its folder is still there.
        self.shards.lock().unwrap().clear();
    }
}

impl QdrantStandIn {
    /// Serves on a free local port.
    pub async fn start() -> QdrantStandIn {
        let dir = tempfile::tempdir().expect("stand-in folder");
        let state = State { root: dir.path().to_path_buf(), shards: Arc::default(), calls: Arc::default() };
        let (calls, shards) = (state.calls.clone(), state.shards.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream_of(listener);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(CollectionsServer::new(state.clone()))
                .add_service(PointsServer::new(state))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await
                .expect("stand-in server");
        });
        QdrantStandIn { url: format!("http://{addr}"), calls, shards, _dir: dir, shutdown: Some(tx) }
    }

    /// How many collections it holds.
    #[allow(dead_code)] // not every test binary including this module asks
    pub fn collections(&self) -> usize {
        self.shards.lock().unwrap().len()
    }

    /// How many calls of a method (e.g. "Points/query") it served.
    pub fn served(&self, method: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| *c == method).count()
    }
}

/// The listener's connections as the stream tonic serves.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}

#[derive(Clone)]
struct State {
    root: PathBuf,
    shards: Arc<Mutex<HashMap<String, Arc<e::EdgeShard>>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("the Qdrant stand-in does not serve {method}"))
}

fn engine(err: e::OperationError) -> Status {
    Status::internal(err.to_string())
}

impl State {
    fn note(&self, method: &str) {
        self.calls.lock().unwrap().push(method.to_string());
    }

    fn shard(&self, collection: &str) -> Result<Arc<e::EdgeShard>, Status> {
        self.shards
            .lock()
            .unwrap()
            .get(collection)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("Collection `{collection}` doesn't exist!")))
    }

    /// Runs an engine call off the async workers.
    async fn on<T: Send + 'static>(
        &self,
        collection: &str,
        f: impl FnOnce(&e::EdgeShard) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let shard = self.shard(collection)?;
        tokio::task::spawn_blocking(move || f(&shard)).await.map_err(|e| Status::internal(e.to_string()))?
    }
}

// ---- protocol -> engine ----

fn point_id(id: Option<q::PointId>) -> Result<e::PointId, Status> {
    match id.and_then(|i| i.point_id_options) {
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(e::PointId::NumId(n)),
        Some(q::point_id::PointIdOptions::Uuid(u)) => {
            u.parse().map_err(|_| Status::invalid_argument(format!("Unable to parse UUID: {u}")))
        }
        None => Err(Status::invalid_argument("a point without an id")),
    }
}

fn json_path(key: &str) -> Result<e::JsonPath, Status> {
    key.parse().map_err(|_| Status::invalid_argument(format!("not a JSON path: {key}")))
}

fn json_of(v: q::Value) -> Json {
    use q::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(d)) => Number::from_f64(d).map(Json::Number).unwrap_or(Json::Null),
        Some(Kind::IntegerValue(i)) => Json::from(i),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::StructValue(s)) => Json::Object(s.fields.into_iter().map(|(k, v)| (k, json_of(v))).collect()),
        Some(Kind::ListValue(l)) => Json::Array(l.values.into_iter().map(json_of).collect()),
    }
}

fn payload_of(p: HashMap<String, q::Value>) -> e::Payload {
    e::Payload(p.into_iter().map(|(k, v)| (k, json_of(v))).collect())
}

// Older clients send the deprecated flat `data` field, which a Qdrant server still reads.
#[allow(deprecated)]
fn dense(v: q::Vectors) -> Result<Vec<f32>, Status> {
    match v.vectors_options {
        Some(q::vectors::VectorsOptions::Vector(v)) => match v.vector {
            Some(q::vector::Vector::Dense(d)) => Ok(d.data),
            None => Ok(v.data),
            Some(_) => Err(Status::invalid_argument("only dense vectors are served")),
        },
        _ => Err(Status::invalid_argument("only the unnamed dense vector is served")),
    }
}

fn filter(f: q::Filter) -> Result<e::Filter, Status> {
    let list = |cs: Vec<q::Condition>| -> Result<Option<Vec<e::Condition>>, Status> {
        if cs.is_empty() { Ok(None) } else { cs.into_iter().map(condition).collect::<Result<_, _>>().map(Some) }
    };
    if f.min_should.is_some() {
        return Err(Status::invalid_argument("min_should is not served"));
    }
    Ok(e::Filter { should: list(f.should)?, min_should: None, must: list(f.must)?, must_not: list(f.must_not)? })
}

fn condition(c: q::Condition) -> Result<e::Condition, Status> {
    use q::condition::ConditionOneOf;
    use q::r#match::MatchValue;
    match c.condition_one_of {
        Some(ConditionOneOf::Filter(f)) => Ok(e::Condition::Filter(filter(f)?)),
        Some(ConditionOneOf::Field(fc)) => {
            let key = json_path(&fc.key)?;
            if let Some(m) = fc.r#match {
                let m = match m.match_value {
                    Some(MatchValue::Keyword(s)) => e::Match::from(s),
                    Some(MatchValue::Integer(i)) => e::Match::from(i),
                    Some(MatchValue::Boolean(b)) => e::Match::from(b),
                    Some(MatchValue::Keywords(k)) => e::Match::from(k.strings),
                    Some(MatchValue::Integers(i)) => e::Match::from(i.integers),
                    other => return Err(Status::invalid_argument(format!("match {other:?} is not served"))),
                };
                Ok(e::Condition::Field(e::FieldCondition::new_match(key, m)))
            } else if let Some(r) = fc.range {
                Ok(e::Condition::Field(e::FieldCondition::new_range(
                    key,
                    e::Range {
                        lt: r.lt.map(Into::into),
                        gt: r.gt.map(Into::into),
                        gte: r.gte.map(Into::into),
                        lte: r.lte.map(Into::into),
                    },
                )))
            } else {
                Err(Status::invalid_argument(format!("condition on {} is not served", fc.key)))
            }
        }
        other => Err(Status::invalid_argument(format!("condition {other:?} is not served"))),
    }
}

fn with_payload(s: Option<q::WithPayloadSelector>) -> Result<e::WithPayloadInterface, Status> {
    match s.and_then(|s| s.selector_options) {
        None => Ok(e::WithPayloadInterface::Bool(false)),
        Some(q::with_payload_selector::SelectorOptions::Enable(b)) => Ok(e::WithPayloadInterface::Bool(b)),
        Some(q::with_payload_selector::SelectorOptions::Include(i)) => {
            Ok(e::WithPayloadInterface::Fields(i.fields.iter().map(|f| json_path(f)).collect::<Result<_, _>>()?))
        }
        Some(other) => Err(Status::invalid_argument(format!("payload selector {other:?} is not served"))),
    }
}

// ---- engine -> protocol ----

fn proto_of(v: &Json) -> q::Value {
    use q::value::Kind;
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(q::ListValue { values: a.iter().map(proto_of).collect() }),
        Json::Object(o) => {
            Kind::StructValue(q::Struct { fields: o.iter().map(|(k, v)| (k.clone(), proto_of(v))).collect() })
        }
    };
    q::Value { kind: Some(kind) }
}

fn proto_payload(p: Option<e::Payload>) -> HashMap<String, q::Value> {
    p.map(|p| p.0.iter().map(|(k, v)| (k.clone(), proto_of(v))).collect()).unwrap_or_default()
}

fn proto_id(id: e::PointId) -> q::PointId {
    match id {
        e::PointId::NumId(n) => n.into(),
        e::PointId::Uuid(u) => u.to_string().into(),
    }
}

fn retrieved(r: e::Record) -> q::RetrievedPoint {
    q::RetrievedPoint { id: Some(proto_id(r.id)), payload: proto_payload(r.payload), ..Default::default() }
}

fn done(operation_id: u64) -> Response<q::PointsOperationResponse> {
    Response::new(q::PointsOperationResponse {
        result: Some(q::UpdateResult { operation_id: Some(operation_id), status: q::UpdateStatus::Completed as i32 }),
        time: 0.0,
        usage: None,
    })
}

#[tonic::async_trait]
impl Collections for State {
    async fn create(
        &self,
        r: Request<q::CreateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        self.note("Collections/create");
        let r = r.into_inner();
        let params = match r.vectors_config.and_then(|c| c.config) {
            Some(q::vectors_config::Config::Params(p)) => p,
            _ => return Err(Status::invalid_argument("only one unnamed vector per collection is served")),
        };
        let distance = match q::Distance::try_from(params.distance) {
            Ok(q::Distance::Cosine) => e::Distance::Cosine,
            Ok(q::Distance::Dot) => e::Distance::Dot,
            Ok(q::Distance::Euclid) => e::Distance::Euclid,
            Ok(q::Distance::Manhattan) => e::Distance::Manhattan,
            _ => return Err(Status::invalid_argument("unknown distance")),
        };
        let mut shards = self.shards.lock().unwrap();
        if shards.contains_key(&r.collection_name) {
            return Err(Status::already_exists(format!("Collection `{}` already exists!", r.collection_name)));
        }
        let config = e::EdgeConfigBuilder::new()
            .vector(e::DEFAULT_VECTOR_NAME, e::EdgeVectorParamsBuilder::new(params.size as usize, distance).build())
            .build();
        let folder = self.root.join(format!("c{}", shards.len()));
        std::fs::create_dir_all(&folder).map_err(|e| Status::internal(e.to_string()))?;
        let shard = e::EdgeShard::new(&folder, config).map_err(engine)?;
        shards.insert(r.collection_name, Arc::new(shard));
        Ok(Response::new(q::CollectionOperationResponse { result: true, time: 0.0 }))
    }

    async fn collection_exists(
        &self,
        r: Request<q::CollectionExistsRequest>,
    ) -> Result<Response<q::CollectionExistsResponse>, Status> {
        self.note("Collections/collection_exists");
        let exists = self.shards.lock().unwrap().contains_key(&r.into_inner().collection_name);
        Ok(Response::new(q::CollectionExistsResponse { result: Some(q::CollectionExists { exists }), time: 0.0 }))
    }

    async fn get(
        &self,
        _: Request<q::GetCollectionInfoRequest>,
    ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
        Err(unimplemented("Collections/get"))
    }
    async fn list(
        &self,
        _: Request<q::ListCollectionsRequest>,
    ) -> Result<Response<q::ListCollectionsResponse>, Status> {
        Err(unimplemented("Collections/list"))
    }
    async fn update(
        &self,
        _: Request<q::UpdateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(unimplemented("Collections/update"))
    }
    async fn delete(
        &self,
        _: Request<q::DeleteCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(unimplemented("Collections/delete"))
    }
    async fn update_aliases(
        &self,
        _: Request<q::ChangeAliases>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(unimplemented("Collections/update_aliases"))
    }
    async fn list_collection_aliases(
        &self,
        _: Request<q::ListCollectionAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(unimplemented("Collections/list_collection_aliases"))
    }
    async fn list_aliases(
        &self,
        _: Request<q::ListAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(unimplemented("Collections/list_aliases"))
    }
    async fn collection_cluster_info(
        &self,
        _: Request<q::CollectionClusterInfoRequest>,
    ) -> Result<Response<q::CollectionClusterInfoResponse>, Status> {
        Err(unimplemented("Collections/collection_cluster_info"))
    }
    async fn update_collection_cluster_setup(
        &self,
        _: Request<q::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<q::UpdateCollectionClusterSetupResponse>, Status> {
        Err(unimplemented("Collections/update_collection_cluster_setup"))
    }
    async fn create_shard_key(
        &self,
        _: Request<q::CreateShardKeyRequest>,
    ) -> Result<Response<q::CreateShardKeyResponse>, Status> {
        Err(unimplemented("Collections/create_shard_key"))
    }
    async fn delete_shard_key(
        &self,
        _: Request<q::DeleteShardKeyRequest>,
    ) -> Result<Response<q::DeleteShardKeyResponse>, Status> {
        Err(unimplemented("Collections/delete_shard_key"))
    }
    async fn list_shard_keys(
        &self,
        _: Request<q::ListShardKeysRequest>,
    ) -> Result<Response<q::ListShardKeysResponse>, Status> {
        Err(unimplemented("Collections/list_shard_keys"))
    }
}

#[tonic::async_trait]
impl Points for State {
    async fn upsert(&self, r: Request<q::UpsertPoints>) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.note("Points/upsert");
        let r = r.into_inner();
        let points = r
            .points
            .into_iter()
            .map(|p| {
                Ok(e::PointStructPersisted {
                    id: point_id(p.id)?,
                    vector: e::VectorStructPersisted::Single(dense(p.vectors.unwrap_or_default())?),
                    payload: Some(payload_of(p.payload)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.on(&r.collection_name, move |s| {
            s.update(e::UpdateOperation::PointOperation(e::PointOperations::UpsertPoints(
                e::PointInsertOperations::PointsList(points),
            )))
            .map_err(engine)
        })
        .await?;
        Ok(done(0))
    }

    async fn get(&self, r: Request<q::GetPoints>) -> Result<Response<q::GetResponse>, Status> {
        self.note("Points/get");
        let r = r.into_inner();
        let ids = r.ids.into_iter().map(|i| point_id(Some(i))).collect::<Result<Vec<_>, _>>()?;
        let payload = with_payload(r.with_payload)?;
        let found = self
            .on(&r.collection_name, move |s| {
                s.retrieve(&ids, Some(payload), Some(e::WithVector::Bool(false))).map_err(engine)
            })
            .await?;
        Ok(Response::new(q::GetResponse { result: found.into_iter().map(retrieved).collect(), time: 0.0, usage: None }))
    }

    async fn query(&self, r: Request<q::QueryPoints>) -> Result<Response<q::QueryResponse>, Status> {
        self.note("Points/query");
        let r = r.into_inner();
        let vector = match r.query.and_then(|q| q.variant) {
            Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Dense(d)) })) => {
                d.data
            }
            other => return Err(Status::invalid_argument(format!("query {other:?} is not served"))),
        };
        let request = e::QueryRequest {
            prefetches: Vec::new(),
            query: Some(e::ScoringQuery::Vector(e::QueryEnum::Nearest(e::NamedQuery::new(
                e::VectorInternal::from(vector),
                r.using.unwrap_or_default(),
            )))),
            filter: r.filter.map(filter).transpose()?,
            score_threshold: r.score_threshold.map(Into::into),
            limit: r.limit.unwrap_or(10) as usize,
            offset: r.offset.unwrap_or(0) as usize,
            params: None,
            with_vector: e::WithVector::Bool(false),
            with_payload: with_payload(r.with_payload)?,
        };
        let found = self.on(&r.collection_name, move |s| s.query(request).map_err(engine)).await?;
        Ok(Response::new(q::QueryResponse {
            result: found
                .into_iter()
                .map(|p| q::ScoredPoint {
                    id: Some(proto_id(p.id)),
                    payload: proto_payload(p.payload),
                    score: p.score,
                    version: p.version,
                    ..Default::default()
                })
                .collect(),
            time: 0.0,
            usage: None,
        }))
    }

    async fn scroll(&self, r: Request<q::ScrollPoints>) -> Result<Response<q::ScrollResponse>, Status> {
        self.note("Points/scroll");
        let r = r.into_inner();
        let request = e::ScrollRequest {
            offset: if r.offset.is_some() { Some(point_id(r.offset)?) } else { None },
            limit: Some(r.limit.unwrap_or(10) as usize),
            filter: r.filter.map(filter).transpose()?,
            with_payload: Some(with_payload(r.with_payload)?),
            with_vector: e::WithVector::Bool(false),
            order_by: None,
        };
        let (found, next) = self.on(&r.collection_name, move |s| s.scroll(request).map_err(engine)).await?;
        Ok(Response::new(q::ScrollResponse {
            next_page_offset: next.map(proto_id),
            result: found.into_iter().map(retrieved).collect(),
            time: 0.0,
            usage: None,
        }))
    }

    async fn count(&self, r: Request<q::CountPoints>) -> Result<Response<q::CountResponse>, Status> {
        self.note("Points/count");
        let r = r.into_inner();
        let request = e::CountRequest { filter: r.filter.map(filter).transpose()?, exact: r.exact.unwrap_or(true) };
        let count = self.on(&r.collection_name, move |s| s.count(request).map_err(engine)).await?;
        Ok(Response::new(q::CountResponse {
            result: Some(q::CountResult { count: count as u64 }),
            time: 0.0,
            usage: None,
        }))
    }

    async fn create_field_index(
        &self,
        r: Request<q::CreateFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.note("Points/create_field_index");
        let r = r.into_inner();
        let kind = match r.field_type.map(q::FieldType::try_from) {
            Some(Ok(q::FieldType::Keyword)) => e::PayloadSchemaType::Keyword,
            Some(Ok(q::FieldType::Integer)) => e::PayloadSchemaType::Integer,
            Some(Ok(q::FieldType::Float)) => e::PayloadSchemaType::Float,
            Some(Ok(q::FieldType::Bool)) => e::PayloadSchemaType::Bool,
            other => return Err(Status::invalid_argument(format!("field type {other:?} is not served"))),
        };
        let op = e::UpdateOperation::FieldIndexOperation(e::FieldIndexOperations::CreateIndex(e::CreateIndex {
            field_name: json_path(&r.field_name)?,
            field_schema: Some(e::PayloadFieldSchema::FieldType(kind)),
        }));
        self.on(&r.collection_name, move |s| s.update(op).map_err(engine)).await?;
        Ok(done(0))
    }

    async fn delete(&self, _: Request<q::DeletePoints>) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/delete"))
    }
    async fn update_vectors(
        &self,
        _: Request<q::UpdatePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/update_vectors"))
    }
    async fn delete_vectors(
        &self,
        _: Request<q::DeletePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/delete_vectors"))
    }
    async fn set_payload(
        &self,
        _: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/set_payload"))
    }
    async fn overwrite_payload(
        &self,
        _: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/overwrite_payload"))
    }
    async fn delete_payload(
        &self,
        _: Request<q::DeletePayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/delete_payload"))
    }
    async fn clear_payload(
        &self,
        _: Request<q::ClearPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/clear_payload"))
    }
    async fn delete_field_index(
        &self,
        _: Request<q::DeleteFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/delete_field_index"))
    }
    async fn create_vector_name(
        &self,
        _: Request<q::CreateVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/create_vector_name"))
    }
    async fn delete_vector_name(
        &self,
        _: Request<q::DeleteVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("Points/delete_vector_name"))
    }
    async fn search(&self, _: Request<q::SearchPoints>) -> Result<Response<q::SearchResponse>, Status> {
        Err(unimplemented("Points/search"))
    }
    async fn search_batch(&self, _: Request<q::SearchBatchPoints>) -> Result<Response<q::SearchBatchResponse>, Status> {
        Err(unimplemented("Points/search_batch"))
    }
    async fn search_groups(
        &self,
        _: Request<q::SearchPointGroups>,
    ) -> Result<Response<q::SearchGroupsResponse>, Status> {
        Err(unimplemented("Points/search_groups"))
    }
    async fn recommend(&self, _: Request<q::RecommendPoints>) -> Result<Response<q::RecommendResponse>, Status> {
        Err(unimplemented("Points/recommend"))
    }
    async fn recommend_batch(
        &self,
        _: Request<q::RecommendBatchPoints>,
    ) -> Result<Response<q::RecommendBatchResponse>, Status> {
        Err(unimplemented("Points/recommend_batch"))
    }
    async fn recommend_groups(
        &self,
        _: Request<q::RecommendPointGroups>,
    ) -> Result<Response<q::RecommendGroupsResponse>, Status> {
        Err(unimplemented("Points/recommend_groups"))
    }
    async fn discover(&self, _: Request<q::DiscoverPoints>) -> Result<Response<q::DiscoverResponse>, Status> {
        Err(unimplemented("Points/discover"))
    }
    async fn discover_batch(
        &self,
        _: Request<q::DiscoverBatchPoints>,
    ) -> Result<Response<q::DiscoverBatchResponse>, Status> {
        Err(unimplemented("Points/discover_batch"))
    }
    async fn update_batch(&self, _: Request<q::UpdateBatchPoints>) -> Result<Response<q::UpdateBatchResponse>, Status> {
        Err(unimplemented("Points/update_batch"))
    }
    async fn query_batch(&self, _: Request<q::QueryBatchPoints>) -> Result<Response<q::QueryBatchResponse>, Status> {
        Err(unimplemented("Points/query_batch"))
    }
    async fn query_groups(&self, _: Request<q::QueryPointGroups>) -> Result<Response<q::QueryGroupsResponse>, Status> {
        Err(unimplemented("Points/query_groups"))
    }
    async fn facet(&self, _: Request<q::FacetCounts>) -> Result<Response<q::FacetResponse>, Status> {
        Err(unimplemented("Points/facet"))
    }
    async fn search_matrix_pairs(
        &self,
        _: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixPairsResponse>, Status> {
        Err(unimplemented("Points/search_matrix_pairs"))
    }
    async fn search_matrix_offsets(
        &self,
        _: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixOffsetsResponse>, Status> {
        Err(unimplemented("Points/search_matrix_offsets"))
    }
}
