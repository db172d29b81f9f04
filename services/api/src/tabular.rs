//! Synthetic tables: `distillery tabular` and the API service's `POST /v1/tabular`.
//!
//! Both do the same two steps: a schema (given by the caller, from the cache, or designed by one LLM call),
//! then rows from the seeded generator streamed straight to a file or to the HTTP response. Nothing holds
//! the whole table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::Context as _;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use distillery_core::Metrics;
use distillery_core::config::Settings;
use distillery_llm::{LlmClient, LlmConfig, LlmRole};
use distillery_tabular::design::DesignOptions;
use distillery_tabular::{
    Designed, Format, SchemaCache, TableSchema, TableStream, TabularError, WriteOptions, parse_schema,
};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use distillery_runtime::boot::OpsConfig;

use crate::metrics::TabularMetrics;

/// Rows and schema settings shared by the CLI and the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TabularConfig {
    /// Folder of designed schemas, keyed by normalised description and model (default: the user's cache
    /// folder, `~/.cache/distillery/schemas`).
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the schema cache.
    pub no_cache: bool,
    /// Rows when neither the request nor the description says how many.
    pub default_rows: u64,
    /// The largest row count one API request may ask for (the command line takes any count: its rows go to
    /// the user's own file).
    pub max_rows: u64,
    /// Generation threads (0 = one per core). The output does not depend on it.
    pub threads: usize,
    /// Seed when the request gives none: the same request gives the same bytes.
    pub default_seed: u64,
}

impl Default for TabularConfig {
    fn default() -> Self {
        TabularConfig {
            cache_dir: None,
            no_cache: false,
            default_rows: 1000,
            max_rows: 1_000_000,
            threads: 0,
            default_seed: 42,
        }
    }
}

impl TabularConfig {
    /// Adds one line per problem.
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.default_rows == 0 {
            errors.push(format!("{section}.default_rows must be > 0"));
        }
        if self.max_rows == 0 {
            errors.push(format!("{section}.max_rows must be > 0"));
        }
        if self.default_rows > self.max_rows {
            errors.push(format!("{section}.default_rows must be <= {section}.max_rows"));
        }
    }

    /// The schema cache, unless disabled.
    pub fn cache(&self) -> anyhow::Result<Option<SchemaCache>> {
        if self.no_cache {
            return Ok(None);
        }
        let dir = self.cache_dir.clone().unwrap_or_else(default_cache_dir);
        Ok(Some(SchemaCache::open(&dir).with_context(|| format!("schema cache {}", dir.display()))?))
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions { threads: self.threads, ..WriteOptions::default() }
    }
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".distillery"));
    base.join("distillery").join("schemas")
}

/// The API service (and the `tabular` command's configuration file): the schema model and the table limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiServiceConfig {
    /// Address serving the API next to /metrics, /healthz and /readyz.
    pub ops: OpsConfig,
    /// The model that designs schemas (one call per new description).
    pub llm: LlmConfig,
    /// Rows, seeds and the schema cache.
    pub tabular: TabularConfig,
    /// The dataset API: its token, store and request limits.
    pub api: crate::dataset::DatasetApiConfig,
}

impl Default for ApiServiceConfig {
    fn default() -> Self {
        ApiServiceConfig {
            ops: OpsConfig::default(),
            // Schemas should be sensible, not creative; a 30-column schema fits in 3k tokens.
            llm: LlmConfig { temperature: 0.2, max_tokens: 3072, ..LlmConfig::default() },
            tabular: TabularConfig::default(),
            api: crate::dataset::DatasetApiConfig::default(),
        }
    }
}

impl Settings for ApiServiceConfig {
    fn validate(&self, errors: &mut Vec<String>) {
        self.llm.validate("llm", errors);
        self.tabular.validate("tabular", errors);
        self.api.validate("api", errors);
    }
}

/// Where a request's schema came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaSource {
    /// The caller passed it.
    Given,
    /// The cache had it (no LLM call).
    Cache,
    /// One LLM call designed it (plus a repair when the first answer was invalid).
    Llm,
}

impl SchemaSource {
    fn as_str(self) -> &'static str {
        match self {
            SchemaSource::Given => "given",
            SchemaSource::Cache => "cache",
            SchemaSource::Llm => "llm",
        }
    }
}

/// A resolved schema and how it was obtained.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The validated schema.
    pub schema: TableSchema,
    /// Where it came from.
    pub source: SchemaSource,
    /// The design call's details, when the LLM or the cache was asked.
    pub designed: Option<Designed>,
}

/// Designs (or looks up) the schema for a description.
pub async fn resolve_description(
    llm: &LlmClient,
    description: &str,
    cache: Option<&SchemaCache>,
) -> Result<Resolved, TabularError> {
    let designed = distillery_tabular::design(llm, description, cache, &DesignOptions::default()).await?;
    let source = if designed.cached { SchemaSource::Cache } else { SchemaSource::Llm };
    Ok(Resolved { schema: designed.schema.clone(), source, designed: Some(designed) })
}

/// Arguments of `distillery tabular`.
#[derive(Debug, Clone)]
pub struct TabularArgs {
    /// The plain-English description (unless a schema file is given).
    pub description: Option<String>,
    /// Row count (default: the description's "N rows", else the configured default).
    pub rows: Option<u64>,
    /// Output format (default: from the output file's extension, else CSV).
    pub format: Option<Format>,
    /// Output file, `-` for stdout; none with `print_schema` only designs.
    pub out: Option<PathBuf>,
    /// Generation seed.
    pub seed: Option<u64>,
    /// A schema file (typed or flat form): no LLM call.
    pub schema: Option<PathBuf>,
    /// Write the schema as JSON to stdout (stderr when the table goes to stdout).
    pub print_schema: bool,
    /// Settings (model, cache, limits).
    pub config: ApiServiceConfig,
}

/// What `distillery tabular` did, for its closing line.
#[derive(Debug, Clone, Serialize)]
pub struct TabularReport {
    /// The table's name.
    pub table: String,
    /// Columns.
    pub columns: usize,
    /// Where the schema came from.
    pub schema_source: SchemaSource,
    /// LLM tokens spent on the schema.
    pub schema_tokens: u64,
    /// Rows written (0 when only the schema was asked for).
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds spent generating and writing.
    pub write_seconds: f64,
    /// The seed used.
    pub seed: u64,
}

/// Runs `distillery tabular`.
pub async fn tabular_command(args: TabularArgs) -> anyhow::Result<TabularReport> {
    let cfg = &args.config.tabular;
    let (resolved, requested_rows) = match (&args.schema, &args.description) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let schema = parse_schema(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let rows = args.description.as_deref().and_then(distillery_tabular::requested_rows);
            (Resolved { schema, source: SchemaSource::Given, designed: None }, rows)
        }
        (None, Some(description)) => {
            let cache = cfg.cache()?;
            let llm = LlmClient::connect(args.config.llm.clone(), LlmRole::Schema, Metrics::global()).await;
            let started = Instant::now();
            let resolved = resolve_description(&llm, description, cache.as_ref()).await?;
            let d = resolved.designed.as_ref().expect("designed");
            eprintln!(
                "schema {:?}: {} columns, {} ({} tokens, {:.1} s)",
                resolved.schema.name,
                resolved.schema.columns.len(),
                match resolved.source {
                    SchemaSource::Cache => "from the cache, no LLM call".to_string(),
                    _ if d.repaired => format!("designed by {} after one repair", llm.config().model),
                    _ => format!("designed by {}", llm.config().model),
                },
                d.tokens(),
                started.elapsed().as_secs_f64()
            );
            let rows = d.requested_rows;
            (resolved, rows)
        }
        (None, None) => anyhow::bail!("give a description or --schema FILE"),
    };
    let to_stdout = args.out.as_deref() == Some(Path::new("-"));
    if args.print_schema {
        let json = serde_json::to_string_pretty(&resolved.schema)?;
        if to_stdout {
            eprintln!("{json}");
        } else {
            println!("{json}");
        }
    }
    let mut report = TabularReport {
        table: resolved.schema.name.clone(),
        columns: resolved.schema.columns.len(),
        schema_source: resolved.source,
        schema_tokens: resolved.designed.as_ref().map_or(0, Designed::tokens),
        rows: 0,
        bytes: 0,
        write_seconds: 0.0,
        seed: args.seed.unwrap_or(cfg.default_seed),
    };
    let Some(out) = args.out.clone() else {
        anyhow::ensure!(args.print_schema, "give --out FILE (or --print-schema to only design the schema)");
        return Ok(report);
    };
    let rows = args.rows.or(requested_rows).unwrap_or(cfg.default_rows);
    anyhow::ensure!(rows > 0, "--rows must be > 0");
    let format = match args.format {
        Some(f) => f,
        None if to_stdout => Format::Csv,
        None => out.extension().and_then(|e| e.to_str()).and_then(|e| e.parse::<Format>().ok()).unwrap_or(Format::Csv),
    };
    let schema = resolved.schema;
    let seed = report.seed;
    let opts = cfg.write_options();
    let stats = tokio::task::spawn_blocking(move || write_file(&schema, rows, seed, format, &out, &opts))
        .await
        .context("the writer thread failed")??;
    report.rows = stats.rows;
    report.bytes = stats.bytes;
    report.write_seconds = stats.elapsed.as_secs_f64();
    Ok(report)
}

/// Writes the table to `out` (`-` = stdout) through a temporary file renamed into place, so a failed or
/// interrupted run never leaves a truncated table under the final name.
fn write_file(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    out: &Path,
    opts: &WriteOptions,
) -> anyhow::Result<distillery_tabular::WriteStats> {
    if out == Path::new("-") {
        let stdout = std::io::stdout().lock();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout);
        let stats = distillery_tabular::write_table_with(schema, rows, seed, format, &mut w, opts)?;
        w.flush()?;
        return Ok(stats);
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = partial_path(dir, out);
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = distillery_tabular::write_table_with(schema, rows, seed, format, &mut w, opts)
        .map_err(anyhow::Error::from)
        .and_then(|stats| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(stats)
        });
    match result {
        Ok(stats) => {
            std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
            Ok(stats)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("writing {}", out.display())))
        }
    }
}

/// The hidden file a table is written to before it is renamed to `out`.
fn partial_path(dir: &Path, out: &Path) -> PathBuf {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("table");
    dir.join(format!(".{name}.{}.partial", std::process::id()))
}

// ---------------------------------------------------------------------------------------------------------
// HTTP API

/// State of the API routes.
#[derive(Clone)]
pub struct ApiState {
    /// The schema-design model.
    pub llm: Arc<LlmClient>,
    /// The schema cache (none when disabled).
    pub cache: Option<Arc<SchemaCache>>,
    /// Limits and defaults.
    pub cfg: TabularConfig,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A table request: a description (designed or cached) or a schema (typed or flat form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRequest {
    /// The plain-English description.
    pub description: Option<String>,
    /// A schema; wins over the description.
    pub schema: Option<serde_json::Value>,
    /// Rows (default: the description's "N rows", else the configured default).
    pub rows: Option<u64>,
    /// csv (default), jsonl or parquet.
    pub format: Option<String>,
    /// Generation seed (default: the configured one; the same request gives the same bytes).
    pub seed: Option<u64>,
}

/// The API routes: `POST /v1/tabular` (the table, streamed) and `POST /v1/tabular/schema` (the schema only).
pub fn api_router(state: ApiState) -> Router {
    routes(state, false).into_iter().fold(Router::new(), |r, route| r.route(route.path, route.handler))
}

/// The same routes as a table (behind the bearer token when `protected`).
pub fn routes(state: ApiState, protected: bool) -> Vec<crate::http::Route> {
    use axum::http::Method;
    vec![
        crate::http::Route {
            method: Method::POST,
            path: "/v1/tabular",
            protected,
            handler: post(table_handler).with_state(state.clone()),
        },
        crate::http::Route {
            method: Method::POST,
            path: "/v1/tabular/schema",
            protected,
            handler: post(schema_handler).with_state(state),
        },
    ]
}

/// An API failure as a status and a JSON body `{error, problems?}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    outcome: &'static str,
    message: String,
    problems: Vec<String>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, outcome: "invalid", message: message.into(), problems: vec![] }
    }
}

impl From<TabularError> for ApiError {
    fn from(e: TabularError) -> Self {
        let problems = e.problems().map(<[String]>::to_vec).unwrap_or_default();
        let (status, outcome) = match &e {
            TabularError::InvalidRequest(_) | TabularError::SchemaJson(_) => (StatusCode::BAD_REQUEST, "invalid"),
            TabularError::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            // The model could not produce a usable schema: an upstream failure, with its problems listed.
            TabularError::DesignFailed { .. } => (StatusCode::BAD_GATEWAY, "design_failed"),
            TabularError::Llm(_) => (StatusCode::BAD_GATEWAY, "llm_error"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "error"),
        };
        let message = match &e {
            TabularError::InvalidSchema(_) => "invalid table schema".to_string(),
            TabularError::DesignFailed { .. } => "the model could not design a valid schema".to_string(),
            other => other.to_string(),
        };
        ApiError { status, outcome, message, problems }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.problems.is_empty() {
            body["problems"] = json!(self.problems);
        }
        (self.status, Json(body)).into_response()
    }
}

async fn resolve_request(state: &ApiState, req: &TableRequest) -> Result<(Resolved, Option<u64>), ApiError> {
    if let Some(schema) = &req.schema {
        let schema = parse_schema(&schema.to_string())?;
        let rows = req.description.as_deref().and_then(distillery_tabular::requested_rows);
        return Ok((Resolved { schema, source: SchemaSource::Given, designed: None }, rows));
    }
    let Some(description) = req.description.as_deref().filter(|d| !d.trim().is_empty()) else {
        return Err(ApiError::bad_request("give a description or a schema"));
    };
    let resolved = resolve_description(&state.llm, description, state.cache.as_deref()).await?;
    let rows = resolved.designed.as_ref().and_then(|d| d.requested_rows);
    Ok((resolved, rows))
}

fn count(state: &ApiState, outcome: &str, source: Option<SchemaSource>) {
    let source = source.map_or("none", SchemaSource::as_str);
    TabularMetrics::of(&state.metrics).requests.with_label_values(&[outcome, source]).inc();
}

async fn schema_handler(State(state): State<ApiState>, Json(req): Json<TableRequest>) -> Response {
    match resolve_request(&state, &req).await {
        Ok((r, rows)) => {
            count(&state, "ok", Some(r.source));
            let tokens = r.designed.as_ref().map_or(0, Designed::tokens);
            Json(json!({ "schema": r.schema, "source": r.source, "tokens": tokens, "requested_rows": rows }))
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e.message, problems = ?e.problems, "tabular schema request failed");
            count(&state, e.outcome, None);
            e.into_response()
        }
    }
}

async fn table_handler(State(state): State<ApiState>, Json(req): Json<TableRequest>) -> Response {
    match table(&state, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e.message, problems = ?e.problems, "tabular request failed");
            count(&state, e.outcome, None);
            e.into_response()
        }
    }
}

async fn table(state: &ApiState, req: TableRequest) -> Result<Response, ApiError> {
    let format = match req.format.as_deref() {
        None => Format::Csv,
        Some(f) => f.parse::<Format>()?,
    };
    let (resolved, requested) = resolve_request(state, &req).await?;
    let rows = req.rows.or(requested).unwrap_or(state.cfg.default_rows);
    if rows == 0 || rows > state.cfg.max_rows {
        return Err(ApiError::bad_request(format!("rows must be between 1 and {}", state.cfg.max_rows)));
    }
    let seed = req.seed.unwrap_or(state.cfg.default_seed);
    let stream =
        distillery_tabular::stream::stream_table_with(&resolved.schema, rows, seed, format, state.cfg.write_options())?;
    tracing::info!(
        table = %resolved.schema.name, columns = resolved.schema.columns.len(), rows, seed,
        format = format.as_str(), schema = resolved.source.as_str(), "streaming a table"
    );
    let filename = format!("{}.{}", sanitize(&resolved.schema.name), format.extension());
    let counted = Counted { inner: stream, state: state.clone(), source: resolved.source, rows, bytes: 0, done: false };
    let mut response = Response::new(Body::from_stream(counted));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert("x-distillery-rows", HeaderValue::from(rows));
    headers.insert("x-distillery-seed", HeaderValue::from(seed));
    headers.insert("x-distillery-schema-source", HeaderValue::from_static(resolved.source.as_str()));
    Ok(response)
}

fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "table".into() } else { s }
}

/// The table's byte stream, counting what reaches the client for the metrics.
struct Counted {
    inner: TableStream,
    state: ApiState,
    source: SchemaSource,
    rows: u64,
    bytes: u64,
    done: bool,
}

impl Stream for Counted {
    type Item = Result<Bytes, TabularError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(b))) => self.bytes += b.len() as u64,
            Poll::Ready(Some(Err(e))) => {
                tracing::error!(error = %e, "table generation failed mid-stream");
                self.done = true;
                count(&self.state, "aborted", Some(self.source));
            }
            Poll::Ready(None) if !self.done => {
                self.done = true;
                let format = self.inner.format().as_str();
                let m = TabularMetrics::of(&self.state.metrics);
                m.rows.with_label_values(&[format]).inc_by(self.rows);
                m.bytes.with_label_values(&[format]).inc_by(self.bytes);
                count(&self.state, "ok", Some(self.source));
            }
            _ => {}
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.done {
            // The client went away; dropping the inner stream stops the generator.
            count(&self.state, "aborted", Some(self.source));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_lists_every_problem() {
        let mut c = ApiServiceConfig::default();
        c.tabular.default_rows = 0;
        c.tabular.max_rows = 0;
        c.llm.base_url = String::new();
        let mut errors = vec![];
        c.validate(&mut errors);
        assert!(errors.iter().any(|e| e.contains("tabular.default_rows")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("tabular.max_rows")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("llm")), "{errors:?}");
        let mut ok = vec![];
        ApiServiceConfig::default().validate(&mut ok);
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn unsafe_filenames_are_sanitized() {
        assert_eq!(sanitize("orders 2024/../x"), "orders_2024____x");
        assert_eq!(sanitize(""), "table");
        assert_eq!(sanitize("churn-data_v1"), "churn-data_v1");
    }

    #[test]
    fn errors_map_to_statuses_with_problems() {
        let e = ApiError::from(TabularError::InvalidSchema(vec!["a: bad".into(), "b: worse".into()]));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problems.len(), 2);
        let e = ApiError::from(TabularError::DesignFailed { errors: vec!["x".into()], raw: String::new() });
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        assert_eq!(e.outcome, "design_failed");
        let e = ApiError::from(TabularError::InvalidRequest("zero rows".into()));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
