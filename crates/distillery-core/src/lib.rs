//! Shared foundation of Distillery: the records that travel between stages and their Avro contract,
//! topics, content-hash ids, the stage contract, classed errors, layered config and metrics.

pub mod codec;
pub mod config;
pub mod context;
mod discovered;
pub mod error;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod offsets;
pub mod ordered_log;
pub mod records;
pub mod stage;
pub mod topic;

pub use prometheus;

pub use codec::{Codec, CodecError};
pub use error::{Classify, Disposition, StageError};
pub use media::MediaType;
pub use metrics::Metrics;
pub use records::*;
pub use stage::{Input, Output, Payload, Stage, StageName};
pub use topic::{Topic, TopicNames};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
