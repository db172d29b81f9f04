//! `distillery replay-dead-letters`: what was dead-lettered for a transient cause (a dependency that stayed
//! down through every retry, before the circuit breaker, or with it turned off) goes back to the topic it
//! came from, to be processed again. Progress is committed in the consumer group
//! `<group_prefix>replay-dead-letters`, so a dead letter is replayed once; what is replayed again anyway
//! (a crash between publishing and committing) is dropped downstream by its content-hash id.

use std::collections::BTreeMap;
use std::time::Duration;

use distillery_core::{Codec, DeadLetter, Record, Topic};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;
use crate::publisher::KafkaPublisher;

/// Dead-letter kinds that are never transient: replaying them fails the same way.
pub const PERMANENT_KINDS: [&str; 7] =
    ["decode", "panic", "publish_refused", "unexpected_input", "serialize", "bad_event", "store"];

/// Which dead letters to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only these error kinds (empty: every transient kind).
    pub kinds: Vec<String>,
    /// Only those of this stage.
    pub stage: Option<String>,
    /// Replay permanent kinds too.
    pub all: bool,
    /// Count what would be replayed, publish nothing, commit nothing.
    pub dry_run: bool,
}

impl ReplayFilter {
    /// Whether a dead letter was dead-lettered for a transient cause (it was retried: a retryable error that
    /// outlasted its attempts), and passes the filter.
    pub fn wants(&self, d: &DeadLetter) -> bool {
        if self.stage.as_ref().is_some_and(|s| s != &d.stage) {
            return false;
        }
        if !self.kinds.is_empty() {
            return self.kinds.iter().any(|k| k == &d.error_kind);
        }
        self.all || (d.attempts > 1 && !PERMANENT_KINDS.contains(&d.error_kind.as_str()))
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReplayReport {
    /// Dead letters read.
    pub read: u64,
    /// Republished (or, in a dry run, that would be), by error kind.
    pub replayed: BTreeMap<String, u64>,
    /// Left alone: permanent kinds or filtered out.
    pub skipped: u64,
    /// Without a topic to go back to (an unknown topic name or an empty payload).
    pub unreplayable: u64,
}

/// How long a read to the end waits for the next record before it fails.
pub const STALL: Duration = Duration::from_secs(180);

/// A topic read by a consumer group of its own from the group's committed position (the start, the first
/// time) up to where the topic ended when the read began: what is published meanwhile waits for the next
/// read. Nothing is committed until [`TopicToEnd::commit`].
///
/// A partition ends at the consumer's end-of-partition event, or at its first record past the end the broker
/// reported when the read opened that was also written after the read opened. Both, because the reported end
/// is not always right: the Kafka-protocol broker of the tests (tansu) reports as a partition's high
/// watermark the number of batches it holds, not the next offset (17 records in one produce batch: high
/// watermark 1), and a read that trusted it ended after the first record of each partition (a rejudge's
/// Kafka replay counted retained drafts as "not on the topic").
pub struct TopicToEnd {
    consumer: StreamConsumer,
    topic: String,
    /// Partitions not read to their end yet, and the end the broker reported for each.
    pending: BTreeMap<i32, i64>,
    /// When the read opened (ms since the epoch): a record past the reported end written after it is new.
    opened_at_ms: i64,
    /// The next offset of every partition read from.
    done: TopicPartitionList,
}

impl TopicToEnd {
    /// Opens `topic` for the group `group` (the full group id).
    pub async fn open(cfg: &KafkaConfig, topic: Topic, group: &str) -> Result<TopicToEnd, KafkaRuntimeError> {
        let topic = cfg.topic_names().name(topic);
        let opened_at_ms = distillery_core::now_ms();
        let mut cc = cfg.base();
        cc.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
            .set("fetch.max.bytes", cfg.message_max_bytes.max(52_428_800).to_string())
            .set("max.partition.fetch.bytes", cfg.message_max_bytes.max(1_048_576).to_string());
        let consumer: StreamConsumer = cc.create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(30))?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect::<Vec<_>>();
        let mut pending = BTreeMap::new();
        for p in &partitions {
            let (_, high) = consumer.fetch_watermarks(&topic, *p, Duration::from_secs(30))?;
            pending.insert(*p, high);
        }
        // The group's positions of these partitions (asked for explicitly: the consumer has no assignment yet).
        let mut wanted = TopicPartitionList::new();
        for p in &partitions {
            wanted.add_partition(&topic, *p);
        }
        let committed = consumer.committed_offsets(wanted, Duration::from_secs(30))?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let start = committed
                .find_partition(&topic, *p)
                .and_then(|e| if let Offset::Offset(o) = e.offset() { Some(o) } else { None })
                .unwrap_or(0);
            tpl.add_partition_offset(&topic, *p, Offset::Offset(start))?;
        }
        consumer.assign(&tpl)?;
        Ok(TopicToEnd { consumer, topic, pending, opened_at_ms, done: TopicPartitionList::new() })
    }

    /// The next record's partition, offset and payload; `None` once every partition is read to its end. A
    /// read that gets nothing for [`STALL`] while partitions are short of their end is an error naming them,
    /// never a silent end: a replay that stopped early would pass for a complete one.
    pub async fn next(&mut self) -> Result<Option<(i32, i64, Vec<u8>)>, KafkaRuntimeError> {
        while !self.pending.is_empty() {
            let msg = match tokio::time::timeout(STALL, self.consumer.recv()).await {
                Ok(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    self.pending.remove(&p);
                    continue;
                }
                Ok(m) => m?,
                Err(_) => {
                    let short: Vec<String> = self
                        .pending
                        .iter()
                        .map(|(p, end)| {
                            let at =
                                self.done.find_partition(&self.topic, *p).map_or(Offset::Beginning, |e| e.offset());
                            format!("partition {p} at {at:?} (reported end {end})")
                        })
                        .collect();
                    return Err(KafkaRuntimeError::Replay(format!(
                        "{}: nothing read for {} s before the end: {}",
                        self.topic,
                        STALL.as_secs(),
                        short.join(", ")
                    )));
                }
            };
            let (partition, offset) = (msg.partition(), msg.offset());
            let Some(&end) = self.pending.get(&partition) else { continue };
            let written_after = msg.timestamp().to_millis().is_some_and(|t| t > self.opened_at_ms);
            if offset >= end && written_after {
                self.pending.remove(&partition);
                continue;
            }
            self.done.add_partition_offset(&self.topic, partition, Offset::Offset(offset + 1))?;
            return Ok(Some((partition, offset, msg.payload().unwrap_or_default().to_vec())));
        }
        Ok(None)
    }

    /// Commits the group's position past every record returned.
    pub fn commit(&self) -> Result<(), KafkaRuntimeError> {
        if self.done.count() > 0 {
            self.consumer.commit(&self.done, CommitMode::Sync)?;
        }
        Ok(())
    }
}

/// Replays the dead letters from the group's committed position (the start, the first time) up to the end
/// of the topic as it is when the replay starts.
pub async fn replay_dead_letters(cfg: &KafkaConfig, filter: &ReplayFilter) -> Result<ReplayReport, KafkaRuntimeError> {
    let group = format!("{}replay-dead-letters", cfg.group_prefix);
    let mut read = TopicToEnd::open(cfg, Topic::DeadLetter, &group).await?;
    let publisher = KafkaPublisher::new(cfg)?;
    let mut report = ReplayReport::default();
    while let Some((partition, offset, payload)) = read.next().await? {
        report.read += 1;
        let record = Codec::global().decode(&payload, Topic::DeadLetter.record_kind());
        match record {
            Ok(Record::DeadLetter(d)) if filter.wants(&d) => {
                let target = Topic::ALL.iter().copied().find(|t| t.base_name() == d.topic);
                match (target, d.payload.is_empty()) {
                    (Some(t), false) => {
                        if !filter.dry_run {
                            let key =
                                d.key.clone().map(|k| String::from_utf8_lossy(&k).to_string()).unwrap_or_default();
                            publisher
                                .publish_raw(t, &key, &d.payload)
                                .await
                                .map_err(|e| KafkaRuntimeError::Replay(e.to_string()))?;
                        }
                        *report.replayed.entry(d.error_kind.clone()).or_default() += 1;
                    }
                    _ => report.unreplayable += 1,
                }
            }
            Ok(_) => report.skipped += 1,
            Err(e) => {
                tracing::warn!(partition, offset, error = %e, "an unreadable dead letter is left alone");
                report.skipped += 1;
            }
        }
    }
    if !filter.dry_run {
        publisher.flush(Duration::from_secs(30));
        read.commit()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(kind: &str, attempts: i32, stage: &str) -> DeadLetter {
        DeadLetter {
            id: "x".into(),
            stage: stage.into(),
            topic: "chunks".into(),
            partition: 0,
            offset: 1,
            key: None,
            payload: vec![1],
            error_kind: kind.into(),
            error: "e".into(),
            attempts,
            failed_at_ms: 0,
        }
    }

    #[test]
    fn only_transient_dead_letters_by_default() {
        let f = ReplayFilter::default();
        assert!(f.wants(&dl("llm_connect", 4, "generate")), "retried, then dead-lettered: transient");
        assert!(!f.wants(&dl("llm_connect", 1, "generate")), "dead-lettered at once: not a transient failure");
        assert!(!f.wants(&dl("panic", 1, "generate")));
        assert!(!f.wants(&dl("decode", 4, "generate")));
        assert!(ReplayFilter { all: true, ..ReplayFilter::default() }.wants(&dl("panic", 1, "judge")));
        let only = ReplayFilter { kinds: vec!["panic".into()], stage: Some("judge".into()), ..ReplayFilter::default() };
        assert!(only.wants(&dl("panic", 1, "judge")) && !only.wants(&dl("panic", 1, "generate")));
    }
}
