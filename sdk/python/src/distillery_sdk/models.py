"""The API's shapes as pydantic v2 models, field for field the schemas of ``/openapi.json``
(``tests/test_openapi.py`` checks that against a running service)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    # A newer server may add fields: keep them readable rather than fail.
    model_config = ConfigDict(extra="allow")


class DocumentProgress(_Model):
    """Where one document is: its chunks and outcomes so far and the tokens spent on it."""

    name: str
    document_id: str
    chunks: int
    chunks_done: int
    chunks_failed: int
    chunks_pending: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    #: The source object is gone: its records are no longer exported.
    deleted: bool = False
    prompt_tokens: int
    completion_tokens: int
    tokens: int


#: A document as the API lists it (its progress is what the store knows of it).
Document = DocumentProgress


class DocumentList(_Model):
    documents: list[DocumentProgress]


class Usage(_Model):
    generator_prompt: int
    generator_completion: int
    judge_prompt: int
    judge_completion: int


class Stats(_Model):
    """The whole dataset's counts."""

    documents: int
    chunks: int
    chunks_done: int
    chunks_failed: int
    chunks_pending: int
    drafts: int
    regenerated: int
    repaired: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    dead_letters: int
    dpo_pairs: int
    verdicts: int
    mean_score: Optional[float] = None
    rejection_rate: Optional[float] = None
    runs: int
    llm_calls: int
    usage: Usage


class Scores(_Model):
    overall: int
    faithfulness: int
    correctness: int
    clarity: int
    usefulness: int


class Turn(_Model):
    role: str
    content: str
    chunk_ids: list[str] = []


class Model(_Model):
    """Model, parameters and cost of a call."""

    provider: str
    model: str
    temperature: float
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    template: str
    template_hash: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class Previous(_Model):
    """The low-scored attempt a regeneration replaced."""

    draft_id: str
    messages: list[Turn]
    scores: Scores
    rationale: str
    #: The judge's check that the regeneration is better than this draft (absent: never checked).
    preference: Optional[dict] = None


class Record(_Model):
    """An accepted or rejected record, as ``accepted.jsonl`` / ``rejected.jsonl`` carry it."""

    outcome: Literal["accepted", "rejected"]
    record_id: str
    id: str
    kind: str
    question: Optional[str] = None
    answer: Optional[str] = None
    messages: list[Turn] = []
    reasoning: Optional[str] = None
    question_type: Optional[str] = None
    difficulty: Optional[str] = None
    evidence: Optional[str] = None
    scores: Optional[Scores] = None
    rationale: Optional[str] = None
    attempt: Optional[int] = None
    document_id: Optional[str] = None
    chunk_id: Optional[str] = None
    context_id: Optional[str] = None
    source_uri: Optional[str] = None
    context_text: Optional[str] = None
    generator: Optional[Model] = None
    judge: Optional[Model] = None
    previous: Optional[Previous] = None
    nearest_similarity: Optional[float] = None
    superseded_by: Optional[str] = None
    reason: Optional[str] = None
    detail: Optional[str] = None
    stage: Optional[str] = None
    raw_output: Optional[str] = None
    at_ms: int


class RecordPage(_Model):
    records: list[Record]
    next_after: Optional[str] = None


class Upload(_Model):
    name: str
    location: str
    bytes: int
    run_started: bool


class Export(_Model):
    id: str
    format: str
    status: Literal["running", "done", "failed"]
    created_at_ms: int
    finished_at_ms: Optional[int] = None
    records: Optional[int] = None
    bytes: Optional[int] = None
    file_name: Optional[str] = None
    error: Optional[str] = None


class Status(_Model):
    status: str


#: Each model and the OpenAPI schema it mirrors.
SCHEMAS: dict[str, type[BaseModel]] = {
    "DocumentProgress": DocumentProgress,
    "DocumentList": DocumentList,
    "Usage": Usage,
    "Stats": Stats,
    "Scores": Scores,
    "Turn": Turn,
    "Model": Model,
    "Previous": Previous,
    "Record": Record,
    "RecordPage": RecordPage,
    "Upload": Upload,
    "Export": Export,
    "Status": Status,
}
