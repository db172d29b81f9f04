//! Bad input, tried and printed (issue 14). The extract stage, with its parsers in the worker process as a
//! service runs them, gets the hostile files: a 4 MB unsplittable word, 100 MB of text, HTML and Markdown
//! nested 100,000 deep, a DOCX whose XML nests 100,000 deep; a small ordinary document goes in beside them.
//! Each ends rejected with a reason or in chunks within the limits (none over Kafka's message size), the
//! stage never crashes, and the ordinary document is extracted while they are being handled.
//!
//! Then a fuzz run per extractor: seeded mutations (bit flips, truncations, spliced and repeated spans) of
//! real files of each kind go through extraction and chunking in this process; every one ends `Ok` or in a
//! classified error, with no panic reaching the caller and no abort. The count per extractor is bounded (and
//! so is each extractor's time budget), so CI runs it every time. Both tables are printed and added to the
//! suite's figures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::{Discovery, Document, DocumentStatus, Input, Metrics, ObjectRef, Record, Stage, Topic};
use distillery_docs::pii::{PiiConfig, Redactor};
use distillery_docs::{ApproxCounter, MediaType};
use distillery_extract::{Extract, ExtractConfig, Isolation, WORKER_ARG, WorkerCommand};
use distillery_store::Stores;

/// The largest record a topic takes by default (`kafka.message_max_bytes`).
const MESSAGE_MAX_BYTES: usize = 1_000_000;

fn document(root: &str, key: &str) -> Document {
    let bytes = std::fs::read(format!("{root}/{key}")).unwrap();
    Document {
        id: distillery_core::ids::hash_bytes(&bytes),
        source: ObjectRef::file(root, key),
        size: bytes.len() as i64,
        media_type: MediaType::detect(key, &bytes[..bytes.len().min(8192)]).mime().into(),
        discovered_by: Discovery::Local,
        discovered_at_ms: 0,
        status: DocumentStatus::Discovered,
        supersedes: None,
        pii_counts: Default::default(),
        pages: None,
        chunks: None,
    }
}

fn stage() -> Arc<Extract> {
    let cfg = ExtractConfig { isolation: Isolation::Process, timeout_secs: 60, ..Default::default() };
    Arc::new(Extract {
        limits: distillery_extract::limits::Limits::of_this_process(cfg.max_memory_mib),
        stores: Stores::local_only(),
        counter: Arc::new(ApproxCounter),
        redactor: Arc::new(Redactor::new(PiiConfig::default())),
        worker: Some(WorkerCommand { program: common::binary(), args: vec![WORKER_ARG.into()] }),
        versions: None,
        metrics: Metrics::isolated(),
        cfg,
    })
}

/// A DOCX (a zip of the parts Word needs) whose body nests `depth` runs deep, zipped by Python's zipfile.
fn deep_docx(path: &std::path::Path, depth: usize) {
    let script = r#"
import sys, zipfile
depth, path = int(sys.argv[1]), sys.argv[2]
body = ('<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>'
        + '<w:r>' * depth + '<w:t>deep</w:t>' + '</w:r>' * depth + '</w:p></w:body></w:document>')
types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
         '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
         'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("[Content_Types].xml", types)
    z.writestr("word/document.xml", body)
"#;
    let python = common::python().unwrap_or_else(|| "python3".into());
    let status = std::process::Command::new(python)
        .args(["-c", script, &depth.to_string()])
        .arg(path)
        .status()
        .expect("python runs");
    assert!(status.success(), "the deep DOCX was written");
}

/// How one input ended.
struct Ended {
    file: String,
    bytes: usize,
    outcome: String,
    largest_record: usize,
    secs: f64,
}

async fn extract(stage: Arc<Extract>, root: String, key: String) -> Ended {
    let doc = document(&root, &key);
    let bytes = doc.size as usize;
    let started = Instant::now();
    let result = stage.process(Input::record(Topic::Documents, Record::Document(doc))).await;
    let secs = started.elapsed().as_secs_f64();
    let (outcome, largest_record) = match result {
        Ok(records) => {
            let codec = distillery_core::Codec::global();
            let largest = records.iter().map(|r| codec.encode(r).expect("encodes").len()).max().unwrap_or(0);
            let chunks = records.iter().filter(|r| matches!(r, Record::Chunk(_))).count();
            (format!("{chunks} chunks"), largest)
        }
        Err(e) => {
            let outcome = match e.disposition {
                distillery_core::Disposition::Reject(reason) => format!("rejected {}: {}", reason.as_str(), e.message),
                other => format!("{other:?} {}: {}", e.kind, e.message),
            };
            (outcome, 0)
        }
    };
    Ended { file: key, bytes, outcome, largest_record, secs }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_end_rejected_or_within_limits_and_delay_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    // A 4 MB unsplittable word (hex, no space, no punctuation).
    let hex: String =
        (0..4 * 1024 * 1024 / 16).map(|i: u64| format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
    write("hex-word.txt", format!("# Dump\n\n{hex}\n").as_bytes());
    // 100 MB of ordinary text.
    let line = "The committee meets every second Tuesday and keeps minutes of every decision it takes.\n";
    write("huge.txt", line.repeat(100_000_000 / line.len() + 1).as_bytes());
    // Nesting 100,000 deep.
    write(
        "deep.html",
        format!("<html><body>{}text{}</body></html>", "<div>".repeat(100_000), "</div>".repeat(100_000)).as_bytes(),
    );
    write("deep.md", format!("# Deep\n\n{}quoted text\n", "> ".repeat(100_000)).as_bytes());
    write("deep-list.md", (0..3_000).map(|i| format!("{}- item {i}\n", "  ".repeat(i))).collect::<String>().as_bytes());
    deep_docx(&dir.path().join("deep.docx"), 100_000);
    write("ordinary.md", b"# Leave\n\nEmployees get 25 days of paid leave per year; up to 5 carry over to March.\n");

    let s = stage();
    let hostile = ["hex-word.txt", "huge.txt", "deep.html", "deep.md", "deep-list.md", "deep.docx"];
    let mut tasks: Vec<_> =
        hostile.iter().map(|k| tokio::spawn(extract(s.clone(), root.clone(), k.to_string()))).collect();
    // The ordinary document goes in once the hostile ones are being handled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tasks.push(tokio::spawn(extract(s.clone(), root.clone(), "ordinary.md".into())));
    let mut ended = Vec::new();
    for t in tasks {
        ended.push(t.await.expect("the stage never panics"));
    }
    let mut table = String::from(
        "hostile input (extract stage, parsers in the worker process, handled at once):\n\
         | file | bytes | outcome | largest record | seconds |\n| --- | ---: | --- | ---: | ---: |\n",
    );
    for e in &ended {
        let outcome: String = e.outcome.chars().take(140).collect();
        table += &format!("| {} | {} | {} | {} | {:.1} |\n", e.file, e.bytes, outcome, e.largest_record, e.secs);
    }
    common::report(&table);
    for e in &ended {
        assert!(
            e.outcome.starts_with("rejected ") || e.outcome.ends_with(" chunks"),
            "{}: every input ends rejected with a reason or in chunks, not {}",
            e.file,
            e.outcome
        );
        assert!(e.largest_record < MESSAGE_MAX_BYTES, "{}: a record of {} bytes", e.file, e.largest_record);
    }
    let by = |f: &str| ended.iter().find(|e| e.file == f).unwrap();
    assert!(by("huge.txt").outcome.starts_with("rejected too_large"), "{}", by("huge.txt").outcome);
    assert!(by("ordinary.md").outcome.ends_with(" chunks") && !by("ordinary.md").outcome.starts_with("0 "));
}

// ---------------------------------------------------------------------------------------------------------
// Fuzzing

/// A small seeded generator (xorshift64*), so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed`: flipped bits, a truncation, a span spliced elsewhere, a span repeated, or random
/// bytes inserted; sometimes several.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
        }
        let len = b.len();
        match rng.below(5) {
            0 => {
                for _ in 0..1 + rng.below(16) {
                    let i = rng.below(len);
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => b.truncate(rng.below(len)),
            2 => {
                let (from, to) = (rng.below(len), rng.below(len));
                let n = rng.below(256).min(len - from);
                let span = b[from..from + n].to_vec();
                b.splice(to..to, span);
            }
            3 => {
                let from = rng.below(len);
                let n = (1 + rng.below(64)).min(len - from);
                let span = b[from..from + n].to_vec();
                let times = 1 + rng.below(200);
                b.splice(from..from, span.repeat(times));
            }
            _ => {
                let at = rng.below(len);
                let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_files_of_every_extractor_end_ok_or_classified() {
    let fixtures = format!("{}/../crates/distillery-docs/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let read = |f: &str| std::fs::read(format!("{fixtures}/{f}")).unwrap();
    let seeds: Vec<(MediaType, Vec<Vec<u8>>)> = vec![
        (MediaType::Pdf, vec![read("handbook.pdf"), read("plan.pdf"), read("truncated.pdf")]),
        (MediaType::Docx, vec![read("handbook.docx"), read("nested.docx")]),
        (MediaType::Html, vec![read("page.html")]),
        (
            MediaType::Markdown,
            vec![
                b"# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote\n\n- item\n  - nested\n\n```rust\nfn main() {}\n```\n[link](http://x) **bold** _em_\n".to_vec(),
                std::fs::read(format!("{}/../examples/docs/it-security-policy.md", env!("CARGO_MANIFEST_DIR")))
                    .expect("an example document"),
            ],
        ),
        (MediaType::Text, vec![read("latin1.txt"), read("utf16.txt"), read("shift_jis.txt")]),
    ];
    // Cases per extractor, and a time budget per extractor (what is run within it is counted).
    let cases: usize = std::env::var("DISTILLERY_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let budget = Duration::from_secs(40);
    let cfg = distillery_docs::ChunkConfig::default();
    let redactor = Arc::new(Redactor::new(PiiConfig::default()));
    let mut table = String::from(
        "fuzz (seeded mutations of real files, extraction + chunking in process):\n\
         | extractor | cases | ok | classified errors | parser panics caught | hung (abandoned) |\n\
         | --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    // Parser panics the extractors catch themselves (pdf-extract on a broken font costs that page) or that
    // `extract_guarded` turns into `corrupt`: counted here, quietly (the default hook prints a backtrace).
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name().is_some_and(|n| n.starts_with("tokio")) {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        } else {
            default(info);
        }
    }));
    let mut hung_total = 0;
    for (media, files) in seeds {
        let files: Vec<Vec<u8>> = files.into_iter().filter(|f| !f.is_empty()).collect();
        let mut rng = Rng(0x5eed_0000 ^ (media.mime().len() as u64 * 7919));
        let (mut ok, mut hung, mut run) = (0, 0, 0);
        let panics_before = PANICS.load(std::sync::atomic::Ordering::SeqCst);
        let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
        let started = Instant::now();
        while run < cases && started.elapsed() < budget {
            let input = mutate(&files[rng.below(files.len())], &mut rng);
            run += 1;
            let redactor = redactor.clone();
            let cfg = cfg.clone();
            let task = tokio::task::spawn_blocking(move || {
                let doc = distillery_core::codec::fixtures::document();
                match distillery_docs::extract_guarded(media, &input) {
                    Ok(extracted) => {
                        distillery_extract::chunk_extracted(&doc, extracted, &ApproxCounter, &cfg, &redactor)
                            .map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            });
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Err(_) => hung += 1,
                Ok(Err(join)) => panic!("{media:?}: a panic escaped extraction and chunking: {join}"),
                Ok(Ok(Ok(()))) => ok += 1,
                Ok(Ok(Err(e))) => {
                    *errors.entry(e.reason().as_str().to_string()).or_default() += 1;
                }
            }
        }
        hung_total += hung;
        let panics = PANICS.load(std::sync::atomic::Ordering::SeqCst) - panics_before;
        let errors = errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        table += &format!("| {media:?} | {run} | {ok} | {errors} | {panics} | {hung} |\n");
        assert!(run > 0, "{media:?}: no case ran");
    }
    let _ = std::panic::take_hook();
    common::report(&table);
    assert_eq!(hung_total, 0, "a parse hung for 20 s (the worker process would be killed, but it is a bug)\n{table}");
}
