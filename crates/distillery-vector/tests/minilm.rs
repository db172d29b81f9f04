//! The in-process encoder against the reference: sentence-transformers gives cosine 0.7553 for this pair.
//! Needs the model folder (installed by `scripts/test-servers start`): `DISTILLERY_EMBED_MODEL_DIR`.

use distillery_vector::{Embedder, MiniLm, dot};

fn model_dir() -> std::path::PathBuf {
    std::env::var_os("DISTILLERY_EMBED_MODEL_DIR")
        .map(Into::into)
        .expect("DISTILLERY_EMBED_MODEL_DIR is not set: run the suite through scripts/test (it installs the model)")
}

#[tokio::test]
async fn minilm_matches_the_reference_similarity() {
    let m = MiniLm::load(&model_dir()).unwrap();
    assert_eq!(m.dim(), 384);
    let v = m
        .embed(vec![
            "A man is eating food.".into(),
            "A man is eating a piece of bread.".into(),
            "The quarterly report is due on Friday.".into(),
        ])
        .await
        .unwrap();
    let sim = dot(&v[0], &v[1]);
    assert!((sim - 0.7553).abs() < 0.002, "cosine {sim}");
    assert!(dot(&v[0], &v[2]) < 0.3);
    for x in &v {
        let n: f32 = x.iter().map(|a| a * a).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
    // Batching does not change a vector (padding is masked out of the mean).
    let alone = m.embed(vec!["A man is eating food.".into()]).await.unwrap();
    assert!(dot(&alone[0], &v[0]) > 0.9999);
}
