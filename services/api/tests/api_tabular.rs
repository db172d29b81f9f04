//! The API service's table endpoints over real HTTP: a schema or a description in, the file streamed
//! back. The schema model is a local fake (wiremock) here; the real model's designs are tested in
//! distillery-tabular's real_llm tests and the CLI end-to-end test.

use std::sync::Arc;

use distillery_api::metrics::TabularMetrics;
use distillery_api::tabular::{ApiState, TabularConfig, api_router};
use distillery_core::Metrics;
use distillery_llm::{LlmClient, LlmConfig};
use distillery_tabular::SchemaCache;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SCHEMA: &str = r#"{
  "name": "orders", "locale": "en",
  "columns": [
    {"name": "order_id", "kind": "id"},
    {"name": "customer", "kind": "full_name"},
    {"name": "quantity", "kind": "integer", "min": 1, "max": 10},
    {"name": "unit_price", "kind": "float", "min": 1, "max": 500, "decimals": 2},
    {"name": "total", "kind": "expression", "expr": "quantity * unit_price", "type": "float", "decimals": 2}
  ]}"#;

/// The flat design form a model answers with.
const DESIGN: &str = r#"{"name": "tickets", "locale": "en", "columns": [
  {"column": "ticket_id", "kind": "uuid"},
  {"column": "opened", "kind": "date", "start": "2024-01-01", "end": "2024-12-31"},
  {"column": "priority", "kind": "category", "values": ["low", "normal", "high"], "weights": [3, 6, 1]},
  {"column": "minutes_to_close", "kind": "integer", "distribution": "lognormal", "mean": 90, "std": 60, "min": 1, "max": 2000}
]}"#;

struct Api {
    base: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    llm: MockServer,
    _cache: tempfile::TempDir,
}

async fn start(max_rows: u64) -> Api {
    let llm = MockServer::start().await;
    let cfg = LlmConfig {
        base_url: format!("{}/v1", llm.uri()),
        model: "fake".into(),
        timeout_secs: 5,
        max_retries: 0,
        ..LlmConfig::default()
    };
    let metrics = Metrics::isolated();
    let client = LlmClient::connect(cfg, distillery_llm::LlmRole::Schema, metrics.clone()).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let state = ApiState {
        llm: Arc::new(client),
        cache: Some(Arc::new(SchemaCache::open(cache_dir.path()).unwrap())),
        cfg: TabularConfig { max_rows, threads: 2, ..TabularConfig::default() },
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api_router(state)).await.unwrap() });
    Api { base: format!("http://{addr}"), http: reqwest::Client::new(), metrics, llm, _cache: cache_dir }
}

impl Api {
    async fn post(&self, route: &str, body: Value) -> reqwest::Response {
        self.http.post(format!("{}{route}", self.base)).json(&body).send().await.unwrap()
    }
    fn requests(&self, outcome: &str, schema: &str) -> u64 {
        TabularMetrics::of(&self.metrics).requests.with_label_values(&[outcome, schema]).get()
    }
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_760_000_000, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 150, "total_tokens": 1050}
    })
}

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

#[tokio::test]
async fn a_schema_gives_a_streamed_reproducible_csv() {
    let api = start(1_000_000).await;
    let resp = api.post("/v1/tabular", json!({"schema": schema(), "rows": 5000, "seed": 7})).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(resp.headers()["x-distillery-schema-source"], "given");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("orders.csv"));
    let first = resp.bytes().await.unwrap();

    let mut reader = csv::Reader::from_reader(first.as_ref());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["order_id", "customer", "quantity", "unit_price", "total"]
    );
    let mut n = 0;
    for row in reader.records() {
        let row = row.unwrap();
        let q: f64 = row[2].parse().unwrap();
        let p: f64 = row[3].parse().unwrap();
        let t: f64 = row[4].parse().unwrap();
        assert!((1.0..=10.0).contains(&q), "{row:?}");
        assert!((t - q * p).abs() < 0.02, "total is quantity x unit price: {row:?}");
        n += 1;
    }
    assert_eq!(n, 5000);

    let again = api.post("/v1/tabular", json!({"schema": schema(), "rows": 5000, "seed": 7})).await;
    assert_eq!(again.bytes().await.unwrap(), first, "same schema and seed, same bytes");
    let other = api.post("/v1/tabular", json!({"schema": schema(), "rows": 5000, "seed": 8})).await;
    let other = other.bytes().await.unwrap();
    assert_ne!(other, first, "another seed, other rows");

    assert_eq!(api.requests("ok", "given"), 3);
    assert_eq!(TabularMetrics::of(&api.metrics).rows.with_label_values(&["csv"]).get(), 15_000);
    let sent = 2 * first.len() as u64 + other.len() as u64;
    assert_eq!(
        TabularMetrics::of(&api.metrics).bytes.with_label_values(&["csv"]).get(),
        sent,
        "every byte sent is counted"
    );
}

#[tokio::test]
async fn jsonl_and_parquet_stream_too() {
    let api = start(1_000_000).await;
    let resp = api.post("/v1/tabular", json!({"schema": schema(), "rows": 300, "format": "jsonl"})).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 300);
    assert!(lines.iter().all(|r| r["customer"].is_string() && r["quantity"].is_i64()));

    let resp = api.post("/v1/tabular", json!({"schema": schema(), "rows": 300, "format": "parquet"})).await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "a complete Parquet file");
}

#[tokio::test]
async fn an_invalid_schema_is_a_422_listing_every_problem() {
    let api = start(1_000_000).await;
    let bad = json!({"name": "t", "columns": [
        {"name": "a", "kind": "integer", "min": 10, "max": 1},
        {"name": "b", "kind": "expression", "expr": "missing_column * 2", "type": "float"},
        {"name": "c", "kind": "category", "values": []}
    ]});
    let resp = api.post("/v1/tabular", json!({"schema": bad, "rows": 10})).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    let problems = body["problems"].as_array().expect("problems listed");
    assert!(problems.len() >= 3, "every problem, not the first: {problems:?}");
    assert_eq!(api.requests("invalid", "none"), 1);
}

#[tokio::test]
async fn limits_and_bad_requests_are_400s() {
    let api = start(1000).await;
    let resp = api.post("/v1/tabular", json!({"schema": schema(), "rows": 1001})).await;
    assert_eq!(resp.status(), 400);
    let resp = api.post("/v1/tabular", json!({"schema": schema(), "rows": 10, "format": "xlsx"})).await;
    assert_eq!(resp.status(), 400);
    let resp = api.post("/v1/tabular", json!({"rows": 10})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("description or a schema"), "{body}");
}

#[tokio::test]
async fn a_description_is_designed_once_then_served_from_the_cache() {
    let api = start(1_000_000).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(DESIGN)))
        .expect(1)
        .mount(&api.llm)
        .await;
    let description = "Support tickets of a SaaS company, 200 rows";
    let resp = api.post("/v1/tabular", json!({"description": description})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-distillery-schema-source"], "llm");
    assert_eq!(resp.headers()["x-distillery-rows"], "200", "the description's row count is used");
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 201);
    assert!(text.starts_with("ticket_id,opened,priority,minutes_to_close"), "{}", &text[..80]);

    // The same request in other words (case, spacing, final period) costs no second call.
    let resp =
        api.post("/v1/tabular/schema", json!({"description": "support tickets of a  SaaS company, 200 rows."})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["source"], "cache");
    assert_eq!(body["tokens"], 0);
    assert_eq!(body["schema"]["columns"].as_array().unwrap().len(), 4);
    api.llm.verify().await;
    assert_eq!(api.requests("ok", "llm"), 1);
    assert_eq!(api.requests("ok", "cache"), 1);
}

#[tokio::test]
async fn a_model_that_cannot_design_is_a_502_with_its_problems() {
    let api = start(1_000_000).await;
    let broken =
        r#"{"name": "x", "columns": [{"column": "a", "kind": "expression", "expr": "nope + 1", "type": "float"}]}"#;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(broken)))
        .expect(2)
        .mount(&api.llm)
        .await;
    let resp = api.post("/v1/tabular", json!({"description": "numbers"})).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert!(!body["problems"].as_array().unwrap().is_empty(), "{body}");
    api.llm.verify().await;
    assert_eq!(api.requests("design_failed", "none"), 1);
}

/// Issue 14, defect 8: the API service (`distillery-api`, `distillery service api`) served `/v1/tabular` to
/// anyone, spending LLM calls. It refuses to start without a token, and the tables routes need it.
#[tokio::test]
async fn the_service_refuses_to_start_without_a_token_and_guards_the_tables_routes() {
    if std::env::var(distillery_api::dataset::TOKEN_ENV).is_ok() {
        eprintln!("skipped: {} is set in this environment", distillery_api::dataset::TOKEN_ENV);
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = distillery_api::tabular::ApiServiceConfig::default();
    cfg.ops.listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.llm.base_url = "http://127.0.0.1:9/v1".into();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        distillery_api::service::run_with(cfg.clone(), None, tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("it does not start serving");
    let err = format!("{:#}", refused.unwrap_err());
    assert!(err.contains("DISTILLERY_API_TOKEN") && err.contains("api.token"), "{err}");

    cfg.api.token = distillery_core::config::Secret::new("tok-123");
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(distillery_api::service::run_with(cfg, None, cancel.clone()));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up);
    let body = json!({"schema": serde_json::from_str::<Value>(SCHEMA).unwrap(), "rows": 3});
    let open = http.post(format!("{base}/v1/tabular")).json(&body).send().await.unwrap();
    assert_eq!(open.status(), 401);
    let authorised = http.post(format!("{base}/v1/tabular")).bearer_auth("tok-123").json(&body).send().await.unwrap();
    assert_eq!(authorised.status(), 200, "{}", authorised.text().await.unwrap());
    cancel.cancel();
    server.await.unwrap().unwrap();
}
