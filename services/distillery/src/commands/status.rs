//! `distillery status DIR|--store URL [--json]`: every document of a dataset with its progress (chunks
//! done / failed / pending, accepted, rejected by reason, tokens), from the dataset store.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use distillery_dataset::{DatasetStore, DocumentProgress, SqlStore};

/// Opens the store of a run folder or at a URL.
pub async fn open(dir: Option<&Path>, url: Option<&str>) -> anyhow::Result<SqlStore> {
    let url = match (dir, url) {
        (_, Some(u)) => u.to_string(),
        (Some(d), None) => super::run_folder_store(d)?,
        (None, None) => bail!("give a run folder or --store URL"),
    };
    SqlStore::open(&url).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// One line of the table.
fn line(d: &DocumentProgress) -> String {
    let reasons = if d.rejected_by_reason.is_empty() {
        String::new()
    } else {
        let r: Vec<String> = d.rejected_by_reason.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" ({})", r.join(", "))
    };
    let deleted = if d.deleted { " [deleted: its records are no longer exported]" } else { "" };
    format!(
        "{}{deleted}  chunks {}: {} done, {} failed, {} pending  accepted {}  rejected {}{}  tokens {}",
        d.name, d.chunks, d.chunks_done, d.chunks_failed, d.chunks_pending, d.accepted, d.rejected, reasons, d.tokens
    )
}

/// Prints every document, by file name: a line each, or a JSON object a line with `--json`.
pub async fn status(dir: Option<&Path>, url: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = open(dir, url).await?;
    let docs = store.documents().await.map_err(|e| anyhow::anyhow!("{e}")).context("listing documents")?;
    let mut out = std::io::stdout().lock();
    if json {
        for d in &docs {
            writeln!(out, "{}", serde_json::to_string(d)?)?;
        }
        return Ok(());
    }
    for d in &docs {
        writeln!(out, "{}", line(d))?;
    }
    let t = store.totals().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    writeln!(
        out,
        "{} documents, {} chunks ({} done, {} failed, {} pending), {} accepted, {} rejected, {} dead letters, {} LLM calls over {} runs",
        t.documents,
        t.chunks,
        t.chunks_done,
        t.chunks_failed,
        t.chunks_pending,
        t.accepted,
        t.rejected,
        t.dead_letters,
        t.llm_calls,
        t.runs
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_document_and_its_reasons() {
        let mut d = DocumentProgress {
            name: "hr/handbook.md".into(),
            chunks: 4,
            chunks_done: 3,
            chunks_pending: 1,
            accepted: 5,
            rejected: 2,
            tokens: 900,
            ..Default::default()
        };
        d.rejected_by_reason.insert("low_score".into(), 2);
        let l = line(&d);
        assert!(l.starts_with("hr/handbook.md  chunks 4: 3 done, 0 failed, 1 pending"), "{l}");
        assert!(l.contains("rejected 2 (low_score=2)"), "{l}");
        assert!(!l.contains("deleted"), "{l}");
        d.deleted = true;
        assert!(line(&d).starts_with("hr/handbook.md [deleted"), "{}", line(&d));
    }
}
