//! `distillery topics`: creates the pipeline's Kafka topics, from flags or from the [kafka] section of a
//! service configuration (with its security properties and DISTILLERY__KAFKA__* overrides).

use std::path::PathBuf;

/// The [kafka] settings of a service configuration file (with DISTILLERY__KAFKA__* overrides), else the
/// defaults, with the brokers and topic prefix given on the command line over them.
pub fn kafka_settings(
    config: Option<&std::path::Path>,
    brokers: Option<String>,
    prefix: Option<String>,
) -> anyhow::Result<distillery_kafka::KafkaConfig> {
    use figment::providers::{Env, Format, Toml};
    let mut fig = figment::Figment::new();
    if let Some(p) = config {
        fig = fig.merge(Toml::file_exact(p));
    }
    let fig = fig.merge(Env::prefixed(distillery_core::config::ENV_PREFIX).split("__"));
    let mut cfg: distillery_kafka::KafkaConfig = if fig.find_value("kafka").is_ok() {
        fig.extract_inner("kafka").map_err(|e| anyhow::anyhow!("[kafka]: {e}"))?
    } else {
        distillery_kafka::KafkaConfig::default()
    };
    if let Some(b) = brokers {
        cfg.brokers = b;
    }
    if let Some(p) = prefix {
        cfg.topic_prefix = p;
    }
    Ok(cfg)
}

/// [`kafka_settings`], refused with every problem listed when they are not valid.
pub fn valid_kafka_settings(
    config: Option<&std::path::Path>,
    brokers: Option<String>,
    prefix: Option<String>,
) -> anyhow::Result<distillery_kafka::KafkaConfig> {
    let cfg = kafka_settings(config, brokers, prefix)?;
    let mut errors = Vec::new();
    cfg.validate(&mut errors);
    anyhow::ensure!(errors.is_empty(), "invalid kafka settings:\n  - {}", errors.join("\n  - "));
    Ok(cfg)
}

/// Creates every pipeline topic that does not exist yet (with `max.message.bytes` from
/// `kafka.message_max_bytes` and, when given, `min.insync.replicas`).
pub async fn topics(
    config: Option<PathBuf>,
    brokers: Option<String>,
    prefix: Option<String>,
    partitions: Option<i32>,
    replication_factor: Option<i32>,
    min_insync_replicas: Option<i32>,
) -> anyhow::Result<()> {
    let mut cfg = kafka_settings(config.as_deref(), brokers, prefix)?;
    if let Some(n) = partitions {
        cfg.partitions = n;
    }
    if let Some(r) = replication_factor {
        cfg.replication_factor = r;
    }
    if let Some(m) = min_insync_replicas {
        cfg.min_insync_replicas = Some(m);
    }
    let mut errors = Vec::new();
    cfg.validate(&mut errors);
    if !errors.is_empty() {
        anyhow::bail!("invalid kafka settings:\n  - {}", errors.join("\n  - "));
    }
    distillery_kafka::ensure_topics(&cfg, &distillery_core::Topic::ALL).await?;
    let names = cfg.topic_names();
    let all: Vec<String> = distillery_core::Topic::ALL.iter().map(|t| names.name(*t)).collect();
    println!("topics ready: {}", all.join(", "));
    Ok(())
}
