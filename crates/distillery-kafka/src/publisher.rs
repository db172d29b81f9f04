//! The idempotent producer (`acks=all`, records keyed by content hash) behind the runtime's `Publisher`.

use std::time::Duration;

use distillery_core::{Codec, Record, Topic, TopicNames};
use distillery_runtime::{PublishError, Publisher};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;

/// Publishes records to their topics with an idempotent producer; `publish` resolves when all are acked.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    names: TopicNames,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaPublisher")
    }
}

impl KafkaPublisher {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaRuntimeError> {
        Ok(KafkaPublisher { producer: cfg.producer_config().create()?, names: cfg.topic_names() })
    }

    /// Publishes raw bytes to a topic (used to deliver object-store events in tests and tools).
    pub async fn publish_raw(&self, topic: Topic, key: &str, payload: &[u8]) -> Result<(), PublishError> {
        let name = self.names.name(topic);
        self.producer
            .send(FutureRecord::to(&name).key(key).payload(payload), Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| PublishError { topic, message: e.to_string() })
    }

    /// Waits until everything queued is delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::error!(error = %e, "producer flush failed");
        }
    }
}

impl Publisher for KafkaPublisher {
    async fn publish(&self, records: Vec<Record>) -> Result<(), PublishError> {
        let codec = Codec::global();
        let mut encoded = Vec::with_capacity(records.len());
        for r in &records {
            let topic = Topic::for_kind(r.kind());
            let bytes = codec.encode(r).map_err(|e| PublishError { topic, message: e.to_string() })?;
            encoded.push((topic, self.names.name(topic), r.key().to_string(), r.kind().full_name(), bytes));
        }
        let sends = encoded.iter().map(|(topic, name, key, kind, bytes)| async move {
            let headers = OwnedHeaders::new().insert(Header { key: "distillery-schema", value: Some(*kind) });
            self.producer
                .send(FutureRecord::to(name).key(key).payload(bytes).headers(headers), Duration::from_secs(60))
                .await
                .map(|_| ())
                .map_err(|(e, _)| PublishError { topic: *topic, message: e.to_string() })
        });
        for r in join_all(sends).await {
            r?;
        }
        Ok(())
    }
}
