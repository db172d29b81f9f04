//! Judge: an LLM critic scores every draft 1-5 on a written rubric against its context. At or above the
//! threshold it goes on to `judged`; below, it goes back once to `regenerate` with the critic's rationale,
//! and after the last attempt to `rejected` (low_score) with its scores.
//!
//! Throughput: the drafts of one generation call are gathered ([`distillery_prompts::gather`]) and judged
//! together, in one answer call and one critic call for the whole batch ([`evaluate`]), both starting with
//! the context the generator's call had, so the server's prefix cache serves it.
//!
//! Precision first: a draft whose answer is cut off or that copies a task's instructions is stopped by
//! [`distillery_quality::verdict::screen`] before any judge call (sent to one repair while it has attempts
//! left); an answer that differs from the judge's own short answer to its question cannot pass; a verdict
//! whose rationale is not a judgement or contradicts its scores ([`distillery_quality::verdict::distrust`])
//! is asked again with another seed, and one still distrusted after `checks.reasks` re-asks never passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Draft, Input, Judged, Metrics, Record, Regenerate, RejectReason, Rejected, Stage, StageError, StageName, Topic,
};
use distillery_llm::{LlmConfig, LlmRole};
use distillery_prompts::{Gather, LlmCaller, Task, Templates};
use distillery_quality::Agreement;
use serde::{Deserialize, Serialize};

pub mod evaluate;
pub mod metrics;
pub mod own_answers;
pub mod service;

use distillery_quality::verdict::{Distrust, Echo, Screened, VerdictChecks};

use crate::metrics::JudgeMetrics;
use crate::own_answers::OwnAnswers;

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Judge;

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
    /// A template file replacing the built-in judge task (placeholder: `{example}`, the numbered examples).
    pub template: Option<PathBuf>,
    /// The cheap checks before the judge call and the trust checks of its verdict.
    pub checks: VerdictChecks,
    /// Before scoring, the judge answers the batch's questions itself in a few words from the context (one
    /// short call); an example whose answer differs from it, or whose question it finds no answer to, does
    /// not pass.
    pub answer_check: bool,
    /// Most examples scored in one critic call.
    pub max_batch: usize,
    /// How long a draft waits for the other drafts of its generation call before the judge scores those
    /// that have arrived, in milliseconds.
    pub batch_wait_ms: u64,
    /// A passing regeneration is compared with the draft it replaces in both orders (two short calls); only
    /// one both orders prefer makes a DPO pair.
    pub verify_preference: bool,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            threshold: 4,
            max_attempts: 2,
            system_prompt: None,
            template: None,
            checks: VerdictChecks::default(),
            answer_check: true,
            max_batch: 8,
            batch_wait_ms: 3000,
            verify_preference: true,
        }
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
        if !(1..=32).contains(&self.max_batch) {
            errors.push(format!("{section}.max_batch must be in 1..=32 (got {})", self.max_batch));
        }
        if self.batch_wait_ms > 600_000 {
            errors.push(format!("{section}.batch_wait_ms must be at most 600000 (got {})", self.batch_wait_ms));
        }
        if let Err(e) = self.templates() {
            errors.extend(e.into_iter().map(|e| format!("{section}.{e}")));
        }
        self.checks.validate(&format!("{section}.checks"), errors);
    }

    /// The prompts in force.
    pub fn templates(&self) -> Result<Templates, Vec<String>> {
        let files: BTreeMap<String, PathBuf> =
            self.template.iter().map(|p| (Task::Judge.as_str().to_string(), p.clone())).collect();
        Templates::with_overrides(self.system_prompt.clone(), &files)
    }
}

/// The judge stage.
#[derive(Debug)]
pub struct Judge {
    pub caller: LlmCaller,
    pub cfg: JudgeConfig,
    pub metrics: JudgeMetrics,
    /// The instructions of every task, which neither a draft nor a rationale may copy.
    echo: Echo,
    /// The batches being gathered (the drafts of one generation call, judged in one call).
    gather: Gather<Draft, Evaluation>,
    /// The judge's own short answers, for drafts judged again with the same question.
    own_answers: OwnAnswers,
}

/// What the judge made of a draft.
#[derive(Debug, Clone)]
pub enum Evaluation {
    /// Stopped by a cheap check; no judge call.
    Screened(Screened),
    /// The critic's verdict, after `asked` asks; `distrust` is why the last one was still not trusted
    /// (then the verdict does not pass); `answer` is the judge's own short answer and how the example's
    /// compared with it, when it was asked.
    Judged { judged: Judged, asked: u32, distrust: Option<Distrust>, answer: Option<(String, Agreement)> },
}

/// What builds the judge stage: the judge model and its threshold and attempts.
#[derive(Debug, Clone, Copy)]
pub struct JudgeComponent<'a> {
    pub llm: &'a LlmConfig,
    pub judge: &'a JudgeConfig,
}

impl Component for JudgeComponent<'_> {
    type Stage = Judge;

    async fn build(&self, deps: &Deps) -> Result<Judge, BuildError> {
        let llm = deps.llm.client(self.llm, LlmRole::Judge).await;
        tracing::info!(llm = ?llm, "judge model");
        let caller = LlmCaller::new(llm, deps.ledger.clone());
        Judge::new(caller, self.judge.clone(), deps.metrics.clone()).map_err(|e| BuildError::new(NAME.as_str(), e))
    }

    async fn check(&self, _deps: &Deps) -> Result<(), BuildError> {
        distillery_llm::check_server(self.llm).await.map_err(|e| BuildError::one(NAME.as_str(), e))
    }
}

impl Judge {
    /// A judge with the configured templates loaded; the judge samples at its model's temperature.
    pub fn new(mut caller: LlmCaller, cfg: JudgeConfig, metrics: Arc<Metrics>) -> Result<Judge, Vec<String>> {
        caller.templates = cfg.templates()?;
        caller.temperature = None;
        // The built-in generator templates and the judge's own (a user's judge template included).
        let builtin = Templates::builtin();
        let texts: Vec<&str> = Task::ALL
            .into_iter()
            .map(|t| builtin.task(t).1)
            .chain([caller.templates.task(Task::Judge).1, builtin.system.as_str()])
            .collect();
        let placeholders: Vec<&str> = Task::ALL.iter().flat_map(|t| t.placeholders().iter().copied()).collect();
        let echo = Echo::new(texts, &placeholders, cfg.checks.echo_words);
        let gather = Gather::new(std::time::Duration::from_millis(cfg.batch_wait_ms), "judge_batch");
        Ok(Judge { caller, cfg, metrics: JudgeMetrics::of(&metrics), echo, gather, own_answers: OwnAnswers::default() })
    }

    /// Screens and judges one draft on its own (a batch of one).
    pub async fn evaluate(&self, draft: &Draft) -> Result<Evaluation, StageError> {
        let mut e = self.evaluate_batch(vec![draft.clone()]).await?;
        Ok(e.remove(0))
    }

    /// The routing of a screened draft: a flaw in its answers gets one repair while attempts are left; else
    /// it is rejected with the check's reason.
    pub fn route_screened(&self, draft: Draft, s: Screened) -> Record {
        if s.in_answer && draft.attempt < self.cfg.max_attempts {
            return Record::Regenerate(Regenerate::repair(draft, s.reason, s.finding));
        }
        let detail = format!("{} (check {}, before any judge call)", s.finding, s.check);
        Record::Rejected(Rejected::of(&Record::Draft(draft), NAME.as_str(), s.reason, detail))
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
        self.metrics.verdicts.with_label_values(&[outcome, &attempt]).inc();
        if judged.passed {
            Record::Judged(judged)
        } else if judged.draft.attempt < self.cfg.max_attempts {
            Record::Regenerate(Regenerate::critic(judged))
        } else {
            let detail = format!(
                "scored {}/5 (threshold {}) after {} attempt(s): {}",
                judged.scores.overall, self.cfg.threshold, judged.draft.attempt, judged.rationale
            );
            Record::Rejected(Rejected::of(&Record::Judged(judged), NAME.as_str(), RejectReason::LowScore, detail))
        }
    }
}

impl Stage for Judge {
    fn name(&self) -> &'static str {
        NAME.as_str()
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Drafts]
    }

    /// Drafts waiting for the rest of their batch hold a slot of the runtime but no LLM slot: the runtime
    /// admits a batch's worth of drafts per LLM slot (the LLM client still runs at most its slots at once).
    fn default_concurrency(&self) -> usize {
        self.caller.llm.concurrency() * self.cfg.max_batch
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Draft(draft)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "judge consumes drafts"));
        };
        let evaluation = match draft.batch.as_ref().filter(|b| b.size > 1) {
            Some(batch) => {
                let size = batch.size as usize;
                let complete = |drafts: &[Draft]| drafts.len() >= size;
                self.gather.join(&batch.id, draft.clone(), complete, |drafts| self.evaluate_batch(drafts)).await?
            }
            None => self.evaluate(draft).await?,
        };
        match evaluation {
            Evaluation::Screened(screened) => Ok(vec![self.route_screened(draft.clone(), screened)]),
            Evaluation::Judged { judged, .. } => Ok(vec![self.route(judged)]),
        }
    }
}
