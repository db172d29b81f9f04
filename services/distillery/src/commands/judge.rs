//! `distillery judge PAIRS.jsonl`: the pipeline's own judge (its screening, answer check, critic, trust
//! checks and threshold, from the configuration) over `{"context", "question", "answer"}` lines, one JSON
//! verdict a line on stdout in input order. Consecutive lines with the same context are judged together, as
//! the drafts of one generation call are in the pipeline (at most `judge.max_batch` at a time); batches run
//! concurrently up to the judge model's concurrency. A last line on stderr sums up the LLM calls and tokens
//! spent.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use distillery_component::{Component, Deps};
use distillery_core::{Draft, DraftKind, Message, Metrics, ModelCall, Role, ids, now_ms};
use distillery_judge::{Evaluation, Judge, JudgeComponent};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::RunConfig;

/// One pair to judge.
#[derive(Debug, Deserialize)]
struct Pair {
    context: String,
    question: String,
    answer: String,
}

/// The draft the pipeline would judge for a pair (a first-attempt QA draft of its own document).
fn draft_of(pair: &Pair) -> Draft {
    let id = ids::hash_parts(&["judge-command", &pair.context, &pair.question, &pair.answer]);
    let doc = ids::hash_parts(&["judge-command", &pair.context]);
    Draft {
        id: id.clone(),
        kind: DraftKind::Qa,
        document_id: doc.clone(),
        chunk_id: doc.clone(),
        context_id: doc,
        context_text: pair.context.clone(),
        messages: vec![Message::new(Role::User, &pair.question), Message::new(Role::Assistant, &pair.answer)],
        reasoning: None,
        question_type: None,
        difficulty: None,
        evidence: None,
        attempt: 1,
        parent_ids: Vec::new(),
        generator: ModelCall {
            provider: "input".into(),
            model: "input".into(),
            temperature: 0.0,
            max_tokens: 0,
            seed: None,
            template: "input".into(),
            template_hash: String::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0,
        },
        previous: None,
        created_at_ms: now_ms(),
        superseded_by: None,
        batch: None,
    }
}

/// A criterion's score, `None` when it was not scored (0).
fn scored(score: i32) -> Option<i32> {
    (score > 0).then_some(score)
}

/// The output line of one evaluation.
fn verdict_line(e: Result<Evaluation, String>) -> Value {
    match e {
        Ok(Evaluation::Screened(s)) => json!({
            "accept": false,
            "overall": 1,
            "faithfulness": null, "correctness": null, "clarity": null, "usefulness": null,
            "rationale": s.finding,
            "check": s.check,
            "reason": s.reason.as_str(),
            "judge_calls": 0,
        }),
        Ok(Evaluation::Judged { judged, asked, distrust, answer }) => json!({
            "accept": judged.passed,
            "overall": judged.scores.overall,
            // A criterion the critic did not score (0: the answer check settled the pair) is null.
            "faithfulness": scored(judged.scores.faithfulness),
            "correctness": scored(judged.scores.correctness),
            "clarity": scored(judged.scores.clarity),
            "usefulness": scored(judged.scores.usefulness),
            "rationale": judged.rationale,
            "trusted": distrust.is_none(),
            "distrust": distrust.as_ref().map(|d| d.label()),
            "judge_calls": asked,
            "own_answer": answer.as_ref().map(|(own, _)| own.clone()),
            "answer_check": answer.as_ref().map(|(_, a)| a.label()),
            "model": judged.judge.model,
        }),
        Err(error) => json!({"accept": false, "overall": null, "error": error}),
    }
}

pub async fn judge(
    pairs: &Path,
    cfg: RunConfig,
    llm_base_url: Option<String>,
    llm_model: Option<String>,
) -> anyhow::Result<()> {
    let mut llm = cfg.llm.judge();
    if let Some(url) = llm_base_url {
        llm.base_url = url;
    }
    if let Some(model) = llm_model {
        llm.model = model;
    }
    let file = std::fs::File::open(pairs).with_context(|| format!("opening {}", pairs.display()))?;
    let mut inputs = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", pairs.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).with_context(|| {
            format!("{}:{}: expected {{\"context\", \"question\", \"answer\"}}", pairs.display(), n + 1)
        })?;
        inputs.push(pair);
    }
    let metrics = Metrics::global();
    let deps = Deps::local(metrics.clone());
    let component = JudgeComponent { llm: &llm, judge: &cfg.judge };
    component.check(&deps).await?;
    let judge: Judge = component.build(&deps).await?;
    let concurrency = judge.caller.llm.concurrency().max(1);
    // Consecutive lines of one context form a batch, as one generation call's drafts do.
    let mut batches: Vec<Vec<Draft>> = Vec::new();
    for p in &inputs {
        let d = draft_of(p);
        match batches.last_mut() {
            Some(b) if b.len() < cfg.judge.max_batch && b[0].context_text == d.context_text => b.push(d),
            _ => batches.push(vec![d]),
        }
    }
    let judge = &judge;
    let mut results = futures::stream::iter(batches.into_iter().map(|drafts| async move {
        let n = drafts.len();
        match judge.evaluate_batch(drafts).await {
            Ok(e) => e.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e.to_string()); n],
        }
    }))
    .buffered(concurrency);
    let mut stdout = std::io::stdout().lock();
    while let Some(batch) = results.next().await {
        for e in batch {
            serde_json::to_writer(&mut stdout, &verdict_line(e))?;
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
    }
    let llm = distillery_llm::LlmMetrics::of(&metrics);
    let sum = |c: &distillery_core::prometheus::IntCounterVec| Metrics::counter_sum(c, &[]);
    let tokens = |kind: &str| Metrics::counter_sum(&llm.tokens, &[("kind", kind)]);
    eprintln!(
        "{}",
        json!({"pairs": inputs.len(), "llm_calls": sum(&llm.calls), "prompt_tokens": tokens("prompt"),
               "completion_tokens": tokens("completion"), "cached_prompt_tokens": sum(&llm.prompt_cached)})
    );
    Ok(())
}
