//! The Qdrant gRPC path (`QdrantIndex`, qdrant-client) against the Qdrant stand-in (Qdrant's own protocol,
//! Qdrant's engine in-process; see common/qdrant.rs): it answers every index check as the in-memory index
//! and the embedded engine do, two replicas share one collection, and what a client asks outside the
//! served set is refused rather than answered wrongly.

#[path = "common/qdrant.rs"]
mod qdrant;

use distillery_vector::conformance::{check_index, point};
use distillery_vector::{QdrantIndex, Scope, VectorIndex};
use qdrant::QdrantStandIn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qdrant_grpc_index_answers_like_every_index() {
    let qdrant = QdrantStandIn::start().await;
    let idx = QdrantIndex::connect(&qdrant.url, None, "accepted", 3).await.expect("connect");
    check_index(&idx).await;
    // The collection and its five payload indexes were created over the protocol, once.
    assert_eq!(qdrant.served("Collections/create"), 1);
    assert_eq!(qdrant.served("Points/create_field_index"), 5);
    assert!(qdrant.served("Points/query") >= 5 && qdrant.served("Points/scroll") >= 3);
    assert!(qdrant.served("Points/get") >= 5 && qdrant.served("Points/count") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_collection() {
    let qdrant = QdrantStandIn::start().await;
    let a = QdrantIndex::connect(&qdrant.url, None, "shared", 3).await.expect("replica a");
    let b = QdrantIndex::connect(&qdrant.url, None, "shared", 3).await.expect("replica b");
    assert_eq!(qdrant.served("Collections/create"), 1, "the second replica finds the collection");
    a.upsert(point("x", "d", "claims", 0, vec![1.0, 0.0, 0.0], &["x:1"])).await.unwrap();
    // Both replicas decide the same claim and store the same point: still one point.
    b.upsert(point("x", "d", "claims", 0, vec![1.0, 0.0, 0.0], &["x:1"])).await.unwrap();
    b.upsert(point("y", "d", "claims", 1, vec![0.0, 1.0, 0.0], &["x:2"])).await.unwrap();
    assert_eq!(a.count("d").await.unwrap(), 2);
    let at1 = Scope { dataset: "d", log: "claims", before: Some(1) };
    let hits = a.nearest(&at1, &[0.0, 1.0, 0.0], 5).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["x"], "replica a sees b's point only after it");
    assert!(b.contains(&Scope { dataset: "d", log: "claims", before: None }, "y").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_stand_in_does_not_serve_is_refused() {
    use qdrant_client::Qdrant;
    use qdrant_client::qdrant::{DeletePointsBuilder, PointsIdsList};
    let qdrant = QdrantStandIn::start().await;
    let _ = QdrantIndex::connect(&qdrant.url, None, "c", 3).await.expect("connect");
    let client = Qdrant::from_url(&qdrant.url).skip_compatibility_check().build().unwrap();
    let err = client
        .delete_points(DeletePointsBuilder::new("c").points(PointsIdsList { ids: vec![1u64.into()] }))
        .await
        .expect_err("delete is not served");
    assert!(err.to_string().contains("does not serve Points/delete"), "{err}");
    // A collection that does not exist is an error, as on a Qdrant server.
    let err = client
        .count(qdrant_client::qdrant::CountPointsBuilder::new("other").exact(true))
        .await
        .expect_err("no such collection");
    assert!(err.to_string().contains("doesn't exist"), "{err}");
}
