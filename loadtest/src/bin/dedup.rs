//! Near-duplicate throughput: the sentence encoder (all-MiniLM-L6-v2 on candle, texts/s one at a time and
//! in batches), the vector indexes (in memory, brute force; Qdrant's engine in process, on disk: points
//! stored/s and nearest-neighbour queries/s at a given size) and the dedup stage end to end (lexical pass,
//! embedding, index search, claims log; examples/s, a share of them near-duplicates). Prints figures;
//! asserts nothing about them.
//!
//!   cargo run --release -p distillery-loadtest --bin dedup -- [--texts 256] [--points 5000] [--examples 400]
//!
//! The encoder's folder: `--model-dir`, else `$DISTILLERY_EMBED_MODEL_DIR` or the places dedup looks
//! (scripts/test-servers installs it).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use distillery_core::codec::fixtures;
use distillery_core::ordered_log::MemoryLog;
use distillery_core::{Input, Metrics, Record, Stage, Topic};
use distillery_dedup::vectors::{EmbedderConfig, embedder};
use distillery_dedup::{Dedup, DedupConfig};
use distillery_vector::{EdgeIndex, Embedder, MemoryIndex, Point, Scope, VectorIndex, normalize};

#[derive(Parser, Debug)]
#[command(about = "Embedding, vector index and dedup stage throughput")]
struct Args {
    /// Texts embedded per measurement.
    #[arg(long, default_value_t = 256)]
    texts: usize,
    /// Batch size of the batched measurement.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Points stored in each index before querying.
    #[arg(long, default_value_t = 5000)]
    points: usize,
    /// Nearest-neighbour queries per index.
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Examples through the dedup stage (a quarter are rewordings of others).
    #[arg(long, default_value_t = 400)]
    examples: usize,
    /// Examples in flight through the stage (the service runs 4).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The encoder's folder.
    #[arg(long, env = "DISTILLERY_EMBED_MODEL_DIR")]
    model_dir: Option<std::path::PathBuf>,
}

const TOPICS: [&str; 12] = [
    "annual leave",
    "expense claims",
    "the notice period",
    "fire drills",
    "remote work",
    "purchase orders",
    "safety shoes",
    "the VPN client",
    "parental leave",
    "travel bookings",
    "laptop renewals",
    "badge access",
];
const ASKS: [&str; 8] = [
    "Who approves",
    "How often is",
    "What is the rule for",
    "Where do employees request",
    "Which form covers",
    "When does the policy on",
    "How long does it take to settle",
    "What must be attached to",
];

/// A distinct question and answer for `i`.
fn example(i: usize) -> (String, String) {
    let topic = TOPICS[i % TOPICS.len()];
    let ask = ASKS[(i / TOPICS.len()) % ASKS.len()];
    let unit = i / (TOPICS.len() * ASKS.len());
    (
        format!("{ask} {topic} in office {unit}?"),
        format!(
            "For {topic}, office {unit} follows rule {i}: the {} team answers within {} days.",
            ask.len(),
            i % 17 + 1
        ),
    )
}

fn judged(id: String, q: &str, a: &str) -> Record {
    let mut j = fixtures::judged();
    j.id = format!("j-{id}");
    j.draft.id = id;
    j.draft.messages[0].content = q.to_string();
    j.draft.messages[1].content = a.to_string();
    j.passed = true;
    Record::Judged(j)
}

/// A deterministic unit vector.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    normalize(
        (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect(),
    )
}

async fn embeddings(enc: &dyn Embedder, args: &Args) -> anyhow::Result<()> {
    let texts: Vec<String> = (0..args.texts)
        .map(|i| {
            let (q, a) = example(i);
            format!("{q}\n{a}")
        })
        .collect();
    enc.embed(texts[..1].to_vec()).await?;
    let started = Instant::now();
    for t in &texts {
        enc.embed(vec![t.clone()]).await?;
    }
    let one = texts.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for chunk in texts.chunks(args.batch) {
        enc.embed(chunk.to_vec()).await?;
    }
    let batched = texts.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "embedding ({}, {} dims): {one:.1} texts/s one at a time, {batched:.1} texts/s in batches of {} ({} texts of ~{} characters)",
        enc.name(),
        enc.dim(),
        args.batch,
        texts.len(),
        texts.iter().map(String::len).sum::<usize>() / texts.len().max(1)
    );
    Ok(())
}

async fn index(name: &str, idx: &dyn VectorIndex, dim: usize, args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    for i in 0..args.points {
        idx.upsert(Point {
            id: format!("p{i}"),
            dataset: "bench".into(),
            log: "claims".into(),
            seq: i as u64,
            vector: vector(i as u64, dim),
            keys: vec![format!("x:{i}")],
            signature: vec![i as u32; 16],
            question: vec![i as u32],
        })
        .await?;
    }
    let stored = args.points as f64 / started.elapsed().as_secs_f64();
    let queries = queries(name, idx, dim, args).await?;
    println!(
        "vector index {name}: {stored:.0} points stored/s, {queries:.0} nearest-5 queries/s at {} points of {dim} dims (scoped to half of them)",
        args.points
    );
    Ok(())
}

/// Nearest-neighbour queries/s.
async fn queries(name: &str, idx: &dyn VectorIndex, dim: usize, args: &Args) -> anyhow::Result<f64> {
    let scope = Scope { dataset: "bench", log: "claims", before: Some(args.points as u64 / 2) };
    let started = Instant::now();
    let mut found = 0;
    for q in 0..args.queries {
        found += idx.nearest(&scope, &vector(1_000_000 + q as u64, dim), 5).await?.len();
    }
    let rate = args.queries as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(found == 5 * args.queries, "{name}: {found} hits for {} queries", args.queries);
    Ok(rate)
}

async fn stage(enc: Arc<dyn Embedder>, index_name: &str, idx: Arc<dyn VectorIndex>, args: &Args) -> anyhow::Result<()> {
    let d = Arc::new(Dedup::new(
        enc,
        idx,
        DedupConfig::default(),
        Arc::new(MemoryLog::new("bench-claims")),
        &Metrics::isolated(),
    ));
    let originals = args.examples - args.examples / 4;
    let mut inputs: Vec<Record> = (0..originals)
        .map(|i| {
            let (q, a) = example(i);
            judged(format!("e{i}"), &q, &a)
        })
        .collect();
    // Rewordings: case, punctuation and a word added.
    for k in 0..args.examples / 4 {
        let (q, a) = example(k * 3 % originals);
        inputs.push(judged(format!("r{k}"), &q.to_lowercase().replace('?', " please?"), &a));
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in inputs {
        let permit = sem.clone().acquire_owned().await?;
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let out = d.process(Input::record(Topic::Judged, r)).await;
            drop(permit);
            out
        }));
    }
    let (mut accepted, mut duplicates) = (0, 0);
    for t in tasks {
        match t.await?.map_err(|e| anyhow::anyhow!("{e:?}"))?.first() {
            Some(Record::Accepted(_)) => accepted += 1,
            Some(Record::Rejected(_)) => duplicates += 1,
            other => anyhow::bail!("unexpected output {other:?}"),
        }
    }
    let rate = args.examples as f64 / started.elapsed().as_secs_f64();
    println!(
        "dedup stage ({index_name}): {rate:.1} examples/s ({} examples, {accepted} accepted, {duplicates} duplicates, {} in flight)",
        args.examples, args.concurrency
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let enc = embedder(&EmbedderConfig { model_dir: args.model_dir.clone(), ..EmbedderConfig::default() })
        .await
        .map_err(anyhow::Error::msg)
        .context("loading the sentence encoder")?;
    println!("build: {}", if cfg!(debug_assertions) { "debug" } else { "release" });
    embeddings(&*enc, &args).await?;
    let dim = enc.dim();
    let dir = tempfile::tempdir()?;
    index("in memory (brute force)", &MemoryIndex::new(dim), dim, &args).await?;
    let edge = EdgeIndex::open(&dir.path().join("bench"), dim)?;
    index("qdrant-edge (in process, on disk)", &edge, dim, &args).await?;
    let started = Instant::now();
    let changed = edge.optimize()?;
    println!(
        "qdrant-edge optimize (segments merged, HNSW built past the threshold): {:.1} s, changed: {changed}",
        started.elapsed().as_secs_f64()
    );
    let rate = queries("qdrant-edge after optimize", &edge, dim, &args).await?;
    println!("vector index qdrant-edge after optimize: {rate:.0} nearest-5 queries/s at {} points", args.points);
    stage(enc.clone(), "in-memory index", Arc::new(MemoryIndex::new(dim)), &args).await?;
    stage(enc.clone(), "qdrant-edge index", Arc::new(EdgeIndex::open(&dir.path().join("stage"), dim)?), &args).await?;
    Ok(())
}
