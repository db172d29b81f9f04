//! The error type shared by the admin, producer and consumer halves of the runtime.

use rdkafka::error::KafkaError;

/// Failures that stop a Kafka runtime.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRuntimeError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("creating topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
}
