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

/// Files in a folder, appended and fsynced. A file is recovered when first opened: a last line a crash cut
/// short (no newline: the append or its fsync did not finish) is truncated away, so the next append does not
/// glue a record onto it; that record was never acknowledged and arrives again.
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

    /// The ids of the lines already in `file` of `dir` (the `id` field of each readable line), for a sink
    /// that restarts without a dataset store: what is there is not written again.
    pub fn existing_ids(dir: &Path, file: &str) -> std::io::Result<Vec<String>> {
        let path = dir.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        Ok(crate::read_unique_as(&path, |v: &IdOnly| v.id.clone())?.map(|v| v.id).collect())
    }
}

/// The `id` of a dataset line.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

/// Truncates a file after its last newline; returns the bytes dropped.
async fn truncate_torn_tail(file: &mut tokio::fs::File) -> std::io::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let len = file.metadata().await?.len();
    if len == 0 {
        return Ok(0);
    }
    // Read backwards in blocks until a newline (or the start of the file).
    let mut end = len;
    let mut keep = 0u64;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = (end - start) as usize;
        file.seek(std::io::SeekFrom::Start(start)).await?;
        file.read_exact(&mut block[..n]).await?;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if keep < len {
        file.set_len(keep).await?;
        file.sync_all().await?;
    }
    file.seek(std::io::SeekFrom::End(0)).await?;
    Ok(len - keep)
}

#[async_trait]
impl Backend for FolderBackend {
    async fn write(&mut self, batch: BTreeMap<String, Vec<u8>>) -> Result<(), OutError> {
        for (name, bytes) in batch {
            if !self.files.contains_key(&name) {
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(self.dir.join(&name))
                    .await
                    .map_err(|e| OutError(format!("{name}: {e}")))?;
                let dropped = truncate_torn_tail(&mut f).await.map_err(|e| OutError(format!("{name}: {e}")))?;
                if dropped > 0 {
                    tracing::warn!(file = %name, bytes = dropped, "a line cut short by a crash was removed before appending");
                }
                self.files.insert(name.clone(), f);
            }
            let f = self.files.get_mut(&name).expect("just inserted");
            let written = async {
                f.write_all(&bytes).await?;
                f.sync_data().await
            }
            .await;
            if let Err(e) = written {
                // Part of the batch may be on disk (a full disk cuts an append short): the file is opened
                // again by the retry, which truncates that torn tail first.
                self.files.remove(&name);
                return Err(OutError(format!("{name}: {e}")));
            }
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

    /// Issue 14, defect 5: an append after a crash that cut the last line glued the next record onto it (two
    /// records lost in one invalid line). The cut line is truncated away on open.
    #[tokio::test]
    async fn a_torn_last_line_is_removed_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.jsonl"), "{\"id\":\"a\"}\n{\"id\":\"to").unwrap();
        std::fs::write(dir.path().join("y.jsonl"), "{\"id\":\"cut-before-any-newline").unwrap();
        let out = DatasetOut::start(FolderBackend::new(dir.path()).unwrap(), 100, Duration::from_millis(1));
        out.append(vec![
            ("x.jsonl".into(), b"{\"id\":\"b\"}".to_vec()),
            ("y.jsonl".into(), b"{\"id\":\"c\"}".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("x.jsonl")).unwrap(), "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("y.jsonl")).unwrap(), "{\"id\":\"c\"}\n");
        assert_eq!(FolderBackend::existing_ids(dir.path(), "x.jsonl").unwrap(), vec!["a", "b"]);
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
