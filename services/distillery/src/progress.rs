//! A live progress line for `distillery run`, read from the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::{Metrics, StageName, Topic};
use distillery_llm::{LlmMetrics, LlmRole};
use indicatif::{ProgressBar, ProgressStyle};

/// Redraws until dropped.
pub struct Progress {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(metrics: Arc<Metrics>) -> Progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("valid template"));
        let b = bar.clone();
        let started = Instant::now();
        let llm = LlmMetrics::of(&metrics);
        let task = tokio::spawn(async move {
            loop {
                let out = |stage: StageName, topic: Topic| {
                    Metrics::counter_sum(
                        &metrics.records_out,
                        &[("stage", stage.as_str()), ("topic", topic.base_name())],
                    )
                };
                let drafts = out(StageName::Generate, Topic::Drafts);
                let in_flight = |role: LlmRole| llm.in_flight.with_label_values(&[role.as_str()]).get();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!(
                    "documents {} | chunks {} | drafts {} | regenerate {} | accepted {} | rejected {} | LLM in flight {} | {:.2} drafts/s",
                    out(StageName::Source, Topic::Documents),
                    out(StageName::Extract, Topic::Chunks),
                    drafts,
                    out(StageName::Judge, Topic::Regenerate),
                    out(StageName::Dedup, Topic::Accepted),
                    Metrics::counter_sum(&metrics.rejected, &[]),
                    in_flight(LlmRole::Generator) + in_flight(LlmRole::Judge),
                    drafts as f64 / secs
                ));
                b.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Progress { bar, task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
