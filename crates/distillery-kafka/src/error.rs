//! The error type shared by the admin, producer and consumer halves of the runtime.

use rdkafka::error::KafkaError;

/// Failures that stop a Kafka runtime.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRuntimeError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("creating topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
    #[error("the idempotent producer failed fatally ({0}); the service stops so that it is restarted")]
    FatalProducer(String),
    #[error("replaying dead letters: {0}")]
    Replay(String),
}
