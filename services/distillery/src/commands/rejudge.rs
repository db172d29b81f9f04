//! `distillery rejudge --from DIR|--store URL [--judge-model M] [--threshold T] [--llm-base-url URL]`:
//! re-decides the retained drafts of a dataset without generating anything, and records the result as a
//! new dataset version with a diff of what changed.
//!
//! The retained drafts are those whose current outcome a judge decided: every accepted example and every
//! draft rejected on a verdict (by the judge, an earlier rejudge, or a failed regeneration of a low-scored
//! draft). Other rejections (duplicates, drafts generation itself refused, failed chunks and documents) stay
//! as they are.
//!
//! Two ways to re-decide:
//! - **with a judge** (`--judge-model` or `--llm-base-url` given): the pipeline's own judge (screening,
//!   answer check, critic, trust checks; as `distillery judge` runs it) scores every retained draft again,
//!   the drafts of one context in one batch, against `--threshold` (default: the configured one). No
//!   generator call is made: a draft that does not pass is rejected, never regenerated.
//! - **with the stored scores** (only `--threshold`): each draft's last verdict is read against the new
//!   threshold (a verdict the judge did not trust never passes; a draft screened before any judge call has
//!   no scores and stays rejected). No LLM call at all.
//!
//! The version (`dataset_versions`) and each draft's new outcome (`decisions`) go into the store; exports
//! from it (and from a run folder that holds it) take the latest version's outcome, a reviewer's word above
//! it. With `--from DIR` the diff goes to `DIR/versions/N/` (`diff.jsonl`, `version.json`) and the folder's
//! training files are rewritten from the new version.
//!
//! As a Kafka replay (`--kafka-config FILE`, or `--brokers`/`--prefix`): the drafts are read again from the
//! pipeline's `drafts` topic, from its start to where it ended when the replay began, by a consumer group
//! of the version's own (`<group_prefix>rejudge-v<N>`, committed when the version is recorded). Nothing is
//! published: no regeneration, no verdict on `judged`, the running pipeline is untouched. The store (the
//! sink's) still says which drafts are retained and what their outcome was; a retained draft the topic no
//! longer holds (past its retention) keeps its outcome and is counted as `not_replayed`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use distillery_component::{Component, Deps};
use distillery_core::{
    Accepted, Codec, Draft, Judged, Metrics, ModelCall, Record, RejectReason, Rejected, StageName, Topic, ids, now_ms,
};
use distillery_dataset::versions::version_record_id;
use distillery_dataset::{DatasetStore, DatasetVersion, DecidedBy, OutcomeKind, SqlStore};
use distillery_judge::{Evaluation, Judge, JudgeComponent};
use distillery_kafka::replay::TopicToEnd;
use futures::StreamExt;
use serde::Serialize;

use crate::config::RunConfig;

/// Records read per page.
const PAGE: usize = 500;
/// The prefix of the rationale of a verdict the judge did not trust (never passes on any threshold).
const UNTRUSTED: &str = "verdict not trusted";
/// The model named in a version decided from the stored scores.
pub const STORED_SCORES: &str = "stored-scores";

/// What `distillery rejudge` was asked.
#[derive(Debug, Clone, Default)]
pub struct RejudgeArgs {
    pub from: Option<PathBuf>,
    pub store: Option<String>,
    pub judge_model: Option<String>,
    pub threshold: Option<i32>,
    pub llm_base_url: Option<String>,
    pub config: Option<PathBuf>,
    /// Where the diff goes (default: `DIR/versions/N` with `--from`, none with `--store`).
    pub out: Option<PathBuf>,
    /// The Kafka replay: the drafts are read again from the `drafts` topic by a consumer group of this
    /// version's own (`<group_prefix>rejudge-v<N>`) instead of from the store.
    pub kafka: Option<distillery_kafka::KafkaConfig>,
}

/// One draft whose outcome changed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `newly_accepted` or `newly_rejected`.
    pub change: ChangeKind,
    pub draft_id: String,
    pub document_id: String,
    pub question: String,
    pub answer: String,
    /// The overall score before and after (absent: no score).
    pub before_overall: Option<i32>,
    pub after_overall: Option<i32>,
    /// Why it is now rejected, or the new verdict's rationale.
    pub detail: String,
}

/// Which way an outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    NewlyAccepted,
    NewlyRejected,
}

/// What a rejudge did (printed as JSON, and `version.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RejudgeReport {
    pub version: u64,
    pub judge_model: String,
    pub threshold: i32,
    /// Retained drafts re-decided.
    pub judged: u64,
    /// Outcomes no judge decided (duplicates, failed chunks, ...), left as they were.
    pub kept: u64,
    pub accepted_before: u64,
    pub accepted_after: u64,
    pub newly_accepted: u64,
    pub newly_rejected: u64,
    pub unchanged: u64,
    pub llm_calls: u64,
    /// LLM calls of the generator role (none: a rejudge never generates).
    pub generator_calls: u64,
    /// The diff file, when one was written.
    pub diff: Option<PathBuf>,
    /// Where the drafts were read from: `store`, or `kafka:<consumer group>` for a Kafka replay.
    pub source: String,
    /// Kafka replay: the records read from the `drafts` topic.
    pub replay_read: u64,
    /// Kafka replay: retained drafts the topic no longer holds (their outcome stands).
    pub not_replayed: u64,
}

/// A retained draft and its outcome before this version.
struct Retained {
    draft: Draft,
    before: Record,
}

impl Retained {
    fn was_accepted(&self) -> bool {
        matches!(self.before, Record::Accepted(_))
    }
    fn before_scores(&self) -> Option<distillery_core::Scores> {
        match &self.before {
            Record::Accepted(a) => Some(a.judged.scores),
            Record::Rejected(r) => r.scores,
            _ => None,
        }
    }
    fn before_rationale(&self) -> String {
        match &self.before {
            Record::Accepted(a) => a.judged.rationale.clone(),
            Record::Rejected(r) => r.rationale.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }
    fn nearest(&self) -> Option<f32> {
        match &self.before {
            Record::Accepted(a) => a.nearest_similarity,
            _ => None,
        }
    }
}

/// The outcome a version gives a judged draft.
fn outcome(judged: Judged, r: &Retained, version: u64, threshold: i32) -> Record {
    if judged.passed {
        return Record::Accepted(Accepted {
            id: version_record_id("accepted", &judged.draft.id, version),
            judged,
            nearest_similarity: r.nearest(),
            accepted_at_ms: now_ms(),
        });
    }
    let detail = format!(
        "rejudged (version {version}): scored {}/5 (threshold {threshold}): {}",
        judged.scores.overall, judged.rationale
    );
    let mut rejected =
        Rejected::of(&Record::Judged(judged), DecidedBy::Rejudge.as_str(), RejectReason::LowScore, detail);
    rejected.id = version_record_id("rejected", &r.draft.id, version);
    Record::Rejected(rejected)
}

/// The model call of a verdict re-read from the stored scores.
fn stored_call(threshold: i32) -> ModelCall {
    ModelCall {
        provider: DecidedBy::Rejudge.as_str().into(),
        model: STORED_SCORES.into(),
        temperature: 0.0,
        max_tokens: 0,
        seed: None,
        template: format!("threshold {threshold}"),
        template_hash: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0,
    }
}

/// The new outcome of a retained draft from its stored verdict; `None` when it has none (screened).
fn rescore(r: &Retained, version: u64, threshold: i32) -> Option<Record> {
    let scores = r.before_scores()?;
    let rationale = r.before_rationale();
    let passed = scores.overall >= threshold && !rationale.starts_with(UNTRUSTED);
    let judge = match &r.before {
        Record::Accepted(a) => a.judged.judge.clone(),
        _ => stored_call(threshold),
    };
    let judged = Judged {
        id: ids::hash_parts(&["judged", &r.draft.id, STORED_SCORES, &threshold.to_string()]),
        draft: r.draft.clone(),
        scores,
        rationale,
        passed,
        judge,
        judged_at_ms: now_ms(),
    };
    Some(outcome(judged, r, version, threshold))
}

/// Every retained draft (whose outcome a judge decided) and the number of outcomes kept as they are.
async fn retained(store: &SqlStore) -> anyhow::Result<(Vec<Retained>, u64)> {
    let overrides = store.overrides().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    let mut kept = 0u64;
    let mut seen = std::collections::HashSet::new();
    for kind in [OutcomeKind::Accepted, OutcomeKind::Rejected] {
        let mut after: Option<String> = None;
        loop {
            let page = store.outcomes(kind, after.as_deref(), PAGE).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let full = page.len() == PAGE;
            after = page.last().map(|r| r.id().to_string()).or(after);
            for record in page {
                let Some(draft_id) = distillery_dataset::subject_draft(&record).map(|d| d.id.clone()) else {
                    kept += 1;
                    continue;
                };
                // The latest version's outcome (not a reviewer's: a review stands above any version anyway).
                let current = overrides.decided.get(&draft_id).cloned().unwrap_or(record);
                let judge_decided = match &current {
                    Record::Accepted(_) => true,
                    // The judge's rejections, and those of drafts a judge scored that another stage
                    // rejected on its verdict (a failed regeneration of a low-scored draft); never duplicates.
                    Record::Rejected(r) => {
                        r.reason != RejectReason::Duplicate
                            && (r.stage == StageName::Judge.as_str()
                                || r.stage == DecidedBy::Rejudge.as_str()
                                || r.scores.is_some())
                    }
                    _ => false,
                };
                let draft = distillery_dataset::subject_draft(&current).cloned();
                match draft {
                    Some(draft) if judge_decided && seen.insert(draft.id.clone()) => {
                        out.push(Retained { draft, before: current })
                    }
                    _ => kept += 1,
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok((out, kept))
}

/// Judges the retained drafts again with the pipeline's judge, the drafts of one context together.
async fn judge_again(
    judge: &Judge,
    retained: &[Retained],
    version: u64,
    threshold: i32,
) -> anyhow::Result<Vec<Option<Record>>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut by_context: HashMap<&str, usize> = HashMap::new();
    for (i, r) in retained.iter().enumerate() {
        match by_context.get(r.draft.context_id.as_str()) {
            Some(&b) if batches[b].len() < judge.cfg.max_batch => batches[b].push(i),
            _ => {
                by_context.insert(&r.draft.context_id, batches.len());
                batches.push(vec![i]);
            }
        }
    }
    let concurrency = judge.caller.llm.concurrency().max(1);
    let mut results = futures::stream::iter(batches.into_iter().map(|batch| async move {
        let drafts = batch.iter().map(|&i| retained[i].draft.clone()).collect();
        let evaluations = judge.evaluate_batch(drafts).await;
        (batch, evaluations)
    }))
    .buffer_unordered(concurrency);
    let mut out: Vec<Option<Record>> = vec![None; retained.len()];
    while let Some((batch, evaluations)) = results.next().await {
        let evaluations = evaluations.with_context(|| "the judge failed (nothing was recorded)")?;
        for (i, e) in batch.into_iter().zip(evaluations) {
            let r = &retained[i];
            out[i] = Some(match e {
                Evaluation::Screened(s) => {
                    let detail = format!("rejudged (version {version}): {} (check {})", s.finding, s.check);
                    let mut rejected =
                        Rejected::of(&Record::Draft(r.draft.clone()), DecidedBy::Rejudge.as_str(), s.reason, detail);
                    rejected.id = version_record_id("rejected", &r.draft.id, version);
                    Record::Rejected(rejected)
                }
                Evaluation::Judged { judged, .. } => outcome(judged, r, version, threshold),
            });
        }
    }
    Ok(out)
}

/// Reads the `drafts` topic to its end in the consumer group `group`: every retained draft found there takes
/// the topic's copy. Returns the records read, the ids found and the open read (to commit once recorded).
async fn replay_drafts(
    kafka: &distillery_kafka::KafkaConfig,
    group: &str,
    retained: &mut [Retained],
) -> anyhow::Result<(u64, std::collections::HashSet<String>, TopicToEnd)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, r) in retained.iter().enumerate() {
        index.insert(r.draft.id.clone(), i);
    }
    let mut topic = TopicToEnd::open(kafka, Topic::Drafts, group)
        .await
        .with_context(|| format!("reading the drafts topic ({})", kafka.brokers))?;
    let (mut read, mut found) = (0u64, std::collections::HashSet::new());
    while let Some((partition, offset, payload)) = topic.next().await.context("reading the drafts topic")? {
        read += 1;
        match Codec::global().decode(&payload, Topic::Drafts.record_kind()) {
            Ok(Record::Draft(d)) => {
                if let Some(&i) = index.get(&d.id) {
                    found.insert(d.id.clone());
                    retained[i].draft = d;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(partition, offset, error = %e, "an unreadable draft on the topic is left alone"),
        }
    }
    tracing::info!(group, read, found = found.len(), retained = retained.len(), "drafts replayed from Kafka");
    for r in retained.iter().filter(|r| !found.contains(&r.draft.id)) {
        tracing::warn!(draft = %r.draft.id, chunk = %r.draft.chunk_id, "a retained draft is not on the drafts topic (past its retention?): its outcome stands");
    }
    Ok((read, found, topic))
}

/// Opens the store of `--from DIR` or `--store URL`.
async fn open(args: &RejudgeArgs) -> anyhow::Result<SqlStore> {
    let url = match (&args.from, &args.store) {
        (Some(dir), None) => super::run_folder_store(dir)?,
        (None, Some(url)) => url.clone(),
        _ => anyhow::bail!("give exactly one of --from DIR (a run folder) and --store URL (a dataset store)"),
    };
    SqlStore::open(&url).await.map_err(|e| anyhow::anyhow!("opening the dataset store: {e}"))
}

/// The command.
pub async fn rejudge(args: RejudgeArgs, mut cfg: RunConfig) -> anyhow::Result<RejudgeReport> {
    let store = open(&args).await?;
    let threshold = args.threshold.unwrap_or(cfg.judge.threshold);
    anyhow::ensure!((1..=5).contains(&threshold), "--threshold must be in 1..=5 (got {threshold})");
    let use_judge = args.judge_model.is_some() || args.llm_base_url.is_some();
    let versions = store.versions().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = versions.last().map_or(2, |v| v.version + 1);
    let (mut retained, kept) = retained(&store).await?;
    // The Kafka replay: the retained drafts as the `drafts` topic holds them; the others keep their outcome.
    let (mut source, mut replay_read, mut replay) = ("store".to_string(), 0u64, None);
    if let Some(kafka) = &args.kafka {
        let group = format!("{}rejudge-v{version}", kafka.group_prefix);
        let (read, found, topic) = replay_drafts(kafka, &group, &mut retained).await?;
        (source, replay_read, replay) = (format!("kafka:{group}"), read, Some((found, topic)));
    }
    let metrics = Metrics::global();
    let (mut decided, judge_model): (Vec<Option<Record>>, String) = if use_judge {
        let mut llm = cfg.llm.judge();
        if let Some(url) = &args.llm_base_url {
            llm.base_url = url.clone();
        }
        if let Some(model) = &args.judge_model {
            llm.model = model.clone();
        }
        cfg.judge.threshold = threshold;
        // The examples keep the preference their regeneration was accepted with; no pairwise calls.
        cfg.judge.verify_preference = false;
        let deps = Deps::local(metrics.clone());
        let component = JudgeComponent { llm: &llm, judge: &cfg.judge };
        component.check(&deps).await?;
        let judge: Judge = component.build(&deps).await?;
        let decided = match &replay {
            // Only the drafts the topic gave back are judged.
            Some((found, _)) => {
                let subset: Vec<usize> =
                    (0..retained.len()).filter(|&i| found.contains(&retained[i].draft.id)).collect();
                let picked: Vec<Retained> = subset
                    .iter()
                    .map(|&i| Retained { draft: retained[i].draft.clone(), before: retained[i].before.clone() })
                    .collect();
                let mut all: Vec<Option<Record>> = vec![None; retained.len()];
                for (i, d) in subset.into_iter().zip(judge_again(&judge, &picked, version, threshold).await?) {
                    all[i] = d;
                }
                all
            }
            None => judge_again(&judge, &retained, version, threshold).await?,
        };
        (decided, llm.model.clone())
    } else {
        (retained.iter().map(|r| rescore(r, version, threshold)).collect(), STORED_SCORES.to_string())
    };
    // Not on the topic: no new decision.
    let mut not_replayed = 0u64;
    if let Some((found, _)) = &replay {
        for (r, d) in retained.iter().zip(decided.iter_mut()) {
            if !found.contains(&r.draft.id) {
                *d = None;
                not_replayed += 1;
            }
        }
    }
    let llm = distillery_llm::LlmMetrics::of(&metrics);
    let llm_calls = Metrics::counter_sum(&llm.calls, &[]);
    let generator_calls = Metrics::counter_sum(&llm.calls, &[("role", distillery_llm::LlmRole::Generator.as_str())]);

    let mut decisions = Vec::new();
    let mut changes = Vec::new();
    let (mut accepted_before, mut accepted_after, mut unchanged) = (0u64, 0u64, 0u64);
    for (r, new) in retained.iter().zip(decided) {
        let was = r.was_accepted();
        accepted_before += was as u64;
        let Some(new) = new else {
            // No verdict to re-read: the outcome stands.
            accepted_after += was as u64;
            unchanged += 1;
            continue;
        };
        let now = matches!(new, Record::Accepted(_));
        accepted_after += now as u64;
        if now == was {
            unchanged += 1;
        } else {
            let (after_overall, detail) = match &new {
                Record::Accepted(a) => (Some(a.judged.scores.overall), a.judged.rationale.clone()),
                Record::Rejected(x) => (x.scores.map(|s| s.overall), x.detail.clone()),
                _ => (None, String::new()),
            };
            changes.push(Change {
                change: if now { ChangeKind::NewlyAccepted } else { ChangeKind::NewlyRejected },
                draft_id: r.draft.id.clone(),
                document_id: r.draft.document_id.clone(),
                question: r.draft.question().to_string(),
                answer: r.draft.answer().to_string(),
                before_overall: r.before_scores().map(|s| s.overall),
                after_overall,
                detail,
            });
        }
        decisions.push((new, was));
    }
    let newly_accepted = changes.iter().filter(|c| c.change == ChangeKind::NewlyAccepted).count() as u64;
    let newly_rejected = changes.len() as u64 - newly_accepted;
    let record = DatasetVersion {
        version,
        kind: DecidedBy::Rejudge,
        judge_model: judge_model.clone(),
        threshold,
        judged: decisions.len() as u64,
        newly_accepted,
        newly_rejected,
        llm_calls,
        created_at_ms: now_ms(),
    };
    store.record_version(&record, decisions).await.map_err(|e| anyhow::anyhow!("recording the version: {e}"))?;
    if let Some((_, topic)) = &replay {
        topic.commit().context("committing the replay's consumer group")?;
    }
    tracing::info!(version, newly_accepted, newly_rejected, llm_calls, "dataset version recorded");

    let out = args.out.clone().or_else(|| args.from.as_ref().map(|d| d.join("versions").join(version.to_string())));
    let mut report = RejudgeReport {
        version,
        judge_model,
        threshold,
        judged: record.judged,
        kept,
        accepted_before,
        accepted_after,
        newly_accepted,
        newly_rejected,
        unchanged,
        llm_calls,
        generator_calls,
        diff: None,
        source,
        replay_read,
        not_replayed,
    };
    if let Some(out) = out {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let diff = out.join("diff.jsonl");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&diff)?);
        for c in &changes {
            serde_json::to_writer(&mut f, c)?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        report.diff = Some(diff);
        std::fs::write(out.join("version.json"), serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(dir) = &args.from {
        super::export::refresh_folder(dir).await?;
    }
    Ok(report)
}
