//! Plumbing throughput through a real Kafka-protocol broker with an instant LLM: what the runtime costs per
//! chunk when the model answers at once. A backlog of chunks is published, then three stages run as Kafka
//! consumer-group members in this process, each doing no model work (generate: chunk -> draft, judge:
//! draft -> verdict, dedup: verdict -> accepted), so what is measured is consuming, decoding, the runtime's
//! handling (retries, breaker, offset tracking), encoding, publishing with `acks=all` and committing, three
//! hops per chunk. The stages join their groups first; then the backlog is published and the clock runs from
//! the first publish to the last accepted chunk. Prints chunks/s end to end and what each hop moved.
//!
//!   cargo run --release -p distillery-loadtest --bin plumbing -- --brokers 127.0.0.1:9092 [--chunks 50000]
//!
//! `--brokers` defaults to `DISTILLERY_TEST_KAFKA` (the suite's tansu, `scripts/test-servers start`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use distillery_core::codec::fixtures;
use distillery_core::{Accepted, Chunk, Input, Judged, Metrics, Record, StageError, Topic};
use distillery_kafka::{KafkaConfig, KafkaPublisher};
use distillery_runtime::http::Ready;
use distillery_runtime::{Publisher, RuntimeConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// Bootstrap brokers (default: DISTILLERY_TEST_KAFKA).
    #[arg(long)]
    brokers: Option<String>,
    /// Chunks in the backlog.
    #[arg(long, default_value_t = 50_000)]
    chunks: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Inputs in flight per stage (each waits for its outputs' acks: the broker's latency is amortised over
    /// as many inputs as are in flight).
    #[arg(long, default_value_t = 4096)]
    concurrency: usize,
}

/// A stage that turns each input into its next record at once (the model answering instantly).
struct NoModel {
    name: &'static str,
    inputs: &'static [Topic],
}

impl distillery_core::Stage for NoModel {
    fn name(&self) -> &'static str {
        self.name
    }
    fn inputs(&self) -> &'static [Topic] {
        self.inputs
    }
    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(record) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "not a record"));
        };
        Ok(match record {
            Record::Chunk(c) => {
                let mut d = fixtures::draft();
                d.id = format!("d-{}", c.id);
                d.chunk_id = c.id.clone();
                d.document_id = c.document_id.clone();
                d.context_text = c.context_text.clone();
                d.previous = None;
                d.superseded_by = None;
                vec![Record::Draft(d)]
            }
            Record::Draft(d) => {
                vec![Record::Judged(Judged { id: format!("j-{}", d.id), draft: d.clone(), ..fixtures::judged() })]
            }
            Record::Judged(j) => vec![Record::Accepted(Accepted {
                id: format!("a-{}", j.draft.id),
                judged: j.clone(),
                nearest_similarity: Some(0.2),
                accepted_at_ms: distillery_core::now_ms(),
            })],
            other => return Err(StageError::dead_letter("unexpected_input", format!("{:?}", other.kind()))),
        })
    }
}

fn chunk(i: usize) -> Chunk {
    let mut c = fixtures::chunk();
    c.id = format!("c-{i:08}");
    c.document_id = format!("doc-{:06}", i / 20);
    c.ordinal = (i % 20) as i32;
    c.total = 20;
    c.text =
        format!("Section {i}: employees get {} days of paid leave a year, carried over up to 5 days.", 20 + i % 10);
    c.context_text = c.text.clone();
    c
}

/// Partitions assigned to a stage so far (its `distillery_rebalanced_partitions_total{kind="assign"}`).
fn assigned(metrics: &Metrics, stage: &str) -> u64 {
    let prefix = "distillery_rebalanced_partitions_total{";
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix) && l.contains("kind=\"assign\"") && l.contains(&format!("stage=\"{stage}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn out_of(metrics: &Metrics, stage: &str, topic: Topic) -> u64 {
    Metrics::counter_sum(&metrics.records_out, &[("stage", stage), ("topic", topic.base_name())])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let brokers = args
        .brokers
        .or_else(|| std::env::var("DISTILLERY_TEST_KAFKA").ok())
        .ok_or_else(|| anyhow::anyhow!("--brokers or DISTILLERY_TEST_KAFKA (scripts/test-servers start)"))?;
    let run = format!("plumbing{}", distillery_core::now_ms());
    let cfg = KafkaConfig {
        brokers,
        topic_prefix: format!("{run}."),
        group_prefix: format!("{run}-"),
        partitions: args.partitions,
        statistics_interval_ms: 0,
        ..KafkaConfig::default()
    };
    distillery_kafka::ensure_topics(&cfg, &Topic::ALL).await?;

    // Three instant stages as consumer-group members, joined before any chunk is published, so the figure
    // is the pipeline's and not the broker's group joins.
    let metrics = Metrics::isolated();
    let runtime = RuntimeConfig { concurrency: Some(args.concurrency), ..RuntimeConfig::default() };
    let cancel = CancellationToken::new();
    let stages = [
        NoModel { name: "generate", inputs: &[Topic::Chunks] },
        NoModel { name: "judge", inputs: &[Topic::Drafts] },
        NoModel { name: "dedup", inputs: &[Topic::Judged] },
    ];
    let joining = Instant::now();
    let mut handles = Vec::new();
    for stage in stages {
        let (cfg, runtime, metrics, cancel) = (cfg.clone(), runtime.clone(), metrics.clone(), cancel.clone());
        handles.push(tokio::spawn(async move {
            distillery_kafka::run_stage(&cfg, &runtime, Arc::new(stage), metrics, Ready::default(), cancel).await
        }));
    }
    while ["generate", "judge", "dedup"].iter().any(|s| assigned(&metrics, s) < args.partitions as u64) {
        anyhow::ensure!(joining.elapsed() < Duration::from_secs(300), "the stages did not all join in 300 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join_secs = joining.elapsed().as_secs_f64();

    // The backlog, then the clock runs until the last chunk is accepted.
    let publisher = KafkaPublisher::new(&cfg)?;
    let started = Instant::now();
    for batch in (0..args.chunks).collect::<Vec<_>>().chunks(1000) {
        publisher.publish(batch.iter().map(|i| Record::Chunk(chunk(*i))).collect()).await?;
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let target = args.chunks as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if out_of(&metrics, "dedup", Topic::Accepted) >= target {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(1800), "not done after 30 minutes");
        if let Some(h) = handles.iter().find(|h| h.is_finished()) {
            anyhow::bail!("a stage stopped early: {h:?}");
        }
    }
    let total = started.elapsed().as_secs_f64();
    cancel.cancel();
    for h in handles {
        h.await??;
    }
    let hops = [("generate", Topic::Drafts), ("judge", Topic::Judged), ("dedup", Topic::Accepted)];
    println!(
        "\nplumbing through Kafka ({}, {} partitions, instant LLM, {} in flight per stage)",
        cfg.brokers, args.partitions, args.concurrency
    );
    println!("the three consumer groups joined in {join_secs:.1} s (before the clock starts)");
    println!(
        "backlog: {} chunks published in {produce_secs:.1} s ({:.0} records/s), while the stages ran",
        args.chunks,
        args.chunks as f64 / produce_secs
    );
    for (stage, topic) in hops {
        println!("  {stage:<9} -> {:<9} {:>8} records", topic.base_name(), out_of(&metrics, stage, topic));
    }
    println!(
        "end to end: {} chunks through 3 hops in {total:.1} s, from the first publish to the last accepted: {:.0} chunks/s",
        args.chunks,
        args.chunks as f64 / total,
    );
    Ok(())
}
