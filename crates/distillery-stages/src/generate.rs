//! Generate: a chunk (with its context) becomes several question/answer drafts in one schema-constrained
//! call; a `Regenerate` becomes one improved answer to the same question, written with the critic's
//! feedback, and remembers the low-scored attempt for DPO pairs.

use std::sync::Arc;

use distillery_core::{
    Chunk, Draft, DraftKind, Input, Message, ModelCall, PriorAttempt, Record, Regenerate, RejectReason, Rejected, Role,
    Stage, StageError, Topic, ids, now_ms,
};
use distillery_llm::{ChatMessage, ChatRequest, LlmClient, OutputSchema};
use serde::{Deserialize, Serialize};

use crate::prompts::{self, QaReply, RegenerateReply};
use crate::quality::{self, QualityConfig};

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Question/answer pairs asked for per chunk: several per call amortise the context's tokens.
    pub pairs_per_chunk: usize,
    /// Longest question the output schema allows, in characters.
    pub max_question_chars: usize,
    /// Longest answer (and evidence) the output schema allows, in characters.
    pub max_answer_chars: usize,
    /// Extra instructions appended to every generation task.
    pub extra_instructions: Option<String>,
    /// Deterministic checks before any judge tokens are spent.
    pub quality: QualityConfig,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            pairs_per_chunk: 3,
            max_question_chars: 200,
            max_answer_chars: 500,
            extra_instructions: None,
            quality: QualityConfig::default(),
        }
    }
}

impl GenerateConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !(1..=20).contains(&self.pairs_per_chunk) {
            errors.push(format!("{section}.pairs_per_chunk must be in 1..=20 (got {})", self.pairs_per_chunk));
        }
        if self.max_question_chars < 20 || self.max_answer_chars < 20 {
            errors.push(format!("{section}.max_question_chars and max_answer_chars must be >= 20"));
        }
        self.quality.validate(&format!("{section}.quality"), errors);
    }
}

/// A per-request seed derived from an id: a replay asks the server the same question the same way.
pub fn seed_of(id: &str) -> u64 {
    u64::from_str_radix(&ids::hash_parts(&[id])[..15], 16).unwrap_or(0)
}

/// Shares of a call's usage over `n` records (the first absorbs the remainder).
fn share(total: u32, n: usize, i: usize) -> i32 {
    let n = n.max(1) as u32;
    (total / n + if i == 0 { total % n } else { 0 }) as i32
}

/// The generate stage.
#[derive(Debug)]
pub struct Generate {
    pub llm: Arc<LlmClient>,
    pub cfg: GenerateConfig,
}

impl Generate {
    /// The generator's parameters, with this record's share of the call's tokens.
    fn model_call(
        &self,
        template: &str,
        template_hash: &str,
        seed: u64,
        tokens: (i32, i32),
        latency_ms: u128,
    ) -> ModelCall {
        let c = self.llm.config();
        ModelCall {
            provider: c.provider.as_str().to_string(),
            model: c.model.clone(),
            temperature: c.temperature,
            max_tokens: c.max_tokens as i32,
            seed: Some(seed as i64),
            template: template.to_string(),
            template_hash: template_hash.to_string(),
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            latency_ms: latency_ms.min(i32::MAX as u128) as i32,
        }
    }

    async fn pairs_for_chunk(&self, chunk: &Chunk) -> Result<Vec<Record>, StageError> {
        let n = self.cfg.pairs_per_chunk;
        let extra = self.cfg.extra_instructions.as_deref();
        let template_hash = prompts::template_hash(&[
            prompts::SYSTEM,
            prompts::QA_TEMPLATE,
            &n.to_string(),
            extra.unwrap_or_default(),
            &self.cfg.max_answer_chars.to_string(),
        ]);
        let seed = seed_of(&chunk.id);
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(prompts::SYSTEM),
            ChatMessage::user(format!(
                "{}{}",
                prompts::context_block(&chunk.context_text),
                prompts::qa_task(&chunk.text, n, &[], extra)
            )),
        ]);
        req.seed = Some(seed);
        req.schema = Some(OutputSchema {
            name: "qa_pairs".into(),
            schema: prompts::qa_schema(n, self.cfg.max_question_chars, self.cfg.max_answer_chars),
        });
        let out = self
            .llm
            .chat_json::<QaReply, _>(req, |r: &QaReply| {
                if r.pairs.iter().any(|p| !p.question.trim().is_empty() && !p.answer.trim().is_empty()) {
                    Ok(())
                } else {
                    Err("no pair has both a question and an answer".into())
                }
            })
            .await?;
        let reasoning = out.response.reasoning.clone();
        let latency = out.response.latency.as_millis();
        let mut kept: Vec<prompts::QaPair> = Vec::new();
        for p in out.value.pairs.into_iter().take(n) {
            let (q, a) = (p.question.trim(), p.answer.trim());
            if q.is_empty() || a.is_empty() || kept.iter().any(|k| quality::near_duplicate(&k.question, q)) {
                continue;
            }
            kept.push(p);
        }
        let total = kept.len();
        let mut records = Vec::with_capacity(total);
        for (i, p) in kept.into_iter().enumerate() {
            let tokens = (share(out.usage.prompt_tokens, total, i), share(out.usage.completion_tokens, total, i));
            let model = self.model_call(prompts::QA_TEMPLATE, &template_hash, seed, tokens, latency);
            let id = ids::hash_parts(&[
                "draft",
                &chunk.id,
                DraftKind::Qa.as_str(),
                &template_hash,
                &model.model,
                "1",
                &i.to_string(),
            ]);
            let mut q = Message::new(Role::User, p.question.trim());
            q.chunk_ids = vec![chunk.id.clone()];
            let mut a = Message::new(Role::Assistant, p.answer.trim());
            a.chunk_ids = chunk.context_chunk_ids.clone();
            let evidence = p.evidence.filter(|e| !e.trim().is_empty());
            let draft = Draft {
                id,
                kind: DraftKind::Qa,
                document_id: chunk.document_id.clone(),
                chunk_id: chunk.id.clone(),
                context_id: chunk.context_id.clone(),
                context_text: chunk.context_text.clone(),
                messages: vec![q, a],
                reasoning: reasoning.clone(),
                question_type: p.question_type,
                difficulty: p.difficulty,
                evidence,
                attempt: 1,
                parent_ids: vec![chunk.id.clone()],
                generator: model,
                previous: None,
                created_at_ms: now_ms(),
                superseded_by: chunk.superseded_by.clone(),
            };
            match quality::check_pair(draft.question(), draft.answer(), &chunk.context_text, &self.cfg.quality) {
                Ok(()) => records.push(Record::Draft(draft)),
                Err((reason, detail)) => {
                    let rejected = Rejected::of(&Record::Draft(draft), "generate", reason, detail);
                    records.push(Record::Rejected(rejected));
                }
            }
        }
        tracing::debug!(chunk = %chunk.id, drafts = records.len(), prompt_tokens = out.usage.prompt_tokens,
            completion_tokens = out.usage.completion_tokens, "generated");
        Ok(records)
    }

    async fn regenerate(&self, regen: &Regenerate) -> Result<Vec<Record>, StageError> {
        let judged = &regen.judged;
        let prev = &judged.draft;
        let template_hash = prompts::template_hash(&[
            prompts::SYSTEM,
            prompts::REGENERATE_TEMPLATE,
            &self.cfg.max_answer_chars.to_string(),
        ]);
        let seed = seed_of(&regen.id);
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(prompts::SYSTEM),
            ChatMessage::user(format!(
                "{}{}",
                prompts::context_block(&prev.context_text),
                prompts::regenerate_task(prev.question(), prev.answer(), judged.scores.overall, &judged.rationale)
            )),
        ]);
        req.seed = Some(seed);
        req.schema =
            Some(OutputSchema { name: "answer".into(), schema: prompts::regenerate_schema(self.cfg.max_answer_chars) });
        let out = self
            .llm
            .chat_json::<RegenerateReply, _>(req, |r: &RegenerateReply| {
                if r.answer.trim().is_empty() { Err("answer is empty".into()) } else { Ok(()) }
            })
            .await?;
        let attempt = prev.attempt + 1;
        let tokens = (out.usage.prompt_tokens as i32, out.usage.completion_tokens as i32);
        let model = self.model_call(
            prompts::REGENERATE_TEMPLATE,
            &template_hash,
            seed,
            tokens,
            out.response.latency.as_millis(),
        );
        let id = ids::hash_parts(&["draft", &prev.id, &template_hash, &model.model, &attempt.to_string()]);
        let mut messages = prev.messages.clone();
        if let Some(last) = messages.iter_mut().rev().find(|m| m.role == Role::Assistant) {
            last.content = out.value.answer.trim().to_string();
        }
        let mut parent_ids = vec![prev.chunk_id.clone(), prev.id.clone()];
        parent_ids.dedup();
        Ok(vec![Record::Draft(Draft {
            id,
            messages,
            reasoning: out.response.reasoning.clone(),
            evidence: out.value.evidence.filter(|e| !e.trim().is_empty()),
            attempt,
            parent_ids,
            generator: model,
            previous: Some(PriorAttempt {
                draft_id: prev.id.clone(),
                messages: prev.messages.clone(),
                scores: judged.scores,
                rationale: judged.rationale.clone(),
            }),
            created_at_ms: now_ms(),
            ..prev.clone()
        })])
    }
}

impl Stage for Generate {
    fn name(&self) -> &'static str {
        "generate"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Chunks, Topic::Regenerate]
    }

    fn default_concurrency(&self) -> usize {
        self.llm.concurrency()
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        match input.as_record() {
            Some(Record::Chunk(chunk)) => self.pairs_for_chunk(chunk).await,
            Some(Record::Regenerate(regen)) => match self.regenerate(regen).await {
                Ok(r) => Ok(r),
                // The first draft is accounted for by the rejection: it carries the scores it got.
                Err(e) if matches!(e.disposition, distillery_core::Disposition::Reject(_)) => {
                    let judged = &regen.judged;
                    let reason = match e.disposition {
                        distillery_core::Disposition::Reject(r) => r,
                        _ => RejectReason::LlmError,
                    };
                    let mut r = Rejected::of(
                        &Record::Judged(judged.clone()),
                        "generate",
                        reason,
                        format!("regeneration failed: {}", e.message),
                    );
                    r.raw_output = e.raw_output.clone();
                    Ok(vec![Record::Rejected(r)])
                }
                Err(e) => Err(e),
            },
            _ => Err(StageError::dead_letter("unexpected_input", "generate consumes chunks and regenerate requests")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_shares_add_up() {
        let total: i32 = (0..3).map(|i| share(100, 3, i)).sum();
        assert_eq!(total, 100);
        assert_eq!(share(7, 0, 0), 7);
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(seed_of("a"), seed_of("a"));
        assert_ne!(seed_of("a"), seed_of("b"));
    }
}
