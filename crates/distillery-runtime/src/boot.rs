//! What every Distillery process does before and after its work: logging, its operations endpoint
//! (metrics, liveness, readiness) and the `main` of a service binary (`--config FILE`, then
//! `DISTILLERY__SECTION__FIELD` variables; SIGTERM drains).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use distillery_core::Metrics;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::http::{Ready, ops_router, serve};

/// Directives added to the default filter: qdrant-edge warns at every start that what Qdrant's own `main`
/// sets up was not (its feature flags, the check whether several memory maps of one file are safe): outside
/// Qdrant nothing can (the modules are private), and the engine goes on with its defaults, as it should.
const QUIET: &str = "qdrant_edge::common::mmap::ops=error,qdrant_edge::common::flags=error";

/// Logging: `RUST_LOG` wins; JSON lines when `DISTILLERY_LOG_JSON=1`.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},{QUIET}")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("DISTILLERY_LOG_JSON").is_ok_and(|v| v == "1") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The operations endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Address serving /metrics, /healthz and /readyz.
    pub listen: SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig { listen: "0.0.0.0:9100".parse().expect("valid address") }
    }
}

/// Serves the ops endpoint (plus `extra` routes) right away, alive but not ready, before any slow startup
/// work, so probes and metrics answer while models load and servers are reached.
pub async fn serve_ops(
    cfg: &OpsConfig,
    metrics: Arc<Metrics>,
    extra: Router,
    cancel: &CancellationToken,
) -> std::io::Result<Ready> {
    let ready = Ready::default();
    let router = ops_router(metrics, ready.clone()).merge(extra);
    serve(cfg.listen, router, cancel.clone()).await?;
    Ok(ready)
}

/// The arguments of a service binary: `--config FILE` (or `DISTILLERY_CONFIG`).
fn config_arg(binary: &str) -> Result<Option<PathBuf>, ExitCode> {
    let mut args = std::env::args().skip(1);
    let mut config = std::env::var_os("DISTILLERY_CONFIG").map(PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(Into::into),
            "-h" | "--help" => {
                println!(
                    "usage: {binary} [--config FILE]\nSettings: defaults, then FILE, then DISTILLERY__SECTION__FIELD variables."
                );
                return Err(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("error: unknown argument {other}");
                return Err(ExitCode::FAILURE);
            }
        }
    }
    Ok(config)
}

/// Runs a future on a multi-threaded runtime and turns its outcome into an exit code.
pub fn block_on<F, E>(work: F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `main` of a service binary: parses `--config`, logs at info, runs `service` until SIGTERM/ctrl-c.
pub fn service_main<F, Fut, E>(binary: &str, service: F) -> ExitCode
where
    F: FnOnce(Option<PathBuf>, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let config = match config_arg(binary) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_tracing("info");
    block_on(async move { service(config, crate::shutdown_signal()).await })
}
