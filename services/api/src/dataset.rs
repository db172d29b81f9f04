//! What the dataset API serves and where its uploads and exports go: its configuration, the [`Uploads`]
//! and [`Exporter`] trait objects the caller provides (the cluster: an S3 bucket and the store; the
//! embedded `distillery serve`: an input folder with a pipeline run per upload), and their
//! implementations that need nothing but this crate's dependencies.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use distillery_core::Record;
use distillery_core::config::Secret;
use distillery_dataset::{DatasetStore, OutcomeKind};
use distillery_export::{DocumentView, ExampleView, ExportJob, ExportOptions, Format, Target, Written};
use distillery_store::ObjectStore;
use serde::{Deserialize, Serialize};

/// The environment variable holding the bearer token when `api.token` is not set.
pub const TOKEN_ENV: &str = "DISTILLERY_API_TOKEN";

/// The dataset API: its bearer token, the dataset store it reads and the limits of its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetApiConfig {
    /// The bearer token every `/v1/...` route requires (secret; default: `DISTILLERY_API_TOKEN`). The
    /// dataset routes refuse to start without one.
    pub token: Secret,
    /// The dataset store's URL (`postgres://...`, `sqlite:PATH`; a secret, as it may carry a password);
    /// empty serves no dataset routes. Only `distillery service api` opens it (the `distillery-api` binary
    /// links no database driver).
    pub store: Secret,
    /// The bucket uploads are put in (`POST /v1/documents`), where ingest picks them up.
    pub upload_bucket: Option<String>,
    /// The key prefix of uploads in that bucket.
    pub upload_prefix: String,
    /// The largest upload accepted, in bytes (413 beyond); also the limit of any request body.
    pub max_upload_bytes: u64,
    /// Time limit of one request until its response starts, in seconds (503 beyond).
    pub request_timeout_secs: u64,
    /// Requests handled at once; more wait for a slot (within the time limit).
    pub max_concurrent_requests: usize,
    /// The largest page of `GET /v1/documents/{id}/records`.
    pub max_page: usize,
    /// Where exports are written, one folder per export id (default: a folder in the system's temporary
    /// directory).
    pub exports_dir: Option<PathBuf>,
}

impl Default for DatasetApiConfig {
    fn default() -> Self {
        DatasetApiConfig {
            token: Secret::default(),
            store: Secret::default(),
            upload_bucket: None,
            upload_prefix: "uploads/".into(),
            max_upload_bytes: 64 << 20,
            request_timeout_secs: 60,
            max_concurrent_requests: 64,
            max_page: 1000,
            exports_dir: None,
        }
    }
}

impl DatasetApiConfig {
    /// Adds one line per problem to `errors`.
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.max_upload_bytes == 0 {
            errors.push(format!("{section}.max_upload_bytes must be positive"));
        }
        if self.request_timeout_secs == 0 {
            errors.push(format!("{section}.request_timeout_secs must be positive"));
        }
        if self.max_concurrent_requests == 0 {
            errors.push(format!("{section}.max_concurrent_requests must be positive"));
        }
        if self.max_page == 0 {
            errors.push(format!("{section}.max_page must be positive"));
        }
        let url = self.store.expose();
        let known = ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.starts_with(p));
        if !url.is_empty() && !known {
            errors.push(format!("{section}.store must be sqlite:PATH or postgres://..."));
        }
    }

    /// The token: `api.token`, else `DISTILLERY_API_TOKEN`; an error naming both when neither is set (the
    /// dataset routes never run unprotected).
    pub fn resolve_token(&self) -> Result<Secret, String> {
        Self::token_from(&self.token, std::env::var(TOKEN_ENV).ok())
    }

    fn token_from(config: &Secret, env: Option<String>) -> Result<Secret, String> {
        let token = if config.is_empty() { Secret::new(env.unwrap_or_default()) } else { config.clone() };
        if token.expose().trim().is_empty() {
            return Err(format!(
                "the dataset API needs a bearer token: set api.token in the configuration or {TOKEN_ENV} \
                 in the environment (it refuses to serve the dataset without one)"
            ));
        }
        Ok(token)
    }
}

/// An upload stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReceipt {
    /// The name it was uploaded under.
    pub name: String,
    /// Where it went (`s3://bucket/key`, or the file's path).
    pub location: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether a pipeline run was started on it (the embedded `distillery serve`); in the cluster ingest
    /// picks it up from the bucket.
    pub run_started: bool,
}

/// Where uploaded documents go.
#[async_trait]
pub trait Uploads: Send + Sync + std::fmt::Debug {
    /// Stores the bytes of a document uploaded as `name` (a relative path, already checked).
    async fn upload(&self, name: &str, body: Bytes) -> Result<UploadReceipt, String>;
}

/// A relative upload name made only of normal components (no `..`, no root, no backslash, no control
/// characters), or why not.
pub fn check_upload_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the upload needs a name (?name=FILE)".into());
    }
    if name.len() > 512 || name.chars().any(|c| c.is_control() || c == '\\') {
        return Err("the upload name has control characters, backslashes or is too long".into());
    }
    let path = Path::new(name);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) || name.ends_with('/') {
        return Err(format!("the upload name {name:?} must be a relative file path without '..'"));
    }
    Ok(())
}

/// Uploads put in an object store's bucket (the cluster: S3, where ingest's notifications pick them up).
#[derive(Debug, Clone)]
pub struct ObjectUploads {
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    /// Prepended to the name (`uploads/`).
    pub prefix: String,
}

#[async_trait]
impl Uploads for ObjectUploads {
    async fn upload(&self, name: &str, body: Bytes) -> Result<UploadReceipt, String> {
        let key = format!("{}{name}", self.prefix);
        let bytes = body.len() as u64;
        let content_type =
            distillery_core::MediaType::from_name(name).unwrap_or(distillery_core::MediaType::Unsupported).mime();
        self.store.put(&self.bucket, &key, body, content_type).await.map_err(|e| e.to_string())?;
        Ok(UploadReceipt {
            name: name.to_string(),
            location: format!("s3://{}/{key}", self.bucket),
            bytes,
            run_started: false,
        })
    }
}

/// Called with the path of each upload written by [`FolderUploads`]; returns whether a run was started.
pub type OnUpload = Arc<dyn Fn(PathBuf) -> bool + Send + Sync>;

/// Uploads written to a folder, each handed to a callback (the embedded `distillery serve` starts a
/// pipeline run on it).
#[derive(Clone)]
pub struct FolderUploads {
    pub dir: PathBuf,
    pub on_upload: Option<OnUpload>,
}

impl std::fmt::Debug for FolderUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderUploads").field("dir", &self.dir).field("on_upload", &self.on_upload.is_some()).finish()
    }
}

#[async_trait]
impl Uploads for FolderUploads {
    async fn upload(&self, name: &str, body: Bytes) -> Result<UploadReceipt, String> {
        let path = self.dir.join(name);
        let bytes = body.len() as u64;
        let written = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&written, &body))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("writing the upload: {e}"))?;
        let run_started = self.on_upload.as_ref().is_some_and(|f| f(path.clone()));
        Ok(UploadReceipt { name: name.to_string(), location: path.display().to_string(), bytes, run_started })
    }
}

/// Writes through a temporary file renamed into place, so a reader never sees half a file.
fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("upload");
    let tmp = path.with_file_name(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What an export produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The file to download (inside the `out` folder the exporter was given).
    pub file: PathBuf,
    /// The records written.
    pub records: u64,
}

/// Writes a dataset export.
#[async_trait]
pub trait Exporter: Send + Sync + std::fmt::Debug {
    /// The formats it writes (`POST /v1/exports` refuses others with 400).
    fn formats(&self) -> Vec<String>;

    /// Writes the dataset in `format` into the folder `out` (created, empty) and names the file to serve.
    async fn export(&self, format: &str, out: &Path) -> Result<ExportSummary, String>;
}

/// Exports the store's records in every training format of `distillery-export` (alpaca, sharegpt, openai,
/// dpo, parquet, qa-json, card, ...) through its `ExportJob`, as `distillery export --store` does: what the
/// cluster's API serves, with nothing but the store. Records of superseded documents are left out.
#[derive(Debug, Clone)]
pub struct StoreExporter {
    pub store: Arc<dyn DatasetStore>,
    pub options: ExportOptions,
}

/// Records read from the store per call.
const EXPORT_PAGE: usize = 500;

/// Every record of `kind`, page by page, handed to `each` (on a blocking thread: `handle` runs the reads).
fn each_outcome(
    handle: &tokio::runtime::Handle,
    store: &dyn DatasetStore,
    kind: OutcomeKind,
    each: &mut dyn FnMut(&Record) -> Result<(), String>,
) -> Result<(), String> {
    let mut after: Option<String> = None;
    loop {
        let page = handle.block_on(store.outcomes(kind, after.as_deref(), EXPORT_PAGE)).map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some(last.id().to_string());
        for record in &page {
            each(record)?;
        }
        if page.len() < EXPORT_PAGE {
            return Ok(());
        }
    }
}

#[async_trait]
impl Exporter for StoreExporter {
    fn formats(&self) -> Vec<String> {
        Format::ALL.iter().map(|f| f.name().to_string()).collect()
    }

    async fn export(&self, format: &str, out: &Path) -> Result<ExportSummary, String> {
        let f =
            Format::ALL.into_iter().find(|f| f.name() == format).ok_or_else(|| format!("unknown format {format}"))?;
        let path = out.join(f.file_name());
        let (store, options, target) = (self.store.clone(), self.options.clone(), path.clone());
        let handle = tokio::runtime::Handle::current();
        // The job writes files as records arrive: on a blocking thread, reading the store through `handle`.
        let written = tokio::task::spawn_blocking(move || -> Result<Vec<Written>, String> {
            let mut documents = Vec::new();
            let deleted = handle.block_on(store.deleted_documents()).map_err(|e| e.to_string())?;
            each_outcome(&handle, &*store, OutcomeKind::Document, &mut |r| {
                if let Record::Document(d) = r {
                    let mut view = DocumentView::from(d);
                    if deleted.contains(&d.id) {
                        // Its records are left out as a superseded document's are.
                        view.superseded_by = Some(distillery_dataset::DELETED.into());
                    }
                    documents.push(view);
                }
                Ok(())
            })?;
            let targets = vec![Target { format: f, path: target }];
            let mut job = ExportJob::create(targets, documents, options).map_err(|e| e.to_string())?;
            // A rejudged version or a review may move a record from one outcome to the other: what stands
            // now is what is exported.
            let overrides = handle.block_on(store.overrides()).map_err(|e| e.to_string())?;
            let wants_rejected = job.wants_rejected();
            for table in [OutcomeKind::Accepted, OutcomeKind::Rejected] {
                if table == OutcomeKind::Rejected && overrides.is_empty() && !wants_rejected {
                    continue;
                }
                each_outcome(&handle, &*store, table, &mut |r| match overrides.current(r.clone()) {
                    Record::Accepted(a) => job.accepted(ExampleView::accepted(&a)).map_err(|e| e.to_string()),
                    Record::Rejected(x) if wants_rejected => {
                        job.rejected(ExampleView::rejected(&x)).map_err(|e| e.to_string())
                    }
                    _ => Ok(()),
                })?;
            }
            job.finish("Distillery dataset", None).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let records = written.iter().map(|w| w.records as u64).sum();
        let file = if f == Format::QaJson { path.join(distillery_export::qa_json::COMBINED) } else { path };
        Ok(ExportSummary { file, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_stay_inside_the_folder() {
        for ok in ["a.pdf", "team/handbook.md", "x y.txt"] {
            assert!(check_upload_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../etc/passwd", "/abs", "a/../../b", "a\\b", "dir/", "a\nb", "./a"] {
            assert!(check_upload_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_comes_from_config_then_environment_and_is_required() {
        let none = Secret::default();
        assert!(DatasetApiConfig::token_from(&none, None).unwrap_err().contains(TOKEN_ENV));
        assert!(DatasetApiConfig::token_from(&none, Some("  ".into())).is_err());
        assert_eq!(DatasetApiConfig::token_from(&none, Some("t".into())).unwrap().expose(), "t");
        assert_eq!(DatasetApiConfig::token_from(&Secret::new("c"), Some("t".into())).unwrap().expose(), "c");
    }

    #[test]
    fn config_problems_are_reported() {
        let mut errors = Vec::new();
        DatasetApiConfig { max_upload_bytes: 0, store: Secret::new("mysql://x"), ..Default::default() }
            .validate("api", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
