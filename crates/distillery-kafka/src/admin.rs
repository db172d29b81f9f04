//! Topic administration: creating the pipeline topics at startup.

use std::time::Duration;

use distillery_core::Topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;

/// Creates the given topics if they are missing.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[Topic]) -> Result<(), KafkaRuntimeError> {
    let admin: AdminClient<DefaultClientContext> = cfg.base().create()?;
    let names = cfg.topic_names();
    let owned: Vec<String> = topics.iter().map(|t| names.name(*t)).collect();
    let topic_config = cfg.topic_config();
    let new: Vec<NewTopic<'_>> = owned
        .iter()
        .map(|n| {
            topic_config
                .iter()
                .fold(NewTopic::new(n, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor)), |t, (k, v)| {
                    t.set(k, v)
                })
        })
        .collect();
    let results =
        admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaRuntimeError::CreateTopic { topic, message: code.to_string() }),
        }
    }
    Ok(())
}
