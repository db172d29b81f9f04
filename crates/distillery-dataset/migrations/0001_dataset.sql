-- The dataset store: one schema for SQLite and PostgreSQL (only TEXT, BIGINT, DOUBLE PRECISION and BYTEA,
-- which both read the same way). Every id is the record's content hash. There are no foreign-key
-- constraints: records arrive from independent topics in any order (an accepted record may land before its
-- document), so relations are ids with indexes, and every write is idempotent by id.
-- `record` columns hold the record exactly as it travels (Avro single-object encoding, schema fingerprint in
-- the header), so a record written by an older version still reads back.

-- Source documents, by content.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,                 -- the key of the source object (the file's path in the input)
    source_uri TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    pages BIGINT,
    chunks BIGINT,
    pii_counts TEXT NOT NULL,           -- JSON object: entity type -> count
    discovered_at_ms BIGINT NOT NULL,
    record BYTEA NOT NULL
);

-- Which contents a location has held: a new version at the same key supersedes the one before.
CREATE TABLE document_versions (
    source_uri TEXT NOT NULL,
    document_id TEXT NOT NULL,
    supersedes TEXT,
    discovered_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_uri, document_id)
);

-- Generation contexts: a chunk with its neighbours of the same section.
CREATE TABLE contexts (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,            -- JSON array
    body TEXT NOT NULL
);

CREATE TABLE chunks (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    context_id TEXT NOT NULL,
    ordinal BIGINT,
    total BIGINT,
    heading_path TEXT,                  -- JSON array
    token_count BIGINT,
    page_start BIGINT,
    page_end BIGINT,
    body TEXT
);
CREATE INDEX chunks_document ON chunks (document_id);

-- Every draft, first attempts and their regenerations. `root_id` is the first-attempt draft a
-- regeneration descends from (itself for a first attempt): one training example's whole history.
CREATE TABLE drafts (
    id TEXT PRIMARY KEY,
    root_id TEXT NOT NULL,
    previous_id TEXT,
    document_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    context_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    generator_model TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX drafts_chunk ON drafts (chunk_id);
CREATE INDEX drafts_root ON drafts (root_id);

-- The critic's verdicts (a final low-score rejection is a verdict too: its id is the rejection's).
CREATE TABLE verdicts (
    id TEXT PRIMARY KEY,
    draft_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    passed BIGINT NOT NULL,             -- 1 or 0
    overall BIGINT NOT NULL,
    faithfulness BIGINT NOT NULL,
    correctness BIGINT NOT NULL,
    clarity BIGINT NOT NULL,
    usefulness BIGINT NOT NULL,
    rationale TEXT NOT NULL,
    judge_model TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    judged_at_ms BIGINT NOT NULL
);
CREATE INDEX verdicts_draft ON verdicts (draft_id);

-- Training records.
CREATE TABLE accepted (
    id TEXT PRIMARY KEY,
    draft_id TEXT NOT NULL,
    root_id TEXT NOT NULL,
    verdict_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    overall BIGINT NOT NULL,
    nearest_similarity DOUBLE PRECISION,
    accepted_at_ms BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX accepted_chunk ON accepted (chunk_id);
CREATE INDEX accepted_document ON accepted (document_id);

-- Everything that did not make it: one row per subject (the first outcome stands, as in rejected.jsonl).
CREATE TABLE rejected (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,         -- document, chunk, draft, object
    subject_id TEXT NOT NULL UNIQUE,
    root_id TEXT,                       -- for a draft: the first attempt it descends from
    reason TEXT NOT NULL,
    stage TEXT NOT NULL,
    detail TEXT NOT NULL,
    name TEXT,                          -- the source object's key, when known
    document_id TEXT,
    chunk_id TEXT,
    rejected_at_ms BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX rejected_chunk ON rejected (chunk_id);
CREATE INDEX rejected_document ON rejected (document_id);

-- Inputs that could not be handled at all, with what they were about when the payload is a record.
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    topic TEXT NOT NULL,
    error_kind TEXT NOT NULL,
    error TEXT NOT NULL,
    subject_kind TEXT,
    subject_id TEXT,
    root_id TEXT,
    document_id TEXT,
    chunk_id TEXT,
    failed_at_ms BIGINT NOT NULL,
    record BYTEA NOT NULL
);
CREATE INDEX dead_letters_chunk ON dead_letters (chunk_id);

-- Preference pairs: an accepted regeneration (chosen) and the draft it replaced (rejected).
CREATE TABLE dpo_pairs (
    accepted_id TEXT PRIMARY KEY,
    chosen_draft_id TEXT NOT NULL,
    rejected_draft_id TEXT NOT NULL,
    rejected_score BIGINT,              -- null: a pre-judge check failed the rejected side, no model scored it
    rejected_because TEXT NOT NULL
);

-- What a stage produced from one input, recorded before it is published (what a resumed run re-emits
-- instead of calling the LLM again). `step` orders one example's history: an output is one step after its
-- input (a chunk is step 0).
CREATE TABLE processed (
    stage TEXT NOT NULL,
    input_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    outputs BIGINT NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (stage, input_id)
);
CREATE INDEX processed_chunk ON processed (chunk_id);
CREATE INDEX processed_input ON processed (input_id);

CREATE TABLE steps (
    stage TEXT NOT NULL,
    input_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    chunk_id TEXT NOT NULL,
    root_id TEXT,                       -- null: an output about no draft
    step BIGINT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (stage, input_id, position)
);
CREATE INDEX steps_chunk ON steps (chunk_id);
CREATE INDEX steps_record ON steps (record_id);

-- LLM usage per run and document (the one-process run's ledger, flushed as it goes).
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished BIGINT NOT NULL,           -- 1 once the run ended on its own or on SIGINT
    llm_calls BIGINT NOT NULL
);

CREATE TABLE usage (
    run_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    generator_prompt BIGINT NOT NULL,
    generator_completion BIGINT NOT NULL,
    judge_prompt BIGINT NOT NULL,
    judge_completion BIGINT NOT NULL,
    PRIMARY KEY (run_id, document_id)
);

-- What a chunk's state asks: is there an outcome for this example (root), or for the chunk itself?
CREATE INDEX accepted_root ON accepted (root_id);
CREATE INDEX rejected_root ON rejected (root_id);
CREATE INDEX dead_letters_root ON dead_letters (root_id);
CREATE INDEX dead_letters_subject ON dead_letters (subject_id);
