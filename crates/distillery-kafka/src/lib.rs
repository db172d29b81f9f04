//! The Kafka runtime. A stage runs as a member of the consumer group `<group_prefix><stage>`:
//!
//! - at most `concurrency` inputs are processed at once (the permit is taken before the next poll, so a
//!   slow stage applies backpressure instead of buffering);
//! - an input's offset is stored only after everything it produced is acknowledged by the broker, and only
//!   once every earlier offset of its partition is too (`OffsetTracker`), so a crash replays and never
//!   skips; librdkafka commits stored offsets in the background and on close;
//! - the producer is idempotent (`acks=all`), records are keyed by content hash;
//! - a message that does not decode goes whole to the dead-letter topic;
//! - on cancel (SIGTERM), polling stops, in-flight inputs drain, offsets are committed synchronously and
//!   the producer is flushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distillery_core::config::Secret;
use distillery_core::offsets::OffsetTracker;
use distillery_core::{Codec, Input, Metrics, Record, Stage, Topic, TopicNames};
use distillery_runtime::http::Ready;
use distillery_runtime::{PublishError, Publisher, RuntimeConfig, dead_letter_raw, handle, publish_counted};
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Kafka connection and topic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Prefix of every pipeline topic name (`<prefix>documents`, ...).
    pub topic_prefix: String,
    /// Topic the object store publishes ObjectCreated notifications to (default `<prefix>events`).
    pub events_topic: Option<String>,
    /// A stage's consumer group is `<group_prefix><stage>`.
    pub group_prefix: String,
    /// Consumer session timeout in milliseconds.
    pub session_timeout_ms: u32,
    /// Create missing topics at startup.
    pub create_topics: bool,
    /// Partitions of the topics this service creates.
    pub partitions: i32,
    /// Replication factor of the topics this service creates.
    pub replication_factor: i32,
    /// Producer compression: none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// How long the producer waits to fill a batch, in milliseconds.
    pub linger_ms: u32,
    /// How often librdkafka reports statistics (consumer lag), in milliseconds; 0 disables.
    pub statistics_interval_ms: u32,
    /// SASL password (secret), when `properties` select a SASL mechanism.
    pub sasl_password: Secret,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`). Never logged.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "distillery.".into(),
            events_topic: None,
            group_prefix: "distillery-".into(),
            session_timeout_ms: 30_000,
            create_topics: true,
            partitions: 6,
            replication_factor: 1,
            compression: "zstd".into(),
            linger_ms: 5,
            statistics_interval_ms: 10_000,
            sasl_password: Secret::default(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self, errors: &mut Vec<String>) {
        if self.brokers.trim().is_empty() {
            errors.push("kafka.brokers must not be empty".into());
        }
        if self.partitions < 1 {
            errors.push(format!("kafka.partitions must be >= 1 (got {})", self.partitions));
        }
        if self.replication_factor < 1 {
            errors.push(format!("kafka.replication_factor must be >= 1 (got {})", self.replication_factor));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            errors.push(format!(
                "kafka.compression must be one of none, gzip, snappy, lz4, zstd (got {})",
                self.compression
            ));
        }
        if self.session_timeout_ms < 1000 {
            errors.push("kafka.session_timeout_ms must be >= 1000".into());
        }
    }

    pub fn topic_names(&self) -> TopicNames {
        TopicNames::new(self.topic_prefix.clone(), self.events_topic.clone())
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        if !self.sasl_password.is_empty() {
            c.set("sasl.password", self.sasl_password.expose());
        }
        c
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", "120000");
        c
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (self.session_timeout_ms / 3).max(100).to_string())
            .set("max.poll.interval.ms", "600000");
        if self.statistics_interval_ms > 0 {
            c.set("statistics.interval.ms", self.statistics_interval_ms.to_string());
        }
        c
    }
}

/// Failures that stop a Kafka runtime.
#[derive(Debug, thiserror::Error)]
pub enum KafkaRuntimeError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("creating topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
}

/// Creates the given topics if they are missing.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[Topic]) -> Result<(), KafkaRuntimeError> {
    let admin: AdminClient<DefaultClientContext> = cfg.base().create()?;
    let names = cfg.topic_names();
    let owned: Vec<String> = topics.iter().map(|t| names.name(*t)).collect();
    let new: Vec<NewTopic<'_>> = owned
        .iter()
        .map(|n| NewTopic::new(n, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor)))
        .collect();
    let results =
        admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaRuntimeError::CreateTopic { topic, message: code.to_string() }),
        }
    }
    Ok(())
}

/// Publishes records to their topics with an idempotent producer; `publish` resolves when all are acked.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
    names: TopicNames,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaPublisher")
    }
}

impl KafkaPublisher {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaRuntimeError> {
        Ok(KafkaPublisher { producer: cfg.producer_config().create()?, names: cfg.topic_names() })
    }

    /// Publishes raw bytes to a topic (used to deliver object-store events in tests and tools).
    pub async fn publish_raw(&self, topic: Topic, key: &str, payload: &[u8]) -> Result<(), PublishError> {
        let name = self.names.name(topic);
        self.producer
            .send(FutureRecord::to(&name).key(key).payload(payload), Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| PublishError { topic, message: e.to_string() })
    }

    /// Waits until everything queued is delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::error!(error = %e, "producer flush failed");
        }
    }
}

impl Publisher for KafkaPublisher {
    async fn publish(&self, records: Vec<Record>) -> Result<(), PublishError> {
        let codec = Codec::global();
        let mut encoded = Vec::with_capacity(records.len());
        for r in &records {
            let topic = Topic::for_kind(r.kind());
            let bytes = codec.encode(r).map_err(|e| PublishError { topic, message: e.to_string() })?;
            encoded.push((topic, self.names.name(topic), r.key().to_string(), r.kind().full_name(), bytes));
        }
        let sends = encoded.iter().map(|(topic, name, key, kind, bytes)| async move {
            let headers = OwnedHeaders::new().insert(Header { key: "distillery-schema", value: Some(*kind) });
            self.producer
                .send(FutureRecord::to(name).key(key).payload(bytes).headers(headers), Duration::from_secs(60))
                .await
                .map(|_| ())
                .map_err(|(e, _)| PublishError { topic: *topic, message: e.to_string() })
        });
        for r in join_all(sends).await {
            r?;
        }
        Ok(())
    }
}

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
