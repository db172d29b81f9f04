//! What changes a dataset after its run: versions written by `distillery rejudge` (each re-decides
//! retained drafts with another judge or threshold) and a person's reviews from the review page. Neither
//! rewrites the run's records: they are kept beside them, and [`Overrides::current`] gives the record that
//! stands for each draft (a review above the latest version above the run's own outcome), which every
//! export applies.

use std::collections::HashMap;

use distillery_core::{Accepted, Judged, ModelCall, Record, RejectReason, Rejected, Role, Scores, ids};
use serde::{Deserialize, Serialize};

use crate::subject_draft;

/// Who decided an outcome after the run: the `stage` of the rejections they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// `distillery rejudge`.
    Rejudge,
    /// A person on the review page.
    Review,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Rejudge => "rejudge",
            DecidedBy::Review => "review",
        }
    }
}

/// One dataset version after the run (the run's own outcomes are version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    pub version: u64,
    pub kind: DecidedBy,
    /// The judge model that re-scored (`stored-scores` when only the threshold changed).
    pub judge_model: String,
    pub threshold: i32,
    /// Drafts re-decided.
    pub judged: u64,
    pub newly_accepted: u64,
    pub newly_rejected: u64,
    pub llm_calls: u64,
    pub created_at_ms: i64,
}

/// What a person did with a draft on the review page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    /// Training data, whatever the judge said.
    Accept,
    /// Not training data, whatever the judge said.
    Reject,
    /// Training data with the question and answer as the person wrote them.
    Edit,
}

impl ReviewAction {
    pub const ALL: [ReviewAction; 3] = [ReviewAction::Accept, ReviewAction::Reject, ReviewAction::Edit];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewAction::Accept => "accept",
            ReviewAction::Reject => "reject",
            ReviewAction::Edit => "edit",
        }
    }

    pub fn from_name(name: &str) -> Option<ReviewAction> {
        ReviewAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// A person's word on a draft (the last one stands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub draft_id: String,
    pub action: ReviewAction,
    /// For [`ReviewAction::Edit`]: the new first question and last answer.
    pub question: Option<String>,
    pub answer: Option<String>,
    pub note: Option<String>,
    pub reviewed_at_ms: i64,
}

/// The model call a reviewer's acceptance is recorded with (no model judged it).
fn reviewer_call() -> ModelCall {
    ModelCall {
        provider: DecidedBy::Review.as_str().into(),
        model: "reviewer".into(),
        temperature: 0.0,
        max_tokens: 0,
        seed: None,
        template: DecidedBy::Review.as_str().into(),
        template_hash: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0,
    }
}

impl Review {
    /// The record that stands once this review applies to `record` (an accepted or rejected draft).
    pub fn apply(&self, record: Record) -> Record {
        let note = self.note.clone().filter(|n| !n.trim().is_empty());
        match (self.action, record) {
            (ReviewAction::Reject, Record::Accepted(a)) => {
                let detail = format!("rejected by a reviewer{}", note.map(|n| format!(": {n}")).unwrap_or_default());
                let mut r =
                    Rejected::of(&Record::Judged(a.judged), DecidedBy::Review.as_str(), RejectReason::Filtered, detail);
                r.rejected_at_ms = self.reviewed_at_ms;
                Record::Rejected(r)
            }
            (ReviewAction::Accept | ReviewAction::Edit, record) => {
                let judged = match record {
                    Record::Accepted(a) => a.judged,
                    Record::Rejected(Rejected { draft: Some(draft), scores, rationale, .. }) => Judged {
                        id: ids::hash_parts(&["judged", &draft.id, DecidedBy::Review.as_str()]),
                        draft,
                        scores: scores.unwrap_or(Scores {
                            overall: 0,
                            faithfulness: 0,
                            correctness: 0,
                            clarity: 0,
                            usefulness: 0,
                        }),
                        rationale: note.clone().or(rationale).unwrap_or_else(|| "accepted by a reviewer".into()),
                        passed: true,
                        judge: reviewer_call(),
                        judged_at_ms: self.reviewed_at_ms,
                    },
                    other => return other,
                };
                let mut judged = judged;
                if self.action == ReviewAction::Edit {
                    let messages = &mut judged.draft.messages;
                    if let (Some(q), Some(m)) =
                        (self.question.as_ref(), messages.iter_mut().find(|m| m.role == Role::User))
                    {
                        m.content = q.clone();
                    }
                    if let (Some(a), Some(m)) =
                        (self.answer.as_ref(), messages.iter_mut().rev().find(|m| m.role == Role::Assistant))
                    {
                        m.content = a.clone();
                    }
                }
                Record::Accepted(Accepted {
                    id: ids::hash_parts(&["accepted", &judged.draft.id, DecidedBy::Review.as_str()]),
                    judged,
                    nearest_similarity: None,
                    accepted_at_ms: self.reviewed_at_ms,
                })
            }
            (ReviewAction::Reject, other) => other,
        }
    }
}

/// What stands above the run's outcomes: the latest version's decision and the review of each draft.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Draft id -> the outcome the latest version gave it.
    pub decided: HashMap<String, Record>,
    /// Draft id -> a person's review.
    pub reviews: HashMap<String, Review>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty() && self.reviews.is_empty()
    }

    /// The record that stands in place of a run's outcome `record` (itself when nothing overrides it).
    pub fn current(&self, record: Record) -> Record {
        let Some(draft) = subject_draft(&record).map(|d| d.id.clone()) else { return record };
        let record = self.decided.get(&draft).cloned().unwrap_or(record);
        match self.reviews.get(&draft) {
            Some(review) => review.apply(record),
            None => record,
        }
    }
}

/// The id of a record a version decides for a draft: distinct per version, so versions never collide.
pub fn version_record_id(kind: &str, draft_id: &str, version: u64) -> String {
    ids::hash_parts(&[kind, draft_id, "version", &version.to_string()])
}
