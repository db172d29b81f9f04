//! Judge: an LLM critic scores every draft 1-5 on a written rubric against its context. At or above the
//! threshold it goes on to `judged`; below, it goes back once to `regenerate` with the critic's rationale,
//! and after the last attempt to `rejected` (low_score) with its scores.
//!
//! Precision first: a draft whose answer is cut off or that copies a task's instructions is stopped by
//! [`distillery_quality::verdict::screen`] before any judge call (sent to one repair while it has attempts left), and a verdict
//! whose rationale is not a judgement or contradicts its scores ([`distillery_quality::verdict::distrust`]) is asked again with
//! another seed; one still distrusted after `checks.reasks` re-asks never passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Draft, Input, Judged, Metrics, Record, Regenerate, RejectReason, Rejected, Scores, Stage, StageError, StageName,
    Topic, ids, now_ms,
};
use distillery_llm::{LlmConfig, LlmRole};
use distillery_prompts::templates::{self, JudgeReply};
use distillery_prompts::{LlmCaller, Task, Templates, seed_of, transcript};
use serde::{Deserialize, Serialize};

pub mod metrics;
pub mod service;

use distillery_quality::verdict::{self as checks, Distrust, Echo, Screened, VerdictChecks};

use crate::metrics::JudgeMetrics;

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
    /// A template file replacing the built-in judge task (placeholder: `{example}`).
    pub template: Option<PathBuf>,
    /// The cheap checks before the judge call and the trust checks of its verdict.
    pub checks: VerdictChecks,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            threshold: 4,
            max_attempts: 2,
            system_prompt: None,
            template: None,
            checks: VerdictChecks::default(),
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
}

/// What the judge made of a draft.
#[derive(Debug, Clone)]
pub enum Evaluation {
    /// Stopped by a cheap check; no judge call.
    Screened(Screened),
    /// The critic's verdict, after `asked` calls; `distrust` is why the last one was still not trusted
    /// (then the verdict does not pass).
    Judged { judged: Judged, asked: u32, distrust: Option<Distrust> },
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
        Ok(Judge { caller, cfg, metrics: JudgeMetrics::of(&metrics), echo })
    }

    /// Screens a draft, then asks the critic (again, while its verdict cannot be trusted and re-asks are
    /// left). The verdict passes only when it is trusted and at or above the threshold.
    pub async fn evaluate(&self, draft: &Draft) -> Result<Evaluation, StageError> {
        let turns = draft.exchanges();
        if let Some(s) = checks::screen(&turns, &draft.context_text, &self.echo, &self.cfg.checks) {
            self.metrics.screened.with_label_values(&[s.check]).inc();
            tracing::debug!(draft = %draft.id, check = s.check, finding = %s.finding, "screened before judging");
            return Ok(Evaluation::Screened(s));
        }
        let template_hash = self.caller.templates.hash(Task::Judge, &[]);
        let (template, text) = self.caller.templates.task(Task::Judge);
        let task = templates::render(text, &[("example", &templates::neutralize(&transcript(draft)))]);
        let mut asked = 0;
        loop {
            // The first ask's seed is the draft's (a replay asks the same); each re-ask another.
            let seed = seed_of(&draft.id).wrapping_add(u64::from(asked));
            asked += 1;
            let req =
                self.caller.request(&draft.context_text, task.clone(), seed, "verdict", templates::judge_schema());
            let out = self.caller.call::<JudgeReply, _>(&draft.document_id, req, JudgeReply::check).await?;
            let judge = self.caller.model_call(template, &template_hash, seed, out.usage, out.response.latency);
            let v = out.value;
            let verdict = v.verdict();
            let rationale = v.rationale.trim().to_string();
            let distrust = checks::distrust(&rationale, verdict, self.cfg.threshold, &self.echo, &draft.context_text);
            let trusted = distrust.is_none();
            let outcome = match (&distrust, asked) {
                (None, 1) => "trusted",
                (None, _) => "trusted_on_reask",
                (Some(_), n) if n <= self.cfg.checks.reasks => "reasked",
                (Some(_), _) => "untrusted",
            };
            let why = distrust.as_ref().map_or("none", Distrust::label);
            self.metrics.trust.with_label_values(&[outcome, why]).inc();
            if !trusted && asked <= self.cfg.checks.reasks {
                tracing::debug!(draft = %draft.id, why, "verdict not trusted; asking again");
                continue;
            }
            let scores = Scores {
                overall: verdict,
                faithfulness: v.faithfulness,
                correctness: v.correctness,
                clarity: v.clarity,
                usefulness: v.usefulness,
            };
            self.metrics.scores.with_label_values(&[&verdict.to_string()]).inc();
            let rationale = match &distrust {
                None => rationale,
                Some(d) => {
                    format!("verdict not trusted after {asked} ask(s): {}; the critic said: {rationale}", d.describe())
                }
            };
            let judged = Judged {
                id: ids::hash_parts(&["judged", &draft.id, &judge.model, &template_hash]),
                draft: draft.clone(),
                scores,
                rationale,
                passed: trusted && verdict >= self.cfg.threshold,
                judge,
                judged_at_ms: now_ms(),
            };
            tracing::debug!(draft = %draft.id, overall = verdict, passed = judged.passed, asked, "judged");
            return Ok(Evaluation::Judged { judged, asked, distrust });
        }
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

    fn default_concurrency(&self) -> usize {
        self.caller.llm.concurrency()
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Draft(draft)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "judge consumes drafts"));
        };
        match self.evaluate(draft).await? {
            Evaluation::Screened(screened) => Ok(vec![self.route_screened(draft.clone(), screened)]),
            Evaluation::Judged { judged, .. } => Ok(vec![self.route(judged)]),
        }
    }
}
