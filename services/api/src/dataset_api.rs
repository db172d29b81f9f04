//! The dataset routes (all behind the bearer token): documents and their progress, a document's accepted
//! and rejected records in pages, the dataset's totals, uploads, and exports run in the background.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use distillery_core::Record;
use distillery_dataset::{DatasetStore, DocumentProgress, OutcomeKind, Totals};
use distillery_export::ExampleView;
use serde::{Deserialize, Serialize};

use crate::dataset::{Exporter, UploadReceipt, Uploads, check_upload_name};
use crate::http::{Problem, Route};

/// Records scanned per store call while collecting a document's page.
const SCAN_PAGE: usize = 500;
/// The page size of `GET /v1/documents/{id}/records` without `?limit=`.
const DEFAULT_PAGE: usize = 100;

/// What the dataset routes work with.
#[derive(Clone, Debug)]
pub struct DatasetApi {
    pub store: Arc<dyn DatasetStore>,
    pub uploads: Arc<dyn Uploads>,
    pub exporter: Arc<dyn Exporter>,
    /// Where exports are written, one folder per id.
    pub exports_dir: PathBuf,
    /// The largest upload, in bytes.
    pub max_upload_bytes: u64,
    /// The largest records page.
    pub max_page: usize,
    jobs: Arc<Mutex<HashMap<String, ExportJob>>>,
}

impl DatasetApi {
    pub fn new(
        store: Arc<dyn DatasetStore>,
        uploads: Arc<dyn Uploads>,
        exporter: Arc<dyn Exporter>,
        exports_dir: PathBuf,
        max_upload_bytes: u64,
        max_page: usize,
    ) -> DatasetApi {
        DatasetApi { store, uploads, exporter, exports_dir, max_upload_bytes, max_page, jobs: Arc::default() }
    }

    /// Whether the store answers (a one-record read), within `timeout`.
    pub async fn store_answers(&self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.store.outcomes(OutcomeKind::Document, None, 1)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

/// `GET /v1/documents`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DocumentList {
    pub documents: Vec<DocumentProgress>,
}

/// A document's record: its outcome and its export view (as in `accepted.jsonl` / `rejected.jsonl`).
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordView {
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// The stored record's id: the cursor of pages (`?after=`). A rejection's view `id` is its subject's.
    pub record_id: String,
    #[serde(flatten)]
    pub example: ExampleView,
}

/// `GET /v1/documents/{id}/records`: one page, in id order.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordPage {
    pub records: Vec<RecordView>,
    /// The `?after=` of the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// `?name=` of a raw upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    pub name: Option<String>,
}

/// `POST /v1/exports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: String,
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportStatus {
    Running,
    Done,
    Failed,
}

/// An export and its state (`POST /v1/exports`, `GET /v1/exports/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    pub id: String,
    pub format: String,
    pub status: ExportStatus,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Records written, once done.
    pub records: Option<u64>,
    /// The file's size in bytes, once done.
    pub bytes: Option<u64>,
    /// The file's name, once done.
    pub file_name: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    #[serde(skip)]
    file: Option<PathBuf>,
}

/// The dataset routes, all protected.
pub fn routes(api: DatasetApi) -> Vec<Route> {
    let r = |method: Method, path: &'static str, handler: axum::routing::MethodRouter<DatasetApi>| Route {
        method,
        path,
        protected: true,
        handler: handler.with_state(api.clone()),
    };
    vec![
        r(Method::GET, "/v1/documents", get(list_documents)),
        r(Method::POST, "/v1/documents", post(upload)),
        r(Method::GET, "/v1/documents/{id}", get(get_document)),
        r(Method::GET, "/v1/documents/{id}/records", get(document_records)),
        r(Method::GET, "/v1/stats", get(stats)),
        r(Method::POST, "/v1/exports", post(start_export)),
        r(Method::GET, "/v1/exports/{id}", get(export_status)),
        r(Method::GET, "/v1/exports/{id}/download", get(download_export)),
    ]
}

fn store_problem(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "dataset store request failed");
    Problem::unavailable(format!("the dataset store did not answer: {e}"))
}

async fn list_documents(State(api): State<DatasetApi>) -> Result<Json<DocumentList>, Problem> {
    let documents = api.store.documents().await.map_err(store_problem)?;
    Ok(Json(DocumentList { documents }))
}

async fn find_document(api: &DatasetApi, id: &str) -> Result<DocumentProgress, Problem> {
    let documents = api.store.documents().await.map_err(store_problem)?;
    documents.into_iter().find(|d| d.document_id == id).ok_or_else(|| Problem::not_found(format!("no document {id}")))
}

async fn get_document(
    State(api): State<DatasetApi>,
    Path(id): Path<String>,
) -> Result<Json<DocumentProgress>, Problem> {
    Ok(Json(find_document(&api, &id).await?))
}

async fn stats(State(api): State<DatasetApi>) -> Result<Json<Totals>, Problem> {
    Ok(Json(api.store.totals().await.map_err(store_problem)?))
}

/// The first `want` records of `kind` about `document` after `after`, in id order.
async fn collect(
    api: &DatasetApi,
    kind: OutcomeKind,
    document: &str,
    after: Option<&str>,
    want: usize,
) -> Result<Vec<RecordView>, Problem> {
    let mut out = Vec::new();
    let mut cursor = after.map(str::to_string);
    while out.len() < want {
        let page = api.store.outcomes(kind, cursor.as_deref(), SCAN_PAGE).await.map_err(store_problem)?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id().to_string());
        let full = page.len() == SCAN_PAGE;
        for record in &page {
            let view = match record {
                Record::Accepted(a) => RecordView {
                    outcome: "accepted".into(),
                    record_id: a.id.clone(),
                    example: ExampleView::accepted(a),
                },
                Record::Rejected(r) => RecordView {
                    outcome: "rejected".into(),
                    record_id: r.id.clone(),
                    example: ExampleView::rejected(r),
                },
                _ => continue,
            };
            if view.example.document_id.as_deref() == Some(document) && out.len() < want {
                out.push(view);
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

async fn document_records(
    State(api): State<DatasetApi>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<RecordPage>, Problem> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE.min(api.max_page));
    if limit == 0 || limit > api.max_page {
        return Err(Problem::bad_request(format!("limit must be between 1 and {}", api.max_page)));
    }
    find_document(&api, &id).await?;
    let after = q.after.as_deref().filter(|a| !a.is_empty());
    // Both kinds are in id order: the first `limit + 1` of each hold the first `limit + 1` of their merge.
    let mut records = collect(&api, OutcomeKind::Accepted, &id, after, limit + 1).await?;
    records.extend(collect(&api, OutcomeKind::Rejected, &id, after, limit + 1).await?);
    records.sort_by(|a, b| a.record_id.cmp(&b.record_id));
    let next_after = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| r.record_id.clone())
    } else {
        None
    };
    Ok(Json(RecordPage { records, next_after }))
}

async fn upload(
    State(api): State<DatasetApi>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadReceipt>), Problem> {
    let name = q.name.unwrap_or_default();
    check_upload_name(&name).map_err(Problem::bad_request)?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > api.max_upload_bytes) {
        return Err(Problem::too_large(api.max_upload_bytes));
    }
    let bytes = read_limited(body, api.max_upload_bytes).await?;
    if bytes.is_empty() {
        return Err(Problem::bad_request("the upload is empty"));
    }
    let receipt = api.uploads.upload(&name, bytes).await.map_err(|e| {
        tracing::warn!(error = %e, "upload failed");
        Problem::internal(format!("storing the upload failed: {e}"))
    })?;
    tracing::info!(name = %receipt.name, bytes = receipt.bytes, location = %receipt.location, "document uploaded");
    Ok((StatusCode::CREATED, Json(receipt)))
}

/// The body, or 413 once it passes `limit` bytes (whatever its `Content-Length` said).
async fn read_limited(body: Body, limit: u64) -> Result<bytes::Bytes, Problem> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_request(format!("reading the body: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(Problem::too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn job(api: &DatasetApi, id: &str) -> Result<ExportJob, Problem> {
    let jobs = api.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    jobs.get(id).cloned().ok_or_else(|| Problem::not_found(format!("no export {id}")))
}

fn update(api: &DatasetApi, id: &str, f: impl FnOnce(&mut ExportJob)) {
    let mut jobs = api.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(j) = jobs.get_mut(id) {
        f(j);
    }
}

async fn start_export(
    State(api): State<DatasetApi>,
    body: Result<Json<ExportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| Problem::bad_request(format!("expected {{\"format\": \"...\"}}: {e}")))?;
    let formats = api.exporter.formats();
    let format = req.format.to_ascii_lowercase();
    if !formats.contains(&format) {
        return Err(Problem::bad_request(format!("unknown format {:?} (one of: {})", req.format, formats.join(", "))));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let export = ExportJob {
        id: id.clone(),
        format: format.clone(),
        status: ExportStatus::Running,
        created_at_ms: distillery_core::now_ms(),
        finished_at_ms: None,
        records: None,
        bytes: None,
        file_name: None,
        error: None,
        file: None,
    };
    api.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), export.clone());
    let out = api.exports_dir.join(&id);
    let task_api = api.clone();
    tokio::spawn(async move {
        let api = task_api;
        let result = match tokio::fs::create_dir_all(&out).await {
            Ok(()) => api.exporter.export(&format, &out).await,
            Err(e) => Err(format!("creating {}: {e}", out.display())),
        };
        let result = match result {
            Ok(summary) => match tokio::fs::metadata(&summary.file).await {
                Ok(m) if m.is_file() => Ok((summary, m.len())),
                Ok(_) => Err(format!("the export wrote no file at {}", summary.file.display())),
                Err(e) => Err(format!("the export's file {}: {e}", summary.file.display())),
            },
            Err(e) => Err(e),
        };
        let now = distillery_core::now_ms();
        match result {
            Ok((summary, size)) => {
                tracing::info!(id = %id, format = %format, records = summary.records, bytes = size, "export done");
                update(&api, &id, |j| {
                    j.status = ExportStatus::Done;
                    j.finished_at_ms = Some(now);
                    j.records = Some(summary.records);
                    j.bytes = Some(size);
                    j.file_name = summary.file.file_name().map(|n| n.to_string_lossy().into_owned());
                    j.file = Some(summary.file);
                });
            }
            Err(e) => {
                tracing::warn!(id = %id, format = %format, error = %e, "export failed");
                update(&api, &id, |j| {
                    j.status = ExportStatus::Failed;
                    j.finished_at_ms = Some(now);
                    j.error = Some(e);
                });
            }
        }
    });
    let location = format!("/v1/exports/{}", export.id);
    let mut res = (StatusCode::ACCEPTED, Json(export)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

async fn export_status(State(api): State<DatasetApi>, Path(id): Path<String>) -> Result<Json<ExportJob>, Problem> {
    Ok(Json(job(&api, &id)?))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("jsonl") => "application/x-ndjson",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

async fn download_export(State(api): State<DatasetApi>, Path(id): Path<String>) -> Result<Response, Problem> {
    let export = job(&api, &id)?;
    let file = match (export.status, export.file) {
        (ExportStatus::Done, Some(file)) => file,
        (ExportStatus::Failed, _) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "export_failed",
                format!("export {id} failed: {}", export.error.unwrap_or_default()),
            ));
        }
        _ => return Err(Problem::new(StatusCode::CONFLICT, "export_running", format!("export {id} is still running"))),
    };
    let f = tokio::fs::File::open(&file).await.map_err(|e| Problem::internal(format!("opening the export: {e}")))?;
    let len = f.metadata().await.map_err(|e| Problem::internal(e.to_string()))?.len();
    let name = export.file_name.unwrap_or_else(|| "export".into());
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", name.replace('"', ""))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
