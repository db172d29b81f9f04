//! The consumer-group runner: a stage as a member of `<group_prefix><stage>`, with bounded in-flight work,
//! rebalance handling, in-order offset stores, the drain-and-commit shutdown and consumer-lag statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distillery_core::offsets::OffsetTracker;
use distillery_core::{Codec, Input, Metrics, Record, Stage, Topic, TopicNames};
use distillery_runtime::http::Ready;
use distillery_runtime::{RuntimeConfig, dead_letter_raw, handle, publish_counted};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::ensure_topics;
use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;
use crate::publisher::KafkaPublisher;

type PartitionKey = (String, i32);

/// Per-partition completion tracking, reset on rebalance. A generation number per assignment makes
/// completions from a previous ownership of a partition harmless.
#[derive(Default)]
struct Tracking {
    partitions: HashMap<PartitionKey, (u64, OffsetTracker)>,
}

struct Ctx {
    stage: &'static str,
    tracking: Arc<Mutex<Tracking>>,
    generation: AtomicU64,
    metrics: Arc<Metrics>,
    names: TopicNames,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            let base = self.names.resolve(topic).map_or("unknown", |t| t.base_name());
            for (p, part) in &t.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[self.stage, base, &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut tracking = self.tracking.lock().expect("tracking lock");
            for e in tpl.elements() {
                // Another member owns these now: stop reporting their lag and position from here.
                let base = self.names.resolve(e.topic()).map_or("unknown", |t| t.base_name());
                let part = e.partition().to_string();
                let _ = self.metrics.consumer_lag.remove_label_values(&[self.stage, base, &part]);
                let _ = self.metrics.committed_offset.remove_label_values(&[self.stage, base, &part]);
                if let Some((_, t)) = tracking.partitions.remove(&(e.topic().to_string(), e.partition()))
                    && t.in_flight() > 0
                {
                    tracing::warn!(
                        stage = self.stage,
                        topic = e.topic(),
                        partition = e.partition(),
                        in_flight = t.in_flight(),
                        "partition revoked with work in flight; it will be replayed"
                    );
                }
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> =
                    tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
                tracing::info!(stage = self.stage, partitions = ?parts, "partitions assigned");
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Revoke(_) => tracing::info!(stage = self.stage, "partitions revoked"),
            Rebalance::Error(e) => tracing::error!(stage = self.stage, error = %e, "rebalance error"),
        }
    }
}

/// Runs `stage` as a consumer-group member until `cancel` fires, then drains and commits.
pub async fn run_stage<S: Stage>(
    cfg: &KafkaConfig,
    runtime: &RuntimeConfig,
    stage: Arc<S>,
    metrics: Arc<Metrics>,
    ready: Ready,
    cancel: CancellationToken,
) -> Result<(), KafkaRuntimeError> {
    let name = stage.name();
    let names = cfg.topic_names();
    if cfg.create_topics {
        ensure_topics(cfg, &Topic::ALL).await?;
    }
    let publisher = Arc::new(KafkaPublisher::new(cfg)?);
    let tracking = Arc::new(Mutex::new(Tracking::default()));
    let ctx = Ctx {
        stage: name,
        tracking: tracking.clone(),
        generation: AtomicU64::new(0),
        metrics: metrics.clone(),
        names: names.clone(),
    };
    let group = format!("{}{}", cfg.group_prefix, name);
    let consumer: Arc<StreamConsumer<Ctx>> = Arc::new(cfg.consumer_config(&group).create_with_context(ctx)?);
    let topic_names: Vec<String> = stage.inputs().iter().map(|t| names.name(*t)).collect();
    let refs: Vec<&str> = topic_names.iter().map(String::as_str).collect();
    consumer.subscribe(&refs)?;
    let concurrency = runtime.concurrency.unwrap_or_else(|| stage.default_concurrency()).max(1);
    tracing::info!(stage = name, group, topics = ?topic_names, concurrency, "consuming");
    ready.set(true);

    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = cancel.cancelled() => break,
        };
        let msg = tokio::select! {
            m = consumer.recv() => m,
            _ = cancel.cancelled() => break,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                metrics.errors.with_label_values(&[name, "consume"]).inc();
                tracing::error!(stage = name, error = %e, "consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(topic) = names.resolve(msg.topic()) else {
            tracing::error!(stage = name, topic = msg.topic(), "message from an unexpected topic");
            continue;
        };
        let (tname, partition, offset) = (msg.topic().to_string(), msg.partition(), msg.offset());
        let generation = {
            let gen_now = consumer.context().generation.load(Ordering::SeqCst);
            let mut t = tracking.lock().expect("tracking lock");
            let entry =
                t.partitions.entry((tname.clone(), partition)).or_insert_with(|| (gen_now, OffsetTracker::new()));
            if entry.0 != gen_now {
                *entry = (gen_now, OffsetTracker::new());
            }
            entry.1.begin(offset);
            gen_now
        };
        let decoded = decode(name, &msg, topic);
        let (stage, publisher, metrics, consumer, tracking, cancel, retry) = (
            stage.clone(),
            publisher.clone(),
            metrics.clone(),
            consumer.clone(),
            tracking.clone(),
            cancel.clone(),
            runtime.retry.clone(),
        );
        tasks.spawn(async move {
            let ok = match decoded {
                Ok(input) => handle(&*stage, input, &*publisher, &metrics, &retry, &cancel).await.is_ok(),
                Err((dl, err)) => {
                    metrics.records_in.with_label_values(&[name, topic.base_name()]).inc();
                    metrics.errors.with_label_values(&[name, "decode"]).inc();
                    metrics.dead_letters.with_label_values(&[name, "decode"]).inc();
                    tracing::error!(stage = name, topic = %topic, partition, offset, error = %err, "undecodable message dead-lettered");
                    publish_counted(name, vec![Record::DeadLetter(dl)], &*publisher, &metrics, &cancel).await.is_ok()
                }
            };
            if ok {
                let advanced = {
                    let mut t = tracking.lock().expect("tracking lock");
                    match t.partitions.get_mut(&(tname.clone(), partition)) {
                        Some((g, tracker)) if *g == generation => tracker.complete(offset),
                        _ => None,
                    }
                };
                if let Some(next) = advanced {
                    let mut tpl = TopicPartitionList::new();
                    if tpl.add_partition_offset(&tname, partition, Offset::Offset(next)).is_ok() {
                        if let Err(e) = consumer.store_offsets(&tpl) {
                            tracing::debug!(stage = name, error = %e, "offset store refused (partition revoked?)");
                        } else {
                            metrics.committed_offset.with_label_values(&[name, topic.base_name(), &partition.to_string()]).set(next);
                        }
                    }
                }
            }
            drop(permit);
        });
        while let Some(res) = tasks.try_join_next() {
            if let Err(e) = res {
                tracing::error!(stage = name, error = %e, "input task panicked");
            }
        }
    }

    ready.set(false);
    tracing::info!(stage = name, in_flight = tasks.len(), "draining");
    let drain = async {
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(stage = name, error = %e, "input task panicked");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(runtime.drain_timeout_secs), drain).await.is_err() {
        tracing::warn!(stage = name, "drain timed out; unfinished inputs will be replayed");
    }
    stage.shutdown().await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is reported as an error by librdkafka; harmless.
        tracing::debug!(stage = name, error = %e, "final commit");
    }
    publisher.flush(Duration::from_secs(30));
    consumer.unsubscribe();
    tracing::info!(stage = name, "stopped");
    Ok(())
}

type Undecodable = (distillery_core::DeadLetter, String);

fn decode(stage: &str, msg: &BorrowedMessage<'_>, topic: Topic) -> Result<Input, Undecodable> {
    let key = msg.key().map(Bytes::copy_from_slice);
    let body = Bytes::copy_from_slice(msg.payload().unwrap_or_default());
    Input::decode(Codec::global(), topic, msg.partition(), msg.offset(), key.clone(), body.clone()).map_err(|e| {
        let err = e.to_string();
        (dead_letter_raw(stage, topic, msg.partition(), msg.offset(), key, body.to_vec(), "decode", &err, 1), err)
    })
}
