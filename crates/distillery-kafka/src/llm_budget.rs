//! LLM budgets shared over Kafka: a [`BudgetShare`] whose members find each other on the compacted,
//! single-partition control topic `<topic_prefix>control`.
//!
//! Each member of a group (an endpoint and model) publishes heartbeats keyed `llm-budget/<group>/<member>`:
//! the view it obeys (the members it counts, sorted), its configured limits and the time. A member
//!
//! - joins by publishing a heartbeat, then reads the topic up to that heartbeat: every member that joined
//!   before it is in its view, and every member that joins after it will find it there;
//! - is *active* (uses its part) only while every other member of its view has published a view that
//!   contains it;
//! - on seeing a new member, lowers its part at once and publishes the larger view only once its requests in
//!   flight have drained to the new part, so the newcomer starts only when the others have made room;
//! - on a member's leaving (its last heartbeat says so, or is older than the lease), raises its part at once:
//!   a member's part never grows with the view, so the parts in use never add up to more than the limits;
//! - stops using its part (fences itself) when its own heartbeats have not come back for half a lease, so
//!   the others may take its part after a full lease.
//!
//! The order of the topic's single partition decides who joined first; clocks are compared only for the
//! lease (the members' clocks should agree to well within it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distillery_core::now_ms;
use distillery_llm::{BudgetGroup, BudgetShare, BudgetUsage, Limits, Share};
use futures::future::BoxFuture;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::error::KafkaRuntimeError;
use crate::ordered_log::{ensure_log_topic, reader};

/// The control topic's name after the prefix.
pub const CONTROL_TOPIC: &str = "control";

/// Timings of the membership protocol.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A member whose last heartbeat is older than this has left.
    pub lease: Duration,
    /// How often a member publishes a heartbeat when nothing changes.
    pub heartbeat: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { lease: Duration::from_secs(10), heartbeat: Duration::from_secs(2) }
    }
}

/// One heartbeat on the control topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Heartbeat {
    group: String,
    member: String,
    /// The members whose parts this member's part is computed among, sorted, itself included.
    view: Vec<String>,
    limits: Limits,
    at_ms: i64,
    leaving: bool,
}

const KEY_PREFIX: &str = "llm-budget/";

/// A member of this process.
struct Local {
    group: String,
    member: String,
    limits: Limits,
    usage: Arc<BudgetUsage>,
    tx: watch::Sender<Share>,
    /// The view last published.
    published: Vec<String>,
    published_at_ms: i64,
    /// When this member's own latest heartbeat was read back from the topic.
    confirmed_at_ms: i64,
}

#[derive(Default)]
struct State {
    /// Latest heartbeat by (group, member).
    table: HashMap<(String, String), Heartbeat>,
    /// Offset of the next record the reader will see.
    position: i64,
    locals: Vec<Local>,
}

struct Inner {
    cfg: KafkaConfig,
    topic: String,
    timing: Timing,
    state: Mutex<State>,
    changed: Notify,
    /// Fired by [`KafkaBudgetShare::leave`].
    cancel: CancellationToken,
    /// Fired when this process's heartbeats are published but not read back: the reader starts over with a
    /// new consumer from its position.
    reread: Notify,
    /// Set once the members' leaving is published.
    left: watch::Sender<bool>,
}

/// LLM budgets shared by the replicas of a Kafka pipeline.
#[derive(Clone)]
pub struct KafkaBudgetShare {
    inner: Arc<Inner>,
    started: Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for KafkaBudgetShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaBudgetShare({})", self.inner.topic)
    }
}

impl KafkaBudgetShare {
    /// A share on `<topic_prefix>control`; nothing connects until a client joins.
    pub fn new(cfg: &KafkaConfig, timing: Timing) -> Self {
        KafkaBudgetShare {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                topic: format!("{}{CONTROL_TOPIC}", cfg.topic_prefix),
                timing,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                cancel: CancellationToken::new(),
                reread: Notify::new(),
                left: watch::channel(false).0,
            }),
            started: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Stops this process's members (no new requests) and publishes their leaving, so the others take their
    /// parts at once rather than after a lease: call it when no request is in flight any more (the stage
    /// has drained).
    pub async fn leave(&self) {
        self.inner.cancel.cancel();
        if self.started.initialized() {
            let mut left = self.inner.left.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(15), left.wait_for(|l| *l)).await;
        }
    }

    /// Creates the topic and starts reading it and keeping the members' parts (once; retried until it works).
    async fn start(&self) {
        self.started
            .get_or_init(|| async {
                let inner = &self.inner;
                loop {
                    let created = if inner.cfg.create_topics {
                        ensure_log_topic(&inner.cfg, &inner.topic, &[("cleanup.policy", "compact")]).await
                    } else {
                        Ok(())
                    };
                    match created.and_then(|()| heartbeat_producer(&inner.cfg, &inner.timing)) {
                        Ok(producer) => {
                            tokio::spawn(read(self.inner.clone()));
                            tokio::spawn(keep(self.inner.clone(), producer));
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(topic = %inner.topic, error = %e, "control topic unavailable; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
            .await;
    }
}

impl BudgetShare for KafkaBudgetShare {
    fn join(
        &self,
        group: &BudgetGroup,
        limits: Limits,
        usage: Arc<BudgetUsage>,
    ) -> BoxFuture<'_, watch::Receiver<Share>> {
        let group = group.key.clone();
        Box::pin(async move {
            self.start().await;
            let member = uuid::Uuid::new_v4().to_string();
            let (tx, rx) = watch::channel(Share { members: 1, rank: 0, active: false, limits });
            {
                let mut st = self.inner.state.lock().expect("state lock");
                st.locals.push(Local {
                    group: group.clone(),
                    member: member.clone(),
                    limits,
                    usage,
                    tx,
                    published: Vec::new(),
                    published_at_ms: 0,
                    confirmed_at_ms: 0,
                });
            }
            tracing::info!(group = %group, member = %member, "joining the LLM budget");
            self.inner.changed.notify_one();
            rx
        })
    }
}

/// Heartbeats go through a producer of their own without idempotence: a heartbeat is state (the latest one
/// wins), sent one at a time, so a repeated one is harmless, and an idempotent producer can end in a fatal
/// error (its sequence numbers lost across a broker outage) after which it never sends again: the members
/// of this process would stay fenced for good.
/// A heartbeat not delivered within a lease is given up (the next one says more).
fn heartbeat_producer(cfg: &KafkaConfig, timing: &Timing) -> Result<FutureProducer, KafkaRuntimeError> {
    let mut p = cfg.producer_config();
    p.set("enable.idempotence", "false")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", timing.lease.as_millis().max(1000).to_string());
    Ok(p.create()?)
}

/// Reads the control topic from its start into the table; starts over with a new consumer (from the
/// position reached) when [`Inner::reread`] fires.
async fn read(inner: Arc<Inner>) {
    loop {
        let position = inner.state.lock().expect("state lock").position;
        let from = if position == 0 { Offset::Beginning } else { Offset::Offset(position) };
        let consumer = reader(&inner.cfg, &inner.topic).and_then(|c| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&inner.topic, 0, from)?;
            c.assign(&tpl)?;
            Ok(c)
        });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic = %inner.topic, error = %e, "cannot read the control topic; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = inner.cancel.cancelled() => return,
                }
            }
        };
        loop {
            let msg = tokio::select! {
                m = consumer.recv() => m,
                _ = inner.reread.notified() => {
                    tracing::warn!(topic = %inner.topic, position, "control topic reader stalled (heartbeats published but not read back); reading again with a new consumer");
                    break;
                }
                _ = inner.cancel.cancelled() => return,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(topic = %inner.topic, error = %e, "control topic read failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or_default();
            let beat = if key.starts_with(KEY_PREFIX) {
                msg.payload().and_then(|p| serde_json::from_slice::<Heartbeat>(p).ok())
            } else {
                None
            };
            {
                let mut st = inner.state.lock().expect("state lock");
                st.position = msg.offset() + 1;
                if let Some(b) = beat {
                    for l in st.locals.iter_mut().filter(|l| l.member == b.member) {
                        l.confirmed_at_ms = l.confirmed_at_ms.max(b.at_ms);
                    }
                    let key = (b.group.clone(), b.member.clone());
                    // Read again from an earlier position, an older heartbeat never replaces a newer one.
                    if st.table.get(&key).is_none_or(|old| old.at_ms <= b.at_ms) {
                        st.table.insert(key, b);
                    }
                }
            }
            inner.changed.notify_one();
        }
    }
}

/// What one local member should do now.
struct Plan {
    share: Share,
    /// Publish this view now (it changed and may be acknowledged, or a heartbeat is due).
    publish: Option<Vec<String>>,
}

/// The view and part of a local member from the table.
fn plan(st: &State, l: &Local, timing: &Timing, now: i64) -> Plan {
    let lease = timing.lease.as_millis() as i64;
    let alive = |b: &Heartbeat| !b.leaving && now - b.at_ms <= lease;
    let others: BTreeMap<&str, &Heartbeat> = st
        .table
        .iter()
        .filter(|((g, m), b)| g == &l.group && m != &l.member && alive(b))
        .map(|((_, m), b)| (m.as_str(), b))
        .collect();
    let mut view: BTreeSet<String> = others.keys().map(|m| m.to_string()).collect();
    view.insert(l.member.clone());
    let view: Vec<String> = view.into_iter().collect();
    let rank = view.iter().position(|m| m == &l.member).expect("self in view") as u32;
    let limits = others.values().fold(l.limits, |acc, b| acc.min(b.limits));
    let acknowledged = others.values().all(|b| b.view.contains(&l.member));
    // Not yet read back: not joined (nobody can have counted this member yet).
    let joined = l.confirmed_at_ms > 0;
    let fenced = joined && now - l.confirmed_at_ms > lease / 2;
    let share = Share { members: view.len() as u32, rank, active: joined && acknowledged && !fenced, limits };
    // A new view is published (acknowledged) only once the requests in flight fit in its part: at once
    // when the part grew or stayed, after a drain when it shrank.
    let drained = !share.active || l.usage.in_flight() <= share.concurrency();
    let due = now - l.published_at_ms >= timing.heartbeat.as_millis() as i64;
    let publish = if view != l.published && drained {
        Some(view)
    } else if due {
        Some(l.published.clone())
    } else {
        None
    };
    Plan { share, publish }
}

/// Keeps every local member's part and heartbeats current; on cancel, publishes their leaving. Mends what a
/// broker outage can leave broken: a producer in a fatal state is replaced, and a reader that does not give
/// back heartbeats published since is started over.
async fn keep(inner: Arc<Inner>, mut producer: FutureProducer) {
    let tick = Duration::from_millis(100);
    let lease = inner.timing.lease.as_millis() as i64;
    // When a heartbeat was last acknowledged by the broker, and when the reader was last started over.
    let sent_at_ms = Arc::new(AtomicI64::new(0));
    let broken = Arc::new(AtomicBool::new(false));
    let mut reread_at_ms = now_ms();
    loop {
        let cancelled = tokio::select! {
            _ = inner.changed.notified() => false,
            _ = tokio::time::sleep(tick) => false,
            _ = inner.cancel.cancelled() => true,
        };
        let now = now_ms();
        let mut sends: Vec<Heartbeat> = Vec::new();
        let mut stalled = false;
        {
            let mut guard = inner.state.lock().expect("state lock");
            let st = &mut *guard;
            let plans: Vec<Plan> = st.locals.iter().map(|l| plan(st, l, &inner.timing, now)).collect();
            for (l, p) in st.locals.iter_mut().zip(plans) {
                let share = if cancelled { Share { active: false, ..p.share } } else { p.share };
                let was_active = l.tx.borrow().active;
                l.tx.send_if_modified(|s| {
                    let changed = *s != share;
                    *s = share;
                    changed
                });
                if was_active && !share.active && !cancelled {
                    tracing::warn!(group = %l.group, member = %l.member, "LLM budget part suspended: this member's heartbeats have not come back from the control topic");
                }
                // Published and acknowledged since, yet not read back for a lease: the reader is stuck.
                stalled |= l.confirmed_at_ms > 0
                    && now - l.confirmed_at_ms > lease
                    && sent_at_ms.load(Ordering::SeqCst) > l.confirmed_at_ms;
                let view = if cancelled { Some(l.published.clone()) } else { p.publish };
                if let Some(view) = view {
                    if view != l.published {
                        tracing::info!(group = %l.group, member = %l.member, members = view.len(), active = share.active, part = share.concurrency(), "LLM budget view");
                    }
                    l.published = view.clone();
                    l.published_at_ms = now;
                    sends.push(Heartbeat {
                        group: l.group.clone(),
                        member: l.member.clone(),
                        view,
                        limits: l.limits,
                        at_ms: now,
                        leaving: cancelled,
                    });
                }
            }
        }
        if stalled && now - reread_at_ms > lease {
            reread_at_ms = now;
            inner.reread.notify_one();
        }
        // Sent without waiting: the parts are kept current (a member fences itself) while the broker is away.
        let mut leaving = Vec::new();
        for b in sends {
            let key = format!("{KEY_PREFIX}{}/{}", b.group, b.member);
            let payload = serde_json::to_vec(&b).expect("a heartbeat serialises");
            let record = FutureRecord::to(&inner.topic).partition(0).key(&key).payload(&payload);
            match producer.send_result(record) {
                Ok(delivery) => {
                    let (at_ms, topic, sent, broken, producer) =
                        (b.at_ms, inner.topic.clone(), sent_at_ms.clone(), broken.clone(), producer.clone());
                    leaving.push(tokio::spawn(async move {
                        match delivery.await {
                            Ok(Ok(_)) => {
                                sent.fetch_max(at_ms, Ordering::SeqCst);
                            }
                            Ok(Err((e, _))) => {
                                tracing::warn!(topic = %topic, error = %e, "LLM budget heartbeat not published");
                                if producer.client().fatal_error().is_some() {
                                    broken.store(true, Ordering::SeqCst);
                                }
                            }
                            Err(_) => {}
                        }
                    }));
                }
                Err((e, _)) => tracing::warn!(topic = %inner.topic, error = %e, "LLM budget heartbeat not queued"),
            }
        }
        if broken.swap(false, Ordering::SeqCst) {
            tracing::warn!(topic = %inner.topic, "LLM budget producer failed for good; replacing it");
            match heartbeat_producer(&inner.cfg, &inner.timing) {
                Ok(p) => producer = p,
                Err(e) => tracing::warn!(topic = %inner.topic, error = %e, "LLM budget producer not replaced"),
            }
        }
        if cancelled {
            // The leaving heartbeats delivered (or given up) before the leaving is reported done.
            for sent in leaving {
                let _ = sent.await;
            }
            inner.left.send_replace(true);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(c: usize) -> Limits {
        Limits { concurrency: c, requests_per_second: Some(2.0), tokens_per_minute: None }
    }

    fn local(member: &str, confirmed: i64, published: &[&str]) -> Local {
        Local {
            group: "g".into(),
            member: member.into(),
            limits: limits(3),
            usage: Arc::new(BudgetUsage::default()),
            tx: watch::channel(Share::whole(limits(3))).0,
            published: published.iter().map(|s| s.to_string()).collect(),
            published_at_ms: confirmed,
            confirmed_at_ms: confirmed,
        }
    }

    fn beat(member: &str, view: &[&str], at: i64) -> Heartbeat {
        Heartbeat {
            group: "g".into(),
            member: member.into(),
            view: view.iter().map(|s| s.to_string()).collect(),
            limits: limits(3),
            at_ms: at,
            leaving: false,
        }
    }

    fn state(beats: Vec<Heartbeat>) -> State {
        State {
            table: beats.into_iter().map(|b| ((b.group.clone(), b.member.clone()), b)).collect(),
            ..State::default()
        }
    }

    #[test]
    fn a_newcomer_waits_for_acknowledgement_and_the_old_member_makes_room_first() {
        let t = Timing::default();
        let now = 1_000_000;
        // A has been alone; B has just joined (its heartbeat read back) with view {a, b}.
        let st = state(vec![beat("a", &["a"], now), beat("b", &["a", "b"], now)]);
        let b = plan(&st, &local("b", now, &["a", "b"]), &t, now);
        assert!(!b.share.active, "A has not counted B yet");
        // A sees B: its part drops from 3 to ceil(3/2) = 2 at once ...
        let mut a = local("a", now, &["a"]);
        a.usage = Arc::new(BudgetUsage::new(3));
        let p = plan(&st, &a, &t, now);
        assert_eq!((p.share.members, p.share.concurrency()), (2, 2));
        assert!(p.share.active);
        // ... but it acknowledges B only once its three requests in flight fit in two.
        assert_eq!(p.publish, None);
        a.usage = Arc::new(BudgetUsage::new(2));
        assert_eq!(plan(&st, &a, &t, now).publish, Some(vec!["a".to_string(), "b".to_string()]));
        // Acknowledged: B uses its part, ceil((3 - 1)/2) = 1; the parts add up to the limit.
        let st = state(vec![beat("a", &["a", "b"], now), beat("b", &["a", "b"], now)]);
        let b = plan(&st, &local("b", now, &["a", "b"]), &t, now);
        assert!(b.share.active);
        assert_eq!(b.share.concurrency() + p.share.concurrency(), 3);
    }

    #[test]
    fn a_member_past_its_lease_leaves_the_view_and_a_silent_member_fences_itself() {
        let t = Timing::default();
        let now = 1_000_000;
        let lease = t.lease.as_millis() as i64;
        let st = state(vec![beat("a", &["a", "b"], now), beat("b", &["a", "b"], now - lease - 1)]);
        let p = plan(&st, &local("a", now, &["a", "b"]), &t, now);
        assert_eq!((p.share.members, p.share.concurrency(), p.share.active), (1, 3, true));
        assert_eq!(p.publish, Some(vec!["a".to_string()]), "a smaller view is published at once");
        // Its own heartbeats have not come back for more than half a lease: no part.
        let p = plan(&st, &local("a", now - lease / 2 - 1, &["a", "b"]), &t, now);
        assert!(!p.share.active);
    }

    #[test]
    fn the_group_uses_the_strictest_limits_of_its_members() {
        let t = Timing::default();
        let now = 1_000_000;
        let mut other = beat("b", &["a", "b"], now);
        other.limits = Limits { concurrency: 2, requests_per_second: None, tokens_per_minute: Some(600) };
        let st = state(vec![other]);
        let p = plan(&st, &local("a", now, &["a", "b"]), &t, now);
        assert_eq!(
            p.share.limits,
            Limits { concurrency: 2, requests_per_second: Some(2.0), tokens_per_minute: Some(600) }
        );
    }
}
