//! Gathering the drafts of one generation call so the judge scores them in one call.
//!
//! Drafts travel one record at a time, but the drafts of one call carry their batch (`Draft::batch`: an id,
//! their index and how many they are). Each draft's `process` joins its batch here; the one that completes
//! it leads: it evaluates the whole batch and hands every other member its result. A batch that does not
//! complete within `wait` (a member screened away upstream, a replay of part of it, members on different
//! partitions) is led by the first member whose wait ends, with what has arrived; members arriving later
//! start a new batch. Nothing waits for ever: every member either leads or receives a result or an error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use distillery_core::{Draft, StageError};
use tokio::sync::oneshot;

type Reply<T> = oneshot::Sender<Result<T, StageError>>;

#[derive(Default)]
struct Pending<T> {
    size: usize,
    /// The batch's drafts (one per draft id) and, per draft id, who waits for its result.
    drafts: Vec<Draft>,
    waiters: Vec<(String, Reply<T>)>,
}

/// The batches being gathered, by batch id.
pub struct Gather<T> {
    pending: Mutex<HashMap<String, Pending<T>>>,
    wait: Duration,
}

impl<T> std::fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather").field("wait", &self.wait).finish()
    }
}

impl<T: Clone + Send + 'static> Gather<T> {
    pub fn new(wait: Duration) -> Gather<T> {
        Gather { pending: Mutex::new(HashMap::new()), wait }
    }

    /// Batches still being gathered (for tests and metrics).
    pub fn open(&self) -> usize {
        self.pending.lock().expect("gather lock").len()
    }

    /// Joins `draft` to its batch and returns its result: evaluated by `evaluate` (over the batch's drafts
    /// in index order, one result per draft) if this member leads, else received from the leader.
    pub async fn join<F, Fut>(&self, draft: Draft, evaluate: F) -> Result<T, StageError>
    where
        F: FnOnce(Vec<Draft>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, StageError>>,
    {
        let Some(batch) = draft.batch.clone().filter(|b| b.size > 1) else {
            let id = draft.id.clone();
            return take(evaluate(vec![draft]).await?, &[id]);
        };
        let me = draft.id.clone();
        let (tx, mut rx) = oneshot::channel();
        let complete = {
            let mut pending = self.pending.lock().expect("gather lock");
            let p = pending.entry(batch.id.clone()).or_insert_with(|| Pending {
                size: batch.size.max(1) as usize,
                drafts: Vec::new(),
                waiters: Vec::new(),
            });
            if !p.drafts.iter().any(|d| d.id == draft.id) {
                p.drafts.push(draft);
            }
            p.waiters.push((me.clone(), tx));
            if p.drafts.len() >= p.size { pending.remove(&batch.id) } else { None }
        };
        if let Some(p) = complete {
            return lead(p, &me, evaluate).await;
        }
        match tokio::time::timeout(self.wait, &mut rx).await {
            Ok(received) => {
                received.unwrap_or_else(|_| Err(StageError::retry("judge_batch", "the batch's leader stopped")))
            }
            Err(_) => {
                // Still waiting: lead with what has arrived, unless another member took the batch meanwhile.
                let taken = {
                    let mut pending = self.pending.lock().expect("gather lock");
                    let mine = pending.get(&batch.id).is_some_and(|p| p.waiters.iter().any(|(id, _)| *id == me));
                    if mine { pending.remove(&batch.id) } else { None }
                };
                match taken {
                    Some(p) => lead(p, &me, evaluate).await,
                    None => {
                        rx.await.unwrap_or_else(|_| Err(StageError::retry("judge_batch", "the batch's leader stopped")))
                    }
                }
            }
        }
    }
}

/// Evaluates a gathered batch, hands each waiter its draft's result, and returns `me`'s.
async fn lead<T, F, Fut>(mut p: Pending<T>, me: &str, evaluate: F) -> Result<T, StageError>
where
    T: Clone,
    F: FnOnce(Vec<Draft>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, StageError>>,
{
    p.drafts.sort_by_key(|d| d.batch.as_ref().map_or(0, |b| b.index));
    let ids: Vec<String> = p.drafts.iter().map(|d| d.id.clone()).collect();
    let results = evaluate(p.drafts).await;
    let mut mine = None;
    for (id, reply) in p.waiters {
        let r = match &results {
            Ok(values) => ids.iter().position(|d| *d == id).and_then(|i| values.get(i).cloned()).ok_or_else(|| {
                StageError::retry("judge_batch", "the batch's evaluation returned no result for a draft")
            }),
            Err(e) => Err(e.clone()),
        };
        if id == me && mine.is_none() {
            mine = Some(r);
        } else {
            let _ = reply.send(r);
        }
    }
    mine.unwrap_or_else(|| Err(StageError::retry("judge_batch", "the leader was not in its batch")))
}

/// The result of the only draft of a batch of one.
fn take<T>(mut values: Vec<T>, ids: &[String]) -> Result<T, StageError> {
    if values.len() == ids.len() && !values.is_empty() {
        Ok(values.swap_remove(0))
    } else {
        Err(StageError::retry("judge_batch", "the evaluation returned no result"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use distillery_core::DraftBatch;

    use super::*;

    fn draft(id: &str, batch: Option<(&str, i32, i32)>) -> Draft {
        let mut d = distillery_core::codec::fixtures::draft();
        d.id = id.to_string();
        d.batch = batch.map(|(b, index, size)| DraftBatch { id: b.to_string(), index, size });
        d
    }

    /// The evaluation used by the tests: one call per batch, each draft's result is its id and the batch's
    /// size.
    fn counting(calls: Arc<AtomicUsize>) -> impl Fn(Vec<Draft>) -> std::future::Ready<Result<Vec<String>, StageError>> {
        move |drafts: Vec<Draft>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let n = drafts.len();
            std::future::ready(Ok(drafts.iter().map(|d| format!("{}/{n}", d.id)).collect()))
        }
    }

    #[tokio::test]
    async fn the_members_of_a_batch_are_evaluated_in_one_call() {
        let g = Arc::new(Gather::<String>::new(Duration::from_secs(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (i, id) in ["c", "a", "b"].into_iter().enumerate() {
            let (g, calls) = (g.clone(), calls.clone());
            tasks.push(tokio::spawn(
                async move { g.join(draft(id, Some(("b1", [2, 0, 1][i], 3))), counting(calls)).await },
            ));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        assert_eq!(got, vec!["c/3", "a/3", "b/3"]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(g.open(), 0);
    }

    #[tokio::test]
    async fn an_incomplete_batch_is_evaluated_after_the_wait_with_what_arrived() {
        let g = Arc::new(Gather::<String>::new(Duration::from_millis(200)));
        let calls = Arc::new(AtomicUsize::new(0));
        let (g1, c1) = (g.clone(), calls.clone());
        let a = tokio::spawn(async move { g1.join(draft("a", Some(("b2", 0, 3))), counting(c1)).await });
        let (g2, c2) = (g.clone(), calls.clone());
        let b = tokio::spawn(async move { g2.join(draft("b", Some(("b2", 1, 3))), counting(c2)).await });
        assert_eq!(a.await.unwrap().unwrap(), "a/2");
        assert_eq!(b.await.unwrap().unwrap(), "b/2");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for the two that arrived");
        assert_eq!(g.open(), 0);
        // A late member starts a batch of its own, and is not left waiting for ever either.
        let late = g.join(draft("c", Some(("b2", 2, 3))), counting(calls.clone())).await.unwrap();
        assert_eq!(late, "c/1");
    }

    #[tokio::test]
    async fn a_failed_evaluation_reaches_every_member_and_drafts_without_a_batch_go_alone() {
        let g = Arc::new(Gather::<String>::new(Duration::from_secs(30)));
        let failing = |_: Vec<Draft>| std::future::ready(Err::<Vec<String>, _>(StageError::retry("llm", "down")));
        let g1 = g.clone();
        let a = tokio::spawn(async move { g1.join(draft("a", Some(("b3", 0, 2))), failing).await });
        let b = g.join(draft("b", Some(("b3", 1, 2))), failing).await;
        assert_eq!(b.unwrap_err().kind, "llm");
        assert_eq!(a.await.unwrap().unwrap_err().kind, "llm");
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(g.join(draft("x", None), counting(calls.clone())).await.unwrap(), "x/1");
        // A replayed member (same draft id twice) counts once and both get the result.
        let g2 = g.clone();
        let c2 = calls.clone();
        let first = tokio::spawn(async move { g2.join(draft("p", Some(("b4", 0, 2))), counting(c2)).await });
        tokio::task::yield_now().await;
        let g3 = g.clone();
        let c3 = calls.clone();
        let again = tokio::spawn(async move { g3.join(draft("p", Some(("b4", 0, 2))), counting(c3)).await });
        tokio::task::yield_now().await;
        let q = g.join(draft("q", Some(("b4", 1, 2))), counting(calls.clone())).await.unwrap();
        assert_eq!(q, "q/2");
        assert_eq!(first.await.unwrap().unwrap(), "p/2");
        assert_eq!(again.await.unwrap().unwrap(), "p/2");
    }
}
