//! The consumer-group runner: a stage as a member of `<group_prefix><stage>`, with bounded in-flight work
//! (partitions paused, never polling stopped), cooperative rebalance handling, in-order offset stores, a
//! circuit breaker pausing consumption during dependency outages, the drain-and-commit shutdown (with a
//! timeout that cancels what still runs), an exit on a fatal producer error, and consumer-lag statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distillery_core::offsets::OffsetTracker;
use distillery_core::prometheus::IntCounterVec;
use distillery_core::{Codec, Input, Metrics, Record, Stage, Topic, TopicNames};
use distillery_runtime::http::Ready;
use distillery_runtime::{Breaker, RuntimeConfig, dead_letter_raw, handle_with, publish_counted};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::ensure_topics;
use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;
use crate::publisher::KafkaPublisher;

type PartitionKey = (String, i32);

/// Per-partition completion tracking. Each assignment of a partition gets a generation number of its own
/// (cooperative rebalancing assigns and revokes partitions one by one), so completions from a previous
/// ownership of a partition are harmless and partitions kept across a rebalance keep their state.
#[derive(Default)]
struct Tracking {
    partitions: HashMap<PartitionKey, (u64, OffsetTracker)>,
    next_generation: u64,
}

impl Tracking {
    fn fresh(&mut self, key: PartitionKey) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.partitions.insert(key, (generation, OffsetTracker::new()));
        generation
    }
}

struct Ctx {
    stage: &'static str,
    tracking: Arc<Mutex<Tracking>>,
    /// Bumped at every assignment (the runner pauses newly assigned partitions while it is paused).
    assignments: AtomicU64,
    metrics: Arc<Metrics>,
    rebalances: IntCounterVec,
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
            self.rebalances.with_label_values(&[self.stage, "revoke"]).inc_by(tpl.count() as u64);
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
                self.rebalances.with_label_values(&[self.stage, "assign"]).inc_by(tpl.count() as u64);
                let parts: Vec<String> =
                    tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
                tracing::info!(stage = self.stage, partitions = ?parts, "partitions assigned");
                let mut tracking = self.tracking.lock().expect("tracking lock");
                for e in tpl.elements() {
                    tracking.fresh((e.topic().to_string(), e.partition()));
                }
                self.assignments.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(stage = self.stage, partitions = tpl.count(), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::error!(stage = self.stage, error = %e, "rebalance error"),
        }
    }
}

/// Pauses (or resumes) fetching of every assigned partition. Polling goes on either way, so the member
/// stays in its group however long the inputs in flight take.
fn set_paused<C: ConsumerContext>(consumer: &StreamConsumer<C>, stage: &str, pause: bool) {
    let assignment = match consumer.assignment() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(stage, error = %e, "cannot read the assignment");
            return;
        }
    };
    if assignment.count() == 0 {
        return;
    }
    let res = if pause { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    match res {
        Ok(()) => tracing::debug!(stage, pause, partitions = assignment.count(), "fetching paused/resumed"),
        Err(e) => tracing::warn!(stage, pause, error = %e, "cannot pause/resume partitions"),
    }
}

/// Runs `stage` as a consumer-group member until `cancel` fires, then drains and commits.
///
/// At most `concurrency` inputs are in flight and as many more wait for a slot; when that many are held, or
/// the circuit breaker is open (a dependency failing), the assigned partitions are paused (until the held
/// inputs are down to `concurrency`) and polling continues, so a slow or hung stage never makes the member
/// miss `max.poll.interval.ms`. A fatal error of the idempotent producer stops the
/// runner with an error (the process exits and is restarted).
pub async fn run_stage<S: Stage>(
    cfg: &KafkaConfig,
    runtime: &RuntimeConfig,
    stage: Arc<S>,
    metrics: Arc<Metrics>,
    ready: Ready,
    cancel: CancellationToken,
) -> Result<(), KafkaRuntimeError> {
    if cfg.create_topics {
        ensure_topics(cfg, &Topic::ALL).await?;
    }
    let publisher = Arc::new(KafkaPublisher::new(cfg)?);
    run_stage_with(cfg, runtime, stage, metrics, ready, publisher, cancel).await
}

/// [`run_stage`] publishing through `publisher` (topics already created).
pub async fn run_stage_with<S: Stage>(
    cfg: &KafkaConfig,
    runtime: &RuntimeConfig,
    stage: Arc<S>,
    metrics: Arc<Metrics>,
    ready: Ready,
    publisher: Arc<KafkaPublisher>,
    cancel: CancellationToken,
) -> Result<(), KafkaRuntimeError> {
    let name = stage.name();
    let names = cfg.topic_names();
    let tracking = Arc::new(Mutex::new(Tracking::default()));
    let ctx = Ctx {
        stage: name,
        tracking: tracking.clone(),
        assignments: AtomicU64::new(0),
        metrics: metrics.clone(),
        rebalances: metrics.counter_vec(
            "rebalanced_partitions_total",
            "Partitions assigned to or revoked from this member by rebalances, by kind (assign, revoke)",
            &["stage", "kind"],
        ),
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

    let breaker = Breaker::new(name, runtime.breaker.clone(), &metrics, Some(ready.clone()));
    let mut breaker_rx = breaker.subscribe();
    let sem = Arc::new(Semaphore::new(concurrency));
    let freed = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let mut paused = false;
    let mut applied_at_assignment = 0u64;
    let mut health = tokio::time::interval(Duration::from_secs(1));
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outcome: Result<(), KafkaRuntimeError> = loop {
        while let Some(res) = tasks.try_join_next() {
            if let Err(e) = res {
                tracing::error!(stage = name, error = %e, "input task failed");
            }
        }
        // Take more input while the breaker lets new inputs through and the inputs held (running, or waiting
        // for a slot) are under twice the slots; once paused, resume only when they are down to the slots.
        // Pausing drops what librdkafka fetched ahead and resuming fetches again, so pausing as soon as every
        // slot is taken and resuming at each freed slot would cost a fetch round trip per input.
        let held = tasks.len();
        let take = breaker.admits() && if paused { held <= concurrency } else { held < 2 * concurrency };
        // The state is applied again to every new assignment, both ways: librdkafka keeps a partition's pause
        // across a re-assignment, so partitions lost while paused (a broker outage ending the session) would
        // come back paused after a resume that found no partition to resume.
        let assignment = consumer.context().assignments.load(Ordering::SeqCst);
        if !take && (!paused || assignment != applied_at_assignment) {
            set_paused(&consumer, name, true);
            paused = true;
            applied_at_assignment = assignment;
        } else if take && (paused || assignment != applied_at_assignment) {
            set_paused(&consumer, name, false);
            paused = false;
            applied_at_assignment = assignment;
        }
        let probe_in = if paused && breaker.is_open() { breaker.until_probe() } else { Duration::from_secs(3600) };
        let msg = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Ok(()),
            _ = health.tick() => {
                if let Some(fatal) = publisher.fatal_error() {
                    break Err(KafkaRuntimeError::FatalProducer(fatal));
                }
                continue;
            }
            _ = freed.notified() => continue,
            _ = breaker_rx.changed() => continue,
            _ = tokio::time::sleep(probe_in), if paused => continue,
            m = consumer.recv() => m,
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
            let mut t = tracking.lock().expect("tracking lock");
            let key = (tname.clone(), partition);
            let generation = match t.partitions.get(&key) {
                Some((g, _)) => *g,
                None => t.fresh(key.clone()),
            };
            t.partitions.get_mut(&key).expect("present").1.begin(offset);
            generation
        };
        let decoded = decode(name, &msg, topic);
        drop(msg);
        if breaker.is_open() {
            breaker.take_probe();
        }
        // Without a free slot the input waits for one in its task (in arrival order: the semaphore is fair).
        let permit = sem.clone().try_acquire_owned().ok();
        let (stage, publisher, metrics, consumer, tracking, cancel, retry, breaker, sem, freed) = (
            stage.clone(),
            publisher.clone(),
            metrics.clone(),
            consumer.clone(),
            tracking.clone(),
            cancel.clone(),
            runtime.retry.clone(),
            breaker.clone(),
            sem.clone(),
            freed.clone(),
        );
        tasks.spawn(async move {
            let permit = match permit {
                Some(p) => p,
                // Shutting down before its turn came: left uncommitted, for the next owner to process.
                None => tokio::select! {
                    p = sem.acquire_owned() => p.expect("semaphore never closed"),
                    _ = cancel.cancelled() => return,
                },
            };
            let ok = match decoded {
                Ok(input) => {
                    handle_with(&*stage, input, &*publisher, &metrics, &retry, Some(&breaker), &cancel).await.is_ok()
                }
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
            freed.notify_one();
        });
    };

    ready.set(false);
    match &outcome {
        Err(e) => {
            // Nothing more can be published: what is in flight is left uncommitted, to be replayed.
            tracing::error!(stage = name, error = %e, in_flight = tasks.len(), "stopping");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        Ok(()) => {
            tracing::info!(stage = name, in_flight = tasks.len(), "draining");
            let drain = async {
                while let Some(res) = tasks.join_next().await {
                    if let Err(e) = res {
                        tracing::error!(stage = name, error = %e, "input task failed");
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(runtime.drain_timeout_secs), drain).await.is_err() {
                tracing::warn!(
                    stage = name,
                    in_flight = tasks.len(),
                    "drain timed out; cancelling what is still running (it will be replayed)"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        }
    }
    stage.shutdown().await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is reported as an error by librdkafka; harmless.
        tracing::debug!(stage = name, error = %e, "final commit");
    }
    if outcome.is_ok() {
        publisher.flush(Duration::from_secs(30));
    }
    consumer.unsubscribe();
    tracing::info!(stage = name, "stopped");
    outcome
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
