//! The topics that link the stages.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::records::RecordKind;

/// A pipeline topic. Every topic but `Events` carries Avro single-object records of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    /// S3 ObjectCreated notifications as the store publishes them (JSON, not Avro).
    Events,
    Documents,
    Chunks,
    Drafts,
    Judged,
    Accepted,
    Rejected,
    Regenerate,
    DeadLetter,
}

impl Topic {
    pub const ALL: [Topic; 9] = [
        Topic::Events,
        Topic::Documents,
        Topic::Chunks,
        Topic::Drafts,
        Topic::Judged,
        Topic::Accepted,
        Topic::Rejected,
        Topic::Regenerate,
        Topic::DeadLetter,
    ];

    /// The base name, before any prefix.
    pub fn base_name(self) -> &'static str {
        match self {
            Topic::Events => "events",
            Topic::Documents => "documents",
            Topic::Chunks => "chunks",
            Topic::Drafts => "drafts",
            Topic::Judged => "judged",
            Topic::Accepted => "accepted",
            Topic::Rejected => "rejected",
            Topic::Regenerate => "regenerate",
            Topic::DeadLetter => "dead-letter",
        }
    }

    /// The record kind the topic carries; `None` for the raw JSON events topic.
    pub fn record_kind(self) -> Option<RecordKind> {
        match self {
            Topic::Events => None,
            Topic::Documents => Some(RecordKind::Document),
            Topic::Chunks => Some(RecordKind::Chunk),
            Topic::Drafts => Some(RecordKind::Draft),
            Topic::Judged => Some(RecordKind::Judged),
            Topic::Accepted => Some(RecordKind::Accepted),
            Topic::Rejected => Some(RecordKind::Rejected),
            Topic::Regenerate => Some(RecordKind::Regenerate),
            Topic::DeadLetter => Some(RecordKind::DeadLetter),
        }
    }

    /// The topic a record kind is published to.
    pub fn for_kind(kind: RecordKind) -> Topic {
        match kind {
            RecordKind::Document => Topic::Documents,
            RecordKind::Chunk => Topic::Chunks,
            RecordKind::Draft => Topic::Drafts,
            RecordKind::Judged => Topic::Judged,
            RecordKind::Regenerate => Topic::Regenerate,
            RecordKind::Accepted => Topic::Accepted,
            RecordKind::Rejected => Topic::Rejected,
            RecordKind::DeadLetter => Topic::DeadLetter,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base_name())
    }
}

/// Maps topics to broker topic names: `<prefix><base>`, with the events topic nameable on its own because
/// it belongs to the object store's notification setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
    events: Option<String>,
}

impl TopicNames {
    pub fn new(prefix: impl Into<String>, events: Option<String>) -> Self {
        Self { prefix: prefix.into(), events }
    }

    pub fn name(&self, topic: Topic) -> String {
        match (topic, &self.events) {
            (Topic::Events, Some(name)) => name.clone(),
            _ => format!("{}{}", self.prefix, topic.base_name()),
        }
    }

    pub fn resolve(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.name(*t) == name)
    }
}

impl Default for TopicNames {
    fn default() -> Self {
        Self::new("distillery.", None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_with_prefix() {
        let names = TopicNames::new("acme.", Some("minio-events".into()));
        assert_eq!(names.name(Topic::Chunks), "acme.chunks");
        assert_eq!(names.name(Topic::DeadLetter), "acme.dead-letter");
        assert_eq!(names.name(Topic::Events), "minio-events");
        for t in Topic::ALL {
            assert_eq!(names.resolve(&names.name(t)), Some(t));
        }
        assert_eq!(names.resolve("other"), None);
    }

    #[test]
    fn every_record_kind_has_one_topic() {
        for t in Topic::ALL {
            if let Some(kind) = t.record_kind() {
                assert_eq!(Topic::for_kind(kind), t);
            }
        }
    }
}
