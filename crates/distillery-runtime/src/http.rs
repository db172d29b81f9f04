//! The operations endpoint every service serves: `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (consuming). Extra routes (webhooks, APIs) can be merged in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use distillery_core::Metrics;
use tokio_util::sync::CancellationToken;

/// Readiness: set by the runtime once it consumes; not ready either while consumption is paused (the
/// circuit breaker: a dependency is failing), with the cause `/readyz` shows.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    ready: Arc<AtomicBool>,
    paused: Arc<Mutex<Option<String>>>,
}

impl Ready {
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    /// Ready, and not paused.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.paused().is_none()
    }
    /// Marks consumption paused (with why) or resumed.
    pub fn set_paused(&self, cause: Option<String>) {
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = cause;
    }
    /// Why consumption is paused, while it is.
    pub fn paused(&self) -> Option<String> {
        self.paused.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
    match s.ready.paused() {
        Some(cause) => (StatusCode::SERVICE_UNAVAILABLE, cause),
        None if s.ready.get() => (StatusCode::OK, "ready".to_string()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping".to_string()),
    }
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
