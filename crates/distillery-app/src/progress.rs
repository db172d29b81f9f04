//! A live progress line for `distillery run`, read from the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::Metrics;
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
        let task = tokio::spawn(async move {
            loop {
                let out = |stage: &str, topic: &str| {
                    Metrics::counter_sum(&metrics.records_out, &[("stage", stage), ("topic", topic)])
                };
                let drafts = out("generate", "drafts");
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!(
                    "documents {} | chunks {} | drafts {} | regenerate {} | accepted {} | rejected {} | LLM in flight {} | {:.2} drafts/s",
                    out("source", "documents"),
                    out("extract", "chunks"),
                    drafts,
                    out("judge", "regenerate"),
                    out("dedup", "accepted"),
                    Metrics::counter_sum(&metrics.rejected, &[]),
                    metrics.llm_in_flight.with_label_values(&["generator"]).get() + metrics.llm_in_flight.with_label_values(&["judge"]).get(),
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
