//! The periodic reconcile scan that catches objects whose notification was missed: every target is listed
//! and what is found published; claims make already-seen content a no-op.

use std::sync::Arc;
use std::time::Duration;

use distillery_core::{Discovery, Metrics, StoreKind};
use distillery_runtime::{Publisher, publish_counted};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{Ingestor, NAME};

/// The reconcile scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// `bucket` or `bucket/prefix` entries to list.
    pub targets: Vec<String>,
    /// Seconds between scans; 0 scans once at startup only.
    pub interval_secs: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig { targets: Vec::new(), interval_secs: 300 }
    }
}

/// Lists every target periodically until `cancel` (once when `interval_secs` is 0).
pub async fn scan_loop<P: Publisher + Send + Sync + 'static>(
    ingestor: Arc<Ingestor>,
    publisher: Arc<P>,
    cfg: ScanConfig,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let stage = NAME.as_str();
    loop {
        for target in &cfg.targets {
            let (bucket, prefix) = target.split_once('/').unwrap_or((target.as_str(), ""));
            let res = ingestor
                .scan(StoreKind::S3, bucket, prefix, Discovery::Scan, |outcome| {
                    let (publisher, metrics, cancel) = (publisher.clone(), metrics.clone(), cancel.clone());
                    async move {
                        if let Some(r) = outcome.into_record()
                            && let Err(e) = publish_counted(stage, vec![r], &*publisher, &metrics, &cancel).await
                        {
                            tracing::error!(error = %e, "scan publish failed");
                        }
                    }
                })
                .await;
            if let Err(e) = res {
                metrics.errors.with_label_values(&[stage, "scan"]).inc();
                tracing::error!(target, error = %e, "reconcile scan failed");
            }
        }
        if cfg.interval_secs == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(cfg.interval_secs)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
