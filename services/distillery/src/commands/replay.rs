//! `distillery replay-dead-letters`: what was dead-lettered for a transient cause goes back to the topic it
//! came from (see `distillery_kafka::replay`).

use std::path::PathBuf;

use distillery_kafka::replay::{ReplayFilter, replay_dead_letters};

/// Replays, prints what it did (one JSON object) and a line per kind.
pub async fn replay(
    config: Option<PathBuf>,
    brokers: Option<String>,
    prefix: Option<String>,
    filter: ReplayFilter,
) -> anyhow::Result<()> {
    let cfg = super::topics::valid_kafka_settings(config.as_deref(), brokers, prefix)?;
    let report = replay_dead_letters(&cfg, &filter).await?;
    println!("{}", serde_json::to_string(&report)?);
    let total: u64 = report.replayed.values().sum();
    eprintln!(
        "{} {total} of {} dead letters ({} left alone, {} without a topic to go back to)",
        if filter.dry_run { "would replay" } else { "replayed" },
        report.read,
        report.skipped,
        report.unreplayable
    );
    Ok(())
}
