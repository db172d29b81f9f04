//! Avro single-object encoding of records (`C3 01`, then the writer schema's CRC-64-AVRO fingerprint,
//! then the Avro binary datum), against the schemas in `schemas/`.
//!
//! The `.avsc` files reference shared types by name; the codec inlines them into one standalone schema per
//! record kind. Readers know every historical version in `schemas/history/`, so data written by an older
//! producer still reads: the datum is decoded with the schema it was written with and resolved into the
//! current one (new fields take their defaults). A change that resolution cannot express (a field turned
//! into a union of records) carries an explicit [`Upgrade`]: the old datum is read into a legacy shape and
//! converted in Rust (see [`UPGRADES`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::records::*;

/// Errors of encoding and decoding.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not an Avro single-object message: {0}")]
    NotSingleObject(&'static str),
    #[error("unknown writer schema fingerprint {0:016x}")]
    UnknownSchema(u64),
    #[error("message carries a {found} but the topic expects a {expected}")]
    WrongKind { expected: &'static str, found: String },
    #[error("avro: {0}")]
    Avro(String),
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(e.to_string())
    }
}

/// Raw schema sources, embedded at build time: shared types first.
pub const TYPE_SOURCES: &[(&str, &str)] = &[
    ("types/object_ref.avsc", include_str!("../../../schemas/types/object_ref.avsc")),
    ("types/message.avsc", include_str!("../../../schemas/types/message.avsc")),
    ("types/model_call.avsc", include_str!("../../../schemas/types/model_call.avsc")),
    ("types/scores.avsc", include_str!("../../../schemas/types/scores.avsc")),
];

/// The current schema of every record kind.
pub const RECORD_SOURCES: &[(RecordKind, &str)] = &[
    (RecordKind::Document, include_str!("../../../schemas/document.avsc")),
    (RecordKind::Chunk, include_str!("../../../schemas/chunk.avsc")),
    (RecordKind::Draft, include_str!("../../../schemas/draft.avsc")),
    (RecordKind::Judged, include_str!("../../../schemas/judged.avsc")),
    (RecordKind::Regenerate, include_str!("../../../schemas/regenerate.avsc")),
    (RecordKind::Accepted, include_str!("../../../schemas/accepted.avsc")),
    (RecordKind::Rejected, include_str!("../../../schemas/rejected.avsc")),
    (RecordKind::DeadLetter, include_str!("../../../schemas/dead_letter.avsc")),
];

/// Older versions, each a standalone schema, that readers must still understand.
pub const HISTORY_SOURCES: &[(RecordKind, &str, &str)] = &[
    (RecordKind::Document, "document.v1", include_str!("../../../schemas/history/document.v1.avsc")),
    (RecordKind::Chunk, "chunk.v1", include_str!("../../../schemas/history/chunk.v1.avsc")),
    (RecordKind::Draft, "draft.v1", include_str!("../../../schemas/history/draft.v1.avsc")),
    (RecordKind::Judged, "judged.v1", include_str!("../../../schemas/history/judged.v1.avsc")),
    (RecordKind::Regenerate, "regenerate.v1", include_str!("../../../schemas/history/regenerate.v1.avsc")),
    (RecordKind::Regenerate, "regenerate.v2", include_str!("../../../schemas/history/regenerate.v2.avsc")),
    (RecordKind::Accepted, "accepted.v1", include_str!("../../../schemas/history/accepted.v1.avsc")),
    (RecordKind::Rejected, "rejected.v1", include_str!("../../../schemas/history/rejected.v1.avsc")),
    // Before drafts carried their batch and a regeneration's verified preference.
    (RecordKind::Draft, "draft.v2", include_str!("../../../schemas/history/draft.v2.avsc")),
    (RecordKind::Judged, "judged.v2", include_str!("../../../schemas/history/judged.v2.avsc")),
    (RecordKind::Regenerate, "regenerate.v3", include_str!("../../../schemas/history/regenerate.v3.avsc")),
    (RecordKind::Accepted, "accepted.v2", include_str!("../../../schemas/history/accepted.v2.avsc")),
    (RecordKind::Rejected, "rejected.v2", include_str!("../../../schemas/history/rejected.v2.avsc")),
    // Before a document listed its chunks' ids.
    (RecordKind::Document, "document.v2", include_str!("../../../schemas/history/document.v2.avsc")),
];

/// A conversion of historical data that Avro schema resolution cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upgrade {
    /// `regenerate` `{id, judged}` (v1, v2) to `{id, draft, cause}` (v3): the repair request the pre-judge
    /// checks used to fake as a verdict of provider `checks` becomes a `FailedCheck`, any other verdict a
    /// `CriticVerdict`; the id is kept ([`Regenerate::from_legacy`]).
    RegenerateFromJudged,
}

impl Upgrade {
    /// The historical version whose shape the upgrade reads: an older writer schema is first resolved into
    /// it by plain Avro resolution, then converted.
    pub fn reads(self) -> &'static str {
        match self {
            Upgrade::RegenerateFromJudged => "regenerate.v2",
        }
    }
}

/// The historical versions (names of [`HISTORY_SOURCES`]) that need an [`Upgrade`] to read as the current
/// schema; every other historical version resolves into it.
pub const UPGRADES: &[(&str, Upgrade)] =
    &[("regenerate.v1", Upgrade::RegenerateFromJudged), ("regenerate.v2", Upgrade::RegenerateFromJudged)];

/// The `{id, judged}` shape of `regenerate.v1`/`regenerate.v2`.
#[derive(Deserialize)]
struct LegacyRegenerate {
    id: String,
    judged: Judged,
}

struct Entry {
    kind: RecordKind,
    schema: Schema,
    current: bool,
    upgrade: Option<Upgrade>,
}

/// The schema registry: every known schema by fingerprint, and the current one per kind.
pub struct Codec {
    by_fingerprint: HashMap<u64, Entry>,
    current: HashMap<RecordKind, (u64, Schema)>,
    history: HashMap<&'static str, Schema>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("schemas", &self.by_fingerprint.len()).finish()
    }
}

fn fingerprint(schema: &Schema) -> u64 {
    let fp = schema.fingerprint::<Rabin>();
    let mut b = [0u8; 8];
    b.copy_from_slice(&fp.bytes[..8]);
    u64::from_le_bytes(b)
}

impl Codec {
    /// The process-wide codec built from the embedded schemas.
    pub fn global() -> &'static Codec {
        static CODEC: OnceLock<Codec> = OnceLock::new();
        CODEC.get_or_init(|| Codec::build().expect("embedded Avro schemas are valid (checked by tests)"))
    }

    /// Builds the registry from the embedded sources.
    pub fn build() -> Result<Codec, CodecError> {
        let mut sources: Vec<&str> = TYPE_SOURCES.iter().map(|(_, s)| *s).collect();
        sources.extend(RECORD_SOURCES.iter().map(|(_, s)| *s));
        let parsed = Schema::parse_list(&sources)?;
        let mut codec = Codec { by_fingerprint: HashMap::new(), current: HashMap::new(), history: HashMap::new() };
        for (kind, _) in RECORD_SOURCES {
            let base = parsed
                .iter()
                .find(|s| s.name().is_some_and(|n| n.fullname(None) == kind.full_name()))
                .ok_or_else(|| CodecError::Avro(format!("no schema named {}", kind.full_name())))?;
            let mut schema = base.clone();
            schema.denormalize(&parsed)?;
            let fp = fingerprint(&schema);
            codec.current.insert(*kind, (fp, schema.clone()));
            codec.by_fingerprint.insert(fp, Entry { kind: *kind, schema, current: true, upgrade: None });
        }
        for (kind, name, src) in HISTORY_SOURCES {
            let schema = Schema::parse_str(src).map_err(|e| CodecError::Avro(format!("{name}: {e}")))?;
            let fp = fingerprint(&schema);
            let upgrade = UPGRADES.iter().find(|(n, _)| n == name).map(|(_, u)| *u);
            codec.history.insert(name, schema.clone());
            codec.by_fingerprint.entry(fp).or_insert(Entry { kind: *kind, schema, current: false, upgrade });
        }
        for (name, upgrade) in UPGRADES {
            if !codec.history.contains_key(name) || !codec.history.contains_key(upgrade.reads()) {
                return Err(CodecError::Avro(format!("upgrade of {name} names a schema not in the history")));
            }
        }
        Ok(codec)
    }

    /// A historical schema by its name in [`HISTORY_SOURCES`] (`"regenerate.v1"`).
    pub fn history_schema(&self, name: &str) -> Option<&Schema> {
        self.history.get(name)
    }

    /// The current standalone schema of a record kind.
    pub fn schema(&self, kind: RecordKind) -> &Schema {
        &self.current[&kind].1
    }

    /// The current fingerprint of a record kind.
    pub fn fingerprint(&self, kind: RecordKind) -> u64 {
        self.current[&kind].0
    }

    /// How many schemas (current and historical) the registry knows.
    pub fn known_schemas(&self) -> usize {
        self.by_fingerprint.len()
    }

    /// Encodes a value of a record kind with its current schema.
    pub fn encode_as<T: Serialize>(&self, kind: RecordKind, value: &T) -> Result<Vec<u8>, CodecError> {
        let (fp, schema) = &self.current[&kind];
        let writer = GenericDatumWriter::builder(schema).validate(false).human_readable(false).build()?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[0xC3, 0x01]);
        out.extend_from_slice(&fp.to_le_bytes());
        writer.write_ser(&mut out, value)?;
        Ok(out)
    }

    /// Converts a datum written with the historical schema `writer` into a datum of the current schema.
    fn upgrade(&self, upgrade: Upgrade, writer: &Schema, mut body: &[u8]) -> Result<Vec<u8>, CodecError> {
        let legacy = &self.history[upgrade.reads()];
        let reader = GenericDatumReader::builder(writer).reader_schema(legacy).human_readable(false).build()?;
        let value = reader.read_value(&mut body)?;
        let (kind, upgraded) = match upgrade {
            Upgrade::RegenerateFromJudged => {
                let LegacyRegenerate { id, judged } = apache_avro::from_value(&value)?;
                (RecordKind::Regenerate, Regenerate::from_legacy(id, judged))
            }
        };
        let writer = GenericDatumWriter::builder(self.schema(kind)).human_readable(false).build()?;
        Ok(writer.write_ser_to_vec(&upgraded)?)
    }

    /// Decodes a single-object message that must be of `kind`, resolving (or upgrading) older schema versions.
    pub fn decode_as<T: DeserializeOwned>(&self, kind: RecordKind, bytes: &[u8]) -> Result<T, CodecError> {
        let (entry, mut body) = self.header(bytes)?;
        if entry.kind != kind {
            return Err(CodecError::WrongKind { expected: kind.full_name(), found: entry.kind.full_name().into() });
        }
        if entry.current {
            let reader = GenericDatumReader::builder(&entry.schema).human_readable(false).build()?;
            let value: T = reader.read_deser(&mut body)?;
            Ok(value)
        } else if let Some(upgrade) = entry.upgrade {
            let upgraded = self.upgrade(upgrade, &entry.schema, body)?;
            let reader = GenericDatumReader::builder(self.schema(kind)).human_readable(false).build()?;
            let value: T = reader.read_deser(&mut upgraded.as_slice())?;
            Ok(value)
        } else {
            let reader_schema = self.schema(kind);
            let reader = GenericDatumReader::builder(&entry.schema)
                .reader_schema(reader_schema)
                .human_readable(false)
                .build()?;
            let value = reader.read_value(&mut body)?;
            Ok(apache_avro::from_value::<T>(&value)?)
        }
    }

    /// The record kind a message was written as.
    pub fn kind_of(&self, bytes: &[u8]) -> Result<RecordKind, CodecError> {
        Ok(self.header(bytes)?.0.kind)
    }

    fn header<'a>(&self, bytes: &'a [u8]) -> Result<(&Entry, &'a [u8]), CodecError> {
        if bytes.len() < 10 {
            return Err(CodecError::NotSingleObject("shorter than the 10-byte header"));
        }
        if bytes[0] != 0xC3 || bytes[1] != 0x01 {
            return Err(CodecError::NotSingleObject("missing the C3 01 marker"));
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..10]);
        let fp = u64::from_le_bytes(fp);
        let entry = self.by_fingerprint.get(&fp).ok_or(CodecError::UnknownSchema(fp))?;
        Ok((entry, &bytes[10..]))
    }

    /// Encodes any record with its kind's current schema.
    pub fn encode(&self, record: &Record) -> Result<Vec<u8>, CodecError> {
        let kind = record.kind();
        match record {
            Record::Document(r) => self.encode_as(kind, r),
            Record::Chunk(r) => self.encode_as(kind, r),
            Record::Draft(r) => self.encode_as(kind, r),
            Record::Judged(r) => self.encode_as(kind, r),
            Record::Regenerate(r) => self.encode_as(kind, r),
            Record::Accepted(r) => self.encode_as(kind, r),
            Record::Rejected(r) => self.encode_as(kind, r),
            Record::DeadLetter(r) => self.encode_as(kind, r),
        }
    }

    /// Decodes any record; `expected` restricts the kind (a topic carries one kind).
    pub fn decode(&self, bytes: &[u8], expected: Option<RecordKind>) -> Result<Record, CodecError> {
        let kind = self.kind_of(bytes)?;
        if let Some(expected) = expected
            && expected != kind
        {
            return Err(CodecError::WrongKind { expected: expected.full_name(), found: kind.full_name().into() });
        }
        Ok(match kind {
            RecordKind::Document => Record::Document(self.decode_as(kind, bytes)?),
            RecordKind::Chunk => Record::Chunk(self.decode_as(kind, bytes)?),
            RecordKind::Draft => Record::Draft(self.decode_as(kind, bytes)?),
            RecordKind::Judged => Record::Judged(self.decode_as(kind, bytes)?),
            RecordKind::Regenerate => Record::Regenerate(self.decode_as(kind, bytes)?),
            RecordKind::Accepted => Record::Accepted(self.decode_as(kind, bytes)?),
            RecordKind::Rejected => Record::Rejected(self.decode_as(kind, bytes)?),
            RecordKind::DeadLetter => Record::DeadLetter(self.decode_as(kind, bytes)?),
        })
    }
}

/// Fixtures shared by the tests of every crate: one fully populated record of each kind.
pub mod fixtures {
    use crate::records::*;

    pub fn object_ref() -> ObjectRef {
        ObjectRef {
            store: StoreKind::S3,
            bucket: "docs".into(),
            key: "handbook/leave policy.md".into(),
            version_id: Some("v1".into()),
            etag: Some("\"0123abcd\"".into()),
        }
    }

    pub fn document() -> Document {
        Document {
            id: crate::ids::hash_bytes(b"# Leave policy\n\nEmployees get 25 days."),
            source: object_ref(),
            size: 38,
            media_type: "text/markdown".into(),
            discovered_by: Discovery::Notification,
            discovered_at_ms: 1_760_000_000_123,
            status: DocumentStatus::Extracted,
            supersedes: Some("0".repeat(64)),
            pii_counts: [("EMAIL".to_string(), 2), ("PHONE".to_string(), 1)].into_iter().collect(),
            pages: Some(3),
            chunks: Some(2),
            chunk_ids: vec!["c".repeat(64), "d".repeat(64)],
        }
    }

    pub fn chunk() -> Chunk {
        Chunk {
            id: "c1".into(),
            document_id: document().id,
            source: object_ref(),
            ordinal: 0,
            total: 2,
            text: "Employees get 25 days of paid leave — ünïcödé.".into(),
            heading_path: vec!["Leave policy".into(), "Annual leave".into()],
            page_start: Some(1),
            page_end: None,
            char_start: 16,
            char_end: 62,
            token_count: 12,
            context_id: "ctx1".into(),
            context_chunk_ids: vec!["c1".into(), "c2".into()],
            context_text: "Employees get 25 days of paid leave.\n\nCarry-over is capped at 5 days.".into(),
            superseded_by: None,
        }
    }

    pub fn model_call() -> ModelCall {
        ModelCall {
            provider: "openai".into(),
            model: "smollm2".into(),
            temperature: 0.7,
            max_tokens: 512,
            seed: Some(42),
            template: "qa".into(),
            template_hash: "abc".into(),
            prompt_tokens: 120,
            completion_tokens: 40,
            latency_ms: 900,
        }
    }

    pub fn scores(overall: i32) -> Scores {
        Scores { overall, faithfulness: overall, correctness: 4, clarity: 5, usefulness: 3 }
    }

    pub fn draft() -> Draft {
        let mut q = Message::new(Role::User, "How many days of paid leave do employees get?");
        q.chunk_ids = vec!["c1".into()];
        Draft {
            id: "d1".into(),
            kind: DraftKind::Qa,
            document_id: document().id,
            chunk_id: "c1".into(),
            context_id: "ctx1".into(),
            context_text: chunk().context_text,
            messages: vec![q, Message::new(Role::Assistant, "25 days.")],
            reasoning: Some("The policy states 25 days.".into()),
            question_type: Some("factual".into()),
            difficulty: None,
            evidence: Some("Employees get 25 days of paid leave.".into()),
            attempt: 2,
            parent_ids: vec!["c1".into(), "d0".into()],
            generator: model_call(),
            previous: Some(PriorAttempt {
                draft_id: "d0".into(),
                messages: vec![Message::new(Role::User, "q"), Message::new(Role::Assistant, "20 days")],
                scores: scores(2),
                rationale: "Contradicts the context.".into(),
                preference: Some(Preference {
                    verified: true,
                    votes: vec!["new".into(), "new".into()],
                    reason: "compared in both orders: 25 days is what the policy states".into(),
                }),
            }),
            created_at_ms: 1_760_000_001_000,
            superseded_by: Some("f".repeat(64)),
            batch: Some(DraftBatch { id: "b1".into(), index: 0, size: 3 }),
        }
    }

    pub fn judged() -> Judged {
        Judged {
            id: "j1".into(),
            draft: draft(),
            scores: scores(5),
            rationale: "Faithful and clear.".into(),
            passed: true,
            judge: model_call(),
            judged_at_ms: 1_760_000_002_000,
        }
    }

    /// A draft the critic did not pass, sent back with its verdict.
    pub fn regenerate_critic() -> Regenerate {
        let judged =
            Judged { scores: scores(2), rationale: "Contradicts the context.".into(), passed: false, ..judged() };
        Regenerate::critic(judged)
    }

    /// A first draft whose answer failed a pre-judge check, sent back for one repair.
    pub fn regenerate_repair() -> Regenerate {
        let draft = Draft { attempt: 1, previous: None, ..draft() };
        Regenerate::repair(draft, RejectReason::Ungrounded, "the answer is not supported by the context".into())
    }

    pub fn all() -> Vec<Record> {
        let rejected = Rejected {
            scores: Some(scores(2)),
            raw_output: Some("{not json".into()),
            draft: Some(draft()),
            ..Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, "d1", "scored 2 < 4")
        };
        vec![
            Record::Document(document()),
            Record::Chunk(chunk()),
            Record::Draft(draft()),
            Record::Judged(judged()),
            Record::Regenerate(regenerate_critic()),
            Record::Regenerate(regenerate_repair()),
            Record::Accepted(Accepted {
                id: "d1".into(),
                judged: judged(),
                nearest_similarity: Some(0.42),
                accepted_at_ms: 1_760_000_003_000,
            }),
            Record::Rejected(rejected),
            Record::DeadLetter(DeadLetter {
                id: "x".into(),
                stage: "extract".into(),
                topic: "distillery.documents".into(),
                partition: 3,
                offset: 99,
                key: Some(b"k".to_vec()),
                payload: vec![0, 159, 146, 150],
                error_kind: "decode".into(),
                error: "bad header".into(),
                attempts: 1,
                failed_at_ms: 1_760_000_004_000,
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_kind_round_trips_through_its_schema() {
        let codec = Codec::build().unwrap();
        for record in fixtures::all() {
            let bytes = codec.encode(&record).unwrap();
            assert_eq!(&bytes[..2], &[0xC3, 0x01]);
            assert_eq!(codec.kind_of(&bytes).unwrap(), record.kind());
            let back = codec.decode(&bytes, Some(record.kind())).unwrap();
            assert_eq!(back, record, "{:?} did not round-trip", record.kind());
        }
    }

    #[test]
    fn none_and_empty_values_round_trip() {
        let codec = Codec::build().unwrap();
        let mut d = fixtures::draft();
        d.reasoning = None;
        d.previous = None;
        d.parent_ids.clear();
        d.generator.seed = None;
        let r = Record::Draft(d);
        assert_eq!(codec.decode(&codec.encode(&r).unwrap(), None).unwrap(), r);
    }

    #[test]
    fn encoding_validates_against_the_schema() {
        // The serializer is schema-aware: a value that does not fit the schema is refused, not written.
        let codec = Codec::build().unwrap();
        #[derive(serde::Serialize)]
        struct NotADocument {
            id: i64,
        }
        assert!(codec.encode_as(RecordKind::Document, &NotADocument { id: 3 }).is_err());
    }

    #[test]
    fn decoding_rejects_garbage_and_wrong_kinds() {
        let codec = Codec::build().unwrap();
        assert!(matches!(codec.decode(b"{\"json\":1}", None), Err(CodecError::NotSingleObject(_))));
        assert!(matches!(
            codec.decode(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0], None),
            Err(CodecError::UnknownSchema(_))
        ));
        let doc = codec.encode(&Record::Document(fixtures::document())).unwrap();
        assert!(matches!(codec.decode(&doc, Some(RecordKind::Chunk)), Err(CodecError::WrongKind { .. })));
        // A truncated body is an error, never a panic.
        assert!(codec.decode(&doc[..doc.len() - 5], None).is_err());
    }

    /// A v1 document (before status, supersedes and pii_counts existed), written by an old producer with
    /// its own schema, reads as a current document with the new fields at their defaults.
    #[test]
    fn older_schema_versions_still_read() {
        #[derive(serde::Serialize)]
        struct DocumentV1 {
            id: String,
            source: ObjectRef,
            size: i64,
            media_type: String,
            discovered_by: Discovery,
            discovered_at_ms: i64,
        }
        let v1_schema = Schema::parse_str(HISTORY_SOURCES[0].2).unwrap();
        let old = DocumentV1 {
            id: "abc".into(),
            source: fixtures::object_ref(),
            size: 12,
            media_type: "text/plain".into(),
            discovered_by: Discovery::Scan,
            discovered_at_ms: 5,
        };
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&fingerprint(&v1_schema).to_le_bytes());
        let writer = GenericDatumWriter::builder(&v1_schema).human_readable(false).build().unwrap();
        writer.write_ser(&mut bytes, &old).unwrap();

        let codec = Codec::build().unwrap();
        assert_ne!(codec.fingerprint(RecordKind::Document), fingerprint(&v1_schema), "the schema did evolve");
        let Record::Document(doc) = codec.decode(&bytes, Some(RecordKind::Document)).unwrap() else { panic!() };
        assert_eq!((doc.id.as_str(), doc.size, doc.discovered_by), ("abc", 12, Discovery::Scan));
        assert_eq!(doc.status, DocumentStatus::Discovered);
        assert_eq!(doc.supersedes, None);
        assert!(doc.pii_counts.is_empty());
        assert_eq!((doc.pages, doc.chunks), (None, None));
    }

    /// Every historical schema can be resolved into the current one of its kind, or (when it needs an
    /// upgrade) into the historical shape its upgrade reads.
    #[test]
    fn every_history_version_resolves_to_the_current_schema() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let codec = Codec::build().unwrap();
        for (kind, name, src) in HISTORY_SOURCES {
            let old = Schema::parse_str(src).unwrap_or_else(|e| panic!("{name}: {e}"));
            let current = codec.schema(*kind);
            match UPGRADES.iter().find(|(n, _)| n == name) {
                None => {
                    let compat = SchemaCompatibility::can_read(&old, current);
                    assert!(compat.is_ok(), "{name} cannot be read as the current schema: {compat:?}");
                }
                Some((_, upgrade)) => {
                    let reads = upgrade.reads();
                    assert!(HISTORY_SOURCES.iter().any(|(k, n, _)| k == kind && *n == reads), "{name}: {reads}");
                    let compat = SchemaCompatibility::can_read(&old, codec.history_schema(reads).unwrap());
                    assert!(compat.is_ok(), "{name} cannot be read as {reads}: {compat:?}");
                }
            }
        }
    }

    /// The upgrades are there because plain resolution cannot do it: a new version that did resolve would
    /// not need (and should not get) an upgrade.
    #[test]
    fn upgraded_versions_do_not_resolve_on_their_own() {
        let codec = Codec::build().unwrap();
        for (name, _) in UPGRADES {
            let (kind, _, src) = HISTORY_SOURCES.iter().find(|(_, n, _)| n == name).unwrap();
            let old = Schema::parse_str(src).unwrap();
            let compat = apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, codec.schema(*kind));
            assert!(compat.is_err(), "{name} resolves into the current schema: drop its upgrade");
        }
    }

    /// Both causes of a regeneration round-trip through `Codec::encode`/`decode`, with their accessors.
    #[test]
    fn regenerate_round_trips_both_causes() {
        let codec = Codec::build().unwrap();
        for g in [fixtures::regenerate_critic(), fixtures::regenerate_repair()] {
            let record = Record::Regenerate(g.clone());
            let bytes = codec.encode(&record).unwrap();
            assert_eq!(codec.decode(&bytes, Some(RecordKind::Regenerate)).unwrap(), record);
            let back: Regenerate = codec.decode_as(RecordKind::Regenerate, &bytes).unwrap();
            assert_eq!(back, g);
            // The generic-value path (how a resolved historical datum reads, once v3 is history) agrees.
            let reader = GenericDatumReader::builder(codec.schema(RecordKind::Regenerate))
                .reader_schema(codec.schema(RecordKind::Regenerate))
                .human_readable(false)
                .build()
                .unwrap();
            let value = reader.read_value(&mut &bytes[10..]).unwrap();
            assert_eq!(apache_avro::from_value::<Regenerate>(&value).unwrap(), g);
        }
        let Record::Regenerate(critic) =
            codec.decode(&codec.encode(&Record::Regenerate(fixtures::regenerate_critic())).unwrap(), None).unwrap()
        else {
            panic!()
        };
        assert!(matches!(critic.cause, RegenerateCause::Critic(_)));
        assert_eq!(critic.scores().map(|s| s.overall), Some(2));
        assert_eq!(critic.failed_check(), None);
        let Record::Regenerate(repair) =
            codec.decode(&codec.encode(&Record::Regenerate(fixtures::regenerate_repair())).unwrap(), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            repair.failed_check(),
            Some((RejectReason::Ungrounded, "the answer is not supported by the context"))
        );
        assert_eq!((repair.judged(), repair.scores()), (None, None));
    }

    /// On the wire `cause` is an honest Avro union: branch 0 a `CriticVerdict` record, branch 1 a
    /// `FailedCheck` record whose reason is the snake_case string.
    #[test]
    fn regenerate_cause_is_an_avro_union_of_records() {
        use apache_avro::types::Value;
        let codec = Codec::build().unwrap();
        let schema = codec.schema(RecordKind::Regenerate);
        let Schema::Record(record) = schema else { panic!("{schema:?}") };
        let cause = record.fields.iter().find(|f| f.name == "cause").unwrap();
        let Schema::Union(union) = &cause.schema else { panic!("{:?}", cause.schema) };
        let names: Vec<String> =
            union.variants().iter().map(|v| v.name().map(|n| n.fullname(None)).unwrap_or_default()).collect();
        assert_eq!(names, ["distillery.CriticVerdict", "distillery.FailedCheck"]);

        let cause_of = |g: Regenerate| -> Value {
            let bytes = codec.encode(&Record::Regenerate(g)).unwrap();
            let reader = GenericDatumReader::builder(schema).human_readable(false).build().unwrap();
            let Value::Record(fields) = reader.read_value(&mut &bytes[10..]).unwrap() else { panic!() };
            fields.into_iter().find(|(n, _)| n == "cause").unwrap().1
        };
        let Value::Union(0, critic) = cause_of(fixtures::regenerate_critic()) else { panic!() };
        let Value::Record(critic) = *critic else { panic!() };
        let critic_fields: Vec<&str> = critic.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(critic_fields, ["judged_id", "scores", "rationale", "judge", "judged_at_ms"]);
        assert_eq!(critic[0].1, Value::String(fixtures::judged().id));

        let Value::Union(1, check) = cause_of(fixtures::regenerate_repair()) else { panic!() };
        let Value::Record(check) = *check else { panic!() };
        assert_eq!(check[0], ("reason".to_string(), Value::String("ungrounded".into())));
        assert_eq!(check[1].0, "finding");
    }

    /// A reason this build does not know (a newer producer's) reads as `other`, keeping the finding.
    #[test]
    fn unknown_failed_check_reason_reads_as_other() {
        use apache_avro::types::Value;
        let codec = Codec::build().unwrap();
        let schema = codec.schema(RecordKind::Regenerate);
        let bytes = codec.encode(&Record::Regenerate(fixtures::regenerate_repair())).unwrap();
        let reader = GenericDatumReader::builder(schema).human_readable(false).build().unwrap();
        let Value::Record(mut fields) = reader.read_value(&mut &bytes[10..]).unwrap() else { panic!() };
        let Value::Union(1, check) = &mut fields[2].1 else { panic!() };
        let Value::Record(check) = check.as_mut() else { panic!() };
        check[0].1 = Value::String("some_future_reason".into());
        let mut message = bytes[..10].to_vec();
        GenericDatumWriter::builder(schema).build().unwrap().write_value(&mut message, Value::Record(fields)).unwrap();
        let Record::Regenerate(g) = codec.decode(&message, None).unwrap() else { panic!() };
        assert_eq!(g.failed_check(), Some((RejectReason::Other, "the answer is not supported by the context")));
    }

    /// A message of a historical `{id, judged}` regenerate version, written as an old producer did.
    fn legacy_regenerate(version: &str, id: &str, judged: &Judged) -> Vec<u8> {
        let codec = Codec::build().unwrap();
        let v2 = codec.history_schema("regenerate.v2").unwrap();
        let old = codec.history_schema(version).unwrap();
        // The verdict as today's producer writes it, resolved into the shape v2 embeds (fields added since,
        // such as a draft's batch, are dropped by resolution), then the `{id, judged}` record written with v2
        // and resolved down into `version`'s shape.
        let Schema::Record(v2_record) = v2 else { panic!("regenerate.v2 is a record") };
        let judged_v2 = &v2_record.fields.iter().find(|f| f.name == "judged").expect("judged field").schema;
        let today = codec.encode_as(RecordKind::Judged, judged).unwrap();
        let judged_value = GenericDatumReader::builder(codec.schema(RecordKind::Judged))
            .reader_schema(judged_v2)
            .human_readable(false)
            .build()
            .unwrap()
            .read_value(&mut &today[10..])
            .unwrap();
        let legacy = apache_avro::types::Value::Record(vec![
            ("id".into(), apache_avro::types::Value::String(id.into())),
            ("judged".into(), judged_value),
        ]);
        let mut body = Vec::new();
        GenericDatumWriter::builder(v2).build().unwrap().write_value(&mut body, legacy).unwrap();
        let reader = GenericDatumReader::builder(v2).reader_schema(old).human_readable(false).build().unwrap();
        let value = reader.read_value(&mut body.as_slice()).unwrap();
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&fingerprint(old).to_le_bytes());
        GenericDatumWriter::builder(old).build().unwrap().write_value(&mut bytes, value).unwrap();
        bytes
    }

    /// The fake verdict the pre-judge checks built for a repair request before `regenerate` v3.
    fn legacy_checks_verdict(draft: Draft, template: &str, finding: &str) -> Judged {
        Judged {
            id: crate::ids::hash_parts(&["checked", &draft.id]),
            scores: Scores { overall: 0, faithfulness: 0, correctness: 0, clarity: 0, usefulness: 0 },
            rationale: finding.to_string(),
            passed: false,
            judge: ModelCall {
                provider: "checks".into(),
                model: "distillery-quality".into(),
                temperature: 0.0,
                max_tokens: 0,
                seed: None,
                template: template.to_string(),
                template_hash: String::new(),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0,
            },
            judged_at_ms: 1_760_000_002_000,
            draft,
        }
    }

    /// An old-format critic request (v1 and v2) reads as `Critic`, with the id it was written with, which
    /// is also the id `Regenerate::critic` gives the same verdict now.
    #[test]
    fn old_format_critic_request_reads_as_critic() {
        let codec = Codec::build().unwrap();
        // A draft as those versions could hold it: no batch, a regeneration's preference never checked.
        let mut draft = Draft { batch: None, ..fixtures::draft() };
        if let Some(p) = draft.previous.as_mut() {
            p.preference = None;
        }
        let judged = Judged { scores: fixtures::scores(2), passed: false, draft, ..fixtures::judged() };
        let id = crate::ids::hash_parts(&["regenerate", &judged.id]);
        for version in ["regenerate.v1", "regenerate.v2"] {
            let bytes = legacy_regenerate(version, &id, &judged);
            assert_ne!(codec.fingerprint(RecordKind::Regenerate), u64::from_le_bytes(bytes[2..10].try_into().unwrap()));
            let Record::Regenerate(g) = codec.decode(&bytes, Some(RecordKind::Regenerate)).unwrap() else { panic!() };
            assert_eq!(g.id, id, "{version}");
            let RegenerateCause::Critic(verdict) = &g.cause else { panic!("{version}: {g:?}") };
            assert_eq!(verdict.judged_id, judged.id);
            assert_eq!(g.scores(), Some(judged.scores));
            assert_eq!(g.feedback(), judged.rationale);
            if version == "regenerate.v2" {
                assert_eq!(g, Regenerate::critic(judged.clone()));
                assert_eq!(g.judged(), Some(judged.clone()));
            } else {
                // v1 drafts predate `superseded_by`: it takes its default.
                let expected =
                    Judged { draft: Draft { superseded_by: None, ..judged.draft.clone() }, ..judged.clone() };
                assert_eq!(g, Regenerate::critic(expected.clone()));
                assert_eq!(g.judged(), Some(expected));
            }
        }
    }

    /// An old-format repair request (the checks' fake verdict, v1 and v2) reads as `FailedCheck` with the
    /// reason from `judge.template` (unknown names as `other`), the finding from `rationale`, and the id it
    /// was written with, which is also the id `Regenerate::repair` gives the same draft now.
    #[test]
    fn old_format_checks_request_reads_as_failed_check() {
        let codec = Codec::build().unwrap();
        let draft = Draft { attempt: 1, previous: None, superseded_by: None, batch: None, ..fixtures::draft() };
        let finding = "the answer is not supported by the context";
        for version in ["regenerate.v1", "regenerate.v2"] {
            for (template, reason) in [
                ("ungrounded", RejectReason::Ungrounded),
                ("truncated", RejectReason::Truncated),
                ("not_a_reason", RejectReason::Other),
            ] {
                let judged = legacy_checks_verdict(draft.clone(), template, finding);
                let id = crate::ids::hash_parts(&["regenerate", &judged.id]);
                let bytes = legacy_regenerate(version, &id, &judged);
                let Record::Regenerate(g) = codec.decode(&bytes, Some(RecordKind::Regenerate)).unwrap() else {
                    panic!()
                };
                assert_eq!(g.id, id, "{version} {template}");
                assert_eq!(g.failed_check(), Some((reason, finding)), "{version} {template}");
                assert_eq!((g.feedback(), g.scores(), g.judged()), (finding, None, None));
                assert_eq!(g, Regenerate::repair(draft.clone(), reason, finding.to_string()), "{version} {template}");
            }
        }
    }

    #[test]
    fn fingerprints_are_distinct_per_kind() {
        let codec = Codec::build().unwrap();
        let mut seen = std::collections::HashSet::new();
        for kind in RecordKind::ALL {
            assert!(seen.insert(codec.fingerprint(kind)));
        }
        assert_eq!(codec.known_schemas(), RecordKind::ALL.len() + HISTORY_SOURCES.len());
    }
}
