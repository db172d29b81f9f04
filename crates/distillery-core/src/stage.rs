//! The contract between a stage and a runtime: a stage turns one input into records (each addressed to the
//! topic of its kind) or into a classed error. Runtimes (Kafka, in-memory) own consuming, concurrency,
//! publishing, committing, retrying, dead-lettering, metrics and shutdown; stages know none of it.

use std::future::Future;

use bytes::Bytes;

use crate::codec::{Codec, CodecError};
use crate::error::StageError;
use crate::records::Record;
use crate::topic::Topic;

/// The body of an input message.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A decoded pipeline record.
    Record(Record),
    /// A message from outside the pipeline (object-store notifications), left for the stage to parse.
    Raw(Bytes),
}

/// One input message.
#[derive(Debug, Clone)]
pub struct Input {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub payload: Payload,
}

impl Input {
    /// Decodes a message body according to what its topic carries.
    pub fn decode(
        codec: &Codec,
        topic: Topic,
        partition: i32,
        offset: i64,
        key: Option<Bytes>,
        body: Bytes,
    ) -> Result<Input, CodecError> {
        let payload = match topic.record_kind() {
            None => Payload::Raw(body),
            Some(kind) => Payload::Record(codec.decode(&body, Some(kind))?),
        };
        Ok(Input { topic, partition, offset, key, payload })
    }

    /// An input carrying a record (the in-memory runtime and tests).
    pub fn record(topic: Topic, record: Record) -> Input {
        Input { topic, partition: 0, offset: 0, key: None, payload: Payload::Record(record) }
    }

    pub fn as_record(&self) -> Option<&Record> {
        match &self.payload {
            Payload::Record(r) => Some(r),
            Payload::Raw(_) => None,
        }
    }
}

/// The stages of the pipeline (and `Source`, what feeds documents into the one-process run): consumer
/// group suffix, metric label and `Rejected.stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageName {
    Source,
    Ingest,
    Extract,
    Generate,
    Judge,
    Dedup,
    Sink,
}

impl StageName {
    pub const ALL: [StageName; 7] = [
        StageName::Source,
        StageName::Ingest,
        StageName::Extract,
        StageName::Generate,
        StageName::Judge,
        StageName::Dedup,
        StageName::Sink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Source => "source",
            StageName::Ingest => "ingest",
            StageName::Extract => "extract",
            StageName::Generate => "generate",
            StageName::Judge => "judge",
            StageName::Dedup => "dedup",
            StageName::Sink => "sink",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What processing one input produced: records, each published to `Topic::for_kind(record.kind())`.
pub type Output = Vec<Record>;

/// A pipeline stage.
pub trait Stage: Send + Sync + 'static {
    /// Stable name, used as consumer group suffix, metric label and in `Rejected.stage`.
    fn name(&self) -> &'static str;

    /// The topics this stage consumes.
    fn inputs(&self) -> &'static [Topic];

    /// How many inputs the runtime may process at once unless configured otherwise.
    fn default_concurrency(&self) -> usize {
        8
    }

    /// Processes one input.
    fn process(&self, input: Input) -> impl Future<Output = Result<Output, StageError>> + Send;

    /// Called once after the last input, before the runtime exits: flush anything buffered.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
