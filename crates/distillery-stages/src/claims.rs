//! Content claims: which object first brought a given content. The same bytes uploaded again (another
//! key, or the same key re-uploaded) are a duplicate and do no new work; a replay of the same
//! notification (same object and event) claims again and re-emits, so a crash between claiming and
//! publishing loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use distillery_store::{ObjectStore, StoreError};

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
        match self.store.get(&self.bucket, &key, 4096).await {
            Ok((_, body)) => {
                let owner = String::from_utf8_lossy(&body).to_string();
                Ok(if owner == claimant { Claim::Ours } else { Claim::Taken(owner) })
            }
            Err(StoreError::NotFound(_)) => {
                self.store.put(&self.bucket, &key, Bytes::from(claimant.to_string()), "text/plain").await?;
                Ok(Claim::New)
            }
            Err(e) => Err(e),
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

    #[tokio::test]
    async fn memory_and_store_claims_agree() {
        exercise(&MemoryClaims::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let store = StoreClaims {
            store: Arc::new(distillery_store::LocalStore),
            bucket: dir.path().to_str().unwrap().to_string(),
            prefix: "claims/".into(),
        };
        exercise(&store).await;
    }
}
