//! The dataset API over real HTTP against a real store (SQLite in a temporary folder) holding the
//! pipeline's records: the bearer check on every `/v1` route, documents, record pages, totals, uploads
//! (413 over the limit), the export lifecycle, and the OpenAPI document against the router.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use distillery_api::dataset::{DatasetApiConfig, ExportSummary, Exporter, FolderUploads, StoreExporter, UploadReceipt};
use distillery_api::dataset_api::RecordView;
use distillery_api::service::{DatasetDeps, Limits, Parts, dataset_parts, router, routes};
use distillery_api::tabular::{ApiState, TabularConfig};
use distillery_core::codec::fixtures;
use distillery_core::config::Secret;
use distillery_core::{Accepted, Metrics, Record};
use distillery_dataset::sql::{SqlStore, sqlite_url};
use distillery_dataset::{DatasetStore, DocumentProgress, Totals};
use distillery_export::ExampleView;
use distillery_llm::{LlmClient, LlmConfig, LlmRole};
use distillery_runtime::http::Ready;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";
const MAX_UPLOAD: u64 = 4096;
/// Accepted records written besides the fixtures' one.
const EXTRA_ACCEPTED: usize = 5;

/// Writes a small file per export; `broken` fails.
#[derive(Debug)]
struct FileExporter;

#[async_trait]
impl Exporter for FileExporter {
    fn formats(&self) -> Vec<String> {
        vec!["alpaca".into(), "qa-json".into(), "broken".into()]
    }
    async fn export(&self, format: &str, out: &Path) -> Result<ExportSummary, String> {
        if format == "broken" {
            return Err("the exporter failed on purpose".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let file = out.join(if format == "qa-json" { "training_data.json" } else { "alpaca.jsonl" });
        std::fs::write(&file, "{\"instruction\":\"q\",\"input\":\"\",\"output\":\"a\"}\n".repeat(3))
            .map_err(|e| e.to_string())?;
        Ok(ExportSummary { file, records: 3 })
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    store: Arc<SqlStore>,
    uploads_dir: PathBuf,
    uploaded: Arc<Mutex<Vec<PathBuf>>>,
    parts: Parts,
    _dir: tempfile::TempDir,
}

fn accepted(n: usize) -> Accepted {
    let mut judged = fixtures::judged();
    judged.id = format!("j{n}");
    judged.draft.id = format!("d{n}");
    // Of the current document version (the fixture's draft is of a superseded one): these fit every format.
    judged.draft.superseded_by = None;
    Accepted { id: format!("d{n}"), judged, nearest_similarity: None, accepted_at_ms: 1_760_000_003_000 + n as i64 }
}

async fn records_store(dir: &Path) -> Arc<SqlStore> {
    let store = SqlStore::open(&sqlite_url(&dir.join("distillery.db"))).await.unwrap();
    let mut records = fixtures::all();
    records.extend((2..2 + EXTRA_ACCEPTED).map(|n| Record::Accepted(accepted(n))));
    store.write(records).await.unwrap();
    Arc::new(store)
}

async fn tabular_state(metrics: Arc<Metrics>) -> ApiState {
    // Never called here: the tables routes are only listed (and protected).
    let cfg = LlmConfig { base_url: "http://127.0.0.1:9/v1".into(), max_concurrency: Some(1), ..LlmConfig::default() };
    let llm = LlmClient::connect(cfg, LlmRole::Schema, metrics.clone()).await;
    ApiState { llm: Arc::new(llm), cache: None, cfg: TabularConfig::default(), metrics }
}

/// Takes longer than the request time limit.
#[derive(Debug)]
struct SlowUploads;

#[async_trait]
impl distillery_api::dataset::Uploads for SlowUploads {
    async fn upload(&self, _name: &str, _body: bytes::Bytes) -> Result<UploadReceipt, String> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err("too late".into())
    }
}

async fn start() -> Api {
    start_with(None, 60).await
}

async fn start_with(slow_uploads: Option<SlowUploads>, timeout_secs: u64) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = records_store(dir.path()).await;
    let uploads_dir = dir.path().join("inbox");
    let uploaded: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let seen = uploaded.clone();
    let uploads = FolderUploads {
        dir: uploads_dir.clone(),
        on_upload: Some(Arc::new(move |p: PathBuf| {
            seen.lock().unwrap().push(p);
            true
        })),
    };
    let cfg = DatasetApiConfig {
        token: Secret::new(TOKEN),
        max_upload_bytes: MAX_UPLOAD,
        max_page: 50,
        exports_dir: Some(dir.path().join("exports")),
        request_timeout_secs: timeout_secs,
        ..DatasetApiConfig::default()
    };
    let uploads: Arc<dyn distillery_api::dataset::Uploads> = match slow_uploads {
        Some(slow) => Arc::new(slow),
        None => Arc::new(uploads),
    };
    let deps = DatasetDeps { store: store.clone(), uploads, exporter: Arc::new(FileExporter) };
    let metrics = Metrics::isolated();
    let ready = Ready::default();
    ready.set(true);
    let parts = Parts {
        metrics: metrics.clone(),
        ready,
        tabular: Some(tabular_state(metrics).await),
        dataset: Some(dataset_parts(&cfg, deps).unwrap()),
        bearer: None,
        limits: Limits::of(&cfg),
    };
    let app = router(&parts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api { base: format!("http://{addr}"), http: reqwest::Client::new(), store, uploads_dir, uploaded, parts, _dir: dir }
}

impl Api {
    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }
    async fn get(&self, route: &str) -> reqwest::Response {
        self.http.get(self.url(route)).bearer_auth(TOKEN).send().await.unwrap()
    }
    async fn get_json(&self, route: &str) -> Value {
        let res = self.get(route).await;
        assert_eq!(res.status(), 200, "GET {route}");
        res.json().await.unwrap()
    }
    async fn post_json(&self, route: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(route)).bearer_auth(TOKEN).json(&body).send().await.unwrap()
    }
}

async fn error_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_else(|e| panic!("a {status} without a JSON body: {e}"));
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}")).to_string();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, code)
}

/// A concrete path for a route (`{id}` filled in).
fn concrete(path: &str) -> String {
    path.replace("{id}", "x")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_needs_the_bearer_token_and_the_open_routes_are_open() {
    let api = start().await;
    let all = routes(&api.parts);
    assert!(all.iter().filter(|r| r.path.starts_with("/v1/")).all(|r| r.protected), "{all:?}");
    for route in all.iter().filter(|r| r.protected) {
        let url = api.url(&concrete(route.path));
        for auth in [None, Some("Bearer wrong"), Some("Basic dGVzdA=="), Some(TOKEN)] {
            let mut req = api.http.request(route.method.clone(), &url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
            assert_eq!(error_code(res).await, (401, "unauthorized".into()), "{route:?} with {auth:?}");
        }
    }
    for path in ["/healthz", "/readyz", "/openapi.json", "/metrics"] {
        assert_eq!(api.http.get(api.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
    let ready: Value = api.http.get(api.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    // Unknown routes and methods answer with the JSON error too.
    assert_eq!(error_code(api.get("/v1/nothing").await).await, (404, "not_found".into()));
    let res = api.http.delete(api.url("/healthz")).send().await.unwrap();
    assert_eq!(error_code(res).await, (405, "method_not_allowed".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_stats_and_record_pages_come_from_the_store() {
    let api = start().await;
    let doc_id = fixtures::document().id;

    let list = api.get_json("/v1/documents").await;
    let documents: Vec<DocumentProgress> = serde_json::from_value(list["documents"].clone()).unwrap();
    assert_eq!(documents, api.store.documents().await.unwrap());
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].document_id, doc_id);
    assert_eq!(documents[0].accepted, 1 + EXTRA_ACCEPTED as u64);

    let one: DocumentProgress = serde_json::from_value(api.get_json(&format!("/v1/documents/{doc_id}")).await).unwrap();
    assert_eq!(one, documents[0]);
    assert_eq!(error_code(api.get("/v1/documents/nope").await).await, (404, "not_found".into()));
    assert_eq!(error_code(api.get("/v1/documents/nope/records").await).await, (404, "not_found".into()));

    let stats: Totals = serde_json::from_value(api.get_json("/v1/stats").await).unwrap();
    assert_eq!(stats, api.store.totals().await.unwrap());

    // Pages of 2 until the end: every accepted and rejected record of the document once, in id order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut route = format!("/v1/documents/{doc_id}/records?limit=2");
        if let Some(a) = &after {
            route.push_str(&format!("&after={a}"));
        }
        let page = api.get_json(&route).await;
        let records: Vec<RecordView> = serde_json::from_value(page["records"].clone()).unwrap();
        assert!(records.len() <= 2);
        seen.extend(records);
        pages += 1;
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    // Every stored outcome about the document: the accepted ones and the fixtures' rejection of d1.
    let expected = 1 + EXTRA_ACCEPTED + 1;
    assert_eq!(seen.len(), expected, "{seen:?}");
    let ids: Vec<&str> = seen.iter().map(|r| r.record_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "pages are in id order without repeats");
    assert_eq!(seen.iter().filter(|r| r.outcome == "accepted").count(), 1 + EXTRA_ACCEPTED);
    let rejected = seen.iter().find(|r| r.outcome == "rejected").expect("a rejection");
    assert_eq!(rejected.example.reason.as_deref(), Some("low_score"));
    assert!(seen.iter().all(|r| r.example.document_id.as_deref() == Some(doc_id.as_str())));

    // One page holding everything, and bad limits.
    let all = api.get_json(&format!("/v1/documents/{doc_id}/records?limit=50")).await;
    assert_eq!(all["records"].as_array().unwrap().len(), expected);
    assert!(all["next_after"].is_null());
    for bad in ["limit=0", "limit=51", "limit=x", "colour=red"] {
        let res = api.get(&format!("/v1/documents/{doc_id}/records?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
        error_code(res).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_in_the_folder_start_a_run_and_stop_at_the_limit() {
    let api = start().await;
    let body = "# Travel policy\n\nTrains over planes under 500 km.\n";
    let res = api
        .http
        .post(api.url("/v1/documents?name=policies/travel.md"))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let receipt: UploadReceipt = res.json().await.unwrap();
    assert_eq!(receipt.name, "policies/travel.md");
    assert_eq!(receipt.bytes, body.len() as u64);
    assert!(receipt.run_started);
    let path = api.uploads_dir.join("policies/travel.md");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), body);
    assert_eq!(*api.uploaded.lock().unwrap(), vec![path]);

    // Over the limit: 413, whether the length is declared or streamed.
    let big = vec![b'x'; MAX_UPLOAD as usize + 1];
    let res = api.http.post(api.url("/v1/documents?name=big.txt")).bearer_auth(TOKEN).body(big.clone()).send().await;
    assert_eq!(error_code(res.unwrap()).await, (413, "payload_too_large".into()));
    let stream =
        futures::stream::iter(big.chunks(1000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let res = api
        .http
        .post(api.url("/v1/documents?name=big.txt"))
        .bearer_auth(TOKEN)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (413, "payload_too_large".into()));
    // Far over it: the outer body limit answers 413 as JSON too.
    let huge = vec![b'x'; MAX_UPLOAD as usize + (128 << 10)];
    let res = api.http.post(api.url("/v1/documents?name=huge.txt")).bearer_auth(TOKEN).body(huge).send().await;
    assert_eq!(error_code(res.unwrap()).await, (413, "payload_too_large".into()));
    assert!(!api.uploads_dir.join("big.txt").exists());

    for bad in ["", "?name=", "?name=../escape.md", "?name=%2Fetc%2Fpasswd"] {
        let res = api.http.post(api.url(&format!("/v1/documents{bad}"))).bearer_auth(TOKEN).body("x").send().await;
        assert_eq!(error_code(res.unwrap()).await, (400, "bad_request".into()), "{bad}");
    }
    let res = api.http.post(api.url("/v1/documents?name=empty.md")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(error_code(res).await, (400, "bad_request".into()));
    assert_eq!(api.uploaded.lock().unwrap().len(), 1);
}

async fn wait_done(api: &Api, id: &str) -> Value {
    for _ in 0..100 {
        let status = api.get_json(&format!("/v1/exports/{id}")).await;
        if status["status"] != "running" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_run_in_the_background_and_download_when_done() {
    let api = start().await;
    let res = api.post_json("/v1/exports", json!({ "format": "alpaca" })).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["status"], "running");
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/exports/{id}"));
    // Still running: nothing to download yet.
    assert_eq!(error_code(api.get(&format!("/v1/exports/{id}/download")).await).await, (409, "export_running".into()));

    let done = wait_done(&api, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["records"], 3);
    assert_eq!(done["file_name"], "alpaca.jsonl");
    let res = api.get(&format!("/v1/exports/{id}/download")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains("alpaca.jsonl"));
    let text = res.text().await.unwrap();
    assert_eq!(text.lines().count(), 3);
    assert_eq!(done["bytes"], text.len());

    // qa-json is served as the combined training_data.json.
    let id = api.post_json("/v1/exports", json!({ "format": "qa-json" })).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_done(&api, &id).await["file_name"], "training_data.json");
    assert_eq!(api.get(&format!("/v1/exports/{id}/download")).await.headers()["content-type"], "application/json");

    // A failing export reports why; unknown formats, bodies and ids are refused.
    let id = api.post_json("/v1/exports", json!({ "format": "broken" })).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = wait_done(&api, &id).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("on purpose"), "{failed}");
    assert_eq!(error_code(api.get(&format!("/v1/exports/{id}/download")).await).await, (409, "export_failed".into()));
    for body in [json!({ "format": "csv" }), json!({}), json!({ "format": "alpaca", "extra": 1 })] {
        assert_eq!(error_code(api.post_json("/v1/exports", body.clone()).await).await.0, 400, "{body}");
    }
    assert_eq!(error_code(api.get("/v1/exports/unknown").await).await, (404, "not_found".into()));
    assert_eq!(error_code(api.get("/v1/exports/unknown/download").await).await, (404, "not_found".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_exporter_writes_the_accepted_records_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = records_store(dir.path()).await;
    let exporter = StoreExporter { store, options: Default::default() };
    assert!(exporter.formats().contains(&"alpaca".to_string()));
    for format in ["alpaca", "sharegpt", "openai", "parquet", "qa-json"] {
        let out = dir.path().join(format);
        std::fs::create_dir_all(&out).unwrap();
        let summary = exporter.export(format, &out).await.unwrap();
        assert!(summary.file.starts_with(&out) && summary.file.is_file(), "{summary:?}");
        // The fixtures' own accepted record is of a superseded document version: in no format.
        assert_eq!(summary.records, EXTRA_ACCEPTED as u64, "{format}");
        if format == "qa-json" {
            assert!(summary.file.ends_with("training_data.json"), "{summary:?}");
        } else if format != "parquet" {
            assert_eq!(std::fs::read_to_string(&summary.file).unwrap().lines().count(), EXTRA_ACCEPTED);
        }
    }
    assert!(exporter.export("nope", dir.path()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dataset_routes_refuse_to_start_without_a_token() {
    if std::env::var_os(distillery_api::dataset::TOKEN_ENV).is_some() {
        return; // the environment provides one
    }
    let dir = tempfile::tempdir().unwrap();
    let store = records_store(dir.path()).await;
    let deps = DatasetDeps {
        store: store.clone(),
        uploads: Arc::new(FolderUploads { dir: dir.path().into(), on_upload: None }),
        exporter: Arc::new(FileExporter),
    };
    let err = dataset_parts(&DatasetApiConfig::default(), deps).unwrap_err().to_string();
    assert!(err.contains("DISTILLERY_API_TOKEN") && err.contains("api.token"), "{err}");
}

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(v: &impl serde::Serialize) -> BTreeSet<String> {
    serde_json::to_value(v).unwrap().as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_shape() {
    let api = start().await;
    let doc = api.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<(String, String)> =
        routes(&api.parts).iter().map(|r| (r.path.to_string(), r.method.as_str().to_lowercase())).collect();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (path.clone(), m.clone())))
        .collect();
    assert_eq!(served, documented, "the router and /openapi.json list the same routes");
    for r in routes(&api.parts) {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        assert_eq!(op.get("security").is_some(), r.protected, "{r:?}: security in the document");
        assert!(op["responses"].as_object().is_some_and(|m| !m.is_empty()), "{r:?}");
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }

    // The types serialize exactly (or, with optional fields, only) the documented properties.
    assert_eq!(keys(&DocumentProgress::default()), properties(&doc, "DocumentProgress"));
    assert_eq!(keys(&Totals::default()), properties(&doc, "Stats"));
    assert_eq!(keys(&distillery_dataset::Usage::default()), properties(&doc, "Usage"));
    assert_eq!(keys(&fixtures::scores(3)), properties(&doc, "Scores"));
    let receipt = UploadReceipt { name: "a".into(), location: "b".into(), bytes: 1, run_started: false };
    assert_eq!(keys(&receipt), properties(&doc, "Upload"));
    let record_props = properties(&doc, "Record");
    for record in fixtures::all() {
        let view = match &record {
            Record::Accepted(a) => {
                RecordView { outcome: "accepted".into(), record_id: a.id.clone(), example: ExampleView::accepted(a) }
            }
            Record::Rejected(r) => {
                RecordView { outcome: "rejected".into(), record_id: r.id.clone(), example: ExampleView::rejected(r) }
            }
            _ => continue,
        };
        let k = keys(&view);
        assert!(k.is_subset(&record_props), "undocumented record fields: {:?}", k.difference(&record_props));
        let v = serde_json::to_value(&view).unwrap();
        if let Some(g) = v.get("generator") {
            assert_eq!(g.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>(), properties(&doc, "Model"));
        }
        if let Some(p) = v.get("previous") {
            assert_eq!(p.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>(), properties(&doc, "Previous"));
        }
    }
    let started = api.post_json("/v1/exports", json!({ "format": "alpaca" })).await.json::<Value>().await.unwrap();
    let export_keys: BTreeSet<String> = started.as_object().unwrap().keys().cloned().collect();
    assert_eq!(export_keys, properties(&doc, "Export"));
    let page = api.get_json(&format!("/v1/documents/{}/records?limit=1", fixtures::document().id)).await;
    assert_eq!(page.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>(), properties(&doc, "RecordPage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_answered_503_as_json() {
    let api = start_with(Some(SlowUploads), 1).await;
    let started = std::time::Instant::now();
    let res = api.http.post(api.url("/v1/documents?name=a.md")).bearer_auth(TOKEN).body("x").send().await.unwrap();
    assert_eq!(error_code(res).await, (503, "unavailable".into()));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // The other routes still answer.
    assert_eq!(api.get("/v1/stats").await.status(), 200);
}
