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
    /// Drafts stopped by a cheap check before any judge call, by check (truncated, fragment,
    /// echoed_template).
    pub screened: IntCounterVec,
    /// Judge answers by trust (trusted, trusted_on_reask, reasked, untrusted) and why one was not trusted
    /// (none, placeholder, praise_low_score, flaw_high_score): the agreement rate is `trusted / first asks`.
    pub trust: IntCounterVec,
    /// Examples whose answer was compared with the judge's own short answer, by outcome (agrees, differs,
    /// not_stated).
    pub answer_check: IntCounterVec,
    /// The judge's own short answers to a batch's questions, by whether it asked the model (asked) or had
    /// them from an earlier judging of the same questions (reused: a regeneration or repair).
    pub own_answers: IntCounterVec,
    /// Judge calls by how many examples they scored together (1, 2, ..., 8+).
    pub batches: IntCounterVec,
    /// Regenerations that passed, by whether the two-order comparison verified them better than the draft
    /// they replace (verified, unverified, repair: a first draft that failed a check).
    pub preference: IntCounterVec,
}

impl JudgeMetrics {
    pub fn of(m: &Metrics) -> JudgeMetrics {
        JudgeMetrics {
            scores: m.counter_vec("judge_scores_total", "Judge verdicts by overall score", &["score"]),
            verdicts: m.counter_vec("judge_verdicts_total", "Judge verdicts by outcome", &["outcome", "attempt"]),
            screened: m.counter_vec("judge_screened_total", "Drafts stopped before any judge call", &["check"]),
            trust: m.counter_vec("judge_trust_total", "Judge answers by trust", &["outcome", "why"]),
            answer_check: m.counter_vec(
                "judge_answer_check_total",
                "Examples compared with the judge's own short answer, by outcome",
                &["outcome"],
            ),
            own_answers: m.counter_vec(
                "judge_own_answers_total",
                "The judge's own short answers to a batch's questions, asked or reused",
                &["outcome"],
            ),
            batches: m.counter_vec("judge_batches_total", "Critic calls by examples scored together", &["size"]),
            preference: m.counter_vec(
                "judge_preference_total",
                "Accepted regenerations by the two-order comparison with the draft they replace",
                &["outcome"],
            ),
        }
    }

    /// The `size` label of a batch: its size, with 8 and more in one bucket.
    pub fn size_label(n: usize) -> String {
        if n >= 8 { "8+".to_string() } else { n.to_string() }
    }
}
