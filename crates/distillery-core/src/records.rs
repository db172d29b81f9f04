//! The records that travel between stages. Each type mirrors one schema in `schemas/` field for field;
//! `codec` tests prove the two agree.

use serde::{Deserialize, Serialize};

use crate::ids;

/// Which kind of store holds a source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    S3,
    File,
}

/// Where a source object lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub store: StoreKind,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

impl ObjectRef {
    pub fn s3(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self { store: StoreKind::S3, bucket: bucket.into(), key: key.into(), version_id: None, etag: None }
    }
    pub fn file(root: impl Into<String>, key: impl Into<String>) -> Self {
        Self { store: StoreKind::File, bucket: root.into(), key: key.into(), version_id: None, etag: None }
    }
    /// `s3://bucket/key` or `file://root/key`.
    pub fn uri(&self) -> String {
        match self.store {
            StoreKind::S3 => format!("s3://{}/{}", self.bucket, self.key),
            StoreKind::File => format!("file://{}/{}", self.bucket.trim_end_matches('/'), self.key),
        }
    }
}

/// How a document was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    Notification,
    Webhook,
    Scan,
    Local,
}

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Published by ingest when the object is found.
    Discovered,
    /// Published again by extract, with what extraction found.
    Extracted,
}

/// A source document. Identity is the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub source: ObjectRef,
    pub size: i64,
    pub media_type: String,
    pub discovered_by: Discovery,
    pub discovered_at_ms: i64,
    pub status: DocumentStatus,
    /// The earlier document at the same key that this version replaces.
    pub supersedes: Option<String>,
    /// PII redacted per entity type, once extracted.
    pub pii_counts: std::collections::BTreeMap<String, i64>,
    pub pages: Option<i32>,
    pub chunks: Option<i32>,
}

/// A structural piece of a document with the context it is generated from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: String,
    pub document_id: String,
    pub source: ObjectRef,
    pub ordinal: i32,
    pub total: i32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page_start: Option<i32>,
    pub page_end: Option<i32>,
    pub char_start: i64,
    pub char_end: i64,
    pub token_count: i32,
    pub context_id: String,
    pub context_chunk_ids: Vec<String>,
    pub context_text: String,
    /// A newer version of the document (same key), once one has arrived.
    pub superseded_by: Option<String>,
}

/// Chat role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat turn, linked to the chunks it is grounded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    pub chunk_ids: Vec<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), chunk_ids: Vec::new() }
    }
}

/// Which model produced something, with what parameters and at what cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCall {
    pub provider: String,
    pub model: String,
    pub temperature: f32,
    pub max_tokens: i32,
    pub seed: Option<i64>,
    pub template: String,
    pub template_hash: String,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i32,
}

/// The critic's rubric scores, each 1-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    pub overall: i32,
    pub faithfulness: i32,
    pub correctness: i32,
    pub clarity: i32,
    pub usefulness: i32,
}

/// Kind of training example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftKind {
    Qa,
    Conversation,
}

impl DraftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DraftKind::Qa => "qa",
            DraftKind::Conversation => "conversation",
        }
    }
}

/// The low-scored draft a regeneration replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorAttempt {
    pub draft_id: String,
    pub messages: Vec<Message>,
    pub scores: Scores,
    pub rationale: String,
}

/// A generated example before judging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub id: String,
    pub kind: DraftKind,
    pub document_id: String,
    pub chunk_id: String,
    pub context_id: String,
    pub context_text: String,
    pub messages: Vec<Message>,
    pub reasoning: Option<String>,
    pub question_type: Option<String>,
    pub difficulty: Option<String>,
    pub evidence: Option<String>,
    pub attempt: i32,
    pub parent_ids: Vec<String>,
    pub generator: ModelCall,
    pub previous: Option<PriorAttempt>,
    pub created_at_ms: i64,
    /// A newer version of the source document (same key), once one has arrived.
    pub superseded_by: Option<String>,
}

impl Draft {
    /// The first user turn (the question of a QA pair).
    pub fn question(&self) -> &str {
        self.messages.iter().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str())
    }
    /// The last assistant turn (the answer of a QA pair).
    pub fn answer(&self) -> &str {
        self.messages.iter().rev().find(|m| m.role == Role::Assistant).map_or("", |m| m.content.as_str())
    }
}

/// A draft with the critic's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub id: String,
    pub draft: Draft,
    pub scores: Scores,
    pub rationale: String,
    pub passed: bool,
    pub judge: ModelCall,
    pub judged_at_ms: i64,
}

/// A low-scored draft sent back once with feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regenerate {
    pub id: String,
    pub judged: Judged,
}

/// A training record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub id: String,
    pub judged: Judged,
    pub nearest_similarity: Option<f32>,
    pub accepted_at_ms: i64,
}

/// Why something did not become training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Other,
    LowScore,
    Duplicate,
    Unparseable,
    Truncated,
    Refusal,
    EmptyOutput,
    LlmError,
    TooLarge,
    UnsupportedType,
    Encrypted,
    Corrupt,
    EmptyDocument,
    NoTextLayer,
    ExtractionTimeout,
    Filtered,
    InvalidRecord,
    Ungrounded,
}

impl RejectReason {
    pub const ALL: [RejectReason; 18] = [
        RejectReason::Other,
        RejectReason::LowScore,
        RejectReason::Duplicate,
        RejectReason::Unparseable,
        RejectReason::Truncated,
        RejectReason::Refusal,
        RejectReason::EmptyOutput,
        RejectReason::LlmError,
        RejectReason::TooLarge,
        RejectReason::UnsupportedType,
        RejectReason::Encrypted,
        RejectReason::Corrupt,
        RejectReason::EmptyDocument,
        RejectReason::NoTextLayer,
        RejectReason::ExtractionTimeout,
        RejectReason::Filtered,
        RejectReason::InvalidRecord,
        RejectReason::Ungrounded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Other => "other",
            RejectReason::LowScore => "low_score",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Unparseable => "unparseable",
            RejectReason::Truncated => "truncated",
            RejectReason::Refusal => "refusal",
            RejectReason::EmptyOutput => "empty_output",
            RejectReason::LlmError => "llm_error",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnsupportedType => "unsupported_type",
            RejectReason::Encrypted => "encrypted",
            RejectReason::Corrupt => "corrupt",
            RejectReason::EmptyDocument => "empty_document",
            RejectReason::NoTextLayer => "no_text_layer",
            RejectReason::ExtractionTimeout => "extraction_timeout",
            RejectReason::Filtered => "filtered",
            RejectReason::InvalidRecord => "invalid_record",
            RejectReason::Ungrounded => "ungrounded",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Document,
    Chunk,
    Draft,
    Object,
}

/// Something that did not become training data, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: String,
    pub reason: RejectReason,
    pub detail: String,
    pub stage: String,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub document_id: Option<String>,
    pub chunk_id: Option<String>,
    pub source: Option<ObjectRef>,
    pub draft: Option<Draft>,
    pub scores: Option<Scores>,
    pub rationale: Option<String>,
    pub raw_output: Option<String>,
    pub rejected_at_ms: i64,
}

impl Rejected {
    /// A rejection with only the required fields; fill the rest with struct update syntax or setters.
    pub fn new(
        stage: &str,
        reason: RejectReason,
        subject_kind: SubjectKind,
        subject_id: &str,
        detail: impl Into<String>,
    ) -> Self {
        Rejected {
            id: ids::hash_parts(&["rejected", subject_id, stage, reason.as_str()]),
            reason,
            detail: detail.into(),
            stage: stage.to_string(),
            subject_kind,
            subject_id: subject_id.to_string(),
            document_id: None,
            chunk_id: None,
            source: None,
            draft: None,
            scores: None,
            rationale: None,
            raw_output: None,
            rejected_at_ms: crate::now_ms(),
        }
    }

    /// Builds the rejection of an input record: it carries everything the input tells about its lineage.
    pub fn of(record: &Record, stage: &str, reason: RejectReason, detail: impl Into<String>) -> Self {
        let (kind, subject) = record.subject();
        let mut r = Rejected::new(stage, reason, kind, subject, detail);
        match record {
            Record::Document(d) => {
                r.document_id = Some(d.id.clone());
                r.source = Some(d.source.clone());
            }
            Record::Chunk(c) => {
                r.document_id = Some(c.document_id.clone());
                r.chunk_id = Some(c.id.clone());
                r.source = Some(c.source.clone());
            }
            Record::Draft(d) => r.attach_draft(d),
            Record::Judged(j) => {
                r.attach_draft(&j.draft);
                r.scores = Some(j.scores);
                r.rationale = Some(j.rationale.clone());
            }
            Record::Regenerate(g) => {
                r.attach_draft(&g.judged.draft);
                r.scores = Some(g.judged.scores);
                r.rationale = Some(g.judged.rationale.clone());
            }
            Record::Accepted(a) => r.attach_draft(&a.judged.draft),
            Record::Rejected(_) | Record::DeadLetter(_) => {}
        }
        r
    }

    fn attach_draft(&mut self, d: &Draft) {
        self.document_id = Some(d.document_id.clone());
        self.chunk_id = Some(d.chunk_id.clone());
        self.draft = Some(d.clone());
    }

    pub fn with_raw_output(mut self, raw: Option<String>) -> Self {
        self.raw_output = raw;
        self
    }
}

/// A message a service could not handle, kept whole for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub stage: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde::bytes")]
    pub payload: Vec<u8>,
    pub error_kind: String,
    pub error: String,
    pub attempts: i32,
    pub failed_at_ms: i64,
}

/// Any record that travels on a topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Document(Document),
    Chunk(Chunk),
    Draft(Draft),
    Judged(Judged),
    Regenerate(Regenerate),
    Accepted(Accepted),
    Rejected(Rejected),
    DeadLetter(DeadLetter),
}

impl Record {
    /// The record's own id (a content hash).
    pub fn id(&self) -> &str {
        match self {
            Record::Document(r) => &r.id,
            Record::Chunk(r) => &r.id,
            Record::Draft(r) => &r.id,
            Record::Judged(r) => &r.id,
            Record::Regenerate(r) => &r.id,
            Record::Accepted(r) => &r.id,
            Record::Rejected(r) => &r.id,
            Record::DeadLetter(r) => &r.id,
        }
    }

    /// The partitioning key: records that belong together (all work on one document's context) share it,
    /// so a consumer sees them in order and an LLM server's prompt cache sees the same context together.
    pub fn key(&self) -> &str {
        match self {
            Record::Document(r) => &r.id,
            Record::Chunk(r) => &r.document_id,
            Record::Draft(r) => &r.context_id,
            Record::Judged(r) => &r.draft.context_id,
            Record::Regenerate(r) => &r.judged.draft.context_id,
            Record::Accepted(r) => &r.judged.draft.document_id,
            Record::Rejected(r) => r.document_id.as_deref().unwrap_or(&r.subject_id),
            Record::DeadLetter(r) => &r.id,
        }
    }

    /// The schema name of the record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Document(_) => RecordKind::Document,
            Record::Chunk(_) => RecordKind::Chunk,
            Record::Draft(_) => RecordKind::Draft,
            Record::Judged(_) => RecordKind::Judged,
            Record::Regenerate(_) => RecordKind::Regenerate,
            Record::Accepted(_) => RecordKind::Accepted,
            Record::Rejected(_) => RecordKind::Rejected,
            Record::DeadLetter(_) => RecordKind::DeadLetter,
        }
    }

    /// What a rejection of this record is about.
    pub fn subject(&self) -> (SubjectKind, &str) {
        match self {
            Record::Document(d) => (SubjectKind::Document, &d.id),
            Record::Chunk(c) => (SubjectKind::Chunk, &c.id),
            Record::Draft(d) => (SubjectKind::Draft, &d.id),
            Record::Judged(j) => (SubjectKind::Draft, &j.draft.id),
            Record::Regenerate(g) => (SubjectKind::Draft, &g.judged.draft.id),
            Record::Accepted(a) => (SubjectKind::Draft, &a.judged.draft.id),
            Record::Rejected(r) => (r.subject_kind, &r.subject_id),
            Record::DeadLetter(d) => (SubjectKind::Object, &d.id),
        }
    }

    /// The document the record derives from, if any.
    pub fn document_id(&self) -> Option<&str> {
        match self {
            Record::Document(d) => Some(&d.id),
            Record::Chunk(c) => Some(&c.document_id),
            Record::Draft(d) => Some(&d.document_id),
            Record::Judged(j) => Some(&j.draft.document_id),
            Record::Regenerate(g) => Some(&g.judged.draft.document_id),
            Record::Accepted(a) => Some(&a.judged.draft.document_id),
            Record::Rejected(r) => r.document_id.as_deref(),
            Record::DeadLetter(_) => None,
        }
    }
}

/// The schema a record is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Document,
    Chunk,
    Draft,
    Judged,
    Regenerate,
    Accepted,
    Rejected,
    DeadLetter,
}

impl RecordKind {
    pub const ALL: [RecordKind; 8] = [
        RecordKind::Document,
        RecordKind::Chunk,
        RecordKind::Draft,
        RecordKind::Judged,
        RecordKind::Regenerate,
        RecordKind::Accepted,
        RecordKind::Rejected,
        RecordKind::DeadLetter,
    ];

    /// The Avro full name of the record.
    pub fn full_name(self) -> &'static str {
        match self {
            RecordKind::Document => "distillery.Document",
            RecordKind::Chunk => "distillery.Chunk",
            RecordKind::Draft => "distillery.Draft",
            RecordKind::Judged => "distillery.Judged",
            RecordKind::Regenerate => "distillery.Regenerate",
            RecordKind::Accepted => "distillery.Accepted",
            RecordKind::Rejected => "distillery.Rejected",
            RecordKind::DeadLetter => "distillery.DeadLetter",
        }
    }
}
