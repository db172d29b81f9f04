//! The extract stage with parsers in a child process (the `distillery` binary in worker mode): same
//! result as in-process, a runaway parse is killed at the time limit and rejected with its reason, the
//! stage keeps working afterwards, and a changed object under the same key marks the old version's chunks.

use std::sync::Arc;

mod common;

use distillery_core::{Discovery, Document, DocumentStatus, Input, Metrics, ObjectRef, Record, RejectReason, Topic};
use distillery_docs::pii::{PiiConfig, Redactor};
use distillery_docs::{ApproxCounter, MediaType};
use distillery_extract::{Extract, ExtractConfig, Isolation, WORKER_ARG, WorkerCommand};
use distillery_ingest::{IngestConfig, Ingestor, Outcome};
use distillery_store::Stores;
use distillery_store::registry::{MemoryClaims, MemoryVersions, Versions};

fn fixtures() -> String {
    format!("{}/../crates/distillery-docs/tests/fixtures", env!("CARGO_MANIFEST_DIR"))
}

fn document(root: &str, key: &str) -> Document {
    let bytes = std::fs::read(format!("{root}/{key}")).unwrap();
    Document {
        id: distillery_core::ids::hash_bytes(&bytes),
        source: ObjectRef::file(root, key),
        size: bytes.len() as i64,
        media_type: MediaType::detect(key, &bytes[..bytes.len().min(8192)]).mime().into(),
        discovered_by: Discovery::Local,
        discovered_at_ms: 0,
        status: DocumentStatus::Discovered,
        supersedes: None,
        pii_counts: Default::default(),
        pages: None,
        chunks: None,
    }
}

fn stage(isolation: Isolation, timeout_secs: u64, versions: Option<Arc<dyn Versions>>) -> Extract {
    let cfg = ExtractConfig { isolation, timeout_secs, ..Default::default() };
    Extract {
        limits: distillery_extract::limits::Limits::of_this_process(cfg.max_memory_mib),
        stores: Stores::local_only(),
        counter: Arc::new(ApproxCounter),
        redactor: Arc::new(Redactor::new(PiiConfig::default())),
        worker: Some(WorkerCommand { program: common::binary(), args: vec![WORKER_ARG.into()] }),
        versions,
        metrics: Metrics::isolated(),
        cfg,
    }
}

async fn run(stage: &Extract, doc: Document) -> Result<Vec<Record>, distillery_core::StageError> {
    use distillery_core::Stage;
    stage.process(Input::record(Topic::Documents, Record::Document(doc))).await
}

#[tokio::test]
async fn worker_process_matches_in_process_and_reports_the_document() {
    let root = fixtures();
    let doc = document(&root, "handbook.pdf");
    let in_worker = run(&stage(Isolation::Process, 60, None), doc.clone()).await.unwrap();
    let in_thread = run(&stage(Isolation::Thread, 60, None), doc.clone()).await.unwrap();
    assert_eq!(in_worker, in_thread);
    let Record::Document(report) = &in_worker[0] else { panic!("first record is the extracted document") };
    assert_eq!(report.status, DocumentStatus::Extracted);
    assert_eq!(report.chunks, Some(in_worker.len() as i32 - 1));
    assert_eq!(report.pii_counts.get("EMAIL"), Some(&1), "{:?}", report.pii_counts);
    assert!(report.pages.is_some());
    assert!(in_worker[1..].iter().all(|r| matches!(r, Record::Chunk(c) if !c.text.contains("service-desk@"))));
}

#[tokio::test]
async fn a_runaway_parse_is_killed_and_the_stage_carries_on() {
    let root = fixtures();
    let s = stage(Isolation::Process, 1, None);
    let started = std::time::Instant::now();
    let err = run(&s, document(&root, "giant-page.pdf")).await.unwrap_err();
    assert_eq!(err.disposition, distillery_core::Disposition::Reject(RejectReason::ExtractionTimeout), "{err:?}");
    assert!(started.elapsed().as_secs() < 10, "the worker was not killed in time");
    // Every other kind of bad input is rejected by the worker with its own reason.
    for (name, reason) in [
        ("encrypted.pdf", RejectReason::Encrypted),
        ("scanned.pdf", RejectReason::NoTextLayer),
        ("zipbomb.docx", RejectReason::TooLarge),
        ("corrupt.docx", RejectReason::Corrupt),
        ("empty.docx", RejectReason::EmptyDocument),
    ] {
        let e = run(&s, document(&root, name)).await.unwrap_err();
        assert_eq!(e.disposition, distillery_core::Disposition::Reject(reason), "{name}: {e:?}");
    }
    let ok = run(&stage(Isolation::Process, 60, None), document(&root, "handbook.docx")).await.unwrap();
    assert!(ok.len() > 1);
}

#[tokio::test]
async fn chunks_of_a_superseded_version_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    std::fs::write(dir.path().join("policy.md"), "# Policy\n\nLeave is 25 days a year for everyone.").unwrap();
    let versions: Arc<dyn Versions> = Arc::new(MemoryVersions::default());
    let ingest = Ingestor {
        stores: Stores::local_only(),
        claims: Arc::new(MemoryClaims::default()),
        versions: versions.clone(),
        cfg: IngestConfig::default(),
    };
    let Outcome::Document(v1) =
        ingest.object(ObjectRef::file(&root, "policy.md"), None, "e1", Discovery::Local).await.unwrap()
    else {
        panic!()
    };
    let s = stage(Isolation::Thread, 60, Some(versions.clone()));
    let before = run(&s, v1.clone()).await.unwrap();
    assert!(before.iter().all(|r| !matches!(r, Record::Chunk(c) if c.superseded_by.is_some())));
    // The object changes under the same key: a new version, and the old one's later chunks say so.
    std::fs::write(dir.path().join("policy.md"), "# Policy\n\nLeave is 27 days a year for everyone.").unwrap();
    let Outcome::Document(v2) =
        ingest.object(ObjectRef::file(&root, "policy.md"), None, "e2", Discovery::Local).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(v2.supersedes.as_deref(), Some(v1.id.as_str()));
    std::fs::write(dir.path().join("old.md"), "# Policy\n\nLeave is 25 days a year for everyone.").unwrap();
    let replayed = Document { source: ObjectRef::file(&root, "old.md"), ..v1.clone() };
    let after = run(&s, replayed).await.unwrap();
    let chunks: Vec<_> = after.iter().filter_map(|r| if let Record::Chunk(c) = r { Some(c) } else { None }).collect();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.superseded_by.as_deref() == Some(v2.id.as_str())), "{chunks:?}");
}
