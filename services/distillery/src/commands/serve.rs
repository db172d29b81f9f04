//! `distillery serve --from DIR|--store URL --addr HOST:PORT`: the dataset API (and the tables API) on a
//! run's dataset, the same router and limits as `distillery service api` in the cluster
//! (`distillery_api::service::run_with`). Uploads are written to `<out>/uploads/` and a pipeline run is
//! started on each (one at a time, into the same store); exports are written by [`export`] into
//! `<out>/exports/<id>/`.
//!
//! [`export`]: crate::commands::export::export

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use distillery_api::dataset::{
    ExportSummary, Exporter, FolderUploads, ObjectUploads, OnUpload, StoreExporter, Uploads,
};
use distillery_api::service::{DatasetDeps, run_with};
use distillery_api::tabular::ApiServiceConfig;
use distillery_core::config::load;
use distillery_dataset::{DatasetStore, SqlStore};
use distillery_export::{ExportOptions, Format};
use tokio_util::sync::CancellationToken;

use crate::commands::export::{ExportSource, export};
use crate::composition::{RunOptions, run};
use crate::config::RunConfig;

/// What `distillery serve` was asked.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// A run folder: its `distillery.db`.
    pub from: Option<PathBuf>,
    /// A dataset store URL instead.
    pub store: Option<String>,
    pub addr: SocketAddr,
    /// Where uploads, runs' files and exports go (default: the `--from` folder, else `./distillery-serve`).
    pub out: Option<PathBuf>,
    /// The API's configuration file (`[api]`, `[llm]`, `[tabular]`).
    pub config: Option<PathBuf>,
    /// The configuration of the runs started on uploads (as `distillery run --config`).
    pub run_config: Option<PathBuf>,
    /// Store uploads without starting a run.
    pub no_run: bool,
}

/// The store URL, and the folder uploads and exports go to.
fn locations(args: &ServeArgs) -> anyhow::Result<(String, PathBuf)> {
    match (&args.from, &args.store) {
        (Some(dir), None) => Ok((super::run_folder_store(dir)?, args.out.clone().unwrap_or_else(|| dir.clone()))),
        (None, Some(url)) => {
            distillery_dataset::sql::check_url(url).map_err(anyhow::Error::msg)?;
            // `sqlite:PATH` as written on a command line: the file, created if missing.
            let url = match url.strip_prefix("sqlite://").or(url.strip_prefix("sqlite:")) {
                Some(path) if !url.contains('?') => distillery_dataset::sql::sqlite_url(Path::new(path)),
                _ => url.clone(),
            };
            Ok((url, args.out.clone().unwrap_or_else(|| PathBuf::from("distillery-serve"))))
        }
        _ => bail!("give exactly one of --from DIR and --store URL"),
    }
}

/// Starts a pipeline run on each upload, one run at a time, into the served store.
fn run_on_upload(store_url: String, out: PathBuf, run_config: Option<PathBuf>, cancel: CancellationToken) -> OnUpload {
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    Arc::new(move |path: PathBuf| {
        let (lock, url, out, run_config, cancel) =
            (one_at_a_time.clone(), store_url.clone(), out.clone(), run_config.clone(), cancel.clone());
        tokio::spawn(async move {
            let _running = lock.lock().await;
            let config: RunConfig = match load(run_config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the run configuration is invalid: no run on the upload");
                    return;
                }
            };
            let input = path.display().to_string();
            tracing::info!(input = %input, "run started on the upload");
            let opts = RunOptions { input: input.clone(), out, config, progress: false, store: Some(url) };
            match run(opts, cancel).await {
                Ok(summary) => tracing::info!(input = %input, accepted = summary.accepted, "run on the upload done"),
                Err(e) => tracing::error!(input = %input, error = format!("{e:#}"), "run on the upload failed"),
            }
        });
        true
    })
}

/// The CLI's export ([`export`]) behind the API's [`Exporter`]: every format it knows, `qa-json` served as
/// its combined `training_data.json`.
#[derive(Debug, Clone)]
pub struct CliExporter {
    pub source: ExportSource,
    pub options: ExportOptions,
}

#[async_trait]
impl Exporter for CliExporter {
    fn formats(&self) -> Vec<String> {
        Format::ALL.iter().map(|f| f.name().to_string()).collect()
    }

    async fn export(&self, format: &str, out: &Path) -> Result<ExportSummary, String> {
        let f =
            Format::ALL.into_iter().find(|f| f.name() == format).ok_or_else(|| format!("unknown format {format}"))?;
        let target = out.join(f.file_name());
        let (source, options, path) = (self.source.clone(), self.options.clone(), target.clone());
        // The export reads and writes files as it goes: off the server's worker threads.
        let handle = tokio::runtime::Handle::current();
        let report = tokio::task::spawn_blocking(move || handle.block_on(export(&source, &[f], &path, &options)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:#}"))?;
        let records = report.written.iter().map(|w| w.records as u64).sum();
        let file = if f == Format::QaJson { target.join(distillery_export::qa_json::COMBINED) } else { target };
        Ok(ExportSummary { file, records })
    }
}

/// `distillery serve`.
pub async fn serve(args: ServeArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let (url, out) = locations(&args)?;
    let mut c: ApiServiceConfig = load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    c.ops.listen = args.addr;
    // Fail fast on a missing token, before opening anything.
    c.api.resolve_token().map_err(anyhow::Error::msg)?;
    let store = SqlStore::open(&url).await.map_err(|e| anyhow::anyhow!("opening the dataset store: {e}"))?;
    let store: Arc<dyn DatasetStore> = Arc::new(store);
    let uploads_dir = out.join("uploads");
    std::fs::create_dir_all(&uploads_dir).with_context(|| format!("creating {}", uploads_dir.display()))?;
    if c.api.exports_dir.is_none() {
        c.api.exports_dir = Some(out.join("exports"));
    }
    let on_upload =
        (!args.no_run).then(|| run_on_upload(url.clone(), out.clone(), args.run_config.clone(), cancel.clone()));
    let uploads = FolderUploads { dir: uploads_dir, on_upload };
    let exporter = CliExporter { source: ExportSource::Store(url), options: ExportOptions::default() };
    tracing::info!(store = %store.describe(), listen = %args.addr, "serving the dataset");
    eprintln!(
        "serving {} on http://{} (bearer token from {})",
        store.describe(),
        args.addr,
        distillery_api::dataset::TOKEN_ENV
    );
    let deps = DatasetDeps { store, uploads: Arc::new(uploads), exporter: Arc::new(exporter) };
    run_with(c, Some(deps), cancel).await
}

/// `distillery service api`: the tables API, and the dataset API when `api.store` is set (the shared
/// store; uploads into `api.upload_bucket` over S3, reached with the AWS environment: `AWS_ENDPOINT_URL`,
/// `AWS_REGION` and the default credential chain; exports from the store).
pub async fn service_api(config: Option<&Path>, cancel: CancellationToken) -> anyhow::Result<()> {
    let c: ApiServiceConfig = load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(url) = (!c.api.store.is_empty()).then(|| c.api.store.expose().to_string()) else {
        return run_with(c, None, cancel).await;
    };
    c.api.resolve_token().map_err(anyhow::Error::msg)?;
    let store = SqlStore::open(&url).await.map_err(|e| anyhow::anyhow!("opening the dataset store: {e}"))?;
    let store: Arc<dyn DatasetStore> = Arc::new(store);
    let uploads: Arc<dyn Uploads> = match &c.api.upload_bucket {
        Some(bucket) => {
            let s3 = distillery_store::S3Config {
                endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()),
                region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                ..distillery_store::S3Config::default()
            };
            let s3 = distillery_store::S3Store::connect(&s3).await;
            Arc::new(ObjectUploads { store: Arc::new(s3), bucket: bucket.clone(), prefix: c.api.upload_prefix.clone() })
        }
        None => bail!("api.store is set but api.upload_bucket is not: where do uploads go?"),
    };
    let exporter = StoreExporter { store: store.clone(), options: ExportOptions::default() };
    let deps = DatasetDeps { store, uploads, exporter: Arc::new(exporter) };
    run_with(c, Some(deps), cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(from: Option<&Path>, store: Option<&str>) -> ServeArgs {
        ServeArgs {
            from: from.map(Path::to_path_buf),
            store: store.map(str::to_string),
            addr: "127.0.0.1:0".parse().unwrap(),
            out: None,
            config: None,
            run_config: None,
            no_run: true,
        }
    }

    #[test]
    fn serve_needs_one_existing_source() {
        let dir = tempfile::tempdir().unwrap();
        assert!(locations(&args(None, None)).is_err());
        assert!(locations(&args(Some(dir.path()), Some("sqlite:x.db"))).is_err());
        let err = locations(&args(Some(dir.path()), None)).unwrap_err().to_string();
        assert!(err.contains(distillery_dataset::STORE_FILE), "{err}");
        std::fs::write(dir.path().join(distillery_dataset::STORE_FILE), b"").unwrap();
        let (url, out) = locations(&args(Some(dir.path()), None)).unwrap();
        assert!(url.starts_with("sqlite:"), "{url}");
        assert_eq!(out, dir.path());
        assert!(locations(&args(None, Some("mysql://x"))).is_err());
    }
}
