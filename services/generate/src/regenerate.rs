//! Regeneration: a low-scored draft rewritten once with the critic's feedback, or a first draft whose answer
//! failed a check rewritten once with the check's finding (a repair). The new draft remembers the attempt it
//! replaces, for DPO pairs; a rewrite that repeats the draft unchanged is rejected without judging it again.

use distillery_core::{
    Disposition, Draft, DraftBatch, DraftKind, Message, PriorAttempt, Record, Regenerate, RejectReason, Role, Scores,
    StageError, ids, now_ms,
};
use distillery_prompts::templates::RegenerateReply;
use distillery_prompts::{Task, seed_of, templates, transcript};

use distillery_quality::draft as quality;

use crate::{Generate, grounding, screened, unredone};

/// The scores of a draft no model scored (a repair request comes from the checks).
const NOT_SCORED: Scores = Scores { overall: 0, faithfulness: 0, correctness: 0, clarity: 0, usefulness: 0 };

/// One rewrite's outcome, handed to each member of a gathered group.
pub(crate) type Rewritten = Result<Vec<Record>, StageError>;

impl Generate {
    /// A QA rewrite waits (`gather_wait_ms`) for the other rewrites of its context that arrive with it (the
    /// repairs of one generation call, the regenerations of one judged batch); they are made at once, and
    /// their new drafts leave as one batch, so the judge scores them in one call (and one answer call)
    /// instead of a pair of calls each. A conversation's rewrite goes alone, as the judge scores it alone.
    pub(crate) async fn regenerate_gathered(&self, regen: &Regenerate) -> Result<Vec<Record>, StageError> {
        if self.cfg.gather_wait_ms == 0 || regen.draft.kind != DraftKind::Qa {
            return self.rewrite(regen).await;
        }
        let key = regen.draft.context_id.clone();
        let evaluate = |group: Vec<Regenerate>| async move {
            let rewritten = futures::future::join_all(group.iter().map(|r| self.rewrite(r))).await;
            tracing::debug!(rewrites = group.len(), context = %key, "rewrites of one context made together");
            Ok::<_, StageError>(judged_together(rewritten))
        };
        // Complete only when the wait ends: the rewrites of a context come from several upstream calls.
        let complete = |_: &[Regenerate]| false;
        self.rewrites.join(&regen.draft.context_id, regen.clone(), complete, evaluate).await?
    }

    /// The rewrite's records: its new draft, or the rejection that accounts for the draft it was to replace.
    async fn rewrite(&self, regen: &Regenerate) -> Rewritten {
        match self.regenerate(regen).await {
            Ok(r) => Ok(r),
            // The first draft is accounted for by the rejection: it carries the scores it got.
            Err(e) if matches!(e.disposition, Disposition::Reject(_)) => {
                let reason = match e.disposition {
                    Disposition::Reject(r) => r,
                    _ => RejectReason::LlmError,
                };
                let detail = match regen.failed_check() {
                    Some((_, finding)) => format!("{finding}; its repair failed: {}", e.message),
                    None => format!("regeneration failed: {}", e.message),
                };
                let mut r = unredone(regen, reason, detail);
                r.raw_output = e.raw_output.clone();
                Ok(vec![Record::Rejected(r)])
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn regenerate(&self, regen: &Regenerate) -> Result<Vec<Record>, StageError> {
        let prev = &regen.draft;
        let feedback = regen.feedback();
        let assistant_turns = prev.messages.iter().filter(|m| m.role == Role::Assistant).count().max(1);
        let flaw = regen.failed_check().map(|(reason, _)| reason);
        let scores = regen.scores().unwrap_or(NOT_SCORED);
        let task_name = if flaw.is_some() { Task::Repair } else { Task::Regenerate };
        let (template, text) = self.caller.templates.task(task_name);
        // A QA pair's evidence is the sentence it was planned on: the rewrite is given it, not asked for it.
        let known_evidence = match prev.kind {
            DraftKind::Qa => prev.evidence.as_deref().filter(|e| !e.trim().is_empty()),
            DraftKind::Conversation => None,
        };
        // One set of variables for both templates: validation keeps each template to its own placeholders.
        let task = templates::render(
            text,
            &[
                ("overall", &scores.overall.to_string()),
                ("rationale", &templates::neutralize(feedback)),
                ("finding", &templates::neutralize(feedback)),
                ("evidence", &templates::evidence_section(known_evidence)),
                ("example", &templates::neutralize(&transcript(prev))),
                ("instructions", &templates::regenerate_instructions(assistant_turns, known_evidence.is_some())),
            ],
        );
        let template_hash = self.caller.templates.hash(
            task_name,
            &[&self.cfg.max_answer_chars.to_string(), if known_evidence.is_some() { "evidence-given" } else { "" }],
        );
        let seed = seed_of(&regen.id);
        let req = self.caller.request(
            &prev.context_text,
            task,
            seed,
            "improved",
            templates::regenerate_schema(assistant_turns, self.cfg.max_answer_chars, known_evidence.is_some()),
        );
        let out = self
            .caller
            .call(&prev.document_id, req, |r: &RegenerateReply| {
                if r.answers.len() != assistant_turns || r.answers.iter().any(|a| a.trim().is_empty()) {
                    Err(format!("answers must hold {assistant_turns} non-empty replies"))
                } else {
                    Ok(())
                }
            })
            .await?;
        let attempt = prev.attempt + 1;
        let model = self.caller.model_call(template, &template_hash, seed, out.usage, out.response.latency);
        let id = ids::hash_parts(&["draft", &prev.id, &template_hash, &model.model, &attempt.to_string()]);
        let mut messages = prev.messages.clone();
        let mut answers = out.value.answers.iter();
        for m in messages.iter_mut().filter(|m| m.role == Role::Assistant) {
            if let Some(a) = answers.next() {
                m.content = a.trim().to_string();
            }
        }
        // The same answers again cannot be better: judging them twice would only sample the critic's noise.
        let answers_of = |ms: &[Message]| -> Vec<String> {
            let words = |m: &Message| m.content.split_whitespace().collect::<Vec<_>>().join(" ");
            ms.iter().filter(|m| m.role == Role::Assistant).map(words).collect()
        };
        if answers_of(&messages) == answers_of(&prev.messages) {
            let r = match flaw {
                Some(reason) => unredone(regen, reason, format!("{feedback} (the repair repeated it unchanged)")),
                None => unredone(
                    regen,
                    RejectReason::LowScore,
                    format!("scored {}/5 and the regeneration repeated it unchanged: {feedback}", scores.overall),
                ),
            };
            return Ok(vec![Record::Rejected(r)]);
        }
        let last_answer =
            messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone()).unwrap_or_default();
        let chunk_ids: Vec<String> = prev.parent_ids.first().cloned().into_iter().collect();
        let evidence = out.value.evidence.as_deref().or(known_evidence);
        let support = grounding::support(&prev.context_text, &chunk_ids, evidence, &last_answer);
        let mut parent_ids = vec![prev.chunk_id.clone(), prev.id.clone()];
        parent_ids.dedup();
        let draft = Draft {
            id,
            messages,
            reasoning: out.response.reasoning.clone().or(prev.reasoning.clone()),
            evidence: support.map(|s| s.quote).or(prev.evidence.clone()),
            attempt,
            parent_ids,
            generator: model,
            previous: Some(PriorAttempt {
                draft_id: prev.id.clone(),
                messages: prev.messages.clone(),
                scores,
                rationale: feedback.to_string(),
                preference: None,
            }),
            created_at_ms: now_ms(),
            batch: None,
            ..prev.clone()
        };
        let question = draft.question().to_string();
        let checked = if draft.kind == DraftKind::Qa {
            let result = quality::check_not_feedback(&last_answer, feedback, &prev.context_text)
                .and_then(|()| quality::check_pair(&question, &last_answer, &prev.context_text, &self.cfg.quality))
                .and_then(|()| quality::check_on_evidence(&question, &last_answer, known_evidence, &self.cfg.quality));
            screened(draft, result)
        } else {
            self.checked_conversation(draft, &prev.context_text, Some(feedback))
        };
        Ok(vec![checked])
    }
}

/// The new drafts of rewrites made together become one batch (the judge gathers a batch by its id and scores
/// it once all `size` members are in); a lone draft needs none.
fn judged_together(mut rewritten: Vec<Rewritten>) -> Vec<Rewritten> {
    let members: Vec<&str> = rewritten
        .iter()
        .flatten()
        .flatten()
        .filter_map(|r| if let Record::Draft(d) = r { Some(d.id.as_str()) } else { None })
        .collect();
    let size = members.len() as i32;
    if size < 2 {
        return rewritten;
    }
    let id = ids::hash_parts(&[vec!["rewrites"], members].concat());
    let drafts = rewritten.iter_mut().flatten().flatten().filter_map(|r| match r {
        Record::Draft(d) => Some(d),
        _ => None,
    });
    for (index, d) in drafts.enumerate() {
        d.batch = Some(DraftBatch { id: id.clone(), index: index as i32, size });
    }
    rewritten
}
