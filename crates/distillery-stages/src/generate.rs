//! Generate: a chunk (with its context) becomes training drafts in one schema-constrained call: several
//! question/answer pairs, or a multi-turn conversation. A `Regenerate` becomes one improved version of a
//! low-scored draft, written with the critic's feedback, remembering the low-scored attempt for DPO pairs.
//!
//! Variety: the prompt lists the questions already asked about the same document (a bounded memory), and
//! each request carries its own seed. Grounding: every answer's supporting span is verified against the
//! context and traced to its chunk; cheap checks reject bad pairs before any judge tokens are spent.
//!
//! Repair: a first draft whose question is sound but whose answer fails a check (numbers or words the
//! context lacks, talk about "the context", an answer repeating its question, shifted conversation turns)
//! goes to `regenerate` once with the check's finding instead of being rejected at once. Its verdict is the
//! checks' (`judge.provider` [`CHECKS`], scores 0: no model scored it); an accepted repair makes a DPO pair
//! whose rejected side is the flawed draft, the most useful kind of negative.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use distillery_core::{
    Chunk, Draft, DraftKind, Input, Judged, Message, ModelCall, PriorAttempt, Record, Regenerate, RejectReason,
    Rejected, Role, Scores, Stage, StageError, Topic, ids, now_ms,
};
use distillery_llm::{ChatMessage, ChatRequest, LlmClient, OutputSchema, Usage};
use serde::{Deserialize, Serialize};

use crate::grounding;
use crate::prompts::{self, ConversationReply, QaReply, RegenerateReply, Templates};
use crate::quality::{self, QualityConfig};
use crate::usage::{Ledger, QuestionMemory};

/// A kind of example to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Qa,
    Conversation,
}

/// Where reasoning traces come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reasoning {
    /// Keep what a reasoning model emits (`<think>`, `reasoning_content`, thinking blocks); ask for nothing.
    Model,
    /// Also ask every QA pair for its step-by-step reasoning in a `reasoning` field (for models that do not
    /// think aloud; costs completion tokens).
    Explicit,
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// Kinds of examples generated; a chunk gets one call of one kind.
    pub modes: Vec<Mode>,
    /// Share of chunks (0-1) that get a conversation when both modes are on; chosen by chunk id, so stable.
    pub conversation_share: f32,
    /// Exchanges (user + assistant) per conversation.
    pub conversation_turns: usize,
    /// Question/answer pairs asked for per chunk: several per call amortise the context's tokens.
    pub pairs_per_chunk: usize,
    /// Longest question the output schema allows, in characters.
    pub max_question_chars: usize,
    /// Longest answer (and evidence) the output schema allows, in characters.
    pub max_answer_chars: usize,
    /// Where reasoning traces come from.
    pub reasoning: Reasoning,
    /// Questions already asked about a document that later prompts list to avoid (0 disables).
    pub memory: usize,
    /// Sampling temperature of generation requests (unset: the model's configured temperature).
    pub temperature: Option<f32>,
    /// Extra instructions appended to every generation task.
    pub extra_instructions: Option<String>,
    /// A system prompt replacing the built-in one (for every role of this service).
    pub system_prompt: Option<String>,
    /// Template files replacing built-in task prompts: keys `qa`, `conversation`, `regenerate`, `repair`.
    pub templates: BTreeMap<String, PathBuf>,
    /// Deterministic checks before any judge tokens are spent.
    pub quality: QualityConfig,
    /// A first draft whose answers fail a check gets one rewrite with the check's finding (and, if the
    /// rewrite is accepted, a DPO pair against the flawed draft) instead of an immediate rejection.
    pub repair: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            modes: vec![Mode::Qa, Mode::Conversation],
            conversation_share: 0.25,
            conversation_turns: 3,
            pairs_per_chunk: 3,
            max_question_chars: 200,
            max_answer_chars: 500,
            reasoning: Reasoning::Model,
            memory: 16,
            temperature: None,
            extra_instructions: None,
            system_prompt: None,
            templates: BTreeMap::new(),
            quality: QualityConfig::default(),
            repair: true,
        }
    }
}

impl GenerateConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.modes.is_empty() {
            errors.push(format!("{section}.modes must name at least one of qa, conversation"));
        }
        if !(0.0..=1.0).contains(&self.conversation_share) {
            errors.push(format!("{section}.conversation_share must be in [0, 1]"));
        }
        if !(1..=8).contains(&self.conversation_turns) {
            errors.push(format!("{section}.conversation_turns must be in 1..=8 (got {})", self.conversation_turns));
        }
        if !(1..=20).contains(&self.pairs_per_chunk) {
            errors.push(format!("{section}.pairs_per_chunk must be in 1..=20 (got {})", self.pairs_per_chunk));
        }
        if self.max_question_chars < 20 || self.max_answer_chars < 20 {
            errors.push(format!("{section}.max_question_chars and max_answer_chars must be >= 20"));
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            errors.push(format!("{section}.temperature must be in [0, 2]"));
        }
        if self.templates.contains_key("judge") {
            errors.push(format!("{section}.templates: the judge template belongs to the judge's configuration"));
        }
        if let Err(e) = self.templates() {
            errors.extend(e.into_iter().map(|e| format!("{section}.{e}")));
        }
        self.quality.validate(&format!("{section}.quality"), errors);
    }

    /// The prompts in force.
    pub fn templates(&self) -> Result<Templates, Vec<String>> {
        Templates::with_overrides(self.system_prompt.clone(), &self.templates)
    }

    /// The kind of example a chunk gets.
    pub fn mode_for(&self, chunk_id: &str) -> Mode {
        match (self.modes.contains(&Mode::Qa), self.modes.contains(&Mode::Conversation)) {
            (true, true) => {
                let bucket = u64::from_str_radix(&ids::hash_parts(&["mode", chunk_id])[..8], 16).unwrap_or(0) % 1000;
                if (bucket as f32) < self.conversation_share * 1000.0 { Mode::Conversation } else { Mode::Qa }
            }
            (false, true) => Mode::Conversation,
            _ => Mode::Qa,
        }
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
    pub templates: Templates,
    pub memory: QuestionMemory,
    pub ledger: Option<Arc<Ledger>>,
}

impl Generate {
    /// A stage with its templates loaded and a question memory sized by the configuration.
    pub fn new(llm: Arc<LlmClient>, cfg: GenerateConfig, ledger: Option<Arc<Ledger>>) -> Result<Generate, Vec<String>> {
        let templates = cfg.templates()?;
        let memory = QuestionMemory::new(cfg.memory, 10_000);
        Ok(Generate { llm, cfg, templates, memory, ledger })
    }

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
            temperature: self.cfg.temperature.unwrap_or(c.temperature),
            max_tokens: c.max_tokens as i32,
            seed: Some(seed as i64),
            template: template.to_string(),
            template_hash: template_hash.to_string(),
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            latency_ms: latency_ms.min(i32::MAX as u128) as i32,
        }
    }

    fn request(
        &self,
        context: &str,
        task: String,
        seed: u64,
        schema_name: &str,
        schema: serde_json::Value,
    ) -> ChatRequest {
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(self.templates.system.clone()),
            ChatMessage::user(format!("{}{task}", prompts::context_block(context))),
        ]);
        req.seed = Some(seed);
        req.temperature = self.cfg.temperature;
        req.schema = Some(OutputSchema { name: schema_name.into(), schema });
        req
    }

    /// Calls the model, charging the tokens to the document whatever the outcome.
    async fn call<T, F>(
        &self,
        document: &str,
        req: ChatRequest,
        check: F,
    ) -> Result<distillery_llm::Structured<T>, StageError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn(&T) -> Result<(), String>,
    {
        let mut usage = Usage::default();
        let out = self.llm.chat_json_metered(req, check, &mut usage).await;
        if let Some(l) = &self.ledger {
            l.add(document, "generator", usage, out.as_ref().map_or(1, |s| s.calls as u64));
        }
        out.map_err(StageError::from)
    }

    fn draft_base(
        &self,
        chunk: &Chunk,
        kind: DraftKind,
        messages: Vec<Message>,
        model: ModelCall,
        id: String,
    ) -> Draft {
        Draft {
            id,
            kind,
            document_id: chunk.document_id.clone(),
            chunk_id: chunk.id.clone(),
            context_id: chunk.context_id.clone(),
            context_text: chunk.context_text.clone(),
            messages,
            reasoning: None,
            question_type: None,
            difficulty: None,
            evidence: None,
            attempt: 1,
            parent_ids: vec![chunk.id.clone()],
            generator: model,
            previous: None,
            created_at_ms: now_ms(),
            superseded_by: chunk.superseded_by.clone(),
        }
    }

    /// A draft that passes its checks; or its rejection (a flaw in the question, or in a repair), which
    /// keeps it for inspection; or, for a first draft with a flawed answer, a repair request.
    fn checked(&self, draft: Draft, question: &str, answer: &str, context: &str) -> Record {
        let q = &self.cfg.quality;
        match quality::check_question(question, context, q) {
            Err(flaw) => screened(draft, Err(flaw)),
            Ok(()) => self.repaired_or_screened(draft, quality::check_reply(question, answer, context, q)),
        }
    }

    /// The turn-by-turn checks of a conversation (and, for a regeneration, that no answer copies the
    /// critic's feedback).
    fn checked_conversation(&self, draft: Draft, context: &str, feedback: Option<&str>) -> Record {
        let turns: Vec<(&str, &str)> = draft
            .messages
            .chunks(2)
            .filter_map(|p| match p {
                [u, a] if u.role == Role::User && a.role == Role::Assistant => {
                    Some((u.content.as_str(), a.content.as_str()))
                }
                _ => None,
            })
            .collect();
        if turns.is_empty() {
            let flaw = (RejectReason::InvalidRecord, "the conversation has no user/assistant exchange".to_string());
            return screened(draft, Err(flaw));
        }
        if let Err(flaw) = quality::check_users(&turns) {
            return screened(draft, Err(flaw));
        }
        let mut result = quality::check_replies(&turns, context, &self.cfg.quality);
        if let (Ok(()), Some(feedback)) = (&result, feedback) {
            result = turns.iter().try_for_each(|(_, a)| quality::check_not_feedback(a, feedback, context));
        }
        self.repaired_or_screened(draft, result)
    }

    /// A flaw in a first draft's answers sends it to one repair (when enabled); anything else is screened.
    fn repaired_or_screened(&self, draft: Draft, check: Result<(), (RejectReason, String)>) -> Record {
        match check {
            Err((reason, finding)) if self.cfg.repair && draft.attempt == 1 => {
                Record::Regenerate(repair_request(draft, reason, finding))
            }
            other => screened(draft, other),
        }
    }

    async fn qa(&self, chunk: &Chunk) -> Result<Vec<Record>, StageError> {
        let n = self.cfg.pairs_per_chunk;
        let explicit = self.cfg.reasoning == Reasoning::Explicit;
        let avoid: Vec<String> = self.memory.recall(&chunk.document_id).into_iter().rev().take(12).collect();
        let extra = self.cfg.extra_instructions.as_deref();
        let reasoning_field = if explicit { "reasoning (think step by step, briefly, before answering); " } else { "" };
        let (template, text) = self.templates.task("qa");
        let task = prompts::render(
            text,
            &[
                ("n", &n.to_string()),
                ("focus", &prompts::neutralize(&chunk.text)),
                ("reasoning", reasoning_field),
                ("avoid", &prompts::avoid_section(&avoid)),
                ("extra", &prompts::extra_section(extra)),
            ],
        );
        let template_hash = self.templates.hash(
            "qa",
            &[
                &n.to_string(),
                extra.unwrap_or_default(),
                &self.cfg.max_answer_chars.to_string(),
                if explicit { "explicit" } else { "model" },
            ],
        );
        let seed = seed_of(&chunk.id);
        let schema = prompts::qa_schema(n, self.cfg.max_question_chars, self.cfg.max_answer_chars, explicit);
        let req = self.request(&chunk.context_text, task, seed, "qa_pairs", schema);
        let out = self
            .call(&chunk.document_id, req, |r: &QaReply| {
                if r.pairs.iter().any(|p| !p.question.trim().is_empty() && !p.answer.trim().is_empty()) {
                    Ok(())
                } else {
                    Err("no pair has both a question and an answer".into())
                }
            })
            .await?;
        let call_reasoning = out.response.reasoning.clone();
        let latency = out.response.latency.as_millis();
        // Every pair the model wrote ends as a draft or a rejection with its reason: a pair repeating an
        // earlier question (in this reply or about this document) is kept for inspection, never judged.
        let mut pairs: Vec<(prompts::QaPair, Option<(RejectReason, String)>)> = Vec::new();
        for p in out.value.pairs.into_iter().take(n) {
            let q = p.question.trim();
            let verdict = if q.is_empty() || p.answer.trim().is_empty() {
                Some((RejectReason::InvalidRecord, "the pair has an empty question or answer".to_string()))
            } else if let Some((earlier, _)) =
                pairs.iter().find(|(k, v)| v.is_none() && quality::near_duplicate(&k.question, q))
            {
                Some((RejectReason::Duplicate, format!("repeats a question of the same reply: {:?}", earlier.question)))
            } else {
                avoid.iter().find(|old| quality::near_duplicate(old, q)).map(|old| {
                    (RejectReason::Duplicate, format!("repeats an earlier question about the document: {old:?}"))
                })
            };
            pairs.push((p, verdict));
        }
        self.memory.remember(
            &chunk.document_id,
            pairs.iter().filter(|(_, v)| v.is_none()).map(|(p, _)| p.question.trim().to_string()),
        );
        let total = pairs.len();
        let mut records = Vec::with_capacity(total);
        for (i, (p, verdict)) in pairs.into_iter().enumerate() {
            let tokens = (share(out.usage.prompt_tokens, total, i), share(out.usage.completion_tokens, total, i));
            let model = self.model_call(template, &template_hash, seed, tokens, latency);
            let id = ids::hash_parts(&[
                "draft",
                &chunk.id,
                DraftKind::Qa.as_str(),
                &template_hash,
                &model.model,
                "1",
                &i.to_string(),
            ]);
            let support =
                grounding::support(&chunk.context_text, &chunk.context_chunk_ids, p.evidence.as_deref(), &p.answer);
            let mut q = Message::new(Role::User, p.question.trim());
            q.chunk_ids = vec![chunk.id.clone()];
            let mut a = Message::new(Role::Assistant, p.answer.trim());
            a.chunk_ids = match support.as_ref().and_then(|s| s.chunk_id.clone()) {
                Some(c) => vec![c],
                None => chunk.context_chunk_ids.clone(),
            };
            let mut draft = self.draft_base(chunk, DraftKind::Qa, vec![q, a], model, id);
            draft.reasoning =
                p.reasoning.filter(|r| !r.trim().is_empty()).map(|r| r.trim().to_string()).or(call_reasoning.clone());
            draft.question_type = p.question_type;
            draft.difficulty = p.difficulty;
            draft.evidence = support.map(|s| s.quote);
            let (question, answer) = (draft.question().to_string(), draft.answer().to_string());
            records.push(match verdict {
                Some(rejection) => screened(draft, Err(rejection)),
                None => self.checked(draft, &question, &answer, &chunk.context_text),
            });
        }
        tracing::debug!(chunk = %chunk.id, drafts = records.len(), prompt_tokens = out.usage.prompt_tokens,
            completion_tokens = out.usage.completion_tokens, "generated pairs");
        Ok(records)
    }

    async fn conversation(&self, chunk: &Chunk) -> Result<Vec<Record>, StageError> {
        let turns = self.cfg.conversation_turns;
        let avoid: Vec<String> = self.memory.recall(&chunk.document_id).into_iter().rev().take(12).collect();
        let extra = self.cfg.extra_instructions.as_deref();
        let (template, text) = self.templates.task("conversation");
        let task = prompts::render(
            text,
            &[
                ("turns", &turns.to_string()),
                ("focus", &prompts::neutralize(&chunk.text)),
                ("avoid", &prompts::avoid_section(&avoid)),
                ("extra", &prompts::extra_section(extra)),
            ],
        );
        let template_hash = self.templates.hash(
            "conversation",
            &[&turns.to_string(), extra.unwrap_or_default(), &self.cfg.max_answer_chars.to_string()],
        );
        let seed = seed_of(&format!("conversation:{}", chunk.id));
        let schema = prompts::conversation_schema(turns, self.cfg.max_question_chars, self.cfg.max_answer_chars);
        let req = self.request(&chunk.context_text, task, seed, "conversation", schema);
        let out = self
            .call(&chunk.document_id, req, |r: &ConversationReply| {
                if r.turns.is_empty()
                    || r.turns.iter().any(|t| t.user.trim().is_empty() || t.assistant.trim().is_empty())
                {
                    Err("every exchange needs a user turn and an assistant turn".into())
                } else {
                    Ok(())
                }
            })
            .await?;
        let model = self.model_call(
            template,
            &template_hash,
            seed,
            (out.usage.prompt_tokens as i32, out.usage.completion_tokens as i32),
            out.response.latency.as_millis(),
        );
        let id =
            ids::hash_parts(&["draft", &chunk.id, DraftKind::Conversation.as_str(), &template_hash, &model.model, "1"]);
        let mut messages = Vec::with_capacity(out.value.turns.len() * 2);
        let mut last_support = None;
        for t in &out.value.turns {
            let support =
                grounding::support(&chunk.context_text, &chunk.context_chunk_ids, t.evidence.as_deref(), &t.assistant);
            let mut u = Message::new(Role::User, t.user.trim());
            u.chunk_ids = vec![chunk.id.clone()];
            let mut a = Message::new(Role::Assistant, t.assistant.trim());
            a.chunk_ids = match support.as_ref().and_then(|s| s.chunk_id.clone()) {
                Some(c) => vec![c],
                None => chunk.context_chunk_ids.clone(),
            };
            messages.push(u);
            messages.push(a);
            last_support = support.or(last_support);
        }
        self.memory.remember(&chunk.document_id, out.value.turns.first().map(|t| t.user.trim().to_string()));
        let mut draft = self.draft_base(chunk, DraftKind::Conversation, messages, model, id);
        draft.reasoning = out.response.reasoning.clone();
        draft.evidence = last_support.map(|s| s.quote);
        // Every assistant turn must hold up on its own; the conversation stands or falls as one example.
        Ok(vec![self.checked_conversation(draft, &chunk.context_text, None)])
    }

    async fn regenerate(&self, regen: &Regenerate) -> Result<Vec<Record>, StageError> {
        let judged = &regen.judged;
        let prev = &judged.draft;
        let assistant_turns = prev.messages.iter().filter(|m| m.role == Role::Assistant).count().max(1);
        let flaw = failed_check(judged);
        let task_name = if flaw.is_some() { "repair" } else { "regenerate" };
        let (template, text) = self.templates.task(task_name);
        // One set of variables for both templates: validation keeps each template to its own placeholders.
        let task = prompts::render(
            text,
            &[
                ("overall", &judged.scores.overall.to_string()),
                ("rationale", &prompts::neutralize(&judged.rationale)),
                ("finding", &prompts::neutralize(&judged.rationale)),
                ("example", &prompts::neutralize(&crate::judge::transcript(prev))),
                ("instructions", &prompts::regenerate_instructions(assistant_turns)),
            ],
        );
        let template_hash = self.templates.hash(task_name, &[&self.cfg.max_answer_chars.to_string()]);
        let seed = seed_of(&regen.id);
        let req = self.request(
            &prev.context_text,
            task,
            seed,
            "improved",
            prompts::regenerate_schema(assistant_turns, self.cfg.max_answer_chars),
        );
        let out = self
            .call(&prev.document_id, req, |r: &RegenerateReply| {
                if r.answers.len() != assistant_turns || r.answers.iter().any(|a| a.trim().is_empty()) {
                    Err(format!("answers must hold {assistant_turns} non-empty replies"))
                } else {
                    Ok(())
                }
            })
            .await?;
        let attempt = prev.attempt + 1;
        let tokens = (out.usage.prompt_tokens as i32, out.usage.completion_tokens as i32);
        let model = self.model_call(template, &template_hash, seed, tokens, out.response.latency.as_millis());
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
                Some(reason) => {
                    unredone(judged, reason, format!("{} (the repair repeated it unchanged)", judged.rationale))
                }
                None => unredone(
                    judged,
                    RejectReason::LowScore,
                    format!(
                        "scored {}/5 and the regeneration repeated it unchanged: {}",
                        judged.scores.overall, judged.rationale
                    ),
                ),
            };
            return Ok(vec![Record::Rejected(r)]);
        }
        let last_answer =
            messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone()).unwrap_or_default();
        let chunk_ids: Vec<String> = prev.parent_ids.first().cloned().into_iter().collect();
        let support = grounding::support(&prev.context_text, &chunk_ids, out.value.evidence.as_deref(), &last_answer);
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
                scores: judged.scores,
                rationale: judged.rationale.clone(),
            }),
            created_at_ms: now_ms(),
            ..prev.clone()
        };
        let question = draft.question().to_string();
        let checked = if draft.kind == DraftKind::Qa {
            let result = quality::check_not_feedback(&last_answer, &judged.rationale, &prev.context_text)
                .and_then(|()| quality::check_pair(&question, &last_answer, &prev.context_text, &self.cfg.quality));
            screened(draft, result)
        } else {
            self.checked_conversation(draft, &prev.context_text, Some(&judged.rationale))
        };
        Ok(vec![checked])
    }
}

/// The provider named on the verdict of the pre-judge checks (no model judged: every score is 0).
pub const CHECKS: &str = "checks";

/// Sends a first draft with a flawed answer back for one repair: the verdict is the checks', the finding is
/// the rationale, the reason travels as the verdict's template so an unrepaired draft ends with it.
pub fn repair_request(draft: Draft, reason: RejectReason, finding: String) -> Regenerate {
    let judged = Judged {
        id: ids::hash_parts(&["checked", &draft.id]),
        scores: Scores { overall: 0, faithfulness: 0, correctness: 0, clarity: 0, usefulness: 0 },
        rationale: finding,
        passed: false,
        judge: ModelCall {
            provider: CHECKS.to_string(),
            model: "distillery-quality".to_string(),
            temperature: 0.0,
            max_tokens: 0,
            seed: None,
            template: reason.as_str().to_string(),
            template_hash: String::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0,
        },
        judged_at_ms: now_ms(),
        draft,
    };
    Regenerate { id: ids::hash_parts(&["regenerate", &judged.id]), judged }
}

/// The check a regeneration request comes from, if the pre-judge checks (not the critic) sent it.
pub fn failed_check(judged: &Judged) -> Option<RejectReason> {
    (judged.judge.provider == CHECKS).then(|| {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == judged.judge.template).unwrap_or(RejectReason::Other)
    })
}

/// A regeneration request that ends without a new draft: a repair's rejection carries the draft (no model
/// scored it), a critic's regeneration carries the verdict with its scores.
fn unredone(judged: &Judged, reason: RejectReason, detail: String) -> Rejected {
    let subject = match failed_check(judged) {
        Some(_) => Record::Draft(judged.draft.clone()),
        None => Record::Judged(judged.clone()),
    };
    Rejected::of(&subject, "generate", reason, detail)
}

/// The draft, or its rejection when a check failed (the rejection keeps the draft for inspection).
fn screened(draft: Draft, check: Result<(), (RejectReason, String)>) -> Record {
    match check {
        Ok(()) => Record::Draft(draft),
        Err((reason, detail)) => Record::Rejected(Rejected::of(&Record::Draft(draft), "generate", reason, detail)),
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
            Some(Record::Chunk(chunk)) => match self.cfg.mode_for(&chunk.id) {
                Mode::Qa => self.qa(chunk).await,
                Mode::Conversation => self.conversation(chunk).await,
            },
            Some(Record::Regenerate(regen)) => match self.regenerate(regen).await {
                Ok(r) => Ok(r),
                // The first draft is accounted for by the rejection: it carries the scores it got.
                Err(e) if matches!(e.disposition, distillery_core::Disposition::Reject(_)) => {
                    let reason = match e.disposition {
                        distillery_core::Disposition::Reject(r) => r,
                        _ => RejectReason::LlmError,
                    };
                    let detail = match failed_check(&regen.judged) {
                        Some(_) => format!("{}; its repair failed: {}", regen.judged.rationale, e.message),
                        None => format!("regeneration failed: {}", e.message),
                    };
                    let mut r = unredone(&regen.judged, reason, detail);
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

    #[test]
    fn modes_are_chosen_stably_by_share() {
        let cfg = GenerateConfig { conversation_share: 0.3, ..Default::default() };
        let n = 2000;
        let conv = (0..n).filter(|i| cfg.mode_for(&format!("chunk-{i}")) == Mode::Conversation).count();
        assert!((500..700).contains(&conv), "{conv} of {n}");
        assert_eq!(cfg.mode_for("x"), cfg.mode_for("x"));
        let only_qa = GenerateConfig { modes: vec![Mode::Qa], ..Default::default() };
        assert!((0..100).all(|i| only_qa.mode_for(&i.to_string()) == Mode::Qa));
    }
}
