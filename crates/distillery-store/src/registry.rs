//! Content claims: which object first brought a given content. The same bytes uploaded again (another
//! key, or the same key re-uploaded) are a duplicate and do no new work; a replay of the same
//! notification (same object and event) claims again and re-emits, so a crash between claiming and
//! publishing loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{ObjectStore, StoreError};
use async_trait::async_trait;
use bytes::Bytes;

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time this content is seen: it is ours now.
    New,
    /// Already ours (a replay of the same event).
    Ours,
    /// Another object or upload brought it first.
    Taken(String),
}

/// A registry of content hash -> claimant.
#[async_trait]
pub trait Claims: Send + Sync + std::fmt::Debug {
    async fn claim(&self, content: &str, claimant: &str) -> Result<Claim, StoreError>;
}

/// In-process claims (the embedded run).
#[derive(Debug, Default, Clone)]
pub struct MemoryClaims(Arc<Mutex<HashMap<String, String>>>);

#[async_trait]
impl Claims for MemoryClaims {
    async fn claim(&self, content: &str, claimant: &str) -> Result<Claim, StoreError> {
        let mut map = self.0.lock().expect("claims lock");
        Ok(match map.get(content) {
            None => {
                map.insert(content.to_string(), claimant.to_string());
                Claim::New
            }
            Some(c) if c == claimant => Claim::Ours,
            Some(c) => Claim::Taken(c.clone()),
        })
    }
}

/// Claims kept as small marker objects in a store (`<prefix><hash>` holding the claimant), shared by every
/// ingest replica and surviving restarts.
#[derive(Debug, Clone)]
pub struct StoreClaims {
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    pub prefix: String,
}

#[async_trait]
impl Claims for StoreClaims {
    async fn claim(&self, content: &str, claimant: &str) -> Result<Claim, StoreError> {
        let key = format!("{}{content}", self.prefix);
        // A conditional create: of two replicas claiming the same content at once, exactly one gets `New`.
        if self.store.put_if_absent(&self.bucket, &key, Bytes::from(claimant.to_string()), "text/plain").await? {
            return Ok(Claim::New);
        }
        let (_, body) = self.store.get(&self.bucket, &key, 4096).await?;
        let owner = String::from_utf8_lossy(&body).to_string();
        Ok(if owner == claimant { Claim::Ours } else { Claim::Taken(owner) })
    }
}

/// The registry of content claims (which object first brought a content) and document versions (which
/// document is current at a key), kept as small marker objects.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsConfig {
    /// Bucket of the marker objects; unset keeps them in memory (single replica only; extract and sink
    /// then do not mark records of superseded documents).
    pub bucket: Option<String>,
    /// Key prefix of the markers.
    pub prefix: String,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig { bucket: None, prefix: ".distillery/claims/".into() }
    }
}

impl ClaimsConfig {
    /// The shared version registry in `store`, when a bucket is configured for it.
    pub fn versions(&self, store: &Arc<dyn ObjectStore>) -> Option<Arc<dyn Versions>> {
        self.bucket
            .as_ref()
            .map(|b| Arc::new(StoreVersions::new(store.clone(), b.clone(), self.prefix.clone())) as Arc<dyn Versions>)
    }

    /// The claims registry in `store`, or in memory when no bucket is configured.
    pub fn claims(&self, store: &Arc<dyn ObjectStore>) -> Arc<dyn Claims> {
        match &self.bucket {
            Some(bucket) => {
                Arc::new(StoreClaims { store: store.clone(), bucket: bucket.clone(), prefix: self.prefix.clone() })
            }
            None => Arc::new(MemoryClaims::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(c: &dyn Claims) {
        assert_eq!(c.claim("h1", "b/a.md#1").await.unwrap(), Claim::New);
        assert_eq!(c.claim("h1", "b/a.md#1").await.unwrap(), Claim::Ours);
        assert_eq!(c.claim("h1", "b/copy.md#7").await.unwrap(), Claim::Taken("b/a.md#1".into()));
        assert_eq!(c.claim("h2", "b/copy.md#7").await.unwrap(), Claim::New);
    }

    /// Issue 14 ("also"): claims were a get then a put, so two ingest replicas handed the same content could
    /// both see it free and both claim it (the document twice). A conditional create has one winner.
    #[tokio::test]
    async fn racing_replicas_claim_a_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Arc::new(StoreClaims {
            store: Arc::new(crate::LocalStore),
            bucket: dir.path().to_str().unwrap().to_string(),
            prefix: "claims/".into(),
        });
        for round in 0..20 {
            let content = format!("h{round}");
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let (claims, content) = (claims.clone(), content.clone());
                    tokio::spawn(async move { claims.claim(&content, &format!("b/copy-{i}.md#e{i}")).await.unwrap() })
                })
                .collect();
            let mut new = 0;
            for t in tasks {
                new += usize::from(t.await.unwrap() == Claim::New);
            }
            assert_eq!(new, 1, "round {round}: exactly one replica owns the content");
        }
    }

    #[tokio::test]
    async fn memory_and_store_claims_agree() {
        exercise(&MemoryClaims::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let store = StoreClaims {
            store: Arc::new(crate::LocalStore),
            bucket: dir.path().to_str().unwrap().to_string(),
            prefix: "claims/".into(),
        };
        exercise(&store).await;
    }
}

/// Document versions: which document is current at each object key, and which documents a newer version
/// has replaced. Ingest records versions; later stages mark records of replaced documents.
#[async_trait]
pub trait Versions: Send + Sync + std::fmt::Debug {
    /// Makes `document` current at `object` (a URI); returns the document it replaces there, if any.
    async fn record(&self, object: &str, document: &str) -> Result<Option<String>, StoreError>;
    /// The newer document that replaced `document`, if one has.
    async fn superseded_by(&self, document: &str) -> Result<Option<String>, StoreError>;
}

/// In-process versions (the embedded run).
#[derive(Debug, Default, Clone)]
pub struct MemoryVersions {
    inner: Arc<Mutex<VersionMaps>>,
}

/// Current document per object URI, and replaced document -> its replacement.
#[derive(Debug, Default)]
struct VersionMaps {
    current: HashMap<String, String>,
    replaced_by: HashMap<String, String>,
}

#[async_trait]
impl Versions for MemoryVersions {
    async fn record(&self, object: &str, document: &str) -> Result<Option<String>, StoreError> {
        let mut g = self.inner.lock().expect("versions lock");
        let previous = g.current.insert(object.to_string(), document.to_string()).filter(|p| p != document);
        if let Some(p) = &previous {
            g.replaced_by.insert(p.clone(), document.to_string());
        }
        Ok(previous)
    }

    async fn superseded_by(&self, document: &str) -> Result<Option<String>, StoreError> {
        Ok(self.inner.lock().expect("versions lock").replaced_by.get(document).cloned())
    }
}

/// Versions as marker objects (`<prefix>keys/<hash of the URI>` holds the current document,
/// `<prefix>superseded/<document>` the one that replaced it). Lookups of documents not superseded are
/// cached briefly, so marking records costs no request per record.
#[derive(Debug)]
pub struct StoreVersions {
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    pub prefix: String,
    cache: Mutex<HashMap<String, (Option<String>, std::time::Instant)>>,
}

impl StoreVersions {
    pub fn new(store: Arc<dyn ObjectStore>, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        StoreVersions { store, bucket: bucket.into(), prefix: prefix.into(), cache: Mutex::new(HashMap::new()) }
    }

    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self.store.get(&self.bucket, key, 4096).await {
            Ok((_, body)) => Ok(Some(String::from_utf8_lossy(&body).to_string())),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How long "not superseded" is believed without asking the store again.
const NEGATIVE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl Versions for StoreVersions {
    async fn record(&self, object: &str, document: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}keys/{}", self.prefix, distillery_core::ids::hash_parts(&[object]));
        let previous = self.read(&key).await?.filter(|p| p != document);
        self.store.put(&self.bucket, &key, Bytes::from(document.to_string()), "text/plain").await?;
        if let Some(p) = &previous {
            let mark = format!("{}superseded/{p}", self.prefix);
            self.store.put(&self.bucket, &mark, Bytes::from(document.to_string()), "text/plain").await?;
            self.cache
                .lock()
                .expect("cache lock")
                .insert(p.clone(), (Some(document.to_string()), std::time::Instant::now()));
        }
        Ok(previous)
    }

    async fn superseded_by(&self, document: &str) -> Result<Option<String>, StoreError> {
        if let Some((v, at)) = self.cache.lock().expect("cache lock").get(document)
            && (v.is_some() || at.elapsed() < NEGATIVE_TTL)
        {
            return Ok(v.clone());
        }
        let v = self.read(&format!("{}superseded/{document}", self.prefix)).await?;
        self.cache.lock().expect("cache lock").insert(document.to_string(), (v.clone(), std::time::Instant::now()));
        Ok(v)
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    async fn exercise(v: &dyn Versions) {
        assert_eq!(v.record("s3://b/a.md", "d1").await.unwrap(), None);
        assert_eq!(v.record("s3://b/a.md", "d1").await.unwrap(), None, "a replay is not a new version");
        assert_eq!(v.superseded_by("d1").await.unwrap(), None);
        assert_eq!(v.record("s3://b/a.md", "d2").await.unwrap(), Some("d1".into()));
        assert_eq!(v.superseded_by("d1").await.unwrap(), Some("d2".into()));
        assert_eq!(v.superseded_by("d2").await.unwrap(), None);
        assert_eq!(v.record("s3://b/other.md", "d3").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_and_store_versions_agree() {
        exercise(&MemoryVersions::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(crate::LocalStore);
        exercise(&StoreVersions::new(store, dir.path().to_str().unwrap(), "reg/")).await;
    }
}
