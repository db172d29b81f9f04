//! The operations endpoint every service serves: `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (consuming). Extra routes (webhooks, APIs) can be merged in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use distillery_core::Metrics;
use tokio_util::sync::CancellationToken;

/// Readiness flag flipped by the runtime once it consumes.
#[derive(Debug, Clone, Default)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: Arc<Metrics>,
    ready: Ready,
}

/// The `/metrics`, `/healthz`, `/readyz` routes.
pub fn ops_router(metrics: Arc<Metrics>, ready: Ready) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { metrics, ready })
}

async fn render_metrics(State(s): State<OpsState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}

async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
    if s.ready.get() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting") }
}

/// Serves `router` on `addr` until `cancel` fires. Returns the bound address (useful with port 0).
pub async fn serve(addr: SocketAddr, router: Router, cancel: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let res = axum::serve(listener, router).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
        if let Err(e) = res {
            tracing::error!(error = %e, "ops endpoint stopped");
        }
    });
    tracing::info!(%local, "serving /metrics, /healthz, /readyz");
    Ok(local)
}
