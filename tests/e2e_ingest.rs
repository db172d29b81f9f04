//! The trigger, with REAL notifications: Ceph RADOS Gateway (an S3 server) POSTs ObjectCreated events to
//! the ingest service's webhook; an upload reaches `chunks` with no other call. Identical bytes uploaded
//! again do no new work, a changed object under the same key becomes a new version that supersedes the
//! old one, a bucket without notifications is caught by the reconcile scan, filters and the size limit
//! hold, and the webhook refuses a wrong token.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use distillery_core::{Discovery, Record, RejectReason, Topic};
use distillery_store::ObjectStore;

fn ingest_config(scope: &Scope, servers: &Servers, port: u16, scanned: &str) -> String {
    format!(
        "{}{}[claims]\nbucket = \"{}\"\n[webhook]\nenabled = true\ntoken = \"t0ken-123\"\nbuckets = [\"{}\"]\n[scan]\ntargets = [\"{scanned}\"]\ninterval_secs = 2\n\
         [ingest]\ninclude_suffixes = [\".md\", \".txt\", \".pdf\", \".docx\", \".html\"]\nmax_object_bytes = 100000\n",
        scope.service_toml(servers, port),
        servers.s3_toml(),
        scope.bucket,
        scope.bucket
    )
}

/// Waits until `check` holds on what the tap has seen, polling for up to `secs`.
async fn wait_for(tap: &mut Tap, secs: u64, what: &str, check: impl Fn(&Tap) -> bool) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tap.poll(Duration::from_millis(500)).await;
        if check(tap) {
            return;
        }
    }
    panic!("timed out waiting for {what}");
}

fn documents(tap: &Tap) -> Vec<distillery_core::Document> {
    tap.records(Topic::Documents)
        .iter()
        .filter_map(|r| if let Record::Document(d) = r { Some(d.clone()) } else { None })
        .filter(|d| d.status == distillery_core::DocumentStatus::Discovered)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_trigger_the_pipeline_through_real_notifications() {
    let servers = Servers::from_env();
    let scope = Scope::new("ingest");
    let kafka = scope.kafka(&servers);
    let logs = scope.path("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let s3 = distillery_store::S3Store::connect(&servers.s3_config()).await;
    s3.ensure_bucket(&scope.bucket).await.unwrap();
    let quiet = format!("{}-quiet", scope.bucket);
    s3.ensure_bucket(&quiet).await.unwrap();
    distillery_kafka::ensure_topics(&kafka, &Topic::ALL).await.unwrap();

    let ingest_port = free_port();
    let cfg = scope.path("ingest.toml");
    std::fs::write(&cfg, ingest_config(&scope, &servers, ingest_port, &quiet)).unwrap();
    let ingest = Service::start("ingest", &cfg, ingest_port, &logs);
    let extract_port = free_port();
    let ecfg = scope.path("extract.toml");
    std::fs::write(&ecfg, format!("{}{}", scope.service_toml(&servers, extract_port), servers.s3_toml())).unwrap();
    let extract = Service::start("extract", &ecfg, extract_port, &logs);

    // Wait until the webhook answers, then point the bucket's notifications at it.
    let http = reqwest::Client::new();
    let webhook = format!("http://127.0.0.1:{ingest_port}/events");
    let started = Instant::now();
    while http.get(format!("http://127.0.0.1:{ingest_port}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "ingest did not start:\n{}", ingest.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bad = http.post(&webhook).body("{}").send().await.unwrap();
    assert_eq!(bad.status(), 401, "the webhook must refuse requests without the token");
    let in_url = http.post(format!("{webhook}?token=t0ken-123")).body("{}").send().await.unwrap();
    assert_eq!(in_url.status(), 401, "a token in the URL is refused (it would end up in access logs)");
    // Ceph RGW sends no custom header: the token travels as the topic's opaque data, in every event.
    rgw_notify_with(&servers, &scope.bucket, &format!("{}-topic", scope.name), &webhook, Some("t0ken-123")).await;

    let mut tap = Tap::new(&kafka, &[Topic::Documents, Topic::Chunks, Topic::Rejected]);

    // 1. An upload alone reaches `chunks`.
    let v1 = b"# Travel policy\n\nEmployees book trains for trips under four hours. Flights need approval from the head of department.".to_vec();
    s3.put(&scope.bucket, "policies/travel.md", Bytes::from(v1.clone()), "text/markdown").await.unwrap();
    let v1_id = distillery_core::ids::hash_bytes(&v1);
    wait_for(&mut tap, 90, "the uploaded document's chunks", |t| {
        t.records(Topic::Chunks).iter().any(|r| matches!(r, Record::Chunk(c) if c.document_id == v1_id))
    })
    .await;
    let first = documents(&tap).into_iter().find(|d| d.id == v1_id).unwrap();
    assert_eq!(first.discovered_by, Discovery::Webhook);
    assert_eq!(first.supersedes, None);

    // 2. The same bytes again, under the same key and under another: no new document.
    s3.put(&scope.bucket, "policies/travel.md", Bytes::from(v1.clone()), "text/markdown").await.unwrap();
    s3.put(&scope.bucket, "copies/travel-copy.md", Bytes::from(v1.clone()), "text/markdown").await.unwrap();
    // 3. Changed content under the same key: a new version that supersedes the first.
    let v2 = b"# Travel policy\n\nEmployees book trains for trips under five hours. Flights need approval from the travel office.".to_vec();
    let v2_id = distillery_core::ids::hash_bytes(&v2);
    s3.put(&scope.bucket, "policies/travel.md", Bytes::from(v2.clone()), "text/markdown").await.unwrap();
    // 4. Filters and limits: an image is ignored, a large file is rejected without being fetched.
    s3.put(&scope.bucket, "photos/team.png", Bytes::from_static(b"\x89PNG not really"), "image/png").await.unwrap();
    s3.put(&scope.bucket, "big/archive.txt", Bytes::from(vec![b'x'; 200_000]), "text/plain").await.unwrap();
    // 5. A bucket with no notifications: only the reconcile scan can find this.
    let quiet_doc = b"# Expenses\n\nReceipts are uploaded within thirty days of the purchase.".to_vec();
    s3.put(&quiet, "expenses.md", Bytes::from(quiet_doc.clone()), "text/markdown").await.unwrap();
    let quiet_id = distillery_core::ids::hash_bytes(&quiet_doc);

    wait_for(&mut tap, 120, "the new version, the scanned document and the size rejection", |t| {
        let docs = documents(t);
        docs.iter().any(|d| d.id == v2_id)
            && docs.iter().any(|d| d.id == quiet_id)
            && t.records(Topic::Rejected)
                .iter()
                .any(|r| matches!(r, Record::Rejected(x) if x.reason == RejectReason::TooLarge))
    })
    .await;
    // Give late duplicates a chance to show up before counting.
    tap.poll(Duration::from_secs(4)).await;
    let docs = documents(&tap);
    let v1_docs = docs.iter().filter(|d| d.id == v1_id).count();
    assert_eq!(v1_docs, 1, "identical bytes uploaded three times must be one document: {docs:?}");
    let second = docs.iter().find(|d| d.id == v2_id).unwrap();
    assert_eq!(second.supersedes.as_deref(), Some(v1_id.as_str()), "the new version names the one it replaces");
    assert_eq!(docs.iter().find(|d| d.id == quiet_id).unwrap().discovered_by, Discovery::Scan);
    let keys: HashSet<&str> = docs.iter().map(|d| d.source.key.as_str()).collect();
    assert!(!keys.contains("photos/team.png"), "filtered by suffix");
    assert!(!keys.iter().any(|k| k.starts_with(".distillery/")), "claim markers are not documents");
    let too_large = tap
        .records(Topic::Rejected)
        .iter()
        .find_map(|r| {
            if let Record::Rejected(x) = r { (x.reason == RejectReason::TooLarge).then_some(x.clone()) } else { None }
        })
        .unwrap();
    assert!(too_large.detail.contains("not fetched"), "{}", too_large.detail);
    wait_for(&mut tap, 60, "chunks of the new version", |t| {
        t.records(Topic::Chunks).iter().any(|r| matches!(r, Record::Chunk(c) if c.document_id == v2_id))
    })
    .await;
    drop(extract);
    drop(ingest);
}
