//! Gathering records that travel one at a time so one model call serves them all: the judge gathers the
//! drafts of one generation call and scores them together; generate gathers the chunks of one context and
//! asks for their pairs in one call, and the rewrites of one context so that the judge scores them together.
//!
//! Each record's `process` joins its group here, under the group's key; the member whose arrival completes
//! the group (the caller says when a group is complete) leads: it evaluates the whole group and hands every
//! other member its result. A group that does not complete within `wait` of its first member's arrival
//! (a member screened away upstream, a replay of part of it, members on other partitions or replicas) is
//! led by the first member whose wait ends, with what has arrived; members arriving later start a new group.
//! Nothing waits for ever: every member either leads or receives a result or an error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use distillery_core::{Draft, Regenerate, StageError};
use tokio::sync::oneshot;

type Reply<T> = oneshot::Sender<Result<T, StageError>>;

/// A record that joins a group: its id (a replayed member counts once) and its place in the group.
pub trait Member: Send + 'static {
    fn member_id(&self) -> &str;
    fn order(&self) -> i64;
}

/// A draft joins the batch of its generation call, in the order the call wrote them.
impl Member for Draft {
    fn member_id(&self) -> &str {
        &self.id
    }
    fn order(&self) -> i64 {
        self.batch.as_ref().map_or(0, |b| i64::from(b.index))
    }
}

/// A rewrite request joins the other rewrites of its context, in the order of the drafts it rewrites.
impl Member for Regenerate {
    fn member_id(&self) -> &str {
        &self.id
    }
    fn order(&self) -> i64 {
        self.draft.order()
    }
}

struct Pending<M, T> {
    /// The group's members (one per member id) and, per member id, who waits for its result.
    members: Vec<M>,
    waiters: Vec<(String, Reply<T>)>,
}

/// The groups being gathered, by key.
pub struct Gather<M, T> {
    pending: Mutex<HashMap<String, Pending<M, T>>>,
    wait: Duration,
    /// The error kind of a member left without a result.
    kind: &'static str,
}

impl<M, T> std::fmt::Debug for Gather<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather").field("wait", &self.wait).field("kind", &self.kind).finish()
    }
}

impl<M: Member, T: Clone + Send + 'static> Gather<M, T> {
    /// Groups that wait at most `wait` for their members; `kind` names the error of a member left without a
    /// result (its leader stopped).
    pub fn new(wait: Duration, kind: &'static str) -> Gather<M, T> {
        Gather { pending: Mutex::new(HashMap::new()), wait, kind }
    }

    /// Groups still being gathered (for tests and metrics).
    pub fn open(&self) -> usize {
        self.pending.lock().expect("gather lock").len()
    }

    /// Joins `member` to the group `key` and returns its result: evaluated by `evaluate` (over the group's
    /// members in order, one result per member) if this member leads, else received from the leader. The
    /// group is complete once `complete` holds for its members.
    pub async fn join<C, F, Fut>(&self, key: &str, member: M, complete: C, evaluate: F) -> Result<T, StageError>
    where
        C: Fn(&[M]) -> bool,
        F: FnOnce(Vec<M>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, StageError>>,
    {
        let me = member.member_id().to_string();
        let (tx, mut rx) = oneshot::channel();
        let done = {
            let mut pending = self.pending.lock().expect("gather lock");
            let p =
                pending.entry(key.to_string()).or_insert_with(|| Pending { members: Vec::new(), waiters: Vec::new() });
            if !p.members.iter().any(|m| m.member_id() == me) {
                p.members.push(member);
            }
            p.waiters.push((me.clone(), tx));
            if complete(&p.members) { pending.remove(key) } else { None }
        };
        if let Some(p) = done {
            return self.lead(p, &me, evaluate).await;
        }
        let left = || Err(StageError::retry(self.kind, "the group's leader stopped"));
        match tokio::time::timeout(self.wait, &mut rx).await {
            Ok(received) => received.unwrap_or_else(|_| left()),
            Err(_) => {
                // Still waiting: lead with what has arrived, unless another member took the group meanwhile.
                let taken = {
                    let mut pending = self.pending.lock().expect("gather lock");
                    let mine = pending.get(key).is_some_and(|p| p.waiters.iter().any(|(id, _)| *id == me));
                    if mine { pending.remove(key) } else { None }
                };
                match taken {
                    Some(p) => self.lead(p, &me, evaluate).await,
                    None => rx.await.unwrap_or_else(|_| left()),
                }
            }
        }
    }

    /// Evaluates a gathered group, hands each waiter its member's result, and returns `me`'s.
    async fn lead<F, Fut>(&self, mut p: Pending<M, T>, me: &str, evaluate: F) -> Result<T, StageError>
    where
        F: FnOnce(Vec<M>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, StageError>>,
    {
        p.members.sort_by_key(|m| m.order());
        let ids: Vec<String> = p.members.iter().map(|m| m.member_id().to_string()).collect();
        let results = evaluate(p.members).await;
        let mut mine = None;
        for (id, reply) in p.waiters {
            let r = match &results {
                Ok(values) if values.len() == ids.len() => {
                    ids.iter().position(|m| *m == id).and_then(|i| values.get(i).cloned()).ok_or_else(|| {
                        StageError::retry(self.kind, "the group's evaluation returned no result for a member")
                    })
                }
                Ok(_) => Err(StageError::retry(self.kind, "the group's evaluation returned a result per member")),
                Err(e) => Err(e.clone()),
            };
            if id == me && mine.is_none() {
                mine = Some(r);
            } else {
                let _ = reply.send(r);
            }
        }
        mine.unwrap_or_else(|| Err(StageError::retry(self.kind, "the leader was not in its group")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Clone)]
    struct Item(&'static str, i64);

    impl Member for Item {
        fn member_id(&self) -> &str {
            self.0
        }
        fn order(&self) -> i64 {
            self.1
        }
    }

    /// One call per group; each member's result is its id and the group's size.
    fn counting(calls: Arc<AtomicUsize>) -> impl Fn(Vec<Item>) -> std::future::Ready<Result<Vec<String>, StageError>> {
        move |items: Vec<Item>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let n = items.len();
            std::future::ready(Ok(items.iter().map(|m| format!("{}/{n}", m.0)).collect()))
        }
    }

    fn of(n: usize) -> impl Fn(&[Item]) -> bool {
        move |m: &[Item]| m.len() >= n
    }

    #[tokio::test]
    async fn the_members_of_a_group_are_evaluated_in_one_call_in_their_order() {
        let g = Arc::new(Gather::<Item, String>::new(Duration::from_secs(30), "test_group"));
        let calls = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (id, at) in [("c", 2), ("a", 0), ("b", 1)] {
            let (g, calls, order) = (g.clone(), calls.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                g.join("k", Item(id, at), of(3), move |items: Vec<Item>| {
                    *order.lock().unwrap() = items.iter().map(|m| m.0).collect::<Vec<_>>();
                    counting(calls)(items)
                })
                .await
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        assert_eq!(got, vec!["c/3", "a/3", "b/3"]);
        assert_eq!(*order.lock().unwrap(), vec!["a", "b", "c"], "evaluated in the members' order");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(g.open(), 0);
    }

    #[tokio::test]
    async fn an_incomplete_group_is_evaluated_after_the_wait_with_what_arrived() {
        let g = Arc::new(Gather::<Item, String>::new(Duration::from_millis(200), "test_group"));
        let calls = Arc::new(AtomicUsize::new(0));
        let (g1, c1) = (g.clone(), calls.clone());
        let a = tokio::spawn(async move { g1.join("k", Item("a", 0), of(3), counting(c1)).await });
        let (g2, c2) = (g.clone(), calls.clone());
        let b = tokio::spawn(async move { g2.join("k", Item("b", 1), of(3), counting(c2)).await });
        assert_eq!(a.await.unwrap().unwrap(), "a/2");
        assert_eq!(b.await.unwrap().unwrap(), "b/2");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for the two that arrived");
        assert_eq!(g.open(), 0);
        // A late member starts a group of its own, and is not left waiting for ever either.
        let late = g.join("k", Item("c", 2), of(3), counting(calls.clone())).await.unwrap();
        assert_eq!(late, "c/1");
        // A member complete on its own is evaluated at once.
        assert_eq!(g.join("alone", Item("x", 0), of(1), counting(calls.clone())).await.unwrap(), "x/1");
    }

    #[tokio::test]
    async fn a_failed_evaluation_reaches_every_member_and_a_replayed_member_counts_once() {
        let g = Arc::new(Gather::<Item, String>::new(Duration::from_secs(30), "test_group"));
        let failing = |_: Vec<Item>| std::future::ready(Err::<Vec<String>, _>(StageError::retry("llm", "down")));
        let g1 = g.clone();
        let a = tokio::spawn(async move { g1.join("f", Item("a", 0), of(2), failing).await });
        let b = g.join("f", Item("b", 1), of(2), failing).await;
        assert_eq!(b.unwrap_err().kind, "llm");
        assert_eq!(a.await.unwrap().unwrap_err().kind, "llm");
        // An evaluation that returns too few results fails every member rather than misattributing.
        let short = |_: Vec<Item>| std::future::ready(Ok::<Vec<String>, StageError>(vec!["one".into()]));
        let g1 = g.clone();
        let a = tokio::spawn(async move { g1.join("s", Item("a", 0), of(2), short).await });
        assert_eq!(g.join("s", Item("b", 1), of(2), short).await.unwrap_err().kind, "test_group");
        assert_eq!(a.await.unwrap().unwrap_err().kind, "test_group");
        // The same member twice (a replay) counts once and both get the result.
        let calls = Arc::new(AtomicUsize::new(0));
        let (g2, c2) = (g.clone(), calls.clone());
        let first = tokio::spawn(async move { g2.join("r", Item("p", 0), of(2), counting(c2)).await });
        tokio::task::yield_now().await;
        let (g3, c3) = (g.clone(), calls.clone());
        let again = tokio::spawn(async move { g3.join("r", Item("p", 0), of(2), counting(c3)).await });
        tokio::task::yield_now().await;
        assert_eq!(g.join("r", Item("q", 1), of(2), counting(calls.clone())).await.unwrap(), "q/2");
        assert_eq!(first.await.unwrap().unwrap(), "p/2");
        assert_eq!(again.await.unwrap().unwrap(), "p/2");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
