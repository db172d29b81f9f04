//! The store on both backends: SQLite in a temporary folder, and the suite's real PostgreSQL
//! (`DISTILLERY_TEST_POSTGRES`, set by `scripts/test-servers start`). Same records, same answers.

use distillery_core::codec::fixtures;
use distillery_core::{Record, RejectReason};
use distillery_dataset::sql::{SqlStore, Table};
use distillery_dataset::{ChunkState, DatasetStore, DatasetVersion, DecidedBy, Review, ReviewAction};

async fn exercise(store: &SqlStore) {
    let chunk = fixtures::chunk();
    // A chunk nobody generated is new.
    assert_eq!(store.chunk_state("generate", &chunk.id).await.unwrap(), ChunkState::New);

    // Generation recorded before publishing: the outputs come back as recorded, and the chunk is open.
    let draft = fixtures::draft();
    store.record_step("generate", Record::Chunk(chunk.clone()), vec![Record::Draft(draft.clone())]).await.unwrap();
    let outputs = store.recorded_outputs("generate", &chunk.id).await.unwrap().expect("recorded");
    assert_eq!(outputs, vec![Record::Draft(draft.clone())]);
    assert!(
        matches!(store.chunk_state("generate", &chunk.id).await.unwrap(), ChunkState::Partial(_)),
        "a generated chunk without outcomes is partial"
    );

    // The sink's records, written twice (a replay): stored once.
    let all = fixtures::all();
    store.write(all.clone()).await.unwrap();
    store.write(all.clone()).await.unwrap();
    assert_eq!(store.count(Table::Documents).await.unwrap(), 1);
    assert_eq!(store.count(Table::Accepted).await.unwrap(), 1);
    let totals = store.totals().await.unwrap();
    assert_eq!(totals.documents, 1, "{totals:?}");
    assert_eq!(totals.accepted, 1, "{totals:?}");
    assert!(totals.rejected >= 1, "{totals:?}");
    assert!(totals.rejected_by_reason.contains_key(RejectReason::LowScore.as_str()), "{totals:?}");

    let docs = store.documents().await.unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0].name, fixtures::object_ref().key);
    assert_eq!(docs[0].accepted, 1, "{docs:?}");

    versions_and_reviews(store).await;
}

/// A rejudged version and reviews stand above the run's outcomes, the latest of each.
async fn versions_and_reviews(store: &SqlStore) {
    assert!(store.overrides().await.unwrap().is_empty());
    assert!(store.versions().await.unwrap().is_empty());
    let accepted = fixtures::all().into_iter().find(|r| matches!(r, Record::Accepted(_))).unwrap();
    let draft = fixtures::draft().id;
    // Version 2 rejects the accepted draft, version 3 accepts it again.
    let rejected = match &accepted {
        Record::Accepted(a) => Record::Rejected(distillery_core::Rejected::of(
            &Record::Judged(a.judged.clone()),
            DecidedBy::Rejudge.as_str(),
            RejectReason::LowScore,
            "rejudged",
        )),
        _ => unreachable!(),
    };
    for (version, record, was) in [(2, rejected.clone(), true), (3, accepted.clone(), false)] {
        let v = DatasetVersion {
            version,
            kind: DecidedBy::Rejudge,
            judge_model: "m".into(),
            threshold: 5,
            judged: 1,
            newly_accepted: u64::from(!was),
            newly_rejected: u64::from(was),
            llm_calls: 0,
            created_at_ms: 1,
        };
        store.record_version(&v, vec![(record, was)]).await.unwrap();
        let o = store.overrides().await.unwrap();
        assert_eq!(matches!(o.current(accepted.clone()), Record::Rejected(_)), was, "v{version}");
    }
    assert_eq!(store.versions().await.unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 3]);
    // A review stands above every version; the last review stands.
    let review = |action, answer: Option<&str>| Review {
        draft_id: draft.clone(),
        action,
        question: None,
        answer: answer.map(str::to_string),
        note: Some("checked".into()),
        reviewed_at_ms: 2,
    };
    store.review(&review(ReviewAction::Reject, None)).await.unwrap();
    assert!(matches!(store.overrides().await.unwrap().current(accepted.clone()), Record::Rejected(_)));
    store.review(&review(ReviewAction::Edit, Some("An edited answer."))).await.unwrap();
    match store.overrides().await.unwrap().current(accepted.clone()) {
        Record::Accepted(a) => assert_eq!(a.judged.draft.answer(), "An edited answer."),
        other => panic!("an edit accepts: {other:?}"),
    }
    // The live feed: what arrived at or after a time, oldest first.
    let arrivals = store.arrivals(0, 100).await.unwrap();
    assert!(arrivals.iter().any(|(_, r)| matches!(r, Record::Draft(_))), "{arrivals:?}");
    assert!(arrivals.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(store.arrivals(i64::MAX, 100).await.unwrap().is_empty());

    // A document missing from its input is marked deleted, and comes back when its object does.
    let uri = fixtures::object_ref().uri();
    let (prefix, _) = uri.rsplit_once('/').unwrap();
    let none = std::collections::HashSet::new();
    assert!(store.mark_missing("s3://elsewhere/", &none).await.unwrap().is_empty(), "another input");
    assert_eq!(store.mark_missing(prefix, &none).await.unwrap(), vec![fixtures::document().id]);
    assert!(store.mark_missing(prefix, &none).await.unwrap().is_empty(), "marked once");
    assert!(store.documents().await.unwrap()[0].deleted);
    assert!(store.deleted_documents().await.unwrap().contains(&fixtures::document().id));
    store.mark_missing(prefix, &[uri.clone()].into_iter().collect()).await.unwrap();
    assert!(!store.documents().await.unwrap()[0].deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_is_idempotent_and_answers_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(dir.path().join("distillery.db").to_str().unwrap()).await.unwrap();
    exercise(&store).await;
    // Reopened: the migrations are not re-run destructively and the data is there.
    drop(store);
    let again = SqlStore::open(dir.path().join("distillery.db").to_str().unwrap()).await.unwrap();
    assert_eq!(again.count(Table::Accepted).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_is_idempotent_and_answers_progress() {
    let url = std::env::var("DISTILLERY_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("DISTILLERY_TEST_POSTGRES is not set: run through scripts/test (or scripts/test-servers start and source .cache/run/test-env)")
    });
    let store = SqlStore::open(&url).await.unwrap();
    // The suite's database is fresh per `scripts/test-servers start`; start from empty tables anyway.
    for table in [
        "deleted_documents",
        "reviews",
        "decisions",
        "dataset_versions",
        "usage",
        "runs",
        "steps",
        "processed",
        "dpo_pairs",
        "dead_letters",
        "rejected",
        "accepted",
        "verdicts",
        "drafts",
        "chunks",
        "contexts",
        "document_versions",
        "documents",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    exercise(&store).await;
}

/// Accepted records with and without a nearest neighbour, one after the other, as dedup sends them: the
/// column is NULL for the first and a double for the rest, and every write succeeds the first time (a
/// statement prepared after a NULL once refused the double on PostgreSQL).
async fn nullable_columns_take_both(store: &SqlStore, tag: &str) {
    for i in 0..12 {
        let mut judged = fixtures::judged();
        judged.draft.id = format!("{tag}-draft-{i}");
        judged.id = format!("{tag}-judged-{i}");
        let nearest = (i % 3 != 0).then_some(0.5 + i as f32 / 100.0);
        let acc = distillery_core::Accepted {
            id: judged.draft.id.clone(),
            judged,
            nearest_similarity: nearest,
            accepted_at_ms: i,
        };
        store.write(vec![Record::Accepted(acc)]).await.unwrap_or_else(|e| panic!("write {i} ({nearest:?}): {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nullable_columns_take_nulls_and_values_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqlStore::open(&distillery_dataset::sql::sqlite_url(&dir.path().join("n.db"))).await.unwrap();
    nullable_columns_take_both(&sqlite, "sqlite").await;
    let url = std::env::var("DISTILLERY_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("DISTILLERY_TEST_POSTGRES is not set: run through scripts/test (or scripts/test-servers start and source .cache/run/test-env)")
    });
    // A database of its own: the other PostgreSQL test empties and counts the suite's tables meanwhile.
    let admin = SqlStore::open(&url).await.unwrap();
    let db = format!("nullable_{}", distillery_core::now_ms());
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(admin.pool()).await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("postgres://HOST/DB");
    let pg = SqlStore::open(&format!("{base}/{db}")).await.unwrap();
    nullable_columns_take_both(&pg, "pg").await;
}
