//! The Kafka runtime. A stage runs as a member of the consumer group `<group_prefix><stage>`:
//!
//! - at most `concurrency` inputs are processed at once (the permit is taken before the next poll, so a
//!   slow stage applies backpressure instead of buffering);
//! - an input's offset is stored only after everything it produced is acknowledged by the broker, and only
//!   once every earlier offset of its partition is too (`OffsetTracker`), so a crash replays and never
//!   skips; librdkafka commits stored offsets in the background and on close;
//! - the producer is idempotent (`acks=all`), records are keyed by content hash;
//! - a message that does not decode goes whole to the dead-letter topic;
//! - on cancel (SIGTERM), polling stops, in-flight inputs drain, offsets are committed synchronously and
//!   the producer is flushed.
//!
//! The crate is split by role: `config` (settings and the librdkafka client configurations), `admin` (topic
//! creation), `publisher` (the idempotent producer), `consumer` (the consumer-group runner) and `error`.

mod admin;
mod config;
mod consumer;
mod error;
pub mod llm_budget;
mod ordered_log;
mod publisher;
pub mod service;

pub use admin::ensure_topics;
pub use config::KafkaConfig;
pub use consumer::run_stage;
pub use error::KafkaRuntimeError;
pub use ordered_log::KafkaLog;
pub use publisher::KafkaPublisher;
