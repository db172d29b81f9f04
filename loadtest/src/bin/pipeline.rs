//! Pipeline throughput against a real LLM server: runs `distillery run` on a folder twice, once with one
//! request in flight (how a sequential script drives the server) and once with the server's parallel
//! slots, and prints drafts/s, accepted/s, tokens per accepted record and how busy the server was.
//!
//!   cargo run --release -p distillery-loadtest --bin pipeline -- --llm-base-url http://127.0.0.1:8080/v1 [--docs examples/docs]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use distillery::composition::{RunOptions, run};
use distillery::config::RunConfig;
use distillery_loadtest::SlotSampler;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    llm_base_url: String,
    #[arg(long, default_value = "local")]
    llm_model: String,
    #[arg(long, default_value = "examples/docs")]
    docs: PathBuf,
    #[arg(long, default_value = "loadtest/results")]
    out: PathBuf,
    /// Skip the sequential baseline.
    #[arg(long)]
    only_concurrent: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();
    let modes: Vec<(&str, Option<usize>)> = if args.only_concurrent {
        vec![("server slots", None)]
    } else {
        vec![("sequential (1 in flight)", Some(1)), ("server slots", None)]
    };
    for (i, (label, concurrency)) in modes.into_iter().enumerate() {
        let mut cfg = RunConfig::default();
        cfg.llm.generator.base_url = args.llm_base_url.clone();
        cfg.llm.generator.model = args.llm_model.clone();
        cfg.llm.generator.max_concurrency = concurrency;
        cfg.parquet = false;
        let out = args.out.join(format!("run-{i}"));
        let _ = std::fs::remove_dir_all(&out);
        let sampler = SlotSampler::start(&args.llm_base_url, Duration::from_millis(100));
        // Each mode gets fresh counters: the summary reads the process-wide metrics, so compute deltas.
        let before = snapshot();
        let summary = run(
            RunOptions { input: args.docs.to_string_lossy().into(), out, config: cfg, progress: false, store: None },
            CancellationToken::new(),
        )
        .await?;
        let busy = sampler.finish().await;
        let after = snapshot();
        let drafts = after.0 - before.0;
        let accepted = after.1 - before.1;
        let tokens = after.2 - before.2;
        rows.push((label, summary.duration_s, drafts, accepted, tokens, busy));
    }
    println!(
        "\n{:<26} {:>9} {:>7} {:>9} {:>10} {:>12} {:>14} {:>12} {:>14}",
        "mode",
        "time (s)",
        "drafts",
        "accepted",
        "drafts/s",
        "accepted/s",
        "tokens/accept",
        "LLM busy",
        "slot occupancy"
    );
    for (label, secs, drafts, accepted, tokens, busy) in rows {
        println!(
            "{:<26} {:>9.1} {:>7} {:>9} {:>10.3} {:>12.3} {:>14.0} {:>11.0}% {:>13.0}%",
            label,
            secs,
            drafts,
            accepted,
            drafts as f64 / secs,
            accepted as f64 / secs,
            if accepted > 0 { tokens as f64 / accepted as f64 } else { f64::NAN },
            busy.busy_fraction() * 100.0,
            busy.occupancy() * 100.0
        );
    }
    Ok(())
}

/// (drafts, accepted, tokens) so far in this process.
fn snapshot() -> (u64, u64, u64) {
    use distillery_core::{Metrics, StageName, Topic};
    let m = Metrics::global();
    let out = |stage: StageName, topic: Topic| {
        Metrics::counter_sum(&m.records_out, &[("stage", stage.as_str()), ("topic", topic.base_name())])
    };
    let tokens = Metrics::counter_sum(&distillery_llm::LlmMetrics::of(&m).tokens, &[]);
    (out(StageName::Generate, Topic::Drafts), out(StageName::Dedup, Topic::Accepted), tokens)
}
