//! An [`OrderedLog`] on Kafka: a single-partition topic, so the broker fixes one order of every append and
//! each reader reads it from any offset (offsets are the positions). Readers are plain assigned consumers
//! (no group, nothing committed): a replica reads the log from its beginning each time it starts.

use std::time::Duration;

use distillery_core::ordered_log::{LogEntry, LogError, LogReader, OrderedLog};
use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;

/// A single-partition topic `<topic_prefix><name>` as an ordered log.
pub struct KafkaLog {
    topic: String,
    cfg: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaLog({})", self.topic)
    }
}

/// Creates a single-partition topic that keeps its records (`retention.ms=-1`), if missing.
pub(crate) async fn ensure_log_topic(
    cfg: &KafkaConfig,
    topic: &str,
    settings: &[(&str, &str)],
) -> Result<(), KafkaRuntimeError> {
    let admin: AdminClient<DefaultClientContext> = cfg.base().create()?;
    let new = settings
        .iter()
        .fold(NewTopic::new(topic, 1, TopicReplication::Fixed(cfg.replication_factor)), |t, (k, v)| t.set(k, v));
    let results =
        admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaRuntimeError::CreateTopic { topic, message: code.to_string() }),
        }
    }
    Ok(())
}

/// A consumer that belongs to no group and commits nothing, for reading assigned partitions.
pub(crate) fn reader(cfg: &KafkaConfig, topic: &str) -> Result<StreamConsumer, KafkaRuntimeError> {
    let mut c = cfg.base();
    c.set("group.id", format!("{}reader-{}-{}", cfg.group_prefix, topic, uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "20")
        .set("enable.partition.eof", "false");
    Ok(c.create()?)
}

impl KafkaLog {
    /// The log `<topic_prefix><name>`, created when missing (with `create_topics`).
    pub async fn open(cfg: &KafkaConfig, name: &str) -> Result<KafkaLog, KafkaRuntimeError> {
        let topic = format!("{}{name}", cfg.topic_prefix);
        if cfg.create_topics {
            ensure_log_topic(cfg, &topic, &[("retention.ms", "-1"), ("cleanup.policy", "delete")]).await?;
        }
        let mut p = cfg.producer_config();
        p.set("linger.ms", "0");
        Ok(KafkaLog { topic, cfg: cfg.clone(), producer: p.create()? })
    }

    fn error(&self, e: impl std::fmt::Display) -> LogError {
        LogError { log: self.topic.clone(), message: e.to_string() }
    }
}

impl OrderedLog for KafkaLog {
    fn name(&self) -> &str {
        &self.topic
    }

    fn append(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<u64, LogError>> {
        Box::pin(async move {
            let record: FutureRecord<'_, (), Vec<u8>> = FutureRecord::to(&self.topic).partition(0).payload(&payload);
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(delivery) => Ok(delivery.offset as u64),
                Err((e, _)) => Err(self.error(e)),
            }
        })
    }

    fn read_from(&self, from: u64) -> BoxFuture<'_, Result<LogReader, LogError>> {
        Box::pin(async move {
            let consumer = reader(&self.cfg, &self.topic).map_err(|e| self.error(e))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.topic, 0, Offset::Offset(from as i64)).map_err(|e| self.error(e))?;
            consumer.assign(&tpl).map_err(|e| self.error(e))?;
            let (tx, rx) = mpsc::channel(1024);
            let topic = self.topic.clone();
            tokio::spawn(async move {
                loop {
                    let msg = tokio::select! {
                        m = consumer.recv() => m,
                        _ = tx.closed() => return,
                    };
                    let item = match msg {
                        Ok(m) => Ok(LogEntry {
                            seq: m.offset() as u64,
                            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        }),
                        Err(e) => Err(LogError { log: topic.clone(), message: e.to_string() }),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }
}
