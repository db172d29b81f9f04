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
    /// Published by ingest when the object is deleted (S3 ObjectRemoved): the document's records are no
    /// longer exported.
    Deleted,
}

/// What replaced a document whose object was deleted: the mark the version registry, the dataset store and
/// the exports share (its records are left out as a superseded document's are).
pub const DELETED: &str = "deleted";

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
    /// The chunks' ids, in order, once extracted (content-based: an unchanged chunk keeps its id across
    /// versions of the document).
    #[serde(default)]
    pub chunk_ids: Vec<String>,
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
    /// The judge's check that the regeneration is better than this draft, once it passed (a DPO pair is
    /// made only from a verified one).
    #[serde(default)]
    pub preference: Option<Preference>,
}

/// Whether a passing regeneration is better than the draft it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preference {
    /// Both orders of a pairwise comparison preferred the regeneration (or the replaced draft failed a
    /// deterministic check).
    pub verified: bool,
    /// What each comparison preferred, in order (`new`, `old`, `equal`; `check` for a failed check).
    pub votes: Vec<String>,
    /// Why, in the judge's words.
    pub reason: String,
}

/// The drafts of one generation call that go on to judging together: the judge scores them in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftBatch {
    /// The generation call's id (a content hash: a replay gives the same id).
    pub id: String,
    /// This draft's position in the batch, from 0.
    pub index: i32,
    /// How many drafts the batch has.
    pub size: i32,
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
    /// The drafts of the same generation call judged with this one.
    #[serde(default)]
    pub batch: Option<DraftBatch>,
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
    /// The (user, assistant) exchanges, in order: consecutive message pairs of those roles.
    pub fn exchanges(&self) -> Vec<(&str, &str)> {
        self.messages
            .chunks(2)
            .filter_map(|p| match p {
                [u, a] if u.role == Role::User && a.role == Role::Assistant => {
                    Some((u.content.as_str(), a.content.as_str()))
                }
                _ => None,
            })
            .collect()
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

/// A draft sent back once for another attempt, with why (`schemas/regenerate.avsc`, v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regenerate {
    /// A content hash: [`Regenerate::critic`] and [`Regenerate::repair`] derive it exactly as the earlier
    /// `{id, judged}` versions did, so a replay across the schema change still deduplicates.
    pub id: String,
    /// The draft to improve.
    pub draft: Draft,
    pub cause: RegenerateCause,
}

/// Why a draft is sent back: on the wire the Avro union `[distillery.CriticVerdict, distillery.FailedCheck]`.
///
/// apache-avro maps an externally tagged serde enum whose variants are newtypes onto a union of the inner
/// records *by position*: variant `i` is written as union branch `i` with the inner struct as that branch's
/// record, and branch `i` reads back as variant `i` (the record names need not match the variant names).
/// So the variant order here must stay the branch order of the schema; `codec` tests round-trip both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RegenerateCause {
    /// The LLM critic scored the draft below threshold.
    Critic(CriticVerdict),
    /// A pre-judge check found a flaw in a first draft's answer and asks for one repair.
    FailedCheck(FailedCheck),
}

/// What the critic said about a draft that did not pass: a [`Judged`] without its draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticVerdict {
    /// The id of the verdict (the [`Judged`] it would have been).
    pub judged_id: String,
    pub scores: Scores,
    pub rationale: String,
    pub judge: ModelCall,
    pub judged_at_ms: i64,
}

/// What a pre-judge check found (no model scored the draft).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    /// Travels as its snake_case name in an Avro `string`, so a reason added later needs no schema change;
    /// a name this build does not know reads as [`RejectReason::Other`].
    #[serde(with = "reason_as_string")]
    pub reason: RejectReason,
    pub finding: String,
}

/// A [`RejectReason`] as its snake_case name in an Avro `string` (the schema-aware deserializer only maps
/// Avro enums and unions onto Rust enums, so a plain `rename_all` would not read back).
mod reason_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::RejectReason;

    pub fn serialize<S: Serializer>(reason: &RejectReason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(reason.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RejectReason, D::Error> {
        let name = String::deserialize(d)?;
        Ok(RejectReason::from_name(&name).unwrap_or(RejectReason::Other))
    }
}

/// The `judge.provider` by which the `{id, judged}` versions of `regenerate` marked a repair request: a fake
/// verdict with zero scores, the reason in `judge.template` and the finding in `rationale`.
const LEGACY_CHECKS_PROVIDER: &str = "checks";

impl Regenerate {
    /// Sends a draft the critic did not pass back with its verdict.
    pub fn critic(judged: Judged) -> Regenerate {
        let Judged { id, draft, scores, rationale, passed: _, judge, judged_at_ms } = judged;
        Regenerate {
            id: ids::hash_parts(&["regenerate", &id]),
            draft,
            cause: RegenerateCause::Critic(CriticVerdict { judged_id: id, scores, rationale, judge, judged_at_ms }),
        }
    }

    /// Sends a first draft whose answer failed a pre-judge check back for one repair.
    pub fn repair(draft: Draft, reason: RejectReason, finding: String) -> Regenerate {
        Regenerate {
            id: ids::hash_parts(&["regenerate", &ids::hash_parts(&["checked", &draft.id])]),
            draft,
            cause: RegenerateCause::FailedCheck(FailedCheck { reason, finding }),
        }
    }

    /// Reads a request of the `{id, judged}` versions (`regenerate.v1`, `regenerate.v2`), keeping its id:
    /// a verdict of the `checks` provider was a repair request (reason in `judge.template`, unknown names
    /// as [`RejectReason::Other`]; finding in `rationale`), any other verdict was the critic's.
    pub fn from_legacy(id: String, judged: Judged) -> Regenerate {
        let Judged { id: judged_id, draft, scores, rationale, passed: _, judge, judged_at_ms } = judged;
        let cause = if judge.provider == LEGACY_CHECKS_PROVIDER {
            let reason = RejectReason::from_name(&judge.template).unwrap_or(RejectReason::Other);
            RegenerateCause::FailedCheck(FailedCheck { reason, finding: rationale })
        } else {
            RegenerateCause::Critic(CriticVerdict { judged_id, scores, rationale, judge, judged_at_ms })
        };
        Regenerate { id, draft, cause }
    }

    /// The critic's verdict rebuilt as the [`Judged`] it routed (`passed == false`); `None` for a repair.
    pub fn judged(&self) -> Option<Judged> {
        match &self.cause {
            RegenerateCause::Critic(v) => Some(Judged {
                id: v.judged_id.clone(),
                draft: self.draft.clone(),
                scores: v.scores,
                rationale: v.rationale.clone(),
                passed: false,
                judge: v.judge.clone(),
                judged_at_ms: v.judged_at_ms,
            }),
            RegenerateCause::FailedCheck(_) => None,
        }
    }

    /// The reason and finding of the check that failed; `None` when the critic sent the draft back.
    pub fn failed_check(&self) -> Option<(RejectReason, &str)> {
        match &self.cause {
            RegenerateCause::FailedCheck(c) => Some((c.reason, c.finding.as_str())),
            RegenerateCause::Critic(_) => None,
        }
    }

    /// What to tell the generator: the critic's rationale or the check's finding.
    pub fn feedback(&self) -> &str {
        match &self.cause {
            RegenerateCause::Critic(v) => &v.rationale,
            RegenerateCause::FailedCheck(c) => &c.finding,
        }
    }

    /// The critic's scores; `None` for a repair (no model scored the draft).
    pub fn scores(&self) -> Option<Scores> {
        match &self.cause {
            RegenerateCause::Critic(v) => Some(v.scores),
            RegenerateCause::FailedCheck(_) => None,
        }
    }
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

impl RejectReason {
    /// The reason of a snake_case name ([`RejectReason::as_str`]), if it is one.
    pub fn from_name(name: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == name)
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
                r.attach_draft(&g.draft);
                r.scores = g.scores();
                r.rationale = Some(g.feedback().to_string());
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
            Record::Regenerate(r) => &r.draft.context_id,
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
            Record::Regenerate(g) => (SubjectKind::Draft, &g.draft.id),
            Record::Accepted(a) => (SubjectKind::Draft, &a.judged.draft.id),
            Record::Rejected(r) => (r.subject_kind, &r.subject_id),
            Record::DeadLetter(d) => (SubjectKind::Object, &d.id),
        }
    }

    /// The chunk the record derives from, if any.
    pub fn chunk_id(&self) -> Option<&str> {
        match self {
            Record::Chunk(c) => Some(&c.id),
            Record::Draft(d) => Some(&d.chunk_id),
            Record::Judged(j) => Some(&j.draft.chunk_id),
            Record::Regenerate(g) => Some(&g.draft.chunk_id),
            Record::Accepted(a) => Some(&a.judged.draft.chunk_id),
            Record::Rejected(r) => r.chunk_id.as_deref(),
            Record::Document(_) | Record::DeadLetter(_) => None,
        }
    }

    /// The document the record derives from, if any.
    pub fn document_id(&self) -> Option<&str> {
        match self {
            Record::Document(d) => Some(&d.id),
            Record::Chunk(c) => Some(&c.document_id),
            Record::Draft(d) => Some(&d.document_id),
            Record::Judged(j) => Some(&j.draft.document_id),
            Record::Regenerate(g) => Some(&g.draft.document_id),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::fixtures;

    #[test]
    fn regenerate_ids_are_those_of_the_judged_era() {
        let judged = Judged { passed: false, ..fixtures::judged() };
        assert_eq!(Regenerate::critic(judged.clone()).id, ids::hash_parts(&["regenerate", &judged.id]));
        let draft = fixtures::draft();
        let checked = ids::hash_parts(&["checked", &draft.id]);
        let repair = Regenerate::repair(draft, RejectReason::Refusal, "refused".into());
        assert_eq!(repair.id, ids::hash_parts(&["regenerate", &checked]));
    }

    #[test]
    fn a_critic_request_gives_back_its_verdict() {
        let judged = Judged { passed: false, ..fixtures::judged() };
        let g = Regenerate::critic(judged.clone());
        assert_eq!(g.draft, judged.draft);
        assert_eq!(g.judged(), Some(judged.clone()));
        assert_eq!(
            (g.feedback(), g.scores(), g.failed_check()),
            (judged.rationale.as_str(), Some(judged.scores), None)
        );
        // A verdict that (wrongly) passed is still sent back as not passed.
        assert_eq!(Regenerate::critic(fixtures::judged()).judged().map(|j| j.passed), Some(false));
    }

    #[test]
    fn a_repair_request_has_no_verdict() {
        let g = Regenerate::repair(fixtures::draft(), RejectReason::Truncated, "cut off mid-sentence".into());
        assert_eq!(g.failed_check(), Some((RejectReason::Truncated, "cut off mid-sentence")));
        assert_eq!((g.judged(), g.scores(), g.feedback()), (None, None, "cut off mid-sentence"));
    }

    #[test]
    fn legacy_requests_convert_by_provider() {
        let judged = fixtures::judged();
        let g = Regenerate::from_legacy("g".into(), judged.clone());
        assert_eq!((g.id.as_str(), g.scores()), ("g", Some(judged.scores)));
        let mut checks = judged.clone();
        checks.judge.provider = "checks".into();
        checks.judge.template = "empty_output".into();
        let g = Regenerate::from_legacy("g".into(), checks.clone());
        assert_eq!(g.failed_check(), Some((RejectReason::EmptyOutput, judged.rationale.as_str())));
        checks.judge.template = "qa".into();
        assert_eq!(Regenerate::from_legacy("g".into(), checks).failed_check().map(|c| c.0), Some(RejectReason::Other));
    }

    #[test]
    fn rejecting_a_regenerate_keeps_its_draft_and_feedback() {
        let critic = Record::Regenerate(fixtures::regenerate_critic());
        let r = Rejected::of(&critic, "generate", RejectReason::LlmError, "boom");
        assert_eq!((r.subject_kind, r.subject_id.as_str()), (SubjectKind::Draft, fixtures::draft().id.as_str()));
        assert_eq!(r.draft, Some(fixtures::draft()));
        assert_eq!(r.scores, Some(fixtures::scores(2)));
        assert_eq!(r.rationale.as_deref(), Some("Contradicts the context."));
        let repair = Record::Regenerate(fixtures::regenerate_repair());
        let r = Rejected::of(&repair, "generate", RejectReason::LlmError, "boom");
        assert_eq!((r.scores, r.rationale.as_deref()), (None, Some("the answer is not supported by the context")));
        assert_eq!(r.document_id.as_deref(), repair.document_id());
        assert_eq!(repair.key(), fixtures::draft().context_id);
    }

    #[test]
    fn reject_reasons_read_back_from_their_names() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(RejectReason::from_name("LowScore"), None);
    }
}
