//! Durable, group-committed dataset output. Callers append lines and wait; a background task gathers
//! what arrives together, writes it in one go (a folder: append + fsync per file; an object store: one
//! part object per file per batch) and then answers every waiter. A sink thus acknowledges (and commits
//! the offsets of) records only once they are durable, without an fsync per record. The task ends when
//! the last handle is dropped; nothing is pending then, because every append waits for its write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use distillery_store::ObjectStore;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// Output failures (retryable: the sink's input stays uncommitted).
#[derive(Debug, Clone, thiserror::Error)]
#[error("dataset output: {0}")]
pub struct OutError(pub String);

/// Where lines end up, written in batches.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Writes every file's lines durably.
    async fn write(&mut self, batch: BTreeMap<String, Vec<u8>>) -> Result<(), OutError>;
}

type Request = (Vec<(String, Vec<u8>)>, oneshot::Sender<Result<(), OutError>>);

/// A group-committing writer over a backend.
#[derive(Clone, Debug)]
pub struct DatasetOut {
    tx: mpsc::Sender<Request>,
}

impl DatasetOut {
    /// Starts the writer: batches hold up to `max_lines` lines, waiting up to `linger` for more.
    pub fn start<B: Backend>(mut backend: B, max_lines: usize, linger: Duration) -> DatasetOut {
        let (tx, mut rx) = mpsc::channel::<Request>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut reqs = vec![first];
                let mut lines: usize = reqs[0].0.len();
                let deadline = tokio::time::Instant::now() + linger;
                while lines < max_lines {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => {
                            lines += r.0.len();
                            reqs.push(r);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                let mut batch: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                for (items, _) in &reqs {
                    for (file, line) in items {
                        let buf = batch.entry(file.clone()).or_default();
                        buf.extend_from_slice(line);
                        buf.push(b'\n');
                    }
                }
                let res = backend.write(batch).await;
                if let Err(e) = &res {
                    tracing::error!(error = %e, "dataset write failed");
                }
                for (_, reply) in reqs {
                    let _ = reply.send(res.clone());
                }
            }
        });
        DatasetOut { tx }
    }

    /// Appends lines (file name, line without newline); resolves once they are durable.
    pub async fn append(&self, items: Vec<(String, Vec<u8>)>) -> Result<(), OutError> {
        if items.is_empty() {
            return Ok(());
        }
        let (reply, wait) = oneshot::channel();
        self.tx.send((items, reply)).await.map_err(|_| OutError("writer stopped".into()))?;
        wait.await.map_err(|_| OutError("writer stopped".into()))?
    }
}

/// Files in a folder, appended and fsynced.
#[derive(Debug)]
pub struct FolderBackend {
    dir: PathBuf,
    files: BTreeMap<String, tokio::fs::File>,
}

impl FolderBackend {
    pub fn new(dir: &Path) -> std::io::Result<FolderBackend> {
        std::fs::create_dir_all(dir)?;
        Ok(FolderBackend { dir: dir.to_path_buf(), files: BTreeMap::new() })
    }
}

#[async_trait]
impl Backend for FolderBackend {
    async fn write(&mut self, batch: BTreeMap<String, Vec<u8>>) -> Result<(), OutError> {
        for (name, bytes) in batch {
            if !self.files.contains_key(&name) {
                let f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(&name))
                    .await
                    .map_err(|e| OutError(format!("{name}: {e}")))?;
                self.files.insert(name.clone(), f);
            }
            let f = self.files.get_mut(&name).expect("just inserted");
            f.write_all(&bytes).await.map_err(|e| OutError(format!("{name}: {e}")))?;
            f.sync_data().await.map_err(|e| OutError(format!("{name}: {e}")))?;
        }
        Ok(())
    }
}

/// Part objects under a prefix of a bucket: `<prefix><stem>/part-<millis>-<seq>-<uuid>.<ext>`. Part names
/// never collide, so replicas write side by side; readers take every part and drop repeated ids.
#[derive(Debug)]
pub struct ObjectBackend {
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    pub prefix: String,
    seq: u64,
}

impl ObjectBackend {
    pub fn new(store: Arc<dyn ObjectStore>, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        ObjectBackend { store, bucket: bucket.into(), prefix: prefix.into(), seq: 0 }
    }
}

#[async_trait]
impl Backend for ObjectBackend {
    async fn write(&mut self, batch: BTreeMap<String, Vec<u8>>) -> Result<(), OutError> {
        for (name, bytes) in batch {
            self.seq += 1;
            let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, "jsonl"));
            let key = format!(
                "{}{stem}/part-{}-{:06}-{}.{ext}",
                self.prefix,
                distillery_core::now_ms(),
                self.seq,
                uuid::Uuid::new_v4()
            );
            self.store
                .put(&self.bucket, &key, Bytes::from(bytes), "application/x-ndjson")
                .await
                .map_err(|e| OutError(format!("{key}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<u8>>>);

    #[async_trait]
    impl Backend for Counting {
        async fn write(&mut self, batch: BTreeMap<String, Vec<u8>>) -> Result<(), OutError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            for (_, b) in batch {
                self.1.lock().unwrap().extend(b);
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_appends_share_writes() {
        let writes = Arc::new(AtomicUsize::new(0));
        let data = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = DatasetOut::start(Counting(writes.clone(), data.clone()), 1000, Duration::from_millis(50));
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let out = out.clone();
                tokio::spawn(async move { out.append(vec![("a.jsonl".into(), format!("{i}").into_bytes())]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let lines = String::from_utf8(data.lock().unwrap().clone()).unwrap();
        assert_eq!(lines.lines().count(), 100);
        assert!(writes.load(Ordering::SeqCst) < 10, "{} writes for 100 appends", writes.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn folder_backend_appends_durably() {
        let dir = tempfile::tempdir().unwrap();
        let out = DatasetOut::start(FolderBackend::new(dir.path()).unwrap(), 100, Duration::from_millis(5));
        out.append(vec![("x.jsonl".into(), b"{\"a\":1}".to_vec()), ("y.jsonl".into(), b"2".to_vec())]).await.unwrap();
        out.append(vec![("x.jsonl".into(), b"{\"a\":3}".to_vec())]).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("x.jsonl")).unwrap(), "{\"a\":1}\n{\"a\":3}\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("y.jsonl")).unwrap(), "2\n");
    }

    #[tokio::test]
    async fn object_backend_writes_parts() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(distillery_store::LocalStore);
        let out = DatasetOut::start(
            ObjectBackend::new(store, dir.path().to_str().unwrap(), "ds/"),
            100,
            Duration::from_millis(5),
        );
        out.append(vec![("accepted.jsonl".into(), b"1".to_vec())]).await.unwrap();
        out.append(vec![("accepted.jsonl".into(), b"2".to_vec())]).await.unwrap();
        let parts: Vec<_> = std::fs::read_dir(dir.path().join("ds/accepted")).unwrap().collect();
        assert_eq!(parts.len(), 2);
    }
}
