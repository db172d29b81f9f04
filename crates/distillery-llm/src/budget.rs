//! The budget of one LLM endpoint and model: its concurrency, request rate and token rate, shared by every
//! replica that calls it, and adapted to how it answers.
//!
//! **Shared.** The configured limits are the endpoint's, not one process's. A [`BudgetShare`] tells each
//! process its part: the replicas of a group form a view (its members, in a fixed order); member `r` of `n`
//! may keep `ceil((C - r) / n)` requests in flight (the parts add up to `C`, and no part grows when the view
//! does) and use `1/n` of the request and token rates. A member uses its part only once every other member
//! of its view has acknowledged a view that contains it, and a member acknowledges a larger view only after
//! its in-flight requests have drained to its new part; so at every moment the parts in use add up to at
//! most the limits. This crate knows nothing of how replicas find each other: [`Alone`] is the one-process
//! share (the whole budget), the Kafka runtime provides one over a compacted control topic.
//!
//! **Adaptive (AIMD, per endpoint and model).** Within its part, a process keeps a congestion window: a 429
//! or 503 answer, or a call slower than `latency_target_secs`, halves it (at most once per call duration);
//! each successful call adds `1/window`, so it recovers by about one request per window of calls.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distillery_core::prometheus::{IntCounter, IntGauge};
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::config::LlmConfig;
use crate::error::LlmError;
use crate::metrics::LlmMetrics;

/// An endpoint and model whose limits are shared: `provider|base_url|model`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetGroup {
    pub key: String,
    pub model: String,
}

impl BudgetGroup {
    pub fn of(cfg: &LlmConfig) -> BudgetGroup {
        BudgetGroup {
            key: format!("{}|{}|{}", cfg.provider.as_str(), cfg.base_url.trim_end_matches('/'), cfg.model),
            model: cfg.model.clone(),
        }
    }
}

/// The limits of a group, as one process is configured with them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests per second.
    pub requests_per_second: Option<f64>,
    /// Tokens (prompt plus completion) per minute.
    pub tokens_per_minute: Option<u32>,
}

impl Limits {
    /// The stricter of two: what members configured differently may all rely on.
    pub fn min(self, other: Limits) -> Limits {
        fn min_opt<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(if y < x { y } else { x }),
                (x, None) => x,
                (None, y) => y,
            }
        }
        Limits {
            concurrency: self.concurrency.min(other.concurrency),
            requests_per_second: min_opt(self.requests_per_second, other.requests_per_second),
            tokens_per_minute: min_opt(self.tokens_per_minute, other.tokens_per_minute),
        }
    }
}

/// This process's part of a group's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Members of the view this process obeys (itself included), at least 1.
    pub members: u32,
    /// This process's place in that view, from 0.
    pub rank: u32,
    /// May this process use its part (every other member has acknowledged it)?
    pub active: bool,
    /// The group's limits (the strictest any member of the view configured).
    pub limits: Limits,
}

impl Share {
    /// The whole budget: the only member.
    pub fn whole(limits: Limits) -> Share {
        Share { members: 1, rank: 0, active: true, limits }
    }

    /// Requests this process may keep in flight: `ceil((C - rank) / members)`, 0 while inactive.
    pub fn concurrency(&self) -> usize {
        part(self.limits.concurrency, self.members, self.rank, self.active)
    }

    /// This process's fraction of the group's rates (0 while inactive).
    pub fn fraction(&self) -> f64 {
        if self.active { 1.0 / f64::from(self.members.max(1)) } else { 0.0 }
    }
}

/// `ceil((total - rank) / members)`: the parts of ranks `0..members` add up to `total`, and a member's part
/// never grows when members join (its rank and the count only grow).
pub fn part(total: usize, members: u32, rank: u32, active: bool) -> usize {
    let (n, r) = (members.max(1) as usize, rank as usize);
    if !active || r >= total { 0 } else { (total - r).div_ceil(n) }
}

/// What a process is using of its part right now, read by a [`BudgetShare`] before it acknowledges a
/// larger view.
#[derive(Debug, Default)]
pub struct BudgetUsage {
    in_flight: AtomicUsize,
}

impl BudgetUsage {
    /// A usage starting at `in_flight` requests (a share's tests).
    pub fn new(in_flight: usize) -> BudgetUsage {
        BudgetUsage { in_flight: AtomicUsize::new(in_flight) }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// How the replicas of a group learn their parts.
pub trait BudgetShare: Send + Sync + std::fmt::Debug {
    /// Joins `group` with this process's `limits`; the receiver follows this process's part as members
    /// come and go (inactive while the other members cannot be reached). `usage` tells the share when a
    /// lowered part is in effect.
    fn join(
        &self,
        group: &BudgetGroup,
        limits: Limits,
        usage: Arc<BudgetUsage>,
    ) -> BoxFuture<'_, watch::Receiver<Share>>;
}

/// One process alone: the whole budget.
#[derive(Debug, Default, Clone, Copy)]
pub struct Alone;

impl BudgetShare for Alone {
    fn join(
        &self,
        _group: &BudgetGroup,
        limits: Limits,
        _usage: Arc<BudgetUsage>,
    ) -> BoxFuture<'_, watch::Receiver<Share>> {
        // The part never changes: the sender goes, the value stays.
        Box::pin(async move { watch::channel(Share::whole(limits)).1 })
    }
}

/// The rate limiters of one part (rebuilt when the part changes).
struct Rates {
    fraction: f64,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<(DefaultDirectRateLimiter, u32)>,
}

impl Rates {
    fn of(limits: &Limits, fraction: f64) -> Rates {
        let requests = limits.requests_per_second.filter(|_| fraction > 0.0).map(|rps| {
            let period = Duration::from_secs_f64(1.0 / (rps * fraction).max(1e-6));
            RateLimiter::direct(Quota::with_period(period).expect("positive period").allow_burst(NonZeroU32::MIN))
        });
        let tokens = limits.tokens_per_minute.filter(|_| fraction > 0.0).and_then(|tpm| {
            let part = ((f64::from(tpm) * fraction).floor() as u32).max(1);
            NonZeroU32::new(part).map(|p| (RateLimiter::direct(Quota::per_minute(p)), part))
        });
        Rates { fraction, requests, tokens }
    }
}

/// The congestion window.
#[derive(Debug)]
struct Window {
    size: f64,
    last_decrease: Option<Instant>,
}

/// The budget of one group in this process: every client of the group acquires from it.
pub struct Budget {
    group: BudgetGroup,
    share: watch::Receiver<Share>,
    usage: Arc<BudgetUsage>,
    window: Mutex<Window>,
    rates: Mutex<Option<Arc<Rates>>>,
    released: Notify,
    adaptive: bool,
    latency_target: Option<Duration>,
    limit_gauge: IntGauge,
    members_gauge: IntGauge,
    backoff_rate_limited: IntCounter,
    backoff_overloaded: IntCounter,
    backoff_latency: IntCounter,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("group", &self.group.key).field("share", &*self.share.borrow()).finish()
    }
}

/// A request slot; released when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a Budget,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.budget.usage.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.budget.released.notify_waiters();
    }
}

/// Why a call signals congestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// 429.
    RateLimited,
    /// 503 (or 529): the server is overloaded.
    Overloaded,
    /// Slower than the latency target.
    Latency,
}

impl Congestion {
    pub fn as_str(self) -> &'static str {
        match self {
            Congestion::RateLimited => "rate_limited",
            Congestion::Overloaded => "overloaded",
            Congestion::Latency => "latency",
        }
    }

    /// What a call's outcome says about congestion.
    pub fn of(result: &Result<(), &LlmError>, latency: Duration, target: Option<Duration>) -> Option<Congestion> {
        match result {
            Err(LlmError::RateLimited { .. }) => Some(Congestion::RateLimited),
            Err(LlmError::Server { status: 503 | 529, .. }) => Some(Congestion::Overloaded),
            _ if target.is_some_and(|t| latency > t) => Some(Congestion::Latency),
            _ => None,
        }
    }
}

impl Budget {
    /// Joins `group` through `share` and builds its budget.
    pub async fn join(share: &dyn BudgetShare, cfg: &LlmConfig, concurrency: usize, metrics: &LlmMetrics) -> Budget {
        let group = BudgetGroup::of(cfg);
        let limits = Limits {
            concurrency: concurrency.max(1),
            requests_per_second: cfg.requests_per_second,
            tokens_per_minute: cfg.tokens_per_minute,
        };
        let usage = Arc::new(BudgetUsage::default());
        let rx = share.join(&group, limits, usage.clone()).await;
        // The window starts at the whole budget and is narrowed to the part on use: a member that joins
        // inactive (part 0) takes its whole part once it becomes active, not a window of one.
        let first = limits.concurrency as f64;
        let model = group.model.clone();
        Budget {
            share: rx,
            usage,
            window: Mutex::new(Window { size: first, last_decrease: None }),
            rates: Mutex::new(None),
            released: Notify::new(),
            adaptive: cfg.adaptive,
            latency_target: cfg.latency_target_secs.map(Duration::from_secs_f64),
            limit_gauge: metrics.concurrency_limit.with_label_values(&[&model]),
            members_gauge: metrics.budget_members.with_label_values(&[&model]),
            backoff_rate_limited: metrics.backoffs.with_label_values(&[&model, Congestion::RateLimited.as_str()]),
            backoff_overloaded: metrics.backoffs.with_label_values(&[&model, Congestion::Overloaded.as_str()]),
            backoff_latency: metrics.backoffs.with_label_values(&[&model, Congestion::Latency.as_str()]),
            group,
        }
    }

    pub fn group(&self) -> &BudgetGroup {
        &self.group
    }

    /// This process's current part.
    pub fn share(&self) -> Share {
        *self.share.borrow()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.usage.in_flight()
    }

    /// Requests this process may keep in flight now: its part, narrowed by the congestion window.
    pub fn limit(&self) -> usize {
        let part = self.share().concurrency();
        if part == 0 {
            return 0;
        }
        let mut w = self.window.lock().expect("window lock");
        w.size = w.size.min(part as f64);
        if !self.adaptive {
            return part;
        }
        (w.size.floor() as usize).clamp(1, part)
    }

    fn rates(&self, share: &Share) -> Arc<Rates> {
        let mut r = self.rates.lock().expect("rates lock");
        match &*r {
            Some(rates) if rates.fraction == share.fraction() => rates.clone(),
            _ => {
                let rates = Arc::new(Rates::of(&share.limits, share.fraction()));
                *r = Some(rates.clone());
                rates
            }
        }
    }

    /// Waits for this process's part of the rates (for a call of about `tokens` tokens) and of the
    /// concurrency, then holds one request slot until the permit is dropped.
    pub async fn acquire(&self, tokens: u32) -> Permit<'_> {
        let mut share_rx = self.share.clone();
        // Once the share's sender is gone the part is final: nothing to wait for but released slots.
        let mut changes = true;
        loop {
            let share = *share_rx.borrow_and_update();
            self.members_gauge.set(i64::from(share.members));
            if !share.active || share.concurrency() == 0 {
                if !changes || share_rx.changed().await.is_err() {
                    // Inactive for good: the share stopped (its process is shutting down). Wait for a
                    // cancellation from outside rather than spin.
                    changes = false;
                    std::future::pending::<()>().await;
                }
                continue;
            }
            let rates = self.rates(&share);
            if let Some(l) = &rates.requests {
                l.until_ready().await;
            }
            if let Some((l, burst)) = &rates.tokens {
                let n = NonZeroU32::new(tokens.clamp(1, *burst)).expect("clamped to >= 1");
                let _ = l.until_n_ready(n).await;
            }
            loop {
                let released = self.released.notified();
                let limit = self.limit();
                self.limit_gauge.set(limit as i64);
                let now = self.usage.in_flight.load(Ordering::SeqCst);
                if now < limit
                    && self.usage.in_flight.compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
                {
                    return Permit { budget: self };
                }
                if now < limit {
                    continue;
                }
                tokio::select! {
                    _ = released => {}
                    r = share_rx.changed(), if changes => match r {
                        Ok(()) => break,
                        Err(_) => changes = false,
                    },
                }
            }
        }
    }

    /// Feeds a call's outcome to the congestion window.
    pub fn observe(&self, result: Result<(), &LlmError>, latency: Duration) {
        if !self.adaptive {
            return;
        }
        let part = self.share().concurrency().max(1) as f64;
        let mut w = self.window.lock().expect("window lock");
        match Congestion::of(&result, latency, self.latency_target) {
            Some(c) => {
                // Once per call duration: the calls in flight when the window shrank saw the same congestion.
                let recent = w.last_decrease.is_some_and(|t| t.elapsed() < latency.max(Duration::from_millis(200)));
                if !recent {
                    w.size = (w.size / 2.0).max(1.0);
                    w.last_decrease = Some(Instant::now());
                    match c {
                        Congestion::RateLimited => self.backoff_rate_limited.inc(),
                        Congestion::Overloaded => self.backoff_overloaded.inc(),
                        Congestion::Latency => self.backoff_latency.inc(),
                    }
                    tracing::info!(model = %self.group.model, cause = c.as_str(), window = w.size, "LLM concurrency backed off");
                }
            }
            None if result.is_ok() => w.size = (w.size + 1.0 / w.size.max(1.0)).min(part),
            None => {}
        }
        drop(w);
        self.limit_gauge.set(self.limit() as i64);
        self.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::Metrics;

    #[test]
    fn parts_add_up_and_never_grow_when_members_join() {
        for total in 1..=9usize {
            for n in 1..=6u32 {
                let sum: usize = (0..n).map(|r| part(total, n, r, true)).sum();
                assert_eq!(sum, total, "total {total}, {n} members");
                for r in 0..n {
                    // One more member: the rank stays or grows by one.
                    for r2 in [r, r + 1] {
                        assert!(part(total, n + 1, r2, true) <= part(total, n, r, true));
                    }
                }
            }
        }
        assert_eq!(part(4, 2, 0, false), 0);
    }

    fn cfg() -> LlmConfig {
        LlmConfig { max_concurrency: Some(4), ..LlmConfig::default() }
    }

    #[tokio::test]
    async fn the_window_halves_on_429_and_recovers_additively() {
        let m = LlmMetrics::of(&Metrics::isolated());
        let b = Budget::join(&Alone, &cfg(), 4, &m).await;
        assert_eq!(b.limit(), 4);
        let limited = LlmError::RateLimited { retry_after: None };
        b.observe(Err(&limited), Duration::from_millis(10));
        assert_eq!(b.limit(), 2);
        // A second 429 from the same burst of calls does not halve again.
        b.observe(Err(&limited), Duration::from_millis(10));
        assert_eq!(b.limit(), 2);
        assert_eq!(m.backoffs.with_label_values(&["local", "rate_limited"]).get(), 1);
        // Additive increase: 2 -> 2.5 -> 2.9 -> 3.24: three successes to get a third slot back.
        for _ in 0..3 {
            b.observe(Ok(()), Duration::from_millis(10));
        }
        assert_eq!(b.limit(), 3);
        for _ in 0..20 {
            b.observe(Ok(()), Duration::from_millis(10));
        }
        assert_eq!(b.limit(), 4, "never above the part");
        let slow = LlmConfig { latency_target_secs: Some(1.0), ..cfg() };
        let b = Budget::join(&Alone, &slow, 4, &m).await;
        b.observe(Ok(()), Duration::from_secs(2));
        assert_eq!(b.limit(), 2);
    }

    #[tokio::test]
    async fn permits_never_exceed_the_limit() {
        let m = LlmMetrics::of(&Metrics::isolated());
        let b = Arc::new(Budget::join(&Alone, &LlmConfig { max_concurrency: Some(2), ..cfg() }, 2, &m).await);
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (b, peak) = (b.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _p = b.acquire(10).await;
                peak.fetch_max(b.in_flight(), Ordering::SeqCst);
                tokio::task::yield_now().await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(b.in_flight(), 0);
    }

    /// A share whose part the test sets.
    #[derive(Debug)]
    struct Manual(watch::Sender<Share>);

    impl BudgetShare for Manual {
        fn join(&self, _g: &BudgetGroup, _l: Limits, _u: Arc<BudgetUsage>) -> BoxFuture<'_, watch::Receiver<Share>> {
            Box::pin(async move { self.0.subscribe() })
        }
    }

    #[tokio::test]
    async fn an_inactive_member_waits_and_a_smaller_part_applies_to_new_requests() {
        let limits = Limits { concurrency: 4, requests_per_second: None, tokens_per_minute: None };
        let (tx, _) = watch::channel(Share { members: 2, rank: 1, active: false, limits });
        let share = Manual(tx);
        let m = LlmMetrics::of(&Metrics::isolated());
        let b = Arc::new(Budget::join(&share, &cfg(), 4, &m).await);
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move {
                let _p = b.acquire(1).await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "inactive: no request");
        share.0.send_replace(Share { members: 2, rank: 1, active: true, limits });
        waiting.await.unwrap();
        assert_eq!(b.limit(), 2);
        share.0.send_replace(Share { members: 3, rank: 2, active: true, limits });
        assert_eq!(b.limit(), 1);
    }
}
