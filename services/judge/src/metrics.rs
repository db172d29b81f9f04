//! The judge's metrics: every verdict by overall score, and by outcome and attempt.

use distillery_core::Metrics;
use distillery_core::prometheus::IntCounterVec;

/// The judge's families, registered in a process's [`Metrics`] registry.
#[derive(Debug, Clone)]
pub struct JudgeMetrics {
    /// Judge verdicts by overall score (1-5).
    pub scores: IntCounterVec,
    /// Judge verdicts by outcome (pass, regenerate, reject) and attempt: the rejection rate is
    /// `reject / sum`.
    pub verdicts: IntCounterVec,
}

impl JudgeMetrics {
    pub fn of(m: &Metrics) -> JudgeMetrics {
        JudgeMetrics {
            scores: m.counter_vec("judge_scores_total", "Judge verdicts by overall score", &["score"]),
            verdicts: m.counter_vec("judge_verdicts_total", "Judge verdicts by outcome", &["outcome", "attempt"]),
        }
    }
}
