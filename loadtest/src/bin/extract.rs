//! Extraction speed and fidelity: extracts and chunks every PDF and DOCX under a folder (default: the
//! sample corpus beside the project) and prints pages/s and MB/s next to poppler's `pdftotext` run on the
//! same files in the same run, with the word recall of our text against pdftotext's.
//!
//!   cargo run --release -p distillery-loadtest --bin extract -- [--dir ../shared/corpus] [--repeat 3]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use distillery_docs::pii::{PiiConfig, Redactor};
use distillery_docs::{ApproxCounter, ChunkConfig, MediaType, chunk, extract_guarded};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "../shared/corpus")]
    dir: PathBuf,
    /// Runs per file (the best is kept, for both tools).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "pdf" || e == "docx") {
            out.push(p);
        }
    }
}

fn words(text: &str) -> HashMap<String, usize> {
    use unicode_normalization::UnicodeNormalization;
    let mut m = HashMap::new();
    for w in text.nfkc().collect::<String>().split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() > 1) {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

/// Share of the reference's words (with multiplicity) that our text also has.
fn recall(ours: &HashMap<String, usize>, reference: &HashMap<String, usize>) -> f64 {
    let total: usize = reference.values().sum();
    if total == 0 {
        return 1.0;
    }
    let hit: usize = reference.iter().map(|(w, n)| (*n).min(ours.get(w).copied().unwrap_or(0))).sum();
    hit as f64 / total as f64
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut list = Vec::new();
    files(&args.dir, &mut list);
    anyhow::ensure!(!list.is_empty(), "no PDF or DOCX files under {}", args.dir.display());
    let redactor = Redactor::new(PiiConfig::default());
    let have_pdftotext = std::process::Command::new("pdftotext").arg("-v").output().is_ok();
    println!(
        "{:<36} {:>6} {:>9} {:>10} {:>9} {:>12} {:>11} {:>8}",
        "file", "pages", "KiB", "ours ms", "chunks", "pdftotext ms", "word recall", "result"
    );
    let (mut our_secs, mut ref_secs, mut pages_total, mut bytes_total, mut pdf_pages, mut pdf_bytes) =
        (0.0, 0.0, 0u64, 0u64, 0u64, 0u64);
    let mut recalls = Vec::new();
    for path in &list {
        let bytes = std::fs::read(path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let media = MediaType::detect(&name, &bytes[..bytes.len().min(8192)]);
        let mut best = f64::MAX;
        let mut outcome = None;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let r = extract_guarded(media, &bytes).map(|mut e| {
                redactor.redact_document(&mut e);
                let n = chunk(&e, &ApproxCounter, &ChunkConfig::default()).len();
                (e, n)
            });
            best = best.min(t.elapsed().as_secs_f64());
            outcome = Some(r);
        }
        let outcome = outcome.expect("ran once");
        let pages = outcome.as_ref().ok().and_then(|(e, _)| e.pages).unwrap_or(1) as u64;
        let (mut ref_ms, mut rec) = (String::from("-"), String::from("-"));
        if media == MediaType::Pdf && have_pdftotext {
            let mut best_ref = f64::MAX;
            let mut reference = String::new();
            for _ in 0..args.repeat.max(1) {
                let t = Instant::now();
                let out = std::process::Command::new("pdftotext").arg(path).arg("-").output()?;
                best_ref = best_ref.min(t.elapsed().as_secs_f64());
                reference = String::from_utf8_lossy(&out.stdout).to_string();
            }
            if let Ok((e, _)) = &outcome
                && !reference.trim().is_empty()
            {
                // Compare text before redaction would hide words: extract again without it.
                let plain = extract_guarded(media, &bytes).map(|x| x.text()).unwrap_or_default();
                let r = recall(&words(&plain), &words(&reference));
                recalls.push(r);
                rec = format!("{r:.3}");
                let _ = e;
                ref_secs += best_ref;
                our_secs += best;
                pdf_pages += pages;
                pdf_bytes += bytes.len() as u64;
            }
            ref_ms = format!("{:.1}", best_ref * 1000.0);
        }
        pages_total += pages;
        bytes_total += bytes.len() as u64;
        let (chunks, result) = match &outcome {
            Ok((_, n)) => (n.to_string(), "ok".to_string()),
            Err(e) => ("-".into(), e.reason().as_str().to_string()),
        };
        println!(
            "{:<36} {:>6} {:>9.1} {:>10.1} {:>9} {:>12} {:>11} {:>8}",
            name.chars().take(36).collect::<String>(),
            pages,
            bytes.len() as f64 / 1024.0,
            best * 1000.0,
            chunks,
            ref_ms,
            rec,
            result
        );
    }
    println!();
    println!("files: {}, pages: {pages_total}, MiB: {:.2}", list.len(), bytes_total as f64 / 1048576.0);
    if pdf_pages > 0 && our_secs > 0.0 {
        println!(
            "PDFs both tools read ({} pages, {:.2} MiB):\n  distillery (extract + redact + chunk): {:>8.1} pages/s {:>6.2} MB/s\n  pdftotext (text only, own process):     {:>8.1} pages/s {:>6.2} MB/s",
            pdf_pages,
            pdf_bytes as f64 / 1048576.0,
            pdf_pages as f64 / our_secs,
            pdf_bytes as f64 / 1e6 / our_secs,
            pdf_pages as f64 / ref_secs,
            pdf_bytes as f64 / 1e6 / ref_secs
        );
        let mean = recalls.iter().sum::<f64>() / recalls.len() as f64;
        let min = recalls.iter().cloned().fold(f64::MAX, f64::min);
        println!("  word recall against pdftotext: mean {mean:.4}, min {min:.4} over {} PDFs", recalls.len());
    }
    Ok(())
}
