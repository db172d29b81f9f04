//! An ordered log: an append-only sequence every reader reads in the same order. Replicas that apply its
//! entries with the same deterministic function reach the same state without talking to each other (the
//! dedup stage decides near-duplicates this way across workers). A runtime provides it: [`MemoryLog`] in one
//! process, a single-partition topic in the Kafka runtime.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};

/// Why the log could not be written or read (retryable: the next attempt may reach it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("ordered log {log}: {message}")]
pub struct LogError {
    pub log: String,
    pub message: String,
}

/// One entry and its position (0, 1, 2, ...; in Kafka its offset, which may skip numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Entries from a position on, in order, as they arrive; the sender side ends when the log is closed.
pub type LogReader = mpsc::Receiver<Result<LogEntry, LogError>>;

pub trait OrderedLog: Send + Sync + std::fmt::Debug {
    /// The log's identity (a topic name): positions are comparable only within one log.
    fn name(&self) -> &str;
    /// Appends an entry and returns its position once the log has durably taken it.
    fn append(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<u64, LogError>>;
    /// Every entry from position `from` on, in order, then the ones appended later.
    fn read_from(&self, from: u64) -> BoxFuture<'_, Result<LogReader, LogError>>;
}

/// The entries of a [`MemoryLog`] and the wake-up of its readers.
type Entries = (Mutex<Vec<Arc<Vec<u8>>>>, Notify);

/// An ordered log in this process's memory.
#[derive(Debug, Clone)]
pub struct MemoryLog {
    name: String,
    inner: Arc<Entries>,
}

impl MemoryLog {
    pub fn new(name: impl Into<String>) -> MemoryLog {
        MemoryLog { name: name.into(), inner: Arc::new((Mutex::new(Vec::new()), Notify::new())) }
    }

    /// Entries appended so far.
    pub fn len(&self) -> usize {
        self.inner.0.lock().expect("log lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OrderedLog for MemoryLog {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<u64, LogError>> {
        Box::pin(async move {
            let seq = {
                let mut entries = self.inner.0.lock().expect("log lock");
                entries.push(Arc::new(payload));
                entries.len() as u64 - 1
            };
            self.inner.1.notify_waiters();
            Ok(seq)
        })
    }

    fn read_from(&self, from: u64) -> BoxFuture<'_, Result<LogReader, LogError>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(256);
            let inner = self.inner.clone();
            tokio::spawn(async move {
                let mut next = from as usize;
                loop {
                    // Register for a wake-up before looking, so an append in between is not missed.
                    let notified = inner.1.notified();
                    let batch: Vec<Arc<Vec<u8>>> = {
                        let entries = inner.0.lock().expect("log lock");
                        entries.get(next..).map(<[_]>::to_vec).unwrap_or_default()
                    };
                    if batch.is_empty() {
                        tokio::select! {
                            _ = notified => {}
                            _ = tx.closed() => return,
                        }
                        continue;
                    }
                    for payload in batch {
                        let entry = LogEntry { seq: next as u64, payload: payload.as_ref().clone() };
                        if tx.send(Ok(entry)).await.is_err() {
                            return;
                        }
                        next += 1;
                    }
                }
            });
            Ok(rx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_every_entry_in_order_including_later_ones() {
        let log = MemoryLog::new("claims");
        assert_eq!(log.append(b"a".to_vec()).await.unwrap(), 0);
        assert_eq!(log.append(b"b".to_vec()).await.unwrap(), 1);
        let mut from0 = log.read_from(0).await.unwrap();
        let mut from1 = log.read_from(1).await.unwrap();
        assert_eq!(from0.recv().await.unwrap().unwrap(), LogEntry { seq: 0, payload: b"a".to_vec() });
        assert_eq!(from0.recv().await.unwrap().unwrap().seq, 1);
        assert_eq!(from1.recv().await.unwrap().unwrap(), LogEntry { seq: 1, payload: b"b".to_vec() });
        let appender = log.clone();
        let later = tokio::spawn(async move { appender.append(b"c".to_vec()).await.unwrap() });
        assert_eq!(from0.recv().await.unwrap().unwrap(), LogEntry { seq: 2, payload: b"c".to_vec() });
        assert_eq!(from1.recv().await.unwrap().unwrap().seq, 2);
        assert_eq!(later.await.unwrap(), 2);
        assert_eq!(log.len(), 3);
    }
}
