//! Judge: an LLM critic scores every draft 1-5 on a written rubric against its context. At or above the
//! threshold it goes on to `judged`; below, it goes back once to `regenerate` with the critic's rationale,
//! and after the last attempt to `rejected` (low_score) with its scores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use distillery_core::{
    Draft, DraftKind, Input, Judged, Metrics, ModelCall, Record, Regenerate, RejectReason, Rejected, Role, Scores,
    Stage, StageError, Topic, ids, now_ms,
};
use distillery_llm::{ChatMessage, ChatRequest, LlmClient, OutputSchema, Usage};
use serde::{Deserialize, Serialize};

use crate::generate::seed_of;
use crate::prompts::{self, JudgeReply, Templates};
use crate::usage::Ledger;

/// Critic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// Lowest overall score (1-5) that passes.
    pub threshold: i32,
    /// Attempts an example gets in all: the first draft plus regenerations.
    pub max_attempts: i32,
    /// A system prompt replacing the built-in one. Keep it equal to the generator's to share its cached
    /// prefix when both roles use the same server.
    pub system_prompt: Option<String>,
    /// A template file replacing the built-in judge task (placeholder: `{example}`).
    pub template: Option<PathBuf>,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig { threshold: 4, max_attempts: 2, system_prompt: None, template: None }
    }
}

impl JudgeConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !(1..=5).contains(&self.threshold) {
            errors.push(format!("{section}.threshold must be in 1..=5 (got {})", self.threshold));
        }
        if !(1..=5).contains(&self.max_attempts) {
            errors.push(format!("{section}.max_attempts must be in 1..=5 (got {})", self.max_attempts));
        }
        if let Err(e) = self.templates() {
            errors.extend(e.into_iter().map(|e| format!("{section}.{e}")));
        }
    }

    /// The prompts in force.
    pub fn templates(&self) -> Result<Templates, Vec<String>> {
        let files: BTreeMap<String, PathBuf> = self.template.iter().map(|p| ("judge".to_string(), p.clone())).collect();
        Templates::with_overrides(self.system_prompt.clone(), &files)
    }
}

/// How a draft reads to the critic.
pub fn transcript(draft: &Draft) -> String {
    match draft.kind {
        DraftKind::Qa => format!("Question: {}\nAnswer: {}", draft.question(), draft.answer()),
        DraftKind::Conversation => draft
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| format!("{}: {}", if m.role == Role::User { "User" } else { "Assistant" }, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The judge stage.
#[derive(Debug)]
pub struct Judge {
    pub llm: Arc<LlmClient>,
    pub cfg: JudgeConfig,
    pub metrics: Arc<Metrics>,
    pub templates: Templates,
    pub ledger: Option<Arc<Ledger>>,
}

impl Judge {
    /// A judge with its templates loaded.
    pub fn new(
        llm: Arc<LlmClient>,
        cfg: JudgeConfig,
        metrics: Arc<Metrics>,
        ledger: Option<Arc<Ledger>>,
    ) -> Result<Judge, Vec<String>> {
        let templates = cfg.templates()?;
        Ok(Judge { llm, cfg, metrics, templates, ledger })
    }

    /// The routing decision for a judged draft.
    pub fn route(&self, judged: Judged) -> Record {
        let outcome = if judged.passed {
            "pass"
        } else if judged.draft.attempt < self.cfg.max_attempts {
            "regenerate"
        } else {
            "reject"
        };
        let attempt = judged.draft.attempt.clamp(1, 5).to_string();
        self.metrics.judge_verdicts.with_label_values(&[outcome, &attempt]).inc();
        if judged.passed {
            Record::Judged(judged)
        } else if judged.draft.attempt < self.cfg.max_attempts {
            Record::Regenerate(Regenerate { id: ids::hash_parts(&["regenerate", &judged.id]), judged })
        } else {
            let detail = format!(
                "scored {}/5 (threshold {}) after {} attempt(s): {}",
                judged.scores.overall, self.cfg.threshold, judged.draft.attempt, judged.rationale
            );
            Record::Rejected(Rejected::of(&Record::Judged(judged), "judge", RejectReason::LowScore, detail))
        }
    }
}

impl Stage for Judge {
    fn name(&self) -> &'static str {
        "judge"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Drafts]
    }

    fn default_concurrency(&self) -> usize {
        self.llm.concurrency()
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Draft(draft)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "judge consumes drafts"));
        };
        let template_hash = self.templates.hash("judge", &[]);
        let (template, text) = self.templates.task("judge");
        let seed = seed_of(&draft.id);
        let task = prompts::render(text, &[("example", &prompts::neutralize(&transcript(draft)))]);
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(self.templates.system.clone()),
            ChatMessage::user(format!("{}{task}", prompts::context_block(&draft.context_text))),
        ]);
        req.seed = Some(seed);
        req.schema = Some(OutputSchema { name: "verdict".into(), schema: prompts::judge_schema() });
        let mut usage = Usage::default();
        let out = self.llm.chat_json_metered::<JudgeReply, _>(req, JudgeReply::check, &mut usage).await;
        if let Some(l) = &self.ledger {
            l.add(&draft.document_id, "judge", usage, out.as_ref().map_or(1, |s| s.calls as u64));
        }
        let out = out?;
        let v = out.value;
        let c = self.llm.config();
        let verdict = v.verdict();
        let scores = Scores {
            overall: verdict,
            faithfulness: v.faithfulness,
            correctness: v.correctness,
            clarity: v.clarity,
            usefulness: v.usefulness,
        };
        self.metrics.judge_scores.with_label_values(&[&verdict.to_string()]).inc();
        let judged = Judged {
            id: ids::hash_parts(&["judged", &draft.id, &c.model, &template_hash]),
            draft: draft.clone(),
            scores,
            rationale: v.rationale.trim().to_string(),
            passed: verdict >= self.cfg.threshold,
            judge: ModelCall {
                provider: c.provider.as_str().to_string(),
                model: c.model.clone(),
                temperature: c.temperature,
                max_tokens: c.max_tokens as i32,
                seed: Some(seed as i64),
                template: template.to_string(),
                template_hash,
                prompt_tokens: out.usage.prompt_tokens as i32,
                completion_tokens: out.usage.completion_tokens as i32,
                latency_ms: out.response.latency.as_millis().min(i32::MAX as u128) as i32,
            },
            judged_at_ms: now_ms(),
        };
        tracing::debug!(draft = %draft.id, overall = verdict, passed = judged.passed, "judged");
        Ok(vec![self.route(judged)])
    }
}
