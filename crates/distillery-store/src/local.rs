//! A folder as an object store: the "bucket" is a root folder, keys are `/`-separated relative paths.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use distillery_core::StoreKind;
use distillery_core::ids::ContentHasher;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

use crate::{Digest, HEAD_BYTES, ObjectMeta, ObjectStore, StoreError};

#[derive(Debug, Default, Clone)]
pub struct LocalStore;

fn resolve(root: &str, key: &str) -> Result<PathBuf, StoreError> {
    let rel = Path::new(key);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(StoreError::Denied(format!("key {key:?} escapes the root")));
    }
    Ok(Path::new(root).join(rel))
}

fn io(key: &str, e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound(key.to_string()),
        std::io::ErrorKind::PermissionDenied => StoreError::Denied(format!("{key}: {e}")),
        _ => StoreError::Io(format!("{key}: {e}")),
    }
}

async fn meta(path: &Path, key: &str) -> Result<ObjectMeta, StoreError> {
    let m = tokio::fs::metadata(path).await.map_err(|e| io(key, e))?;
    if !m.is_file() {
        return Err(StoreError::NotFound(key.to_string()));
    }
    let modified =
        m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64);
    Ok(ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        etag: None,
        version_id: None,
        content_type: None,
        last_modified_ms: modified,
    })
}

/// The key of a path under `root`.
fn key_of(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Every file under `dir`, as keys relative to `root`, sorted; a folder below `root` that cannot be read is
/// listed as an error of its own (`Err((key, error))`) and the walk goes on. Only `root` itself failing ends it.
fn walk(root: &Path, dir: &Path, out: &mut Vec<Result<String, (String, String)>>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if dir != root => {
            out.push(Err((format!("{}/", key_of(root, dir)), e.to_string())));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut list = Vec::new();
    for e in entries {
        match e {
            Ok(e) => list.push(e),
            Err(e) => out.push(Err((format!("{}/", key_of(root, dir)), e.to_string()))),
        }
    }
    list.sort_by_key(|e| e.file_name());
    for e in list {
        let path = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        match e.file_type() {
            Ok(ft) if ft.is_dir() => walk(root, &path, out)?,
            Ok(ft) if ft.is_file() => out.push(Ok(key_of(root, &path))),
            Ok(_) => {}
            Err(err) => out.push(Err((key_of(root, &path), err.to_string()))),
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn kind(&self) -> StoreKind {
        StoreKind::File
    }

    async fn head(&self, root: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        meta(&resolve(root, key)?, key).await
    }

    async fn get(&self, root: &str, key: &str, max_bytes: u64) -> Result<(ObjectMeta, Bytes), StoreError> {
        let path = resolve(root, key)?;
        let m = meta(&path, key).await?;
        if m.size > max_bytes {
            return Err(StoreError::TooLarge { size: m.size, limit: max_bytes });
        }
        let bytes = tokio::fs::read(&path).await.map_err(|e| io(key, e))?;
        Ok((m, Bytes::from(bytes)))
    }

    async fn digest(&self, root: &str, key: &str, max_bytes: u64) -> Result<Digest, StoreError> {
        let path = resolve(root, key)?;
        let m = meta(&path, key).await?;
        if m.size > max_bytes {
            return Err(StoreError::TooLarge { size: m.size, limit: max_bytes });
        }
        let mut f = tokio::fs::File::open(&path).await.map_err(|e| io(key, e))?;
        let mut hasher = ContentHasher::new();
        let mut head = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).await.map_err(|e| io(key, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
            }
        }
        Ok(Digest { meta: m, sha256: hasher.finish(), head })
    }

    fn list<'a>(&'a self, root: &'a str, prefix: &'a str) -> BoxStream<'a, Result<ObjectMeta, StoreError>> {
        let mut keys = Vec::new();
        if let Err(e) = walk(Path::new(root), Path::new(root), &mut keys) {
            return stream::iter([Err(io(root, e))]).boxed();
        }
        stream::iter(keys.into_iter().filter(move |k| match k {
            Ok(k) | Err((k, _)) => k.starts_with(prefix) || prefix.starts_with(k.as_str()),
        }))
        .then(move |k| async move {
            match k {
                Ok(k) => meta(&Path::new(root).join(&k), &k)
                    .await
                    .map_err(|e| StoreError::Unreadable { key: k.clone(), message: e.to_string() }),
                Err((key, message)) => Err(StoreError::Unreadable { key, message }),
            }
        })
        .boxed()
    }

    async fn put_if_absent(&self, root: &str, key: &str, body: Bytes, _content_type: &str) -> Result<bool, StoreError> {
        use tokio::io::AsyncWriteExt;
        let path = resolve(root, key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io(key, e))?;
        }
        // Written beside and hard-linked into place: the link fails if the key exists, and a reader never
        // sees a half-written object.
        let tmp = path.with_extension(format!("partial-{}", uuid_like()));
        let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| io(key, e))?;
        f.write_all(&body).await.map_err(|e| io(key, e))?;
        f.sync_all().await.map_err(|e| io(key, e))?;
        let linked = tokio::fs::hard_link(&tmp, &path).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(key, e)),
        }
    }

    async fn put(&self, root: &str, key: &str, body: Bytes, _content_type: &str) -> Result<(), StoreError> {
        let path = resolve(root, key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io(key, e))?;
        }
        let tmp = path.with_extension("partial");
        tokio::fs::write(&tmp, &body).await.map_err(|e| io(key, e))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| io(key, e))
    }
}

/// A name no other writer of this process or another uses at the same time.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}-{}", std::process::id(), distillery_core::now_ms(), SEQ.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folder_behaves_like_a_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let s = LocalStore;
        s.put(root, "b/two.txt", Bytes::from_static(b"two"), "text/plain").await.unwrap();
        s.put(root, "a.md", Bytes::from_static(b"# one"), "text/markdown").await.unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        let listed: Vec<String> = s.list(root, "").map(|m| m.unwrap().key).collect().await;
        assert_eq!(listed, vec!["a.md", "b/two.txt"]);
        let only_b: Vec<String> = s.list(root, "b/").map(|m| m.unwrap().key).collect().await;
        assert_eq!(only_b, vec!["b/two.txt"]);
        let d = s.digest(root, "a.md", 100).await.unwrap();
        assert_eq!(d.sha256, distillery_core::ids::hash_bytes(b"# one"));
        assert_eq!(d.head, b"# one");
        assert!(matches!(s.get(root, "a.md", 2).await, Err(StoreError::TooLarge { size: 5, limit: 2 })));
        assert!(matches!(s.get(root, "missing", 10).await, Err(StoreError::NotFound(_))));
        assert!(matches!(s.get(root, "../etc/passwd", 10).await, Err(StoreError::Denied(_))));
    }

    #[tokio::test]
    async fn put_if_absent_has_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let root = root.clone();
                tokio::spawn(async move {
                    LocalStore
                        .put_if_absent(&root, "claims/h1", Bytes::from(format!("claimant-{i}")), "text/plain")
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap().unwrap());
        }
        assert_eq!(winners, 1);
        let (_, body) = LocalStore.get(&root, "claims/h1", 100).await.unwrap();
        assert!(String::from_utf8_lossy(&body).starts_with("claimant-"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("claims")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
