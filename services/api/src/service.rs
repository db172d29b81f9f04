//! The API service process: no Kafka; it serves the dataset API (when given a store) and the tables API
//! beside /metrics, /healthz, /readyz and /openapi.json. `distillery service api` in the cluster and the
//! embedded `distillery serve` both run [`run_with`]: one router, one set of limits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use distillery_core::Metrics;
use distillery_core::config::load;
use distillery_dataset::DatasetStore;
use distillery_llm::{LlmClient, LlmRole};
use distillery_runtime::http::Ready;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::dataset::{DatasetApiConfig, Exporter, Uploads};
use crate::dataset_api::DatasetApi;
use crate::http::{Bearer, Problem, Route, json_errors, no_route, require_bearer};
use crate::tabular::{ApiServiceConfig, ApiState};

/// What the dataset routes need from the caller: the store, where uploads go and how exports are
/// written (the cluster: the shared store, an S3 bucket and the store's exporter; `distillery serve`: the
/// run's store, its input folder with a run per upload and the CLI's export).
#[derive(Debug, Clone)]
pub struct DatasetDeps {
    pub store: Arc<dyn DatasetStore>,
    pub uploads: Arc<dyn Uploads>,
    pub exporter: Arc<dyn Exporter>,
}

/// What the router serves.
#[derive(Clone)]
pub struct Parts {
    pub metrics: Arc<Metrics>,
    pub ready: Ready,
    /// The tables API (absent: not served).
    pub tabular: Option<ApiState>,
    /// The dataset API and its bearer token (absent: not served).
    pub dataset: Option<(DatasetApi, Bearer)>,
    /// The bearer token of every `/v1` route when there is no dataset API (the tables API calls the LLM:
    /// it is never open in a service); with a dataset, its token.
    pub bearer: Option<Bearer>,
    pub limits: Limits,
}

impl Parts {
    /// The token the protected routes check.
    fn bearer(&self) -> Option<Bearer> {
        self.dataset.as_ref().map(|(_, b)| b.clone()).or_else(|| self.bearer.clone())
    }
}

/// The limits every request runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body (uploads).
    pub max_body_bytes: u64,
    pub timeout: Duration,
    pub max_concurrent: usize,
}

impl Limits {
    pub fn of(c: &DatasetApiConfig) -> Limits {
        Limits {
            max_body_bytes: c.max_upload_bytes,
            timeout: Duration::from_secs(c.request_timeout_secs),
            max_concurrent: c.max_concurrent_requests,
        }
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: Arc<Metrics>,
    ready: Ready,
    dataset: Option<DatasetApi>,
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(s): State<OpsState>) -> Response {
    if !s.ready.get() {
        return Problem::unavailable("starting or shutting down").into_response();
    }
    if let Some(api) = &s.dataset
        && let Err(e) = api.store_answers(Duration::from_secs(3)).await
    {
        return Problem::unavailable(format!("the dataset store does not answer: {e}")).into_response();
    }
    Json(json!({ "status": "ready" })).into_response()
}

async fn metrics(State(s): State<OpsState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

/// Every route the router serves: the open ones (health, metrics, the OpenAPI document), then the tables
/// and dataset routes.
pub fn routes(parts: &Parts) -> Vec<Route> {
    let ops = OpsState {
        metrics: parts.metrics.clone(),
        ready: parts.ready.clone(),
        dataset: parts.dataset.as_ref().map(|(api, _)| api.clone()),
    };
    let open = |path: &'static str, handler: axum::routing::MethodRouter| Route {
        method: Method::GET,
        path,
        protected: false,
        handler,
    };
    let mut routes = vec![
        open("/healthz", get(healthz)),
        open("/readyz", get(readyz).with_state(ops.clone())),
        open("/metrics", get(metrics).with_state(ops)),
        open("/openapi.json", get(openapi)),
    ];
    if let Some(state) = &parts.tabular {
        routes.extend(crate::tabular::routes(state.clone(), parts.bearer().is_some()));
    }
    if let Some((api, _)) = &parts.dataset {
        routes.extend(crate::dataset_api::routes(api.clone()));
    }
    routes
}

/// The router: the routes, the bearer check on the protected ones, and the limits (body size, time,
/// concurrency) on all, with every error as `{"error": {"code", "message"}}`.
pub fn router(parts: &Parts) -> Router {
    let bearer = parts.bearer();
    let mut router = Router::new();
    for route in routes(parts) {
        let handler = match (&bearer, route.protected) {
            (Some(b), true) => {
                route.handler.route_layer(axum::middleware::from_fn_with_state(b.clone(), require_bearer))
            }
            _ => route.handler,
        };
        router = router.route(route.path, handler);
    }
    // The review page (HTML, not part of the OpenAPI document): the same token, checked by its own layer
    // (header, or the cookie the page sets).
    if let Some((api, bearer)) = &parts.dataset {
        let state = crate::review::ReviewState {
            api: api.clone(),
            bearer: bearer.clone(),
            metrics: crate::review::ReviewMetrics::of(&parts.metrics),
        };
        for route in crate::review::routes(state) {
            router = router.route(route.path, route.handler);
        }
    }
    let limits = parts.limits;
    // The uploads read their body with their own limit (and answer 413 themselves); this one is the
    // outer bound on any request, a little above it.
    let body_limit = usize::try_from(limits.max_body_bytes.saturating_add(64 << 10)).unwrap_or(usize::MAX);
    router
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_concurrent))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limits.timeout))
        .layer(axum::middleware::map_response(json_errors))
}

/// The dataset API's parts from its configuration and the caller's dependencies: fails when no token is
/// configured.
pub fn dataset_parts(c: &DatasetApiConfig, deps: DatasetDeps) -> anyhow::Result<(DatasetApi, Bearer)> {
    let token = c.resolve_token().map_err(anyhow::Error::msg)?;
    let exports_dir = c
        .exports_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("distillery-exports-{}", std::process::id())));
    std::fs::create_dir_all(&exports_dir).with_context(|| format!("creating {}", exports_dir.display()))?;
    let api = DatasetApi::new(deps.store, deps.uploads, deps.exporter, exports_dir, c.max_upload_bytes, c.max_page);
    Ok((api, Bearer::new(&token)))
}

/// Serves until `cancel`, from a configuration file (the `distillery-api` binary: the tables API only; the
/// dataset API needs a store, which `distillery service api` and `distillery serve` open).
pub async fn run(config: Option<&Path>, cancel: CancellationToken) -> anyhow::Result<()> {
    let c: ApiServiceConfig = load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !c.api.store.is_empty() {
        anyhow::bail!(
            "api.store is set, but the distillery-api binary links no database driver: run `distillery service api` \
             for the dataset API"
        );
    }
    run_with(c, None, cancel).await
}

/// Serves until `cancel`. Served here rather than spawned: on SIGTERM the API stops accepting, reports not
/// ready, and returns only once the responses in flight (tables still streaming) have been sent.
pub async fn run_with(
    c: ApiServiceConfig,
    dataset: Option<DatasetDeps>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Fail fast, before any connection: no route that reads the dataset or spends LLM calls without a token.
    let dataset = dataset.map(|deps| dataset_parts(&c.api, deps)).transpose()?;
    let bearer = match &dataset {
        Some(_) => None,
        None => Some(Bearer::new(&c.api.resolve_token().map_err(|e| {
            anyhow::anyhow!("{e}; the tables API (/v1/tabular) spends LLM calls and is never served without one")
        })?)),
    };
    let metrics = Metrics::global();
    let llm = Arc::new(LlmClient::connect(c.llm.clone(), LlmRole::Schema, metrics.clone()).await);
    tracing::info!(llm = ?llm, "schema model");
    let tabular =
        ApiState { llm, cache: c.tabular.cache()?.map(Arc::new), cfg: c.tabular.clone(), metrics: metrics.clone() };
    let ready = Ready::default();
    let has_dataset = dataset.is_some();
    let store = dataset.as_ref().map(|(api, _)| api.store.describe());
    let parts =
        Parts { metrics, ready: ready.clone(), tabular: Some(tabular), dataset, bearer, limits: Limits::of(&c.api) };
    let router = router(&parts);
    let listener =
        tokio::net::TcpListener::bind(c.ops.listen).await.with_context(|| format!("binding {}", c.ops.listen))?;
    let local = listener.local_addr().unwrap_or(c.ops.listen);
    ready.set(true);
    if has_dataset {
        tracing::info!(listen = %local, store = store.as_deref().unwrap_or_default(), "API serving the dataset (/v1/documents, /v1/stats, /v1/exports; bearer token required) and /v1/tabular");
    } else {
        tracing::info!(listen = %local, "API serving POST /v1/tabular and /v1/tabular/schema");
    }
    let shutdown = async move {
        cancel.cancelled().await;
        ready.set(false);
        tracing::info!("shutting down: finishing the responses in flight");
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("API server")?;
    tracing::info!("API stopped");
    Ok(())
}

/// The `distillery-api` binary.
pub fn main() -> std::process::ExitCode {
    distillery_runtime::boot::service_main("distillery-api", |config, cancel| async move {
        run(config.as_deref(), cancel).await.map_err(|e| format!("{e:#}"))
    })
}
