//! The idempotent producer (`acks=all`, records keyed by content hash) behind the runtime's `Publisher`.

use std::time::Duration;

use distillery_core::{Codec, Record, Topic, TopicNames};
use distillery_runtime::{PublishError, Publisher};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
            .map_err(|(e, _)| publish_error(topic, &e))
    }

    /// The producer's fatal error, once it has one (an idempotent producer that lost its guarantees: it
    /// can publish nothing more, and the process must restart).
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// The underlying producer (tests inject faults through it).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
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
            let bytes = codec.encode(r).map_err(|e| PublishError::permanent(topic, e.to_string()))?;
            encoded.push((topic, self.names.name(topic), r.key().to_string(), r.kind().full_name(), bytes));
        }
        let sends = encoded.iter().map(|(topic, name, key, kind, bytes)| async move {
            let headers = OwnedHeaders::new().insert(Header { key: "distillery-schema", value: Some(*kind) });
            self.producer
                .send(FutureRecord::to(name).key(key).payload(bytes).headers(headers), Duration::from_secs(60))
                .await
                .map(|_| ())
                .map_err(|(e, _)| publish_error(*topic, &e))
        });
        // A permanent failure of any record wins: retrying the batch cannot mend it.
        let mut first: Option<PublishError> = None;
        for r in join_all(sends).await {
            if let Err(e) = r
                && first.as_ref().is_none_or(|f| !f.permanent && e.permanent)
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A producer error as a [`PublishError`]: a record over the size limit (the client's `message.max.bytes`
/// or the broker's) or an invalid one is permanent; the rest (timeouts, brokers down) is worth retrying.
fn publish_error(topic: Topic, e: &KafkaError) -> PublishError {
    let code = e.rdkafka_error_code();
    let permanent = matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::MessageBatchTooLarge
        )
    );
    let message = match code {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge) => {
            format!("{e} (over the message size limit: kafka.message_max_bytes and the topic's max.message.bytes)")
        }
        _ => e.to_string(),
    };
    PublishError { topic, message, permanent }
}
