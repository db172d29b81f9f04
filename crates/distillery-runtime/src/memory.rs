//! The in-process runtime: topics are in-memory queues, each subscribed stage (a "consumer group") gets
//! every record of its input topics, and each stage processes up to its concurrency at once with the same
//! `handle` path as on Kafka (retries, rejections, dead-letters, metrics, in-order commit positions).
//!
//! The bus counts records published but not yet fully handled; when that count reaches zero after the
//! sources are done, the pipeline is finished (`wait_idle`). Topics nobody subscribes to keep their records
//! for inspection (`take`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use distillery_core::offsets::OffsetTracker;
use distillery_core::{Input, Metrics, Payload, Record, Stage, Topic};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{PublishError, Publisher, RetryPolicy, handle};

#[derive(Debug)]
struct Envelope {
    topic: Topic,
    offset: i64,
    record: Record,
}

#[derive(Debug, Clone)]
struct Inbox {
    stage: &'static str,
    tx: async_channel::Sender<Envelope>,
}

#[derive(Default)]
struct Inner {
    subs: Mutex<HashMap<Topic, Vec<Inbox>>>,
    retained: Mutex<HashMap<Topic, Vec<Record>>>,
    offsets: Mutex<HashMap<(&'static str, Topic), i64>>,
    committed: Mutex<HashMap<(&'static str, Topic), i64>>,
    pending: AtomicI64,
    changed: Notify,
}

/// In-memory topics shared by the stages of one process.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").field("pending", &self.pending()).finish()
    }
}

impl MemoryBus {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MemoryBus { inner: Arc::new(Inner::default()), metrics }
    }

    /// Records published and not yet fully handled by every subscriber.
    pub fn pending(&self) -> i64 {
        self.inner.pending.load(Ordering::SeqCst)
    }

    /// Resolves once nothing is pending.
    pub async fn wait_idle(&self) {
        self.wait_pending_at_most(0).await
    }

    /// Resolves once at most `n` records are pending (sources use it to bound memory).
    pub async fn wait_pending_at_most(&self, n: i64) {
        loop {
            let changed = self.inner.changed.notified();
            if self.pending() <= n {
                return;
            }
            changed.await;
        }
    }

    /// Records published to a topic nobody subscribes to, taken out of the bus.
    pub fn take(&self, topic: Topic) -> Vec<Record> {
        self.inner.retained.lock().expect("bus lock").remove(&topic).unwrap_or_default()
    }

    /// The commit position of a stage on a topic (the next offset it would read after a restart).
    pub fn committed(&self, stage: &str, topic: Topic) -> Option<i64> {
        self.inner
            .committed
            .lock()
            .expect("bus lock")
            .iter()
            .find(|((s, t), _)| *s == stage && *t == topic)
            .map(|(_, v)| *v)
    }

    fn done(&self) {
        self.inner.pending.fetch_sub(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Subscribes `stage` to its input topics and runs it until the bus is closed or `cancel` fires;
    /// then drains in-flight inputs and calls the stage's `shutdown`. Subscribe every stage before
    /// publishing the first record.
    pub fn spawn_stage<S: Stage>(
        &self,
        stage: Arc<S>,
        concurrency: usize,
        retry: RetryPolicy,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = async_channel::unbounded();
        {
            let mut subs = self.inner.subs.lock().expect("bus lock");
            for topic in stage.inputs() {
                subs.entry(*topic).or_default().push(Inbox { stage: stage.name(), tx: tx.clone() });
            }
        }
        let bus = self.clone();
        tokio::spawn(async move { bus.run_stage(stage, rx, concurrency.max(1), retry, cancel).await })
    }

    /// Closes every inbox: stages finish what they have and exit.
    pub fn close(&self) {
        for inboxes in self.inner.subs.lock().expect("bus lock").values() {
            for inbox in inboxes {
                inbox.tx.close();
            }
        }
    }

    async fn run_stage<S: Stage>(
        self,
        stage: Arc<S>,
        rx: async_channel::Receiver<Envelope>,
        concurrency: usize,
        retry: RetryPolicy,
        cancel: CancellationToken,
    ) {
        let name = stage.name();
        let sem = Arc::new(Semaphore::new(concurrency));
        let trackers: Arc<Mutex<HashMap<Topic, OffsetTracker>>> = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = cancel.cancelled() => break,
            };
            let env = tokio::select! {
                m = rx.recv() => match m { Ok(e) => e, Err(_) => break },
                _ = cancel.cancelled() => break,
            };
            trackers.lock().expect("tracker lock").entry(env.topic).or_default().begin(env.offset);
            let (stage, bus, retry, cancel, trackers) =
                (stage.clone(), self.clone(), retry.clone(), cancel.clone(), trackers.clone());
            tasks.spawn(async move {
                let key = bytes::Bytes::copy_from_slice(env.record.key().as_bytes());
                let input = Input {
                    topic: env.topic,
                    partition: 0,
                    offset: env.offset,
                    key: Some(key),
                    payload: Payload::Record(env.record),
                };
                let ok = handle(&*stage, input, &bus, &bus.metrics, &retry, &cancel).await.is_ok();
                if ok {
                    let advanced =
                        trackers.lock().expect("tracker lock").get_mut(&env.topic).and_then(|t| t.complete(env.offset));
                    if let Some(pos) = advanced {
                        bus.inner.committed.lock().expect("bus lock").insert((name, env.topic), pos);
                        bus.metrics.committed_offset.with_label_values(&[name, env.topic.base_name(), "0"]).set(pos);
                    }
                }
                bus.done();
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(stage = name, error = %e, "stage task panicked");
            }
        }
        stage.shutdown().await;
    }
}

impl Publisher for MemoryBus {
    async fn publish(&self, records: Vec<Record>) -> Result<(), PublishError> {
        for record in records {
            let topic = Topic::for_kind(record.kind());
            let inboxes = self.inner.subs.lock().expect("bus lock").get(&topic).cloned().unwrap_or_default();
            if inboxes.is_empty() {
                self.inner.retained.lock().expect("bus lock").entry(topic).or_default().push(record);
                continue;
            }
            let last = inboxes.len() - 1;
            let mut record = Some(record);
            for (i, inbox) in inboxes.iter().enumerate() {
                let rec = if i == last { record.take().expect("moved once") } else { record.clone().expect("present") };
                let offset = {
                    let mut offsets = self.inner.offsets.lock().expect("bus lock");
                    let o = offsets.entry((inbox.stage, topic)).or_insert(0);
                    *o += 1;
                    *o - 1
                };
                self.inner.pending.fetch_add(1, Ordering::SeqCst);
                if inbox.tx.send(Envelope { topic, offset, record: rec }).await.is_err() {
                    // The stage has exited (shutdown): the record is dropped with the process.
                    self.done();
                    return Err(PublishError { topic, message: format!("stage {} is closed", inbox.stage) });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use distillery_core::codec::fixtures;
    use distillery_core::{RejectReason, StageError};

    use super::*;

    /// Turns each document into two chunks; documents whose key says so fail in the named way.
    struct Splitter {
        calls: AtomicUsize,
    }

    impl Stage for Splitter {
        fn name(&self) -> &'static str {
            "splitter"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Documents]
        }
        async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let Some(Record::Document(doc)) = input.as_record() else {
                return Err(StageError::dead_letter("unexpected", "not a document"));
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
            match doc.source.key.as_str() {
                "reject" => Err(StageError::reject(RejectReason::EmptyDocument, "nothing in it")),
                "poison" => Err(StageError::dead_letter("bug", "cannot handle")),
                "flaky" => Err(StageError::retry("s3_get", "timeout")),
                _ => Ok((0..2)
                    .map(|i| {
                        let mut c = fixtures::chunk();
                        c.id = format!("{}-{i}", doc.id);
                        c.document_id = doc.id.clone();
                        Record::Chunk(c)
                    })
                    .collect()),
            }
        }
    }

    /// Counts chunks.
    struct Counter(AtomicUsize);

    impl Stage for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Chunks]
        }
        async fn process(&self, _input: Input) -> Result<Vec<Record>, StageError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        }
    }

    fn doc(key: &str, id: &str) -> Record {
        let mut d = fixtures::document();
        d.source.key = key.into();
        d.id = id.into();
        Record::Document(d)
    }

    #[tokio::test]
    async fn records_flow_and_every_failure_is_routed() {
        let metrics = Metrics::isolated();
        let bus = MemoryBus::new(metrics.clone());
        let cancel = CancellationToken::new();
        let splitter = Arc::new(Splitter { calls: AtomicUsize::new(0) });
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let retry = RetryPolicy { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 2 };
        let h1 = bus.spawn_stage(splitter.clone(), 4, retry.clone(), cancel.clone());
        let h2 = bus.spawn_stage(counter.clone(), 2, retry, cancel.clone());

        let mut docs: Vec<Record> = (0..20).map(|i| doc("ok", &format!("d{i}"))).collect();
        docs.push(doc("reject", "r"));
        docs.push(doc("poison", "p"));
        docs.push(doc("flaky", "f"));
        bus.publish(docs).await.unwrap();
        bus.wait_idle().await;

        assert_eq!(counter.0.load(Ordering::SeqCst), 40);
        // 20 good + 1 reject + 1 poison + 3 attempts of the flaky one.
        assert_eq!(splitter.calls.load(Ordering::SeqCst), 25);
        let rejected = bus.take(Topic::Rejected);
        assert_eq!(rejected.len(), 1);
        let Record::Rejected(r) = &rejected[0] else { panic!("not a rejection") };
        assert_eq!((r.reason, r.subject_id.as_str(), r.stage.as_str()), (RejectReason::EmptyDocument, "r", "splitter"));
        let dead = bus.take(Topic::DeadLetter);
        assert_eq!(dead.len(), 2);
        for d in &dead {
            let Record::DeadLetter(d) = d else { panic!("not a dead letter") };
            // The dead letter keeps the input whole: it decodes back to the document.
            let back = distillery_core::Codec::global().decode(&d.payload, None).unwrap();
            assert!(matches!(back, Record::Document(_)));
            assert!(d.error_kind == "bug" || (d.error_kind == "s3_get" && d.attempts == 3), "{d:?}");
        }
        // Every input of each topic was committed in order.
        assert_eq!(bus.committed("splitter", Topic::Documents), Some(23));
        assert_eq!(bus.committed("counter", Topic::Chunks), Some(40));
        assert_eq!(Metrics::counter_sum(&metrics.records_in, &[("stage", "splitter")]), 23);
        assert_eq!(Metrics::counter_sum(&metrics.retries, &[("stage", "splitter")]), 2);
        assert_eq!(Metrics::counter_sum(&metrics.rejected, &[("reason", "empty_document")]), 1);

        bus.close();
        h1.await.unwrap();
        h2.await.unwrap();
    }

    /// A stage that holds each input until released, to observe the concurrency bound.
    struct Gate {
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Stage for Gate {
        fn name(&self) -> &'static str {
            "gate"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Documents]
        }
        async fn process(&self, _input: Input) -> Result<Vec<Record>, StageError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn concurrency_is_bounded_and_reached() {
        let bus = MemoryBus::new(Metrics::isolated());
        let gate = Arc::new(Gate { running: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
        let h = bus.spawn_stage(gate.clone(), 5, RetryPolicy::default(), CancellationToken::new());
        bus.publish((0..30).map(|i| doc("ok", &i.to_string())).collect()).await.unwrap();
        bus.wait_idle().await;
        assert_eq!(gate.peak.load(Ordering::SeqCst), 5);
        bus.close();
        h.await.unwrap();
    }

    #[tokio::test]
    async fn cancel_drains_in_flight_work() {
        let bus = MemoryBus::new(Metrics::isolated());
        let gate = Arc::new(Gate { running: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
        let cancel = CancellationToken::new();
        let h = bus.spawn_stage(gate.clone(), 3, RetryPolicy::default(), cancel.clone());
        bus.publish((0..30).map(|i| doc("ok", &i.to_string())).collect()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        cancel.cancel();
        h.await.unwrap();
        // Whatever started finished; nothing is left running.
        assert_eq!(gate.running.load(Ordering::SeqCst), 0);
        let committed = bus.committed("gate", Topic::Documents).unwrap_or(0);
        assert!((1..30).contains(&committed), "committed {committed}");
    }
}
