//! The flat JSON shape of dataset records (`accepted.jsonl`, `rejected.jsonl`): one object per line with
//! the example, its scores, its lineage and what it cost.

use distillery_core::{Accepted, DeadLetter, Draft, DraftKind, ModelCall, Rejected, Role, Scores};
use serde::{Deserialize, Serialize};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnView {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunk_ids: Vec<String>,
}

/// Model, parameters and cost of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub provider: String,
    pub model: String,
    pub temperature: f32,
    /// The completion limit of the call (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i32>,
    pub seed: Option<i64>,
    pub template: String,
    pub template_hash: String,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub latency_ms: i32,
}

impl From<&ModelCall> for ModelView {
    fn from(m: &ModelCall) -> Self {
        ModelView {
            provider: m.provider.clone(),
            model: m.model.clone(),
            temperature: m.temperature,
            max_tokens: Some(m.max_tokens),
            seed: m.seed,
            template: m.template.clone(),
            template_hash: m.template_hash.clone(),
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            latency_ms: m.latency_ms,
        }
    }
}

/// The low-scored attempt a regeneration replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousView {
    pub draft_id: String,
    pub messages: Vec<TurnView>,
    pub scores: Scores,
    pub rationale: String,
    /// The judge's check that the regeneration is better than this draft (absent: never checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<distillery_core::Preference>,
}

/// A dataset record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleView {
    pub id: String,
    /// qa, conversation; for rejections without a draft: document, chunk or object.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<TurnView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Scores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uri: Option<String>,
    /// The source text the example was generated from (its chunk with the neighbours of its context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<ModelView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<ModelView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_similarity: Option<f32>,
    /// The newer version of the source document that replaced this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Rejections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_output: Option<String>,
    pub at_ms: i64,
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn turns(messages: &[distillery_core::Message]) -> Vec<TurnView> {
    messages
        .iter()
        .map(|m| TurnView {
            role: role(m.role).to_string(),
            content: m.content.clone(),
            chunk_ids: m.chunk_ids.clone(),
        })
        .collect()
}

impl ExampleView {
    fn empty(id: &str, kind: &str, at_ms: i64) -> Self {
        ExampleView {
            id: id.to_string(),
            kind: kind.to_string(),
            question: None,
            answer: None,
            messages: Vec::new(),
            reasoning: None,
            question_type: None,
            difficulty: None,
            evidence: None,
            scores: None,
            rationale: None,
            attempt: None,
            document_id: None,
            chunk_id: None,
            context_id: None,
            source_uri: None,
            context_text: None,
            generator: None,
            judge: None,
            previous: None,
            nearest_similarity: None,
            superseded_by: None,
            reason: None,
            detail: None,
            stage: None,
            raw_output: None,
            at_ms,
        }
    }

    fn with_draft(mut self, d: &Draft) -> Self {
        self.kind = d.kind.as_str().to_string();
        if d.kind == DraftKind::Qa {
            self.question = Some(d.question().to_string());
            self.answer = Some(d.answer().to_string());
        }
        self.messages = turns(&d.messages);
        self.reasoning = d.reasoning.clone();
        self.question_type = d.question_type.clone();
        self.difficulty = d.difficulty.clone();
        self.evidence = d.evidence.clone();
        self.attempt = Some(d.attempt);
        self.superseded_by = d.superseded_by.clone();
        self.document_id = Some(d.document_id.clone());
        self.chunk_id = Some(d.chunk_id.clone());
        self.context_id = Some(d.context_id.clone());
        self.context_text = Some(d.context_text.clone()).filter(|t| !t.is_empty());
        self.generator = Some((&d.generator).into());
        self.previous = d.previous.as_ref().map(|p| PreviousView {
            draft_id: p.draft_id.clone(),
            messages: turns(&p.messages),
            scores: p.scores,
            rationale: p.rationale.clone(),
            preference: p.preference.clone(),
        });
        self
    }

    pub fn accepted(a: &Accepted) -> Self {
        let j = &a.judged;
        let mut v = ExampleView::empty(&a.id, "qa", a.accepted_at_ms).with_draft(&j.draft);
        v.scores = Some(j.scores);
        v.rationale = Some(j.rationale.clone());
        v.judge = Some((&j.judge).into());
        v.nearest_similarity = a.nearest_similarity;
        v
    }

    pub fn rejected(r: &Rejected) -> Self {
        let kind = match r.subject_kind {
            distillery_core::SubjectKind::Document => "document",
            distillery_core::SubjectKind::Chunk => "chunk",
            distillery_core::SubjectKind::Draft => "draft",
            distillery_core::SubjectKind::Object => "object",
        };
        let mut v = ExampleView::empty(&r.subject_id, kind, r.rejected_at_ms);
        if let Some(d) = &r.draft {
            v = v.with_draft(d);
        }
        v.document_id = r.document_id.clone().or(v.document_id);
        v.chunk_id = r.chunk_id.clone().or(v.chunk_id);
        v.source_uri = r.source.as_ref().map(|s| s.uri());
        v.scores = r.scores;
        v.rationale = r.rationale.clone();
        v.reason = Some(r.reason.as_str().to_string());
        v.detail = Some(r.detail.clone());
        v.stage = Some(r.stage.clone());
        v.raw_output = r.raw_output.clone();
        v
    }
}

/// A document as extraction found it (`documents.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentView {
    pub id: String,
    pub uri: String,
    pub media_type: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<i32>,
    pub pii_counts: std::collections::BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    pub at_ms: i64,
    /// The ids of its chunks, in order, once extracted: a record of an earlier version whose chunk this
    /// version still has (an edit left it unchanged) is current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunk_ids: Vec<String>,
}

impl From<&distillery_core::Document> for DocumentView {
    fn from(d: &distillery_core::Document) -> Self {
        DocumentView {
            id: d.id.clone(),
            uri: d.source.uri(),
            media_type: d.media_type.clone(),
            size: d.size,
            pages: d.pages,
            chunks: d.chunks,
            pii_counts: d.pii_counts.clone(),
            supersedes: d.supersedes.clone(),
            superseded_by: None,
            at_ms: d.discovered_at_ms,
            chunk_ids: d.chunk_ids.clone(),
        }
    }
}

/// A dead-lettered message, with its payload in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub id: String,
    pub stage: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub error_kind: String,
    pub error: String,
    pub attempts: i32,
    pub payload_base64: String,
    pub at_ms: i64,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        DeadLetterView {
            id: d.id.clone(),
            stage: d.stage.clone(),
            topic: d.topic.clone(),
            partition: d.partition,
            offset: d.offset,
            error_kind: d.error_kind.clone(),
            error: d.error.clone(),
            attempts: d.attempts,
            payload_base64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &d.payload),
            at_ms: d.failed_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;

    #[test]
    fn accepted_view_is_flat_and_complete() {
        let a =
            Accepted { id: "d1".into(), judged: fixtures::judged(), nearest_similarity: Some(0.5), accepted_at_ms: 5 };
        let v = ExampleView::accepted(&a);
        assert_eq!(v.question.as_deref(), Some("How many days of paid leave do employees get?"));
        assert_eq!(v.answer.as_deref(), Some("25 days."));
        assert_eq!(v.scores.unwrap().overall, 5);
        assert!(v.previous.is_some());
        let json = serde_json::to_string(&v).unwrap();
        let back: ExampleView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
