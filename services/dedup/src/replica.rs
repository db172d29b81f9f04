//! The dedup replica: every dedup worker reads the whole claims log in order and decides each claim with
//! [`decide`](crate::decide::decide), its own and the other workers' alike. The log fixes one order of all
//! claims; the decision is a deterministic function of that order, so every worker reaches the same verdicts
//! without talking to the others: of near-duplicate claims, the first in the log is accepted and the rest
//! are duplicates of it, however many workers there are and however their inputs interleave. A worker that
//! wrote a claim waits for its replica to reach it and answers with that verdict.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distillery_core::Metrics;
use distillery_core::ordered_log::OrderedLog;
use distillery_core::prometheus::{IntCounterVec, IntGauge};
use distillery_vector::VectorIndex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::DedupConfig;
use crate::decide::{Claim, Verdict, decide};

/// Workers waiting for the verdict of a claim they wrote, by nonce.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Verdict>>>>;

/// One worker's replica of the claims log.
#[derive(Debug)]
pub struct Replica {
    log: Arc<dyn OrderedLog>,
    waiters: Waiters,
    cancel: CancellationToken,
}

/// The replica's metrics.
#[derive(Debug, Clone)]
struct ReplicaMetrics {
    /// Claims decided, by outcome (accepted, replay, duplicate, undecodable).
    decided: IntCounterVec,
    /// The next log position this replica decides.
    position: IntGauge,
}

impl Replica {
    /// Starts reading `log` from its beginning into `index`.
    pub fn start(
        log: Arc<dyn OrderedLog>,
        index: Arc<dyn VectorIndex>,
        cfg: DedupConfig,
        metrics: &Metrics,
    ) -> Replica {
        let waiters: Waiters = Arc::default();
        let cancel = CancellationToken::new();
        let m = ReplicaMetrics {
            decided: metrics.counter_vec(
                "dedup_claims_decided_total",
                "Claims of the dedup claims log decided by this worker's replica, by outcome",
                &["outcome"],
            ),
            position: metrics
                .gauge_vec(
                    "dedup_claims_position",
                    "The next claims log position this worker's replica decides",
                    &["log"],
                )
                .with_label_values(&[log.name()]),
        };
        tokio::spawn(run(log.clone(), index, cfg, waiters.clone(), m, cancel.clone()));
        Replica { log, waiters, cancel }
    }

    /// Appends a claim and waits (at most `timeout`) for the verdict every replica reaches on it.
    pub async fn claim(&self, claim: &Claim, timeout: Duration) -> Result<Verdict, String> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters lock").insert(claim.nonce.clone(), tx);
        let forget = || {
            self.waiters.lock().expect("waiters lock").remove(&claim.nonce);
        };
        if let Err(e) = self.log.append(claim.encode()).await {
            forget();
            return Err(e.to_string());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("the claims replica stopped".into()),
            Err(_) => {
                forget();
                Err(format!("no verdict within {timeout:?} (the claims replica is behind)"))
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run(
    log: Arc<dyn OrderedLog>,
    index: Arc<dyn VectorIndex>,
    cfg: DedupConfig,
    waiters: Waiters,
    m: ReplicaMetrics,
    cancel: CancellationToken,
) {
    let mut next = 0u64;
    'reading: while !cancel.is_cancelled() {
        let mut reader = match log.read_from(next).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(log = log.name(), error = %e, "claims log unreadable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let entry = tokio::select! {
                e = reader.recv() => e,
                _ = cancel.cancelled() => return,
            };
            let entry = match entry {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(log = log.name(), error = %e, "claims log read failed; reading again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'reading;
                }
                None => continue 'reading,
            };
            if entry.seq < next {
                continue;
            }
            let claim = match Claim::decode(&entry.payload) {
                Ok(c) => c,
                Err(e) => {
                    // Every replica skips it alike.
                    m.decided.with_label_values(&["undecodable"]).inc();
                    tracing::warn!(log = log.name(), seq = entry.seq, error = %e, "undecodable claim skipped");
                    next = entry.seq + 1;
                    m.position.set(next as i64);
                    continue;
                }
            };
            // The index must answer: a claim cannot be skipped without every replica skipping it.
            let verdict = loop {
                match decide(&*index, &cfg, log.name(), entry.seq, &claim).await {
                    Ok(v) => break v,
                    Err(e) => {
                        tracing::warn!(log = log.name(), seq = entry.seq, error = %e, "vector index failed; retrying the claim");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = cancel.cancelled() => return,
                        }
                    }
                }
            };
            let outcome = match &verdict {
                Verdict::Accepted { .. } => "accepted",
                Verdict::Replay { .. } => "replay",
                Verdict::Duplicate(_) => "duplicate",
            };
            m.decided.with_label_values(&[outcome]).inc();
            next = entry.seq + 1;
            m.position.set(next as i64);
            if let Some(tx) = waiters.lock().expect("waiters lock").remove(&claim.nonce) {
                let _ = tx.send(verdict);
            }
        }
    }
}
