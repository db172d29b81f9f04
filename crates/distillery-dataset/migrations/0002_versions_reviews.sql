-- Dataset versions after the run's own outcomes (version 1): `distillery rejudge` re-decides retained drafts
-- with another judge or threshold and records one version with the outcome it gave each of them.
CREATE TABLE dataset_versions (
    version BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,                 -- rejudge
    judge_model TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    judged BIGINT NOT NULL,             -- drafts re-decided
    newly_accepted BIGINT NOT NULL,
    newly_rejected BIGINT NOT NULL,
    llm_calls BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- The outcome a version gave a draft (an accepted or a rejected record); the latest version's stands.
CREATE TABLE decisions (
    draft_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    document_id TEXT NOT NULL,
    accepted BIGINT NOT NULL,           -- 1 or 0
    was_accepted BIGINT NOT NULL,       -- the outcome before this version
    overall BIGINT,
    record BYTEA NOT NULL,
    PRIMARY KEY (draft_id, version)
);
CREATE INDEX decisions_version ON decisions (version);

-- A person's word on a draft from the review page; it stands above every version.
CREATE TABLE reviews (
    draft_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,               -- accept, reject, edit
    question TEXT,
    answer TEXT,
    note TEXT,
    reviewed_at_ms BIGINT NOT NULL
);

-- Documents whose source object is gone (a file missing from the input on a rerun, an S3 object removed):
-- their records are never exported again. A document whose object comes back is removed from here.
CREATE TABLE deleted_documents (
    document_id TEXT PRIMARY KEY,
    source_uri TEXT NOT NULL,
    deleted_at_ms BIGINT NOT NULL
);
