//! The Kafka runtime. A stage runs as a member of the consumer group `<group_prefix><stage>`:
//!
//! - at most `concurrency` inputs are processed at once: when that many are in flight (or the circuit breaker
//!   is open: a dependency failing), the assigned partitions are paused and polling goes on, so a slow or
//!   hung stage applies backpressure without the member being evicted from its group;
//! - partitions are assigned cooperatively (`cooperative-sticky`): a scaling step moves only the partitions
//!   that change owner;
//! - an input's offset is stored only after everything it produced is acknowledged by the broker, and only
//!   once every earlier offset of its partition is too (`OffsetTracker`), so a crash replays and never
//!   skips; librdkafka commits stored offsets in the background and on close;
//! - the producer is idempotent (`acks=all`), records are keyed by content hash;
//! - a message that does not decode goes whole to the dead-letter topic;
//! - a record over `kafka.message_max_bytes` is refused for good: the input is dead-lettered, not retried;
//! - a panicking stage has that input dead-lettered with the panic's message;
//! - a fatal error of the idempotent producer stops the service (it is restarted);
//! - on cancel (SIGTERM), polling stops, in-flight inputs drain (at most `runtime.drain_timeout_secs`, then
//!   what still runs is cancelled and replayed later), offsets are committed synchronously and the producer
//!   is flushed.
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
pub mod replay;
pub mod service;

pub use admin::ensure_topics;
pub use config::KafkaConfig;
pub use consumer::{run_stage, run_stage_with};
pub use error::KafkaRuntimeError;
pub use ordered_log::KafkaLog;
pub use publisher::KafkaPublisher;
