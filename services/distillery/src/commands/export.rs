//! `distillery export --from DIR|--store URL --format F... --out PATH`: training formats rebuilt from a
//! dataset, either a run folder's records (`accepted.jsonl`, `rejected.jsonl`, `documents.jsonl`, and
//! `summary.json` for the card) or the dataset store (SQLite or PostgreSQL, paged in id order).
//!
//! [`export`] is the one entry point: the command calls it, and so can anything else that starts an export
//! (the API service). Records stream from the source into [`ExportJob`], which writes every format at once:
//! the JSONL formats and Parquet hold nothing but their writers; `qa-json` gathers the pairs per document and
//! `card` only counts. The rejected records are read only when a format uses them (`qa-json`, `card`).
//! Records of superseded documents appear in no format.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use distillery_core::Record;
use distillery_dataset::{DatasetStore, OutcomeKind, Overrides, STORE_FILE, SqlStore};
use distillery_export::view::DocumentView;
use distillery_export::{
    ACCEPTED, DOCUMENTS, ExampleView, ExportError, ExportJob, ExportOptions, Format, REJECTED, SUMMARY, Target,
    Written, read_unique, read_unique_as, targets,
};
use serde::Serialize;

/// Records per page read from a store.
pub const PAGE: usize = 500;

/// Where the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSource {
    /// A run folder (the `--out` of `distillery run`, or a sink's folder).
    Folder(PathBuf),
    /// A dataset store: `sqlite:PATH`, a path to a `distillery.db` file, or `postgres://...`.
    Store(String),
}

impl ExportSource {
    /// For messages (a store URL without its password).
    pub fn describe(&self) -> String {
        match self {
            ExportSource::Folder(d) => d.display().to_string(),
            ExportSource::Store(url) => distillery_dataset::sql::redact(url),
        }
    }

    /// The folder the source lives in, if it has one (a run folder, an SQLite file's folder): where
    /// `summary.json` is looked for and what the card is titled after.
    fn folder(&self) -> Option<PathBuf> {
        match self {
            ExportSource::Folder(d) => Some(d.clone()),
            ExportSource::Store(url) if url.contains("://") && !url.starts_with("sqlite:") => None,
            ExportSource::Store(url) => {
                let path = url.strip_prefix("sqlite://").or(url.strip_prefix("sqlite:")).unwrap_or(url);
                let path = path.split('?').next().unwrap_or(path);
                Path::new(path).parent().map(Path::to_path_buf)
            }
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub source: String,
    /// Documents of the dataset (superseded versions included).
    pub documents: usize,
    /// Records read.
    pub accepted: usize,
    pub rejected: usize,
    /// Records left out because a newer version of their document replaced it.
    pub skipped_superseded: usize,
    /// Each format's file (folder for `qa-json`) and what it holds.
    pub written: Vec<Written>,
}

/// Exports `formats` from `source` to `out`: with one format `out` is the file itself (the folder for
/// `qa-json`, the `README.md` path for `card`); with several, or none (then every format), `out` is a folder
/// and each format goes to its [`Format::file_name`] there. Files are written beside their final names and
/// renamed into place once complete.
///
/// File reading and writing is blocking: a caller on a shared runtime (a server) should run it on a
/// blocking-friendly task (`tokio::task::spawn_blocking` with a runtime handle, or a dedicated runtime).
pub async fn export(
    source: &ExportSource,
    formats: &[Format],
    out: &Path,
    opts: &ExportOptions,
) -> anyhow::Result<ExportReport> {
    let mut wanted: Vec<Format> = Vec::new();
    for f in if formats.is_empty() { &Format::ALL[..] } else { formats } {
        if !wanted.contains(f) {
            wanted.push(*f);
        }
    }
    export_to(source, targets(&wanted, out), opts).await
}

/// [`export`] with each format's path given.
pub async fn export_to(
    source: &ExportSource,
    targets: Vec<Target>,
    opts: &ExportOptions,
) -> anyhow::Result<ExportReport> {
    let reader = Reader::open(source).await?;
    let documents = reader.documents().await?;
    let n_documents = documents.len();
    let mut job = ExportJob::create(targets, documents, opts.clone())?;
    reader.each(OutcomeKind::Accepted, &mut |v| job.accepted(v)).await?;
    if job.wants_rejected() {
        reader.each(OutcomeKind::Rejected, &mut |v| job.rejected(v)).await?;
    }
    let folder = source.folder();
    let diversity = folder.as_deref().and_then(diversity);
    let title = match folder.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()) {
        Some(name) => format!("Distillery dataset: {name}"),
        None => "Distillery dataset".to_string(),
    };
    let (accepted, rejected, skipped) = (job.accepted_read, job.rejected_read, job.skipped_superseded);
    let written = job.finish(&title, diversity.as_ref())?;
    Ok(ExportReport {
        source: source.describe(),
        documents: n_documents,
        accepted,
        rejected,
        skipped_superseded: skipped,
        written,
    })
}

/// The `diversity` block of a folder's `summary.json`, if the run measured it.
fn diversity(folder: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(folder.join(SUMMARY)).ok()?;
    let summary: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    summary.get("diversity").filter(|d| !d.is_null()).cloned()
}

enum Reader {
    Folder(PathBuf),
    /// A store, with what stands above its run's outcomes (rejudged versions, reviews) and the documents
    /// whose source is gone.
    Store(SqlStore, Overrides, HashSet<String>),
}

impl Reader {
    async fn open(source: &ExportSource) -> anyhow::Result<Reader> {
        match source {
            ExportSource::Folder(dir) => {
                let accepted = dir.join(ACCEPTED);
                anyhow::ensure!(
                    accepted.is_file(),
                    "{} has no {ACCEPTED}: is it a run folder (the --out of `distillery run`)? A run's store is \
                     --store {}",
                    dir.display(),
                    dir.join(STORE_FILE).display()
                );
                // A run folder whose store holds a rejudged version or reviews exports from the store: the
                // folder's record files are the run's own outcomes.
                let db = dir.join(STORE_FILE);
                if db.is_file() {
                    let store = SqlStore::open(&distillery_dataset::sql::sqlite_url(&db))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))
                        .with_context(|| format!("opening the dataset store {}", db.display()))?;
                    let overrides = store.overrides().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let deleted = store.deleted_documents().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    if !overrides.is_empty() || !deleted.is_empty() {
                        return Ok(Reader::Store(store, overrides, deleted));
                    }
                }
                Ok(Reader::Folder(dir.clone()))
            }
            ExportSource::Store(url) => {
                let store = SqlStore::open(url)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("opening the dataset store {}", source.describe()))?;
                let overrides = store.overrides().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let deleted = store.deleted_documents().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(Reader::Store(store, overrides, deleted))
            }
        }
    }

    /// Every document, in the order stored.
    async fn documents(&self) -> anyhow::Result<Vec<DocumentView>> {
        match self {
            Reader::Folder(dir) => {
                let path = dir.join(DOCUMENTS);
                if !path.exists() {
                    return Ok(Vec::new());
                }
                let docs = read_unique_as(&path, |d: &DocumentView| d.id.clone())
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(docs.collect())
            }
            Reader::Store(store, _, deleted) => {
                let mut out = Vec::new();
                self.pages(store, OutcomeKind::Document, &mut |r| {
                    if let Record::Document(d) = r {
                        let mut view = DocumentView::from(&d);
                        if deleted.contains(&d.id) {
                            // Its records are left out as a superseded document's are.
                            view.superseded_by = Some(distillery_dataset::DELETED.into());
                        }
                        out.push(view);
                    }
                    Ok(())
                })
                .await?;
                Ok(out)
            }
        }
    }

    /// Streams the accepted or rejected records as dataset views (a repeated id once).
    async fn each(
        &self,
        kind: OutcomeKind,
        f: &mut (dyn FnMut(ExampleView) -> Result<(), ExportError> + Send),
    ) -> anyhow::Result<()> {
        match self {
            Reader::Folder(dir) => {
                let name = if kind == OutcomeKind::Accepted { ACCEPTED } else { REJECTED };
                let path = dir.join(name);
                if !path.exists() && kind != OutcomeKind::Accepted {
                    return Ok(());
                }
                for v in read_unique(&path).with_context(|| format!("reading {}", path.display()))? {
                    f(v)?;
                }
                Ok(())
            }
            Reader::Store(store, overrides, _) if overrides.is_empty() => {
                self.pages(store, kind, &mut |r| match r {
                    Record::Accepted(a) => f(ExampleView::accepted(&a)),
                    Record::Rejected(r) => f(ExampleView::rejected(&r)),
                    _ => Ok(()),
                })
                .await
            }
            Reader::Store(store, overrides, _) => {
                // A version or a review may move a record from one outcome to the other: both tables are
                // read, and what stands now is handed on when it is of the kind asked.
                for table in [OutcomeKind::Accepted, OutcomeKind::Rejected] {
                    self.pages(store, table, &mut |r| match (overrides.current(r), kind) {
                        (Record::Accepted(a), OutcomeKind::Accepted) => f(ExampleView::accepted(&a)),
                        (Record::Rejected(r), OutcomeKind::Rejected) => f(ExampleView::rejected(&r)),
                        _ => Ok(()),
                    })
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Pages through a store's records of a kind in id order.
    async fn pages(
        &self,
        store: &SqlStore,
        kind: OutcomeKind,
        f: &mut (dyn FnMut(Record) -> Result<(), ExportError> + Send),
    ) -> anyhow::Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page = store.outcomes(kind, after.as_deref(), PAGE).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let full = page.len() == PAGE;
            after = page.last().map(|r| r.id().to_string()).or(after);
            for r in page {
                f(r)?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// Rewrites the training files a run folder holds (alpaca.jsonl, and the other formats already there, the
/// card aside) from its store, when the store holds something the run's files do not show (a rejudged
/// version, reviews, deleted documents).
pub async fn refresh_folder(dir: &Path) -> anyhow::Result<()> {
    let db = dir.join(STORE_FILE);
    if !db.is_file() {
        return Ok(());
    }
    let formats: Vec<Format> = Format::ALL
        .into_iter()
        .filter(|f| *f == Format::Alpaca || (*f != Format::Card && dir.join(f.file_name()).exists()))
        .collect();
    let source = ExportSource::Folder(dir.to_path_buf());
    if let Reader::Store(..) = Reader::open(&source).await? {
        export(&source, &formats, dir, &ExportOptions::default()).await?;
    }
    Ok(())
}

/// The command: resolves `--out` (default: the run folder; with one format, its file there) and prints
/// what each format holds.
pub async fn command(
    from: Option<PathBuf>,
    store: Option<String>,
    out: Option<PathBuf>,
    formats: &[String],
    opts: ExportOptions,
) -> anyhow::Result<()> {
    let formats: Vec<Format> = formats
        .iter()
        .map(|f| Format::parse(f).with_context(|| format!("unknown format {f} ({})", Format::names())))
        .collect::<anyhow::Result<_>>()?;
    let source = match (from, store) {
        (Some(dir), None) => ExportSource::Folder(dir),
        (None, Some(url)) => ExportSource::Store(url),
        (Some(_), Some(_)) => anyhow::bail!("give --from DIR or --store URL, not both"),
        (None, None) => anyhow::bail!("give --from DIR (a run folder) or --store URL (a dataset store)"),
    };
    let out = match (out, &source) {
        (Some(o), _) => o,
        (None, ExportSource::Folder(dir)) if formats.len() == 1 => dir.join(formats[0].file_name()),
        (None, ExportSource::Folder(dir)) => dir.clone(),
        (None, ExportSource::Store(_)) => anyhow::bail!("--out is required with --store"),
    };
    let report = export(&source, &formats, &out, &opts).await?;
    for w in &report.written {
        println!("{}: {} records ({})", w.format.name(), w.records, w.path.display());
    }
    if report.skipped_superseded > 0 {
        println!("{} records of superseded documents left out", report.skipped_superseded);
    }
    Ok(())
}
