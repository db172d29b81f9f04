//! The per-document Q&A JSON export: a folder with `{name}_qa.json` per document (its metadata, how it was
//! processed, the generator, its training pairs, which chunks completed or failed) and a combined
//! `training_data.json` (every document's summary and every pair). Aggregated per document, since each
//! file is one JSON object; the pairs of the whole dataset are held until the end.
//!
//! What the records do not hold is null: the splitting parameters (chunk size and overlap are the
//! extractor's configuration, not the records'), and a chunk's character range. A chunk's ordinal is not in
//! its examples either: `chunk_index` numbers a document's chunks in the order their first outcome was
//! recorded, which follows extraction order in a run but is not guaranteed to equal it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::job::{ExportError, iso8601, write_atomic};
use crate::view::{DocumentView, ExampleView, ModelView};

/// The combined file's name.
pub const COMBINED: &str = "training_data.json";

#[derive(Debug, Clone)]
struct Pair {
    question: String,
    answer: String,
    chunk_id: String,
    source_text: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct ChunkSeen {
    first_at_ms: i64,
    accepted: usize,
    failed: bool,
}

#[derive(Debug, Clone, Default)]
struct DocQa {
    doc: Option<DocumentView>,
    pairs: Vec<Pair>,
    chunks: BTreeMap<String, ChunkSeen>,
    generator: Option<ModelView>,
    /// Accepted examples per chunk that produced any (questions per chunk, on average).
    accepted: usize,
    failed: bool,
    first_at_ms: Option<i64>,
    last_at_ms: Option<i64>,
}

impl DocQa {
    fn saw(&mut self, chunk_id: Option<&str>, at_ms: i64) -> Option<&mut ChunkSeen> {
        self.first_at_ms = Some(self.first_at_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.last_at_ms = Some(self.last_at_ms.map_or(at_ms, |l| l.max(at_ms)));
        let c =
            self.chunks.entry(chunk_id?.to_string()).or_insert(ChunkSeen { first_at_ms: at_ms, ..Default::default() });
        c.first_at_ms = c.first_at_ms.min(at_ms);
        Some(c)
    }
}

/// The export being gathered.
#[derive(Debug, Default)]
pub struct QaJson {
    docs: BTreeMap<String, DocQa>,
}

/// `{name}`: the file name without its extension, with anything but letters, digits, `.`, `-` and `_`
/// replaced by `_` (never empty, never hidden).
pub fn file_stem(uri: &str) -> String {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    let stem = match name.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => name,
    };
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() { "document".to_string() } else { clean }
}

fn file_name(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

fn file_type(uri: &str) -> String {
    match file_name(uri).rsplit_once('.') {
        Some((s, ext)) if !s.is_empty() => format!(".{}", ext.to_ascii_lowercase()),
        _ => String::new(),
    }
}

impl QaJson {
    /// Starts with the dataset's (current) documents.
    pub fn new(documents: &[DocumentView]) -> QaJson {
        let mut q = QaJson::default();
        for d in documents {
            q.docs.entry(d.id.clone()).or_default().doc = Some(d.clone());
        }
        q
    }

    /// An accepted record: a QA pair becomes a training pair (a conversation counts for its chunk only).
    pub fn accepted(&mut self, v: &ExampleView) {
        let Some(doc_id) = v.document_id.clone() else { return };
        let d = self.docs.entry(doc_id).or_default();
        if let Some(c) = d.saw(v.chunk_id.as_deref(), v.at_ms) {
            c.accepted += 1;
        }
        if d.generator.is_none() {
            d.generator = v.generator.clone();
        }
        d.accepted += 1;
        if let (Some(q), Some(a)) = (&v.question, &v.answer) {
            d.pairs.push(Pair {
                question: q.clone(),
                answer: a.clone(),
                chunk_id: v.chunk_id.clone().unwrap_or_default(),
                source_text: v.context_text.clone(),
            });
        }
    }

    /// A rejected record: a rejected chunk is a failed chunk, a rejected document a failed document.
    pub fn rejected(&mut self, v: &ExampleView) {
        let Some(doc_id) = v.document_id.clone().or_else(|| (v.kind == "document").then(|| v.id.clone())) else {
            return;
        };
        let d = self.docs.entry(doc_id).or_default();
        match v.kind.as_str() {
            "document" => {
                d.saw(None, v.at_ms);
                d.failed = true;
            }
            "chunk" => {
                let chunk = v.chunk_id.clone().unwrap_or_else(|| v.id.clone());
                if let Some(c) = d.saw(Some(&chunk), v.at_ms) {
                    c.failed = true;
                }
            }
            _ => {
                d.saw(v.chunk_id.as_deref(), v.at_ms);
            }
        }
    }

    /// Writes the folder; returns the training pairs written.
    pub fn write(self, dir: &Path) -> Result<usize, ExportError> {
        std::fs::create_dir_all(dir).map_err(|e| ExportError(format!("{}: {e}", dir.display())))?;
        let mut used = BTreeSet::new();
        let mut summaries = Vec::new();
        let mut all_pairs = Vec::new();
        let mut files = Vec::new();
        let mut generated_by: BTreeMap<String, ModelView> = BTreeMap::new();
        // By name, so the files come out in a stable order.
        let mut docs: Vec<(String, DocQa)> = self.docs.into_iter().collect();
        docs.sort_by_cached_key(|(id, d)| (d.doc.as_ref().map(|x| x.uri.clone()).unwrap_or_default(), id.clone()));
        for (id, d) in docs {
            let uri = d.doc.as_ref().map(|x| x.uri.clone()).unwrap_or_default();
            let mut stem =
                if uri.is_empty() { format!("document-{}", &id[..id.len().min(12)]) } else { file_stem(&uri) };
            if !used.insert(stem.clone()) {
                let mut n = 2;
                while !used.insert(format!("{stem}_{n}")) {
                    n += 1;
                }
                stem = format!("{stem}_{n}");
            }
            let name = format!("{stem}_qa.json");
            let (doc_value, pairs) = document_file(&id, &uri, &d);
            if let Some(g) = &d.generator {
                generated_by.entry(format!("{}/{}", g.provider, g.model)).or_insert_with(|| g.clone());
            }
            write_atomic(&dir.join(&name), &serde_json::to_vec_pretty(&doc_value)?)?;
            summaries.push(json!({
                "file_info": doc_value["metadata"],
                "processing_info": doc_value["processing_info"],
                "qa_generation_info": doc_value["qa_generation_info"],
                "summary": doc_value["summary"],
                "qa_pairs_count": pairs.len(),
                "source_file": name,
            }));
            all_pairs.extend(pairs);
            files.push(name);
        }
        let first = generated_by.values().next();
        let combined = json!({
            "metadata": {
                "generated_by": "distillery",
                "generated_at": iso8601(distillery_core::now_ms()),
                "total_qa_pairs": all_pairs.len(),
                "num_documents": files.len(),
                "source_qa_files": files,
                "processing_config": {
                    "chunk_size": null,
                    "chunk_overlap": null,
                    "splitting_strategy": null,
                    "questions_per_chunk": null,
                    "temperature": first.map(|g| g.temperature),
                    "max_tokens": first.and_then(|g| g.max_tokens),
                    "llm_provider": first.map(|g| g.provider.clone()),
                    "model_used": first.map(|g| g.model.clone()),
                    "models": generated_by.keys().collect::<Vec<_>>(),
                },
            },
            "documents": summaries,
            "training_pairs": all_pairs,
        });
        let n = combined["training_pairs"].as_array().map_or(0, Vec::len);
        write_atomic(&dir.join(COMBINED), &serde_json::to_vec_pretty(&combined)?)?;
        Ok(n)
    }
}

/// One document's file and its training pairs.
fn document_file(id: &str, uri: &str, d: &DocQa) -> (Value, Vec<Value>) {
    // Chunk indexes: in the order each chunk's first outcome was recorded (ids break ties).
    let mut order: Vec<(&String, &ChunkSeen)> = d.chunks.iter().collect();
    order.sort_by_key(|(id, c)| (c.first_at_ms, (*id).clone()));
    let index: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, (id, _))| (id.as_str(), i)).collect();
    // A chunk is completed once it has an outcome and did not fail as a whole.
    let completed: Vec<usize> = order.iter().enumerate().filter(|(_, (_, c))| !c.failed).map(|(i, _)| i).collect();
    let failed: Vec<usize> = order.iter().enumerate().filter(|(_, (_, c))| c.failed).map(|(i, _)| i).collect();
    let total_chunks = d.doc.as_ref().and_then(|x| x.chunks).map_or(d.chunks.len() as i64, i64::from);
    let (name, ftype) = (file_name(uri), file_type(uri));
    let pairs: Vec<Value> = d
        .pairs
        .iter()
        .map(|p| {
            json!({
                "question": p.question,
                "answer": p.answer,
                "source_file": uri,
                "file_name": name,
                "file_type": ftype,
                "chunk_id": p.chunk_id,
                "chunk_index": index.get(p.chunk_id.as_str()),
                "chunk_start": null,
                "chunk_end": null,
                "source_text": p.source_text,
                "document_id": id,
            })
        })
        .collect();
    let with_pairs = d.chunks.values().filter(|c| c.accepted > 0).count();
    let status = if d.failed {
        "failed"
    } else if failed.is_empty() && (completed.len() as i64) >= total_chunks {
        "completed"
    } else {
        "partial"
    };
    let g = d.generator.as_ref();
    let value = json!({
        "metadata": {
            "file_name": name,
            "source_file": uri,
            "file_type": ftype,
            "file_size": d.doc.as_ref().map(|x| x.size),
            "processed_at": d.doc.as_ref().map(|x| iso8601(x.at_ms)),
            "document_id": id,
            "media_type": d.doc.as_ref().map(|x| x.media_type.clone()),
            "pages": d.doc.as_ref().and_then(|x| x.pages),
        },
        "processing_info": {
            "splitting_strategy": null,
            "chunk_size": null,
            "chunk_overlap": null,
            "total_chunks": total_chunks,
        },
        "qa_generation_info": {
            "provider": g.map(|g| g.provider.clone()),
            "model": g.map(|g| g.model.clone()),
            "questions_per_chunk": (with_pairs > 0).then(|| d.accepted as f64 / with_pairs as f64),
            "temperature": g.map(|g| g.temperature),
            "max_tokens": g.and_then(|g| g.max_tokens),
            "template": g.map(|g| g.template.clone()),
            "generated_at": d.first_at_ms.map(iso8601),
        },
        "training_pairs": pairs,
        "status": status,
        "completed_chunks": completed,
        "failed_chunks": failed,
        "summary": {
            "total_chunks": total_chunks,
            "completed_chunks": completed.len(),
            "failed_chunks": failed.len(),
            "total_qa_pairs": pairs.len(),
        },
        "completion_time": d.last_at_ms.map(iso8601),
    });
    (value, pairs)
}
