//! One export: records fed in as a source streams them, every wanted format written as they go. The JSONL
//! formats and Parquet hold nothing but their writers; `qa-json` keeps the pairs per document and `card`
//! only counts. Each file is written beside its final name and renamed into place when it is complete.
//! Records of superseded documents (a newer version replaced them) are left out of every format.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::card::CardStats;
use crate::formats::{self, ExportOptions, Format};
use crate::parquet::ParquetStream;
use crate::qa_json::QaJson;
use crate::supersession::{Place, Supersession};
use crate::view::{DocumentView, ExampleView};

/// An export failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("export: {0}")]
pub struct ExportError(pub String);

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError(e.to_string())
    }
}

impl From<serde_json::Error> for ExportError {
    fn from(e: serde_json::Error) -> Self {
        ExportError(e.to_string())
    }
}

/// A format and where it goes (a file; a folder for `qa-json`; the `README.md` path for `card`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub format: Format,
    pub path: PathBuf,
}

/// Where formats go for an output path: one format, the path itself; several, a folder holding each
/// format under its [`Format::file_name`].
pub fn targets(formats: &[Format], out: &Path) -> Vec<Target> {
    match formats {
        [one] => vec![Target { format: *one, path: out.to_path_buf() }],
        many => many.iter().map(|&f| Target { format: f, path: out.join(f.file_name()) }).collect(),
    }
}

/// What a format wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub format: Format,
    pub path: PathBuf,
    /// Lines, rows or training pairs (for the card, the accepted records it counts).
    pub records: usize,
}

fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

fn create(path: &Path) -> Result<File, ExportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ExportError(format!("{}: {e}", dir.display())))?;
    }
    File::create(path).map_err(|e| ExportError(format!("{}: {e}", path.display())))
}

/// Writes a file beside `path`, syncs it and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let tmp = partial(path);
    let mut f = create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).map_err(|e| ExportError(format!("{}: {e}", path.display())))
}

/// Milliseconds since the epoch as ISO 8601 UTC (`2025-08-23T10:30:45.123Z`).
pub fn iso8601(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

enum Stream {
    Jsonl { w: BufWriter<File>, n: usize },
    Parquet(ParquetStream),
}

/// An export in progress.
pub struct ExportJob {
    opts: ExportOptions,
    streams: Vec<(Target, Stream)>,
    qa: Option<(Target, QaJson)>,
    card: Option<(Target, CardStats)>,
    /// What replaced what, and which chunks the current documents list.
    supersession: Supersession,
    /// Records read, and those left out because their document was superseded.
    pub accepted_read: usize,
    pub rejected_read: usize,
    pub skipped_superseded: usize,
}

impl std::fmt::Debug for ExportJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportJob").field("targets", &self.streams.len()).finish_non_exhaustive()
    }
}

/// The documents no newer version replaced, and the replaced ones with what replaced them.
pub fn current_documents(documents: Vec<DocumentView>) -> (Vec<DocumentView>, HashMap<String, String>) {
    let mut superseded: HashMap<String, String> = HashMap::new();
    for d in &documents {
        if let Some(newer) = &d.superseded_by {
            superseded.insert(d.id.clone(), newer.clone());
        }
    }
    let ids: std::collections::HashSet<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    for d in &documents {
        if let Some(old) = d.supersedes.as_ref().filter(|o| ids.contains(o.as_str()) && **o != d.id) {
            superseded.entry(old.clone()).or_insert_with(|| d.id.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    let current =
        documents.into_iter().filter(|d| !superseded.contains_key(&d.id) && seen.insert(d.id.clone())).collect();
    (current, superseded)
}

impl ExportJob {
    /// Opens every target. `documents`: the dataset's documents (what supersedes what, and the per-document
    /// formats' metadata).
    pub fn create(
        targets: Vec<Target>,
        documents: Vec<DocumentView>,
        opts: ExportOptions,
    ) -> Result<ExportJob, ExportError> {
        let (current, superseded) = current_documents(documents);
        let supersession = Supersession::new(superseded, current.iter().map(|d| (d.id.clone(), d.chunk_ids.clone())));
        let mut job = ExportJob {
            opts,
            streams: Vec::new(),
            qa: None,
            card: None,
            supersession,
            accepted_read: 0,
            rejected_read: 0,
            skipped_superseded: 0,
        };
        for t in targets {
            match t.format {
                Format::QaJson => job.qa = Some((t, QaJson::new(&current))),
                Format::Card => {
                    let stats = CardStats { documents: current.len(), ..CardStats::default() };
                    job.card = Some((t, stats));
                }
                Format::Parquet => {
                    let s = ParquetStream::create(&partial(&t.path)).map_err(ExportError)?;
                    job.streams.push((t, Stream::Parquet(s)));
                }
                _ => {
                    let w = BufWriter::new(create(&partial(&t.path))?);
                    job.streams.push((t, Stream::Jsonl { w, n: 0 }));
                }
            }
        }
        Ok(job)
    }

    /// Whether any target needs the rejected records (`qa-json`'s failed chunks, the card's counts).
    pub fn wants_rejected(&self) -> bool {
        self.qa.is_some() || self.card.is_some()
    }

    /// Marks a record of a superseded document; true if it is to be left out. A record of an earlier version
    /// whose chunk the current version still has (unchanged by the edit) is current: it is kept, under the
    /// current document.
    fn superseded(&mut self, v: &mut ExampleView) -> bool {
        let place =
            self.supersession.place(v.document_id.as_deref(), v.chunk_id.as_deref(), v.superseded_by.as_deref());
        match place {
            Place::Current { document_id } => {
                let document_id = document_id.map(str::to_string);
                v.superseded_by = None;
                v.document_id = document_id;
                false
            }
            Place::Superseded { by } => {
                v.superseded_by = Some(by.to_string());
                self.skipped_superseded += 1;
                true
            }
        }
    }

    /// An accepted record.
    pub fn accepted(&mut self, mut v: ExampleView) -> Result<(), ExportError> {
        self.accepted_read += 1;
        if self.superseded(&mut v) {
            return Ok(());
        }
        for (t, s) in &mut self.streams {
            match s {
                Stream::Jsonl { w, n } => {
                    if let Some(line) = formats::line(t.format, &v, &self.opts) {
                        serde_json::to_writer(&mut *w, &line)?;
                        w.write_all(b"\n")?;
                        *n += 1;
                    }
                }
                Stream::Parquet(p) => p.push(&v).map_err(ExportError)?,
            }
        }
        if let Some((_, q)) = &mut self.qa {
            q.accepted(&v);
        }
        if let Some((_, c)) = &mut self.card {
            c.accepted(&v);
        }
        Ok(())
    }

    /// A rejected record (only the per-document formats and the card use them).
    pub fn rejected(&mut self, mut v: ExampleView) -> Result<(), ExportError> {
        self.rejected_read += 1;
        if self.superseded(&mut v) {
            return Ok(());
        }
        if let Some((_, q)) = &mut self.qa {
            q.rejected(&v);
        }
        if let Some((_, c)) = &mut self.card {
            c.rejected(&v);
        }
        Ok(())
    }

    /// Completes every file. `diversity`: the run's measured diversity for the card, if any.
    pub fn finish(self, title: &str, diversity: Option<&Value>) -> Result<Vec<Written>, ExportError> {
        let mut written = Vec::new();
        for (t, s) in self.streams {
            let records = match s {
                Stream::Jsonl { w, n } => {
                    w.into_inner().map_err(|e| ExportError(e.into_error().to_string()))?.sync_all()?;
                    n
                }
                Stream::Parquet(p) => p.close().map_err(ExportError)?,
            };
            std::fs::rename(partial(&t.path), &t.path)
                .map_err(|e| ExportError(format!("{}: {e}", t.path.display())))?;
            written.push(Written { format: t.format, path: t.path, records });
        }
        if let Some((t, q)) = self.qa {
            let records = q.write(&t.path)?;
            written.push(Written { format: t.format, path: t.path, records });
        }
        if let Some((t, c)) = self.card {
            let configs = card_configs(&t.path, &written);
            write_atomic(&t.path, c.render(title, &configs, diversity).as_bytes())?;
            written.push(Written { format: t.format, path: t.path, records: c.accepted });
        }
        Ok(written)
    }
}

/// The card's configs: the data files beside it, those this export wrote and those already there.
fn card_configs(card: &Path, written: &[Written]) -> Vec<(String, String)> {
    let dir = card.parent().unwrap_or(Path::new(""));
    let mut out: Vec<(String, String)> = Vec::new();
    for w in written.iter().filter(|w| w.format.is_jsonl() || w.format == Format::Parquet) {
        if w.path.parent() == Some(dir)
            && let Some(name) = w.path.file_name().and_then(|n| n.to_str())
        {
            out.push((w.format.name().to_string(), name.to_string()));
        }
    }
    for f in Format::ALL.into_iter().filter(|f| f.is_jsonl() || *f == Format::Parquet) {
        if !out.iter().any(|(n, _)| n == f.name()) && dir.join(f.file_name()).is_file() {
            out.push((f.name().to_string(), f.file_name().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::SECTIONS;
    use distillery_core::codec::fixtures;
    use distillery_core::{Accepted, RejectReason, Rejected, SubjectKind};

    fn doc(id: &str, key: &str, supersedes: Option<&str>) -> DocumentView {
        let mut d = DocumentView::from(&fixtures::document());
        d.id = id.into();
        d.uri = format!("s3://docs/{key}");
        d.supersedes = supersedes.map(String::from);
        d
    }

    fn accepted(id: &str, doc: &str, chunk: &str, at: i64) -> ExampleView {
        let mut v = ExampleView::accepted(&Accepted {
            id: id.into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: at,
        });
        v.superseded_by = None;
        v.document_id = Some(doc.into());
        v.chunk_id = Some(chunk.into());
        v
    }

    fn rejected(subject: &str, kind: SubjectKind, reason: RejectReason, doc: &str, chunk: &str) -> ExampleView {
        let mut r = Rejected::new("judge", reason, kind, subject, "scored 2 < 4");
        r.document_id = Some(doc.into());
        r.chunk_id = Some(chunk.into());
        if kind == SubjectKind::Draft {
            r.draft = Some(distillery_core::Draft { superseded_by: None, ..fixtures::draft() });
            r.scores = Some(fixtures::scores(2));
        }
        ExampleView { at_ms: 40, ..ExampleView::rejected(&r) }
    }

    fn read(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn one_format_is_the_path_several_a_folder() {
        let out = Path::new("/x/out.jsonl");
        assert_eq!(targets(&[Format::Alpaca], out), vec![Target { format: Format::Alpaca, path: out.into() }]);
        let t = targets(&[Format::Dpo, Format::Card, Format::QaJson], Path::new("/x"));
        let paths: Vec<_> = t.iter().map(|t| t.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["/x/dpo.jsonl", "/x/README.md", "/x/qa-json"]);
    }

    #[test]
    fn every_format_from_one_stream_without_superseded_records() {
        let dir = tempfile::tempdir().unwrap();
        let docs = vec![
            doc("old", "handbook/leave policy.md", None),
            doc("new", "handbook/leave policy.md", Some("old")),
            doc("other", "guides/Onboarding (v2).pdf", None),
        ];
        let mut job = ExportJob::create(targets(&Format::ALL, dir.path()), docs, ExportOptions::default()).unwrap();
        assert!(job.wants_rejected());
        job.accepted(accepted("a1", "new", "c1", 10)).unwrap();
        job.accepted(accepted("a2", "new", "c2", 20)).unwrap();
        job.accepted(accepted("a3", "other", "o1", 30)).unwrap();
        job.accepted(accepted("gone", "old", "x1", 5)).unwrap();
        let mut marked = accepted("marked", "other", "o1", 31);
        marked.superseded_by = Some("elsewhere".into());
        job.accepted(marked).unwrap();
        job.rejected(rejected("r1", SubjectKind::Draft, RejectReason::LowScore, "new", "c2")).unwrap();
        job.rejected(rejected("o2", SubjectKind::Chunk, RejectReason::LlmError, "other", "o2")).unwrap();
        job.rejected(rejected("r-old", SubjectKind::Draft, RejectReason::LowScore, "old", "x1")).unwrap();
        assert_eq!(job.skipped_superseded, 3);
        let written = job.finish("Leave dataset", Some(&serde_json::json!({"distinct_2": 0.8}))).unwrap();
        let count = |f: Format| written.iter().find(|w| w.format == f).unwrap().records;
        for f in [Format::Alpaca, Format::AlpacaText, Format::Sharegpt, Format::Openai, Format::Parquet] {
            assert_eq!(count(f), 3, "{f:?}");
        }
        assert_eq!(count(Format::Dpo), 3);
        assert_eq!(count(Format::DpoChat), 3);
        for f in Format::ALL.into_iter().filter(|f| f.is_jsonl()) {
            let text = std::fs::read_to_string(dir.path().join(f.file_name())).unwrap();
            assert_eq!(text.lines().count(), 3, "{f:?}");
        }
        assert!(!dir.path().join("alpaca.jsonl.partial").exists());

        // qa-json: a file per current document, named after it, and the combined file.
        let qa = dir.path().join("qa-json");
        let mut names: Vec<String> =
            std::fs::read_dir(&qa).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["Onboarding__v2__qa.json", "leave_policy_qa.json", "training_data.json"]);
        let leave = read(&qa.join("leave_policy_qa.json"));
        assert_eq!(leave["metadata"]["file_name"], "leave policy.md");
        assert_eq!(leave["metadata"]["source_file"], "s3://docs/handbook/leave policy.md");
        assert_eq!(leave["metadata"]["file_type"], ".md");
        assert_eq!(leave["metadata"]["file_size"], 38);
        assert_eq!(leave["processing_info"]["total_chunks"], 2);
        assert_eq!(leave["qa_generation_info"]["model"], "smollm2");
        assert_eq!(leave["qa_generation_info"]["provider"], "openai");
        assert_eq!(leave["qa_generation_info"]["max_tokens"], 512);
        let pairs = leave["training_pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 2);
        for key in
            ["question", "answer", "source_file", "file_name", "file_type", "chunk_id", "chunk_index", "source_text"]
        {
            assert!(pairs[0].get(key).is_some(), "training pair lacks {key}: {}", pairs[0]);
        }
        assert_eq!(pairs[0]["question"], "How many days of paid leave do employees get?");
        assert_eq!((pairs[0]["chunk_id"].as_str(), pairs[0]["chunk_index"].as_u64()), (Some("c1"), Some(0)));
        assert_eq!((pairs[1]["chunk_id"].as_str(), pairs[1]["chunk_index"].as_u64()), (Some("c2"), Some(1)));
        assert!(pairs[0]["source_text"].as_str().unwrap().contains("Carry-over is capped"));
        assert_eq!(leave["status"], "completed");
        assert_eq!(leave["completed_chunks"], serde_json::json!([0, 1]));
        assert_eq!(leave["summary"]["total_qa_pairs"], 2);
        assert!(leave["completion_time"].as_str().unwrap().starts_with("1970-01-01T00:00:00.040"));
        let onboarding = read(&qa.join("Onboarding__v2__qa.json"));
        assert_eq!(onboarding["failed_chunks"], serde_json::json!([1]));
        assert_eq!(onboarding["status"], "partial");
        assert_eq!(onboarding["summary"]["failed_chunks"], 1);
        let combined = read(&qa.join("training_data.json"));
        assert_eq!(combined["metadata"]["generated_by"], "distillery");
        assert_eq!(combined["metadata"]["total_qa_pairs"], 3);
        assert_eq!(combined["metadata"]["num_documents"], 2);
        assert_eq!(
            combined["metadata"]["source_qa_files"],
            serde_json::json!(
                ["s3://docs/guides/Onboarding (v2).pdf", "s3://docs/handbook/leave policy.md"]
                    .map(|u| format!("{}_qa.json", crate::qa_json::file_stem(u)))
            )
        );
        assert_eq!(combined["metadata"]["processing_config"]["model_used"], "smollm2");
        assert_eq!(combined["documents"].as_array().unwrap().len(), 2);
        assert_eq!(combined["documents"][1]["qa_pairs_count"], 2);
        assert_eq!(combined["training_pairs"].as_array().unwrap().len(), 3);

        // The card: front matter, every section, the counts of current documents only.
        let card = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        let (front, body) = card.strip_prefix("---\n").unwrap().split_once("\n---\n").unwrap();
        for needle in ["license: other", "task_categories:", "- question-answering", "size_categories:\n- n<1K"] {
            assert!(front.contains(needle), "front matter lacks {needle}:\n{front}");
        }
        assert!(front.contains("- config_name: \"alpaca\"\n  data_files: \"alpaca.jsonl\""), "{front}");
        assert!(front.contains("data_files: \"dataset.parquet\""), "{front}");
        let mut at = 0;
        for s in SECTIONS {
            at = at + body[at..].find(s).unwrap_or_else(|| panic!("{s} missing or out of order:\n{body}"));
        }
        assert!(body.contains("| documents | 2 |"), "{body}");
        assert!(body.contains("| accepted | 3 |") && body.contains("| accepted: qa | 3 |"), "{body}");
        assert!(body.contains("| rejected | 2 |") && body.contains("| rejected: chunk | 1 |"), "{body}");
        assert!(body.contains("| low_score | 1 |"), "{body}");
        assert!(body.contains("| 5 | 3 | 0 |") && body.contains("| 2 | 0 | 1 |"), "{body}");
        assert!(body.contains("| distinct_2 | 0.8 |"), "{body}");
        assert!(body.contains("| generator | openai/smollm2 | 4 |"), "{body}");
        assert!(body.contains("| judge | openai/smollm2 | 3 |"), "{body}");
        assert!(body.contains("| generator | qa | `abc` |"), "{body}");
        assert!(body.contains("| generator | 0.7 | 512 | 42 |"), "{body}");
    }

    #[test]
    fn an_edit_keeps_the_records_of_the_chunks_it_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let with_chunks = |mut d: DocumentView, chunks: &[&str]| {
            d.chunk_ids = chunks.iter().map(|c| c.to_string()).collect();
            d
        };
        let mut deleted = with_chunks(doc("gone", "old/removed.md", None), &["g1"]);
        deleted.superseded_by = Some("deleted".into());
        let docs = vec![
            with_chunks(doc("v1", "handbook/leave.md", None), &["kept", "edited"]),
            with_chunks(doc("v2", "handbook/leave.md", Some("v1")), &["kept", "rewritten", "added"]),
            deleted,
        ];
        let alpaca = dir.path().join("alpaca.jsonl");
        let target = vec![Target { format: Format::Alpaca, path: alpaca.clone() }];
        let mut job = ExportJob::create(target, docs, ExportOptions::default()).unwrap();
        // v1's record of the unchanged chunk, even one the sink marked superseded when it wrote it.
        let mut unchanged = accepted("a-kept", "v1", "kept", 1);
        unchanged.superseded_by = Some("v2".into());
        job.accepted(unchanged).unwrap();
        job.accepted(accepted("a-edited", "v1", "edited", 2)).unwrap();
        job.accepted(accepted("a-rewritten", "v2", "rewritten", 3)).unwrap();
        job.accepted(accepted("a-gone", "gone", "g1", 4)).unwrap();
        assert_eq!(job.skipped_superseded, 2, "the edited chunk's and the deleted document's records");
        let written = job.finish("t", None).unwrap();
        assert_eq!(written[0].records, 2);
        assert_eq!(std::fs::read_to_string(&alpaca).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_card_without_diversity_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card").join("README.md");
        let job = ExportJob::create(targets(&[Format::Card], &path), vec![], ExportOptions::default()).unwrap();
        job.finish("Empty", None).unwrap();
        let card = std::fs::read_to_string(&path).unwrap();
        assert!(card.contains("## Diversity\n\nnot measured\n"), "{card}");
        assert!(!card.contains("configs:"), "no data file beside it: {card}");
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_760_000_000_123), "2025-10-09T08:53:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
