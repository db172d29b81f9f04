//! What every [`VectorIndex`] must answer alike, run against each implementation: the in-memory index, the
//! in-process Qdrant engine ([`crate::EdgeIndex`]) and a Qdrant server over gRPC ([`crate::QdrantIndex`], in
//! the tests against a stand-in speaking Qdrant's protocol). Panics on the first difference.

use crate::embed::normalize;
use crate::index::{IndexError, Point, Scope, VectorIndex};

/// A point of the checks (3 dimensions).
pub fn point(id: &str, dataset: &str, log: &str, seq: u64, v: Vec<f32>, keys: &[&str]) -> Point {
    Point {
        id: id.into(),
        dataset: dataset.into(),
        log: log.into(),
        seq,
        vector: normalize(v),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        signature: vec![1, 2, 3, u32::MAX],
        question: vec![7],
    }
}

/// Runs the checks on an empty index of 3 dimensions.
pub async fn check_index(idx: &dyn VectorIndex) {
    let all = Scope { dataset: "d", log: "l", before: None };
    assert!(idx.nearest(&all, &[1.0, 0.0, 0.0], 1).await.unwrap().is_empty());
    idx.upsert(point("a", "d", "l", 5, vec![1.0, 0.0, 0.0], &["x:1"])).await.unwrap();
    idx.upsert(point("b", "d", "l", 9, vec![0.9, 0.1, 0.0], &["x:2"])).await.unwrap();
    idx.upsert(point("old", "d", "earlier-run", 100, vec![0.0, 1.0, 0.0], &["x:1"])).await.unwrap();
    idx.upsert(point("other", "e", "l", 1, vec![1.0, 0.0, 0.0], &["x:1"])).await.unwrap();
    let hits = idx.nearest(&all, &normalize(vec![1.0, 0.0, 0.0]), 10).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a", "b", "old"], "{hits:?}");
    assert!(hits[0].score > 0.999, "{hits:?}");
    assert!((hits[1].score - normalize(vec![0.9, 0.1, 0.0])[0]).abs() < 1e-4, "cosine: {hits:?}");
    assert!(hits[2].score.abs() < 1e-4, "orthogonal: {hits:?}");
    // The limit keeps the best.
    let best = idx.nearest(&all, &normalize(vec![1.0, 0.0, 0.0]), 1).await.unwrap();
    assert_eq!(best.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a"]);
    // Before position 9 of log l: a, and every point of another log; never another dataset's.
    let at9 = Scope { dataset: "d", log: "l", before: Some(9) };
    let ids: Vec<String> = idx.nearest(&at9, &[1.0, 0.0, 0.0], 10).await.unwrap().into_iter().map(|h| h.id).collect();
    assert_eq!(ids, ["a", "old"]);
    let mut keyed = idx.by_keys(&at9, &["x:1".into()], 10).await.unwrap();
    keyed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(keyed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "old"]);
    assert_eq!(keyed[0].keys, ["x:1"]);
    assert_eq!(keyed[0].signature, [1, 2, 3, u32::MAX]);
    assert_eq!(keyed[0].question, [7]);
    let mut any = idx.by_keys(&all, &["x:2".into(), "x:9".into()], 10).await.unwrap();
    any.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(any.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(idx.by_keys(&all, &["x:9".into()], 10).await.unwrap().is_empty());
    assert!(idx.contains(&at9, "a").await.unwrap());
    assert!(!idx.contains(&at9, "b").await.unwrap());
    assert!(idx.contains(&all, "b").await.unwrap());
    assert!(!idx.contains(&all, "other").await.unwrap(), "another dataset's point");
    assert!(!idx.contains(&all, "missing").await.unwrap());
    assert_eq!(idx.count("d").await.unwrap(), 3);
    assert_eq!(idx.count("e").await.unwrap(), 1);
    assert_eq!(idx.count("none").await.unwrap(), 0);
    // Replacing keeps one point per dataset and id.
    idx.upsert(point("a", "d", "l", 5, vec![0.0, 0.0, 1.0], &["x:1"])).await.unwrap();
    assert_eq!(idx.count("d").await.unwrap(), 3);
    let hits = idx.nearest(&all, &[0.0, 0.0, 1.0], 1).await.unwrap();
    assert_eq!(hits[0].id, "a");
    assert!(hits[0].score > 0.999);
    assert!(matches!(idx.upsert(point("c", "d", "l", 1, vec![1.0], &[])).await, Err(IndexError::Dimension { .. })));
}
