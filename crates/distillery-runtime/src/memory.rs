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

use std::time::Duration;

use crate::breaker::Breaker;
use crate::{PublishError, Publisher, RuntimeConfig, handle_with};

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
    /// then drains in-flight inputs (at most `runtime.drain_timeout_secs`, after which what is still
    /// running is cancelled and left uncommitted) and calls the stage's `shutdown`. Subscribe every stage
    /// before publishing the first record.
    pub fn spawn_stage<S: Stage>(
        &self,
        stage: Arc<S>,
        concurrency: usize,
        runtime: &RuntimeConfig,
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
        let breaker = Breaker::new(stage.name(), runtime.breaker.clone(), &self.metrics, None);
        let runtime = runtime.clone();
        tokio::spawn(async move { bus.run_stage(stage, rx, concurrency.max(1), runtime, breaker, cancel).await })
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
        runtime: RuntimeConfig,
        breaker: Breaker,
        cancel: CancellationToken,
    ) {
        let name = stage.name();
        let sem = Arc::new(Semaphore::new(concurrency));
        let trackers: Arc<Mutex<HashMap<Topic, OffsetTracker>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let mut open = breaker.subscribe();
        'consume: loop {
            // A paused stage (its dependency failing) takes a new input only as a probe, once per interval.
            while !breaker.admits() {
                let wait = breaker.until_probe();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = open.changed() => {}
                    _ = cancel.cancelled() => break 'consume,
                }
            }
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = cancel.cancelled() => break,
            };
            let env = tokio::select! {
                m = rx.recv() => match m { Ok(e) => e, Err(_) => break },
                _ = cancel.cancelled() => break,
            };
            if breaker.is_open() {
                breaker.take_probe();
            }
            trackers.lock().expect("tracker lock").entry(env.topic).or_default().begin(env.offset);
            let (stage, bus, retry, cancel, trackers, breaker) =
                (stage.clone(), self.clone(), runtime.retry.clone(), cancel.clone(), trackers.clone(), breaker.clone());
            tasks.spawn(async move {
                // Counted done however the task ends (finished, or cancelled at the drain timeout).
                let _done = Done(bus.clone());
                let key = bytes::Bytes::copy_from_slice(env.record.key().as_bytes());
                let input = Input {
                    topic: env.topic,
                    partition: 0,
                    offset: env.offset,
                    key: Some(key),
                    payload: Payload::Record(env.record),
                };
                let ok = handle_with(&*stage, input, &bus, &bus.metrics, &retry, Some(&breaker), &cancel).await.is_ok();
                if ok {
                    let advanced =
                        trackers.lock().expect("tracker lock").get_mut(&env.topic).and_then(|t| t.complete(env.offset));
                    if let Some(pos) = advanced {
                        bus.inner.committed.lock().expect("bus lock").insert((name, env.topic), pos);
                        bus.metrics.committed_offset.with_label_values(&[name, env.topic.base_name(), "0"]).set(pos);
                    }
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        let drain = async {
            while let Some(res) = tasks.join_next().await {
                if let Err(e) = res
                    && !e.is_cancelled()
                {
                    tracing::error!(stage = name, error = %e, "stage task failed");
                }
            }
        };
        if cancel.is_cancelled() {
            let limit = Duration::from_secs(runtime.drain_timeout_secs);
            if tokio::time::timeout(limit, drain).await.is_err() {
                tracing::warn!(
                    stage = name,
                    in_flight = tasks.len(),
                    drain_timeout_secs = runtime.drain_timeout_secs,
                    "drain timed out: cancelling what is still running (it is left uncommitted)"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        } else {
            drain.await;
        }
        stage.shutdown().await;
    }
}

/// Marks one delivered record handled when dropped.
struct Done(MemoryBus);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.done();
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
                    return Err(PublishError::transient(topic, format!("stage {} is closed", inbox.stage)));
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
    use crate::{BreakerConfig, RetryPolicy};

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
        // No breaker: the flaky input's failures count toward its attempts whatever else happens.
        let runtime = RuntimeConfig {
            retry: RetryPolicy { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 2 },
            breaker: BreakerConfig { failures_to_open: 0, ..BreakerConfig::default() },
            ..RuntimeConfig::default()
        };
        let h1 = bus.spawn_stage(splitter.clone(), 4, &runtime, cancel.clone());
        let h2 = bus.spawn_stage(counter.clone(), 2, &runtime, cancel.clone());

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
        let h = bus.spawn_stage(gate.clone(), 5, &RuntimeConfig::default(), CancellationToken::new());
        bus.publish((0..30).map(|i| doc("ok", &i.to_string())).collect()).await.unwrap();
        bus.wait_idle().await;
        assert_eq!(gate.peak.load(Ordering::SeqCst), 5);
        bus.close();
        h.await.unwrap();
    }

    /// A stage whose dependency (`up`) can be down: every input then fails with a retryable error.
    struct Dependent {
        up: Arc<std::sync::atomic::AtomicBool>,
        done: AtomicUsize,
        failures: AtomicUsize,
    }

    impl Stage for Dependent {
        fn name(&self) -> &'static str {
            "dependent"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Documents]
        }
        async fn process(&self, _input: Input) -> Result<Vec<Record>, StageError> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if !self.up.load(Ordering::SeqCst) {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(StageError::retry("llm_connect", "connection refused"));
            }
            self.done.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        }
    }

    /// Issue 14, defect 2: an outage longer than the retries used to dead-letter the whole backlog. Behind the
    /// breaker every input waits and nothing is dead-lettered; consumption resumes when the dependency is back.
    #[tokio::test]
    async fn a_dependency_outage_pauses_instead_of_dead_lettering() {
        let metrics = Metrics::isolated();
        let bus = MemoryBus::new(metrics.clone());
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stage = Arc::new(Dependent { up: up.clone(), done: AtomicUsize::new(0), failures: AtomicUsize::new(0) });
        let runtime = RuntimeConfig {
            retry: RetryPolicy { max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 5 },
            breaker: BreakerConfig { failures_to_open: 3, probe_interval_ms: 5, max_probe_interval_ms: 20 },
            ..RuntimeConfig::default()
        };
        let h = bus.spawn_stage(stage.clone(), 4, &runtime, CancellationToken::new());
        bus.publish((0..20).map(|i| doc("ok", &i.to_string())).collect()).await.unwrap();
        // Down for much longer than max_attempts x backoff.
        while stage.failures.load(Ordering::SeqCst) < 60 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(metrics.render().contains("distillery_breaker_open{stage=\"dependent\"} 1"), "{}", metrics.render());
        assert_eq!(stage.done.load(Ordering::SeqCst), 0);
        up.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(30), bus.wait_idle())
            .await
            .expect("the backlog drains once the dependency is back");
        assert_eq!(stage.done.load(Ordering::SeqCst), 20, "every input processed");
        assert!(bus.take(Topic::DeadLetter).is_empty(), "nothing dead-lettered for an outage");
        assert_eq!(bus.committed("dependent", Topic::Documents), Some(20));
        assert!(metrics.render().contains("distillery_breaker_open{stage=\"dependent\"} 0"));
        bus.close();
        h.await.unwrap();
    }

    /// Fails with a retryable error forever, or panics, by key.
    struct Broken;

    impl Stage for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Documents]
        }
        async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
            let Some(Record::Document(doc)) = input.as_record() else { unreachable!() };
            match doc.source.key.as_str() {
                "panic" => panic!("index out of bounds: the len is 3 but the index is 7"),
                "flaky" => Err(StageError::retry("s3_get", "timeout")),
                _ => Ok(vec![]),
            }
        }
    }

    /// Issue 14, defect 3: a panicking stage used to leave its input pending forever (the embedded run hung;
    /// on Kafka the partition's commits froze). It is dead-lettered with the panic's message.
    #[tokio::test]
    async fn a_panicking_stage_dead_letters_that_input_with_the_message() {
        let bus = MemoryBus::new(Metrics::isolated());
        let h = bus.spawn_stage(Arc::new(Broken), 2, &RuntimeConfig::default(), CancellationToken::new());
        bus.publish(vec![doc("ok", "a"), doc("panic", "p"), doc("ok", "b")]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), bus.wait_idle()).await.expect("a panic does not hang the bus");
        let dead = bus.take(Topic::DeadLetter);
        assert_eq!(dead.len(), 1);
        let Record::DeadLetter(d) = &dead[0] else { panic!("not a dead letter") };
        assert_eq!(d.error_kind, "panic");
        assert!(d.error.contains("index out of bounds: the len is 3 but the index is 7"), "{}", d.error);
        assert_eq!(bus.committed("broken", Topic::Documents), Some(3), "the partition commits past it");
        bus.close();
        h.await.unwrap();
    }

    /// An input retrying when shutdown comes is left uncommitted (processed again by the next run), not
    /// dead-lettered.
    #[tokio::test]
    async fn shutdown_while_retrying_leaves_the_input_uncommitted() {
        let bus = MemoryBus::new(Metrics::isolated());
        let cancel = CancellationToken::new();
        let runtime = RuntimeConfig {
            retry: RetryPolicy { max_attempts: 1000, initial_backoff_ms: 5, max_backoff_ms: 5 },
            ..RuntimeConfig::default()
        };
        let h = bus.spawn_stage(Arc::new(Broken), 2, &runtime, cancel.clone());
        bus.publish(vec![doc("flaky", "f")]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        cancel.cancel();
        h.await.unwrap();
        assert!(bus.take(Topic::DeadLetter).is_empty());
        assert_eq!(bus.committed("broken", Topic::Documents), None);
    }

    /// Holds its input until cancelled, noting when its future is dropped (an LLM call cut off).
    struct Hang {
        dropped: Arc<std::sync::atomic::AtomicBool>,
    }

    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Stage for Hang {
        fn name(&self) -> &'static str {
            "hang"
        }
        fn inputs(&self) -> &'static [Topic] {
            &[Topic::Documents]
        }
        async fn process(&self, _input: Input) -> Result<Vec<Record>, StageError> {
            let _guard = SetOnDrop(self.dropped.clone());
            std::future::pending::<()>().await;
            Ok(vec![])
        }
    }

    /// Issue 14, defect 6: Ctrl-C's drain had no timeout. In-flight work gets `drain_timeout_secs`, then is
    /// cancelled (its future dropped: an LLM call's connection closes) and left uncommitted.
    #[tokio::test(start_paused = true)]
    async fn the_drain_times_out_and_cancels_what_still_runs() {
        let bus = MemoryBus::new(Metrics::isolated());
        let cancel = CancellationToken::new();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = RuntimeConfig { drain_timeout_secs: 5, ..RuntimeConfig::default() };
        let h = bus.spawn_stage(Arc::new(Hang { dropped: dropped.clone() }), 2, &runtime, cancel.clone());
        bus.publish(vec![doc("ok", "1")]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.cancel();
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(3600), h)
            .await
            .expect("the stage stops after its drain timeout")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(5), "it waited for the drain first");
        assert!(dropped.load(Ordering::SeqCst), "the hung call was cancelled");
        assert_eq!(bus.committed("hang", Topic::Documents), None);
        assert_eq!(bus.pending(), 0);
    }

    #[tokio::test]
    async fn cancel_drains_in_flight_work() {
        let bus = MemoryBus::new(Metrics::isolated());
        let gate = Arc::new(Gate { running: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
        let cancel = CancellationToken::new();
        let h = bus.spawn_stage(gate.clone(), 3, &RuntimeConfig::default(), cancel.clone());
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
