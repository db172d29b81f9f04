//! Avro single-object encoding of records (`C3 01`, then the writer schema's CRC-64-AVRO fingerprint,
//! then the Avro binary datum), against the schemas in `schemas/`.
//!
//! The `.avsc` files reference shared types by name; the codec inlines them into one standalone schema per
//! record kind. Readers know every historical version in `schemas/history/`, so data written by an older
//! producer still reads: the datum is decoded with the schema it was written with and resolved into the
//! current one (new fields take their defaults).

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    (RecordKind::Accepted, "accepted.v1", include_str!("../../../schemas/history/accepted.v1.avsc")),
    (RecordKind::Rejected, "rejected.v1", include_str!("../../../schemas/history/rejected.v1.avsc")),
];

struct Entry {
    kind: RecordKind,
    schema: Schema,
    current: bool,
}

/// The schema registry: every known schema by fingerprint, and the current one per kind.
pub struct Codec {
    by_fingerprint: HashMap<u64, Entry>,
    current: HashMap<RecordKind, (u64, Schema)>,
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
        let mut codec = Codec { by_fingerprint: HashMap::new(), current: HashMap::new() };
        for (kind, _) in RECORD_SOURCES {
            let base = parsed
                .iter()
                .find(|s| s.name().is_some_and(|n| n.fullname(None) == kind.full_name()))
                .ok_or_else(|| CodecError::Avro(format!("no schema named {}", kind.full_name())))?;
            let mut schema = base.clone();
            schema.denormalize(&parsed)?;
            let fp = fingerprint(&schema);
            codec.current.insert(*kind, (fp, schema.clone()));
            codec.by_fingerprint.insert(fp, Entry { kind: *kind, schema, current: true });
        }
        for (kind, name, src) in HISTORY_SOURCES {
            let schema = Schema::parse_str(src).map_err(|e| CodecError::Avro(format!("{name}: {e}")))?;
            let fp = fingerprint(&schema);
            codec.by_fingerprint.entry(fp).or_insert(Entry { kind: *kind, schema, current: false });
        }
        Ok(codec)
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

    /// Decodes a single-object message that must be of `kind`, resolving older schema versions.
    pub fn decode_as<T: DeserializeOwned>(&self, kind: RecordKind, bytes: &[u8]) -> Result<T, CodecError> {
        let (entry, mut body) = self.header(bytes)?;
        if entry.kind != kind {
            return Err(CodecError::WrongKind { expected: kind.full_name(), found: entry.kind.full_name().into() });
        }
        if entry.current {
            let reader = GenericDatumReader::builder(&entry.schema).human_readable(false).build()?;
            let value: T = reader.read_deser(&mut body)?;
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
            }),
            created_at_ms: 1_760_000_001_000,
            superseded_by: Some("f".repeat(64)),
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
            Record::Regenerate(Regenerate { id: "g1".into(), judged: judged() }),
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

    /// Every historical schema can be resolved into the current one of its kind.
    #[test]
    fn every_history_version_resolves_to_the_current_schema() {
        let codec = Codec::build().unwrap();
        for (kind, name, src) in HISTORY_SOURCES {
            let old = Schema::parse_str(src).unwrap_or_else(|e| panic!("{name}: {e}"));
            let current = codec.schema(*kind);
            let compat = apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, current);
            assert!(compat.is_ok(), "{name} cannot be read as the current schema: {compat:?}");
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
