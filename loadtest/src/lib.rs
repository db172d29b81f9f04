//! Shared pieces of the benchmarks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Samples llama.cpp's `/slots` to measure how busy the server is.
#[derive(Debug, Default, Clone)]
pub struct BusyStats {
    /// Samples taken.
    pub samples: u64,
    /// Samples in which at least one slot was processing.
    pub any_busy: u64,
    /// Sum over samples of the share of slots processing.
    pub occupancy_sum: f64,
}

impl BusyStats {
    /// Share of time at least one slot was working.
    pub fn busy_fraction(&self) -> f64 {
        if self.samples == 0 { 0.0 } else { self.any_busy as f64 / self.samples as f64 }
    }
    /// Mean share of slots working.
    pub fn occupancy(&self) -> f64 {
        if self.samples == 0 { 0.0 } else { self.occupancy_sum / self.samples as f64 }
    }
}

/// Polls `<root>/slots` every `every` until stopped.
pub struct SlotSampler {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<BusyStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlotSampler {
    /// `base_url` is the OpenAI base (`http://host:port/v1`).
    pub fn start(base_url: &str, every: Duration) -> SlotSampler {
        let root = base_url.trim_end_matches('/').trim_end_matches("/v1").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(BusyStats::default()));
        let (s, st) = (stop.clone(), stats.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !s.load(Ordering::Relaxed) {
                if let Ok(resp) = http.get(format!("{root}/slots")).timeout(Duration::from_secs(2)).send().await
                    && let Ok(v) = resp.json::<serde_json::Value>().await
                    && let Some(slots) = v.as_array()
                    && !slots.is_empty()
                {
                    let busy =
                        slots.iter().filter(|x| x.get("is_processing").and_then(|b| b.as_bool()) == Some(true)).count();
                    let mut g = st.lock().expect("stats lock");
                    g.samples += 1;
                    g.any_busy += u64::from(busy > 0);
                    g.occupancy_sum += busy as f64 / slots.len() as f64;
                }
                tokio::time::sleep(every).await;
            }
        });
        SlotSampler { stop, stats, task }
    }

    pub async fn finish(self) -> BusyStats {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.stats.lock().expect("stats lock").clone()
    }
}
