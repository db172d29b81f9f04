//! Generate: a chunk (with its context) becomes training drafts in one schema-constrained call: several
//! question/answer pairs (with those of the other chunks of its context gathered into the same call), or a
//! multi-turn conversation. A `Regenerate` becomes one improved version of a
//! low-scored draft, written with the critic's feedback, remembering the low-scored attempt for DPO pairs.
//!
//! Variety: each QA pair is assigned a different sentence of the chunk and a kind of question; the questions
//! already asked about a document are remembered (a bounded memory) to reject repeats before judging, and
//! each request carries its own seed. Grounding: every answer's supporting span is verified against the
//! context and traced to its chunk; cheap checks reject bad pairs before any judge tokens are spent.
//!
//! Repair: a first draft whose question is sound but whose answer fails a check (numbers or words the
//! context lacks, talk about "the context", an answer repeating its question, shifted conversation turns)
//! goes to `regenerate` once with the check's finding instead of being rejected at once (a `FailedCheck`
//! cause on the request: no model scored it); an accepted repair makes a DPO pair whose rejected side is the
//! flawed draft, the most useful kind of negative.

//!
//! Files: `qa`, `conversation` and `regenerate` hold the three tasks, `grounding` the evidence tracing,
//! `memory` the questions already asked per document; `service` runs the stage on Kafka. The cheap checks
//! and the words and stems they compare are in `distillery-quality`, shared with judge.

mod conversation;
pub mod focus;
pub mod grounding;
pub mod memory;
mod qa;
mod regenerate;
pub mod service;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Chunk, Draft, DraftKind, Input, Message, ModelCall, Record, Regenerate, RejectReason, Rejected, Stage, StageError,
    StageName, Topic, ids, now_ms,
};
use distillery_llm::{LlmConfig, LlmRole};
use distillery_prompts::{Gather, LlmCaller, Task, Templates};
use distillery_vector::{Embedder, EmbedderConfig, embedder_config};
use serde::{Deserialize, Serialize};

use crate::memory::QuestionMemory;
use distillery_quality::draft::{self as quality, QualityConfig};

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Generate;

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
    /// Most question/answer pairs asked for per chunk, one per informative sentence (fewer when the chunk has
    /// fewer): several per call amortise the context's tokens.
    pub pairs_per_chunk: usize,
    /// Most question/answer pairs asked for in one call when the chunks of a context are gathered
    /// (`gather_wait_ms`); a chunk whose plan alone is larger has a call of its own.
    pub pairs_per_call: usize,
    /// Longest question the output schema allows, in characters.
    pub max_question_chars: usize,
    /// Longest answer (and evidence) the output schema allows, in characters.
    pub max_answer_chars: usize,
    /// Where reasoning traces come from.
    pub reasoning: Reasoning,
    /// Questions remembered per document: a new pair repeating one is rejected as a duplicate before any
    /// judge call (and a user template's `{avoid}` lists them). 0 disables.
    pub memory: usize,
    /// Cosine similarity of sentence embeddings at or above which a new question repeats one of the same
    /// reply or one remembered for the document (a paraphrase the word checks miss): rejected as a
    /// `duplicate` before any judge call. 0 disables (and no encoder is loaded).
    pub question_similarity: f32,
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
    /// How long a QA chunk waits, in milliseconds, for the other chunks of its context, so that their pairs
    /// are asked for together in as few calls of `pairs_per_call` as hold them (the context paid once per
    /// call). Each draft stays its own chunk's. Also how long a QA rewrite (a repair or a regeneration) waits
    /// for the other rewrites of its context, so that the judge scores their drafts in one call. 0: one call
    /// per chunk, and each rewrite judged alone.
    pub gather_wait_ms: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            modes: vec![Mode::Qa, Mode::Conversation],
            conversation_share: 0.25,
            conversation_turns: 3,
            pairs_per_chunk: 6,
            pairs_per_call: 8,
            max_question_chars: 200,
            max_answer_chars: 500,
            reasoning: Reasoning::Model,
            memory: 16,
            question_similarity: 0.9,
            temperature: None,
            extra_instructions: None,
            system_prompt: None,
            templates: BTreeMap::new(),
            quality: QualityConfig::default(),
            repair: true,
            gather_wait_ms: 1000,
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
        if !(1..=20).contains(&self.pairs_per_call) {
            errors.push(format!("{section}.pairs_per_call must be in 1..=20 (got {})", self.pairs_per_call));
        }
        if self.max_question_chars < 20 || self.max_answer_chars < 20 {
            errors.push(format!("{section}.max_question_chars and max_answer_chars must be >= 20"));
        }
        if !(0.0..=1.0).contains(&self.question_similarity) {
            errors.push(format!("{section}.question_similarity must be in [0, 1] (0 disables)"));
        }
        if self.gather_wait_ms > 600_000 {
            errors.push(format!("{section}.gather_wait_ms must be at most 600000 (got {})", self.gather_wait_ms));
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            errors.push(format!("{section}.temperature must be in [0, 2]"));
        }
        if self.templates.contains_key(Task::Judge.as_str()) {
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

/// Chunks the runtime admits per LLM slot when chunks are gathered into calls.
const GATHERED_PER_SLOT: usize = 4;

/// Shares of a call's usage over `n` records (the first absorbs the remainder).
fn share(total: u32, n: usize, i: usize) -> u32 {
    let n = n.max(1) as u32;
    total / n + if i == 0 { total % n } else { 0 }
}

/// The generate stage.
#[derive(Debug)]
pub struct Generate {
    pub caller: LlmCaller,
    pub cfg: GenerateConfig,
    pub memory: QuestionMemory,
    /// The sentence encoder comparing questions by meaning (unset: the word checks only).
    pub embedder: Option<Arc<dyn Embedder>>,
    /// The chunks of a context being gathered into one call.
    gather: Gather<qa::Planned, Vec<Record>>,
    /// The rewrites of a context being gathered, so that their drafts reach the judge as one batch.
    rewrites: Gather<Regenerate, regenerate::Rewritten>,
    /// The chunks of each context already in a call.
    served: qa::Served,
}

/// What builds the generate stage: the generator model and what to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateComponent<'a> {
    pub llm: &'a LlmConfig,
    pub generate: &'a GenerateConfig,
    /// The sentence encoder for repeated questions (loaded when `question_similarity` > 0).
    pub embedder: &'a EmbedderConfig,
}

impl Component for GenerateComponent<'_> {
    type Stage = Generate;

    async fn build(&self, deps: &Deps) -> Result<Generate, BuildError> {
        let llm = deps.llm.client(self.llm, LlmRole::Generator).await;
        tracing::info!(llm = ?llm, "generator model");
        let caller = LlmCaller::new(llm, deps.ledger.clone());
        let stage = Generate::new(caller, self.generate.clone()).map_err(|e| BuildError::new(NAME.as_str(), e))?;
        if self.generate.question_similarity <= 0.0 {
            return Ok(stage);
        }
        let embedder = embedder_config::embedder(self.embedder).await.map_err(|e| BuildError::one(NAME.as_str(), e))?;
        Ok(stage.with_embedder(embedder))
    }

    async fn check(&self, _deps: &Deps) -> Result<(), BuildError> {
        distillery_llm::check_server(self.llm).await.map_err(|e| BuildError::one(NAME.as_str(), e))
    }
}

impl Generate {
    /// A stage with the configured templates loaded and a question memory sized by the configuration.
    pub fn new(mut caller: LlmCaller, cfg: GenerateConfig) -> Result<Generate, Vec<String>> {
        caller.templates = cfg.templates()?;
        caller.temperature = cfg.temperature;
        let memory = QuestionMemory::new(cfg.memory, 10_000);
        let wait = std::time::Duration::from_millis(cfg.gather_wait_ms);
        let (gather, rewrites) = (Gather::new(wait, "generate_gather"), Gather::new(wait, "generate_rewrites"));
        Ok(Generate { caller, cfg, memory, embedder: None, gather, rewrites, served: qa::Served::default() })
    }

    /// The stage comparing questions by meaning too, with this encoder.
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Generate {
        self.embedder = Some(embedder);
        self
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
            batch: None,
        }
    }

    /// A draft that passes its checks; or its rejection (a flaw in the question, or in a repair), which
    /// keeps it for inspection; or, for a first draft with a flawed answer, a repair request. `evidence` is
    /// the sentence(s) the pair was planned on, which its answer must stay on.
    fn checked(&self, draft: Draft, question: &str, answer: &str, context: &str, evidence: Option<&str>) -> Record {
        let q = &self.cfg.quality;
        match quality::check_question(question, context, q) {
            Err(flaw) => screened(draft, Err(flaw)),
            Ok(()) => {
                let reply = quality::check_reply(question, answer, context, q)
                    .and_then(|()| quality::check_on_evidence(question, answer, evidence, q));
                self.repaired_or_screened(draft, reply)
            }
        }
    }

    /// The turn-by-turn checks of a conversation (and, for a regeneration, that no answer copies the
    /// critic's feedback).
    fn checked_conversation(&self, draft: Draft, context: &str, feedback: Option<&str>) -> Record {
        let turns = draft.exchanges();
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
                Record::Regenerate(Regenerate::repair(draft, reason, finding))
            }
            other => screened(draft, other),
        }
    }
}

/// A regeneration request that ends without a new draft: a repair's rejection carries the draft (no model
/// scored it), a critic's regeneration carries the verdict with its scores.
fn unredone(regen: &Regenerate, reason: RejectReason, detail: String) -> Rejected {
    let subject = match regen.judged() {
        Some(judged) => Record::Judged(judged),
        None => Record::Draft(regen.draft.clone()),
    };
    Rejected::of(&subject, NAME.as_str(), reason, detail)
}

/// The draft, or its rejection when a check failed (the rejection keeps the draft for inspection).
fn screened(draft: Draft, check: Result<(), (RejectReason, String)>) -> Record {
    match check {
        Ok(()) => Record::Draft(draft),
        Err((reason, detail)) => Record::Rejected(Rejected::of(&Record::Draft(draft), NAME.as_str(), reason, detail)),
    }
}

impl Stage for Generate {
    fn name(&self) -> &'static str {
        NAME.as_str()
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Chunks, Topic::Regenerate]
    }

    /// Chunks waiting for the rest of their context hold a slot of the runtime but no LLM slot: the runtime
    /// admits a few chunks per LLM slot when they are gathered (the LLM client still runs at most its slots).
    fn default_concurrency(&self) -> usize {
        let per_slot = if self.cfg.gather_wait_ms > 0 { GATHERED_PER_SLOT } else { 1 };
        self.caller.llm.concurrency() * per_slot
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        match input.as_record() {
            Some(Record::Chunk(chunk)) => match self.cfg.mode_for(&chunk.id) {
                Mode::Qa => self.qa_gathered(chunk).await,
                Mode::Conversation => self.conversation(chunk).await,
            },
            Some(Record::Regenerate(regen)) => self.regenerate_gathered(regen).await,
            _ => Err(StageError::dead_letter("unexpected_input", "generate consumes chunks and regenerate requests")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_shares_add_up() {
        let total: u32 = (0..3).map(|i| share(100, 3, i)).sum();
        assert_eq!(total, 100);
        assert_eq!(share(7, 0, 0), 7);
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
