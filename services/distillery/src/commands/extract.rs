//! `distillery extract FILE...`: the chunks documents would produce, as JSON lines; no LLM call.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use distillery_core::config::{from_toml, load};
use distillery_core::{Discovery, Document, ObjectRef};

use crate::config::RunConfig;

pub fn extract(files: Vec<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg: RunConfig = match config {
        Some(p) => load(Some(&p)).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => from_toml("").map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let counter = distillery_extract::token_counter(cfg.extract.tokenizer.as_deref()).map_err(anyhow::Error::msg)?;
    let redactor = distillery_docs::pii::Redactor::new(cfg.extract.pii.clone());
    distillery_docs::docx::set_limits(cfg.extract.max_uncompressed_bytes);
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0;
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let root = file.parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
        let doc = Document::discovered(ObjectRef::file(root, name), &bytes, Discovery::Local);
        match distillery_extract::chunk_document(&doc, &bytes, counter.as_ref(), &cfg.extract.chunking, &redactor) {
            Ok(x) => {
                for c in x.chunks {
                    serde_json::to_writer(&mut stdout, &c)?;
                    stdout.write_all(b"\n")?;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: rejected ({}): {e}", file.display(), e.reason());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} file(s) yielded no chunks");
    }
    Ok(())
}
