//! The judge's evaluation of a batch of drafts of one context, in as few calls as it can take:
//!
//! 1. every draft is screened by the cheap checks; a draft stopped there costs no judge tokens;
//! 2. the judge answers the batch's questions itself, briefly, from the context (one call, the questions
//!    only), and each example's answer is compared with its own ([`distillery_quality::answer`]);
//! 3. the critic scores every example of the batch in one call, criteria first, the overall derived from
//!    them; it is a follow-up of the answer call, so the server's prefix cache serves the context and the
//!    questions again;
//! 4. a verdict whose rationale cannot be trusted is asked again (with the other distrusted ones of the
//!    batch), and never passes while still distrusted; an answer that differs from the judge's own, or
//!    whose question the judge found no answer to, is capped below passing with that as its rationale, and
//!    is not shown to the critic at all (its verdict could not change the outcome);
//! 5. a passing regeneration is compared with the draft it replaces, in both orders, before the two may
//!    become a DPO pair.

use std::time::Duration;

use distillery_core::{Draft, DraftKind, Judged, Preference, Scores, StageError, ids, now_ms};
use distillery_llm::Usage;
use distillery_prompts::templates::{self, AnswerReply, Better, CompareReply, JudgeReply, Verdict};
use distillery_prompts::{Task, seed_of, transcript};
use distillery_quality::answer::{self, Agreement};
use distillery_quality::verdict::{self as checks, Distrust};

use crate::metrics::JudgeMetrics;
use crate::own_answers::OwnAnswers;
use crate::{Evaluation, Judge};

/// Output tokens a verdict (criteria, overall, a one-sentence rationale) and a short answer take at most
/// in a batched reply: a batch's reply gets room for all of its items (a larger model writes longer
/// rationales; eight verdicts do not fit the single-verdict default and came back cut off at 1.5B).
const VERDICT_TOKENS: u32 = 96;
const ANSWER_TOKENS: u32 = 48;

/// The highest score of the criterion an answer check fails (correctness where the answer differs from the
/// judge's own, faithfulness where the judge found no answer): below any threshold above it.
const ANSWER_CHECK_CAP: i32 = 2;

/// `req` with room for `n` items of `per_item` tokens (never less than the single-call default of 256).
fn room(mut req: distillery_llm::ChatRequest, per_item: u32, n: usize) -> distillery_llm::ChatRequest {
    let want = (per_item * n as u32 + 64).max(256);
    req.max_tokens = Some(req.max_tokens.unwrap_or(0).max(want));
    req
}

/// Calls and tokens a group of drafts cost, shared out over its drafts.
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    usage: Usage,
    latency: Duration,
}

impl Spent {
    fn add(&mut self, usage: Usage, latency: Duration) {
        self.usage.prompt_tokens += usage.prompt_tokens;
        self.usage.completion_tokens += usage.completion_tokens;
        self.latency += latency;
    }

    /// Draft `i`'s share of `n` (the first absorbs the remainder).
    fn share(&self, n: usize, i: usize) -> Usage {
        let n = n.max(1) as u32;
        let part = |t: u32| t / n + if i == 0 { t % n } else { 0 };
        Usage { prompt_tokens: part(self.usage.prompt_tokens), completion_tokens: part(self.usage.completion_tokens) }
    }
}

/// The examples of a batch as the critic reads them: `[k]` then the transcript, indented.
fn examples(drafts: &[&Draft]) -> String {
    drafts
        .iter()
        .enumerate()
        .map(|(k, d)| format!("[{}] {}", k + 1, transcript(d).replace('\n', "\n    ")))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Judge {
    /// Evaluates drafts, in order: one result each. Drafts are judged together when they share a context
    /// (as the drafts of one generation call do), at most `max_batch` at a time; conversations alone.
    pub async fn evaluate_batch(&self, drafts: Vec<Draft>) -> Result<Vec<Evaluation>, StageError> {
        let mut results: Vec<Option<Evaluation>> = vec![None; drafts.len()];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, d) in drafts.iter().enumerate() {
            if let Some(s) = checks::screen(&d.exchanges(), &d.context_text, &self.echo, &self.cfg.checks) {
                self.metrics.screened.with_label_values(&[s.check]).inc();
                tracing::debug!(draft = %d.id, check = s.check, finding = %s.finding, "screened before judging");
                results[i] = Some(Evaluation::Screened(s));
                continue;
            }
            let joins = |g: &Vec<usize>| {
                let first = &drafts[g[0]];
                d.kind == DraftKind::Qa
                    && first.kind == DraftKind::Qa
                    && first.context_text == d.context_text
                    && g.len() < self.cfg.max_batch
            };
            match groups.iter_mut().find(|g| joins(g)) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        for g in groups {
            let members: Vec<&Draft> = g.iter().map(|&i| &drafts[i]).collect();
            for (i, e) in g.iter().zip(self.judge_group(&members).await?) {
                results[*i] = Some(e);
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every draft is screened or judged")).collect())
    }

    /// Judges drafts of one context that passed screening: the answer call, the critic, re-asks of
    /// distrusted verdicts, the answer check, and the preference check of passing regenerations.
    async fn judge_group(&self, drafts: &[&Draft]) -> Result<Vec<Evaluation>, StageError> {
        let n = drafts.len();
        let first = drafts[0];
        let (context, document) = (first.context_text.as_str(), first.document_id.as_str());
        let seed = seed_of(&drafts.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(","));
        let answer_check = self.cfg.answer_check && drafts.iter().all(|d| d.kind == DraftKind::Qa);
        let template_hash = self.caller.templates.hash(Task::Judge, &[if answer_check { "answers" } else { "" }]);
        let (template, judge_text) = self.caller.templates.task(Task::Judge);
        let mut spent = Spent::default();
        self.metrics.batches.with_label_values(&[&JudgeMetrics::size_label(n)]).inc();

        // 1. The judge's own short answers, before it sees the examples' answers; kept from an earlier
        //    judging of the same questions (a regeneration) where there was one.
        let mut prior = None;
        let own: Option<Vec<String>> = if answer_check {
            let task = templates::render(
                self.caller.templates.task(Task::Answer).1,
                &[("questions", &templates::numbered_questions(drafts.iter().map(|d| d.question())))],
            );
            let req = room(
                self.caller.request(context, task, seed, "answers", templates::answer_schema(n)),
                ANSWER_TOKENS,
                n,
            );
            let (model, prompt) = (&self.caller.llm.config().model, self.caller.templates.hash(Task::Answer, &[]));
            let keys: Vec<String> =
                drafts.iter().map(|d| OwnAnswers::key(model, &prompt, context, d.question())).collect();
            if let Some(answers) = self.own_answers.get_all(&keys) {
                self.metrics.own_answers.with_label_values(&["reused"]).inc();
                tracing::debug!(drafts = n, "the judge's own answers kept from an earlier judging; no call");
                let reply = serde_json::json!({ "answers": answers }).to_string();
                prior = Some((req, reply));
                Some(answers)
            } else {
                self.metrics.own_answers.with_label_values(&["asked"]).inc();
                let out = self
                    .caller
                    .call::<AnswerReply, _>(document, req.clone(), |r| {
                        if r.answers.len() == n {
                            Ok(())
                        } else {
                            Err(format!("expected {n} answers, got {}", r.answers.len()))
                        }
                    })
                    .await?;
                spent.add(out.usage, out.response.latency);
                prior = Some((req, out.response.content.clone()));
                self.own_answers.insert_all(&keys, &out.value.answers);
                Some(out.value.answers)
            }
        } else {
            None
        };

        // 2. Each answer compared with the judge's own. One that differs, or whose question the judge found no
        //    answer to, cannot pass whatever the critic says (its cap is below any threshold): it is settled
        //    here and the critic is not asked about it, so a regeneration that misses again costs no call.
        let checked: Vec<Option<(String, Agreement)>> = drafts
            .iter()
            .enumerate()
            .map(|(k, draft)| {
                let own = own.as_ref()?.get(k)?;
                let a = answer::agreement(draft.question(), draft.answer(), own);
                self.metrics.answer_check.with_label_values(&[a.label()]).inc();
                Some((own.trim().to_string(), a))
            })
            .collect();
        let settled = |k: usize| {
            ANSWER_CHECK_CAP < self.cfg.threshold
                && matches!(&checked[k], Some((_, Agreement::Differs(_) | Agreement::NotStated)))
        };
        let critiqued: Vec<usize> = (0..n).filter(|&k| !settled(k)).collect();

        // 3. The critic, on the other examples at once; 4. again on those whose verdict cannot be trusted.
        let critic_task = |members: &[&Draft]| {
            templates::render(judge_text, &[("example", &templates::neutralize(&examples(members)))])
        };
        let mut verdicts: Vec<Option<Verdict>> = vec![None; n];
        let mut asked = vec![0u32; n];
        let mut distrust: Vec<Option<Distrust>> = vec![None; n];
        let mut again = critiqued;
        for round in 0..=self.cfg.checks.reasks {
            if again.is_empty() {
                break;
            }
            let members: Vec<&Draft> = again.iter().map(|&k| drafts[k]).collect();
            let m = members.len();
            let req = match (&prior, round) {
                // The first ask follows the answer call, so the server's prefix cache serves it again.
                (Some((req, reply)), 0) => self.caller.follow_up(
                    req,
                    reply,
                    critic_task(&members),
                    seed,
                    "verdicts",
                    templates::judge_schema(m),
                ),
                _ => {
                    if round > 0 {
                        tracing::debug!(drafts = m, "verdicts not trusted; asking again");
                    }
                    self.caller.request(
                        context,
                        critic_task(&members),
                        seed.wrapping_add(u64::from(round)),
                        "verdicts",
                        templates::judge_schema(m),
                    )
                }
            };
            let out = self.caller.call::<JudgeReply, _>(document, room(req, VERDICT_TOKENS, m), |r| r.check(m)).await?;
            spent.add(out.usage, out.response.latency);
            for (v, &k) in out.value.verdicts.into_iter().zip(&again) {
                asked[k] += 1;
                distrust[k] = self.read_trust(&v, context, asked[k]);
                verdicts[k] = Some(v);
            }
            again.retain(|&k| distrust[k].is_some());
        }

        // 5. The verdicts, capped where the answer differs from the judge's own; a settled example's only
        //    scores are the capped ones (its other criteria stay 0: not scored).
        let mut results = Vec::with_capacity(n);
        for (k, draft) in drafts.iter().enumerate() {
            let (mut scores, mut rationale) = match &verdicts[k] {
                Some(v) => (
                    Scores {
                        overall: v.overall(),
                        faithfulness: v.faithfulness,
                        correctness: v.correctness,
                        clarity: v.clarity,
                        usefulness: v.usefulness,
                    },
                    v.rationale(),
                ),
                // Settled by the answer check: only the criterion it measured is scored, and its finding is the
                // whole rationale (below).
                None => (
                    Scores { overall: ANSWER_CHECK_CAP, faithfulness: 0, correctness: 0, clarity: 0, usefulness: 0 },
                    String::new(),
                ),
            };
            // A criterion not scored (0) gets the cap.
            let cap = |c: i32| if c == 0 { ANSWER_CHECK_CAP } else { c.min(ANSWER_CHECK_CAP) };
            match &checked[k] {
                Some((_, Agreement::Differs(why))) => {
                    scores.correctness = cap(scores.correctness);
                    rationale = format!("{rationale} Answer check: {why}.");
                }
                Some((_, Agreement::NotStated)) => {
                    scores.faithfulness = cap(scores.faithfulness);
                    rationale =
                        format!("{rationale} Answer check: the judge found no answer to this question in the context.");
                }
                _ => {}
            }
            rationale = rationale.trim_start().to_string();
            let scored = [scores.faithfulness, scores.correctness].into_iter().filter(|&c| c > 0);
            scores.overall = scored.fold(scores.overall, i32::min);
            let trusted = distrust[k].is_none();
            if let Some(d) = &distrust[k] {
                rationale = format!(
                    "verdict not trusted after {} ask(s): {}; the critic said: {rationale}",
                    asked[k],
                    d.describe()
                );
            }
            self.metrics.scores.with_label_values(&[&scores.overall.to_string()]).inc();
            let usage = spent.share(n, k);
            let judge = self.caller.model_call(template, &template_hash, seed, usage, spent.latency);
            let mut judged_draft = (*draft).clone();
            let passed = trusted && scores.overall >= self.cfg.threshold;
            if passed && self.cfg.verify_preference {
                judged_draft = self.with_preference(judged_draft, seed).await?;
            }
            let judged = Judged {
                id: ids::hash_parts(&["judged", &draft.id, &judge.model, &template_hash]),
                draft: judged_draft,
                scores,
                rationale,
                passed,
                judge,
                judged_at_ms: now_ms(),
            };
            tracing::debug!(draft = %draft.id, overall = scores.overall, passed, asked = asked[k], "judged");
            results.push(Evaluation::Judged {
                judged,
                asked: asked[k],
                distrust: distrust[k].clone(),
                answer: checked[k].clone(),
            });
        }
        Ok(results)
    }

    /// Whether a verdict can be trusted, counted by its ask number.
    fn read_trust(&self, v: &Verdict, context: &str, asked: u32) -> Option<Distrust> {
        let d = checks::distrust(&v.rationale(), v.overall(), self.cfg.threshold, &self.echo, context);
        let outcome = match (&d, asked) {
            (None, 1) => "trusted",
            (None, _) => "trusted_on_reask",
            (Some(_), a) if a <= self.cfg.checks.reasks => "reasked",
            (Some(_), _) => "untrusted",
        };
        let why = d.as_ref().map_or("none", Distrust::label);
        self.metrics.trust.with_label_values(&[outcome, why]).inc();
        d
    }

    /// A passing regeneration with its preference over the draft it replaces: a repair's first draft failed
    /// a check (verified by the rule); a critic regeneration is compared with its first draft in both orders
    /// and is verified better only when both orders prefer it.
    async fn with_preference(&self, mut draft: Draft, seed: u64) -> Result<Draft, StageError> {
        let Some(prev) = draft.previous.clone() else { return Ok(draft) };
        if draft.attempt < 2 {
            return Ok(draft);
        }
        let preference = if prev.scores.overall == 0 {
            self.metrics.preference.with_label_values(&["repair"]).inc();
            Preference {
                verified: true,
                votes: vec!["check".into()],
                reason: format!("the first draft failed a check: {}", prev.rationale),
            }
        } else {
            let mut old = draft.clone();
            old.messages = prev.messages.clone();
            let (new_text, old_text) = (answers_of(&draft), answers_of(&old));
            let question = draft.question().to_string();
            let (_, text) = self.caller.templates.task(Task::Compare);
            let mut votes = Vec::new();
            let mut reasons = Vec::new();
            for (order, (first, second)) in [(&old_text, &new_text), (&new_text, &old_text)].into_iter().enumerate() {
                let task = templates::render(
                    text,
                    &[
                        ("question", &templates::neutralize(&question)),
                        ("first", &templates::neutralize(first)),
                        ("second", &templates::neutralize(second)),
                    ],
                );
                let req = self.caller.request(
                    &draft.context_text,
                    task,
                    seed.wrapping_add(100 + order as u64),
                    "comparison",
                    templates::compare_schema(),
                );
                let out = self.caller.call::<CompareReply, _>(&draft.document_id, req, |_| Ok(())).await?;
                let new_first = order == 1;
                let vote = match (out.value.better, new_first) {
                    (Better::Equal, _) => "equal",
                    (Better::First, true) | (Better::Second, false) => "new",
                    _ => "old",
                };
                votes.push(vote.to_string());
                reasons.push(out.value.reason.trim().to_string());
            }
            let verified = votes.iter().all(|v| v == "new");
            self.metrics.preference.with_label_values(&[if verified { "verified" } else { "unverified" }]).inc();
            Preference {
                verified,
                votes,
                reason: format!(
                    "compared in both orders: {}",
                    reasons.iter().filter(|r| !r.is_empty()).cloned().collect::<Vec<_>>().join(" / ")
                ),
            }
        };
        if let Some(p) = draft.previous.as_mut() {
            p.preference = Some(preference);
        }
        Ok(draft)
    }
}

/// The assistant side of a draft, for a comparison: its answer, or its assistant turns in order.
fn answers_of(d: &Draft) -> String {
    match d.kind {
        DraftKind::Qa => d.answer().to_string(),
        DraftKind::Conversation => transcript(d),
    }
}
