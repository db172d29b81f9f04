//! What a run did, as `summary.json` and the command's output: counts by stage and reason, scores, tokens
//! and cost per run and per document, throughput.

use std::collections::BTreeMap;
use std::time::Duration;

use distillery_core::{Metrics, RejectReason, StageName, Topic};
use distillery_dataset::{DocumentProgress, Totals};
use distillery_judge::metrics::JudgeMetrics;
use distillery_llm::{DocUsage, Ledger, LlmMetrics, LlmRole};
use serde::Serialize;

use crate::config::RunConfig;

/// What one document cost.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DocumentUsage {
    #[serde(flatten)]
    pub tokens: DocUsage,
    pub cost: Option<f64>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub documents: u64,
    /// Objects whose content an earlier object already brought.
    pub duplicate_documents: u64,
    pub chunks: u64,
    /// Drafts generated, regenerations included.
    pub drafts: u64,
    /// Drafts the critic sent back for a regeneration.
    pub regenerated: u64,
    /// First drafts whose answers failed a pre-judge check, sent back for one repair.
    pub repaired: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub dead_letters: u64,
    /// Drafts the judge stopped with a cheap check (cut off, echoed instructions, ungrounded) before any
    /// judge call.
    pub judge_screened: u64,
    /// Share of judged drafts whose first verdict was trusted (its rationale a judgement that agrees with
    /// its scores); the rest were asked again, and never pass while still distrusted.
    pub judge_agreement_rate: Option<f64>,
    /// Mean overall judge score of every verdict.
    pub mean_score: Option<f64>,
    /// Share of judged drafts that did not pass the critic.
    pub rejection_rate: Option<f64>,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Share of prompt tokens the server took from its prefix cache (when it reports it).
    pub prompt_cache_hit_rate: Option<f64>,
    /// Tokens per accepted record, prompt plus completion.
    pub tokens_per_accepted: Option<f64>,
    pub cost: Option<f64>,
    /// Tokens (failed and retried calls included) and cost per document id, by role.
    pub per_document: BTreeMap<String, DocumentUsage>,
    pub duration_s: f64,
    pub drafts_per_s: f64,
    pub accepted_per_s: f64,
    /// Diversity of the whole dataset (seed 001's KPI): mean pairwise cosine distance of the accepted
    /// records' embeddings (0: all alike), exact up to 2000 records and an unbiased sampled estimate beyond.
    pub diversity: Option<f64>,
    /// What this run took from the store instead of working again (a resumed run).
    pub resumed: Resumed,
    /// The dataset store (no password).
    pub store: String,
    /// The whole dataset so far, over every run on this store (the counts above are this run's).
    pub dataset: Option<Totals>,
    /// Every document: chunks done / failed / pending, accepted, rejected by reason, tokens
    /// (as `distillery status` prints it).
    pub document_status: Vec<DocumentProgress>,
    /// Why the input could not be listed in full, when it could not (the run still finished what it found;
    /// the command then exits with an error after printing this summary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Whether the run was interrupted (Ctrl-C): run the same command again to continue.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// What a resumed run did not do again.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Resumed {
    /// Chunks whose every example already had an outcome.
    pub chunks_skipped: u64,
    /// Chunks continued from their recorded state.
    pub chunks_continued: u64,
    /// Records published again from the store instead of an LLM call.
    pub records_republished: u64,
}

impl Summary {
    /// Adds the per-document ledger, priced by the configuration.
    pub fn with_ledger(mut self, ledger: &Ledger, cfg: &RunConfig) -> Summary {
        let judge = cfg.llm.judge();
        self.per_document = ledger
            .snapshot()
            .into_iter()
            .map(|(doc, u)| {
                let cost = match (
                    cfg.llm.generator.cost(u.generator_prompt, u.generator_completion),
                    judge.cost(u.judge_prompt, u.judge_completion),
                ) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
                };
                (doc, DocumentUsage { tokens: u, cost })
            })
            .collect();
        self
    }

    /// Reads the counters of a run.
    pub fn from_metrics(m: &Metrics, duration: Duration, duplicates: u64, cfg: &RunConfig) -> Summary {
        let (llm, judge) = (LlmMetrics::of(m), JudgeMetrics::of(m));
        let out = |stage: StageName, topic: Topic| {
            Metrics::counter_sum(&m.records_out, &[("stage", stage.as_str()), ("topic", topic.base_name())])
        };
        let mut by_reason = BTreeMap::new();
        for reason in RejectReason::ALL {
            let n = Metrics::counter_sum(&m.rejected, &[("reason", reason.as_str())]);
            if n > 0 {
                by_reason.insert(reason.as_str().to_string(), n);
            }
        }
        let scores: Vec<(u64, u64)> =
            (1..=5).map(|s| (s, Metrics::counter_sum(&judge.scores, &[("score", &s.to_string())]))).collect();
        let verdicts: u64 = scores.iter().map(|(_, n)| n).sum();
        let mean_score =
            (verdicts > 0).then(|| scores.iter().map(|(s, n)| (s * n) as f64).sum::<f64>() / verdicts as f64);
        let below = scores.iter().filter(|(s, _)| (*s as i32) < cfg.judge.threshold).map(|(_, n)| n).sum::<u64>();
        let tokens =
            |role: LlmRole, kind: &str| Metrics::counter_sum(&llm.tokens, &[("role", role.as_str()), ("kind", kind)]);
        let (gp, gc, jp, jc) = (
            tokens(LlmRole::Generator, "prompt"),
            tokens(LlmRole::Generator, "completion"),
            tokens(LlmRole::Judge, "prompt"),
            tokens(LlmRole::Judge, "completion"),
        );
        let cost = match (cfg.llm.generator.cost(gp, gc), cfg.llm.judge().cost(jp, jc)) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        let accepted = out(StageName::Dedup, Topic::Accepted);
        let trust = |outcome: &str| Metrics::counter_sum(&judge.trust, &[("outcome", outcome)]);
        let (trusted, evaluated) =
            (trust("trusted"), trust("trusted") + trust("trusted_on_reask") + trust("untrusted"));
        let secs = duration.as_secs_f64().max(1e-9);
        let drafts = out(StageName::Generate, Topic::Drafts);
        Summary {
            documents: out(StageName::Source, Topic::Documents),
            duplicate_documents: duplicates,
            chunks: out(StageName::Extract, Topic::Chunks),
            drafts,
            regenerated: out(StageName::Judge, Topic::Regenerate),
            repaired: out(StageName::Generate, Topic::Regenerate),
            accepted,
            rejected: by_reason.values().sum(),
            rejected_by_reason: by_reason,
            dead_letters: Metrics::counter_sum(&m.dead_letters, &[]),
            judge_screened: Metrics::counter_sum(&judge.screened, &[]),
            judge_agreement_rate: (evaluated > 0).then(|| trusted as f64 / evaluated as f64),
            mean_score,
            rejection_rate: (verdicts > 0).then(|| below as f64 / verdicts as f64),
            llm_calls: Metrics::counter_sum(&llm.calls, &[("outcome", "ok")]),
            prompt_tokens: gp + jp,
            completion_tokens: gc + jc,
            prompt_cache_hit_rate: {
                let cached = Metrics::counter_sum(&llm.prompt_cached, &[]);
                (cached > 0 && gp + jp > 0).then(|| cached as f64 / (gp + jp) as f64)
            },
            tokens_per_accepted: (accepted > 0).then(|| (gp + gc + jp + jc) as f64 / accepted as f64),
            cost,
            per_document: BTreeMap::new(),
            duration_s: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
            drafts_per_s: drafts as f64 / secs,
            accepted_per_s: accepted as f64 / secs,
            ..Summary::default()
        }
    }
}
