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

/// Rewordings of one question (the repeats generate must catch before judging) are closer than different
/// questions about the same text (which must all go on to the judge); the figures are printed beside
/// generate's default `question_similarity` (0.9), which sits between them when the encoder separates them.
#[tokio::test]
async fn reworded_questions_are_closer_than_different_questions_about_the_same_text() {
    const THRESHOLD: f32 = 0.9;
    let m = MiniLm::load(&model_dir()).unwrap();
    let repeats = [
        (
            "How many days of paid leave do employees get per year?",
            "How many paid leave days do employees get each year?",
        ),
        ("How many unused leave days can be carried over?", "How many unused days of leave can employees carry over?"),
        ("Who must approve a leave request?", "Who has to approve leave requests?"),
        ("What is the deadline for taking carried-over leave?", "By when must carried-over leave be taken?"),
    ];
    let different = [
        ("How many days of paid leave do employees get per year?", "How many unused leave days can be carried over?"),
        ("How many unused leave days can be carried over?", "What is the deadline for taking carried-over leave?"),
        ("Who must approve a leave request?", "How far in advance must a long leave request be submitted?"),
        ("How many days of paid leave do employees get per year?", "How do part-time employees' leave days work?"),
    ];
    let sim = |(a, b): (&'static str, &'static str)| {
        let m = m.clone();
        async move {
            let v = m.embed(vec![a.to_string(), b.to_string()]).await.unwrap();
            dot(&v[0], &v[1])
        }
    };
    let mut report = String::new();
    let mut lowest_repeat = f32::MAX;
    let mut highest_different = f32::MIN;
    for pair in repeats {
        let s = sim(pair).await;
        report += &format!("repeat    {s:.3}  {pair:?}\n");
        lowest_repeat = lowest_repeat.min(s);
    }
    for pair in different {
        let s = sim(pair).await;
        report += &format!("different {s:.3}  {pair:?}\n");
        highest_different = highest_different.max(s);
    }
    eprintln!("{report}");
    eprintln!(
        "default question_similarity {THRESHOLD}: lowest rewording {lowest_repeat:.3}, highest different {highest_different:.3}"
    );
    assert!(lowest_repeat > highest_different, "a rewording is no closer than different questions:\n{report}");
    assert!(highest_different < THRESHOLD, "different questions reach the default {THRESHOLD}:\n{report}");
}
