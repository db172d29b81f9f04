//! Ingest: object-store notifications (and scans of a bucket/prefix) become Documents. Identity is the
//! sha256 of the content (streamed), so the same bytes uploaded twice are one document.

use std::sync::Arc;
use std::time::Duration;

use distillery_component::{BuildError, Component, Deps};
use distillery_core::{
    Discovery, Document, DocumentStatus, Input, MediaType, ObjectRef, Payload, Record, RejectReason, Rejected, Stage,
    StageError, StageName, StoreKind, SubjectKind, Topic, now_ms,
};
use distillery_store::registry::{Claim, Claims, MemoryVersions, Versions};
use distillery_store::{ObjectMeta, StoreError, Stores};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub mod events;
pub mod scan;
pub mod service;
pub mod webhook;

/// The stage's name: consumer group suffix, metric label, `Rejected.stage`.
pub const NAME: StageName = StageName::Ingest;

/// Tries of one object of a scan before it is rejected as unreadable.
const SCAN_ATTEMPTS: u32 = 8;

impl Component for IngestConfig {
    type Stage = Ingest;

    async fn build(&self, deps: &Deps) -> Result<Ingest, BuildError> {
        Ok(Ingest { ingestor: Ingestor::new(self, deps) })
    }
}

/// Ingest settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Only keys starting with one of these prefixes are ingested (empty: every key).
    pub include_prefixes: Vec<String>,
    /// Only keys ending with one of these suffixes (case-insensitive) are ingested (empty: every key).
    pub include_suffixes: Vec<String>,
    /// Keys starting with one of these prefixes are never ingested (the registry's own markers live under
    /// `.distillery/`; a notification for them must not become a document).
    pub exclude_prefixes: Vec<String>,
    /// Objects larger than this many bytes are rejected from their metadata, never fetched.
    pub max_object_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            include_prefixes: Vec::new(),
            include_suffixes: Vec::new(),
            exclude_prefixes: vec![".distillery/".into()],
            max_object_bytes: 100 * 1024 * 1024,
        }
    }
}

impl IngestConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.max_object_bytes == 0 {
            errors.push(format!("{section}.max_object_bytes must be > 0"));
        }
    }

    /// Whether a key passes the prefix and suffix filters.
    pub fn accepts(&self, key: &str) -> bool {
        let lower = key.to_lowercase();
        (self.include_prefixes.is_empty() || self.include_prefixes.iter().any(|p| key.starts_with(p.as_str())))
            && (self.include_suffixes.is_empty()
                || self.include_suffixes.iter().any(|s| lower.ends_with(&s.to_lowercase())))
            && !key.ends_with('/')
            && !self.exclude_prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A document to publish.
    Document(Document),
    /// A rejection to publish (over the size limit, unsupported).
    Rejected(Rejected),
    /// Its content was brought before by another object: no new work.
    Duplicate { of: String },
    /// Excluded by the filters.
    Filtered,
}

/// Turns objects into documents.
#[derive(Debug, Clone)]
pub struct Ingestor {
    pub stores: Stores,
    pub claims: Arc<dyn Claims>,
    pub versions: Arc<dyn Versions>,
    pub cfg: IngestConfig,
}

impl Ingestor {
    /// An ingestor over the stores and registry of `deps` (a process-local version registry when none is
    /// shared).
    pub fn new(cfg: &IngestConfig, deps: &Deps) -> Ingestor {
        Ingestor {
            stores: deps.stores.clone(),
            claims: deps.claims.clone(),
            versions: deps.versions.clone().unwrap_or_else(|| Arc::new(MemoryVersions::default())),
            cfg: cfg.clone(),
        }
    }

    /// Examines one object. `event_id` tells a new upload from a replay of the same one.
    pub async fn object(
        &self,
        source: ObjectRef,
        size_hint: Option<u64>,
        event_id: &str,
        discovered_by: Discovery,
    ) -> Result<Outcome, StageError> {
        if !self.cfg.accepts(&source.key) {
            tracing::debug!(key = %source.key, "filtered out");
            return Ok(Outcome::Filtered);
        }
        let subject = source.uri();
        if let Some(size) = size_hint
            && size > self.cfg.max_object_bytes
        {
            return Ok(Outcome::Rejected(self.too_large(&source, size)));
        }
        let store = self.stores.get(source.store).map_err(|e| StageError::dead_letter("store", e))?;
        let digest = match store.digest(&source.bucket, &source.key, self.cfg.max_object_bytes).await {
            Ok(d) => d,
            Err(StoreError::TooLarge { size, .. }) => return Ok(Outcome::Rejected(self.too_large(&source, size))),
            Err(StoreError::NotFound(_)) => {
                // Deleted between the event and now: nothing to do, but say so.
                let r = Rejected::new(
                    NAME.as_str(),
                    RejectReason::Other,
                    SubjectKind::Object,
                    &distillery_core::ids::hash_parts(&[&subject]),
                    format!("{subject} no longer exists"),
                );
                return Ok(Outcome::Rejected(Rejected { source: Some(source), ..r }));
            }
            Err(e) if e.is_retryable() => return Err(StageError::retry("store_read", e.to_string())),
            // Unreadable (permission denied): that object is rejected with why; nothing else is held up.
            Err(e) => return Ok(Outcome::Rejected(self.unreadable(&source, &e.to_string()))),
        };
        let claimant = format!("{subject}#{event_id}");
        match self.claims.claim(&digest.sha256, &claimant).await {
            Ok(Claim::New) | Ok(Claim::Ours) => {}
            Ok(Claim::Taken(of)) => {
                tracing::info!(object = %subject, first = %of, "same content as an earlier object; no new work");
                return Ok(Outcome::Duplicate { of });
            }
            Err(e) => return Err(StageError::retry("claims", e.to_string())),
        }
        let media = MediaType::detect(&source.key, &digest.head);
        let media = if media == MediaType::Unsupported {
            digest.meta.content_type.as_deref().map(MediaType::from_mime).unwrap_or(media)
        } else {
            media
        };
        let source = ObjectRef {
            etag: source.etag.or(digest.meta.etag.clone()),
            version_id: source.version_id.or(digest.meta.version_id.clone()),
            ..source
        };
        // A changed object under the same key is a new version that supersedes the document there.
        let supersedes = self
            .versions
            .record(&subject, &digest.sha256)
            .await
            .map_err(|e| StageError::retry("versions", e.to_string()))?;
        if let Some(old) = &supersedes {
            tracing::info!(object = %subject, new = %digest.sha256, old = %old, "new version of a document");
        }
        Ok(Outcome::Document(Document {
            id: digest.sha256,
            source,
            size: digest.meta.size as i64,
            media_type: media.mime().to_string(),
            discovered_by,
            discovered_at_ms: now_ms(),
            status: DocumentStatus::Discovered,
            supersedes,
            pii_counts: Default::default(),
            pages: None,
            chunks: None,
        }))
    }

    fn too_large(&self, source: &ObjectRef, size: u64) -> Rejected {
        let r = Rejected::new(
            NAME.as_str(),
            RejectReason::TooLarge,
            SubjectKind::Object,
            &distillery_core::ids::hash_parts(&[&source.uri()]),
            format!("{} is {size} bytes, over the {}-byte limit; not fetched", source.uri(), self.cfg.max_object_bytes),
        );
        Rejected { source: Some(source.clone()), ..r }
    }

    fn unreadable(&self, source: &ObjectRef, why: &str) -> Rejected {
        let r = Rejected::new(
            NAME.as_str(),
            RejectReason::Other,
            SubjectKind::Object,
            &distillery_core::ids::hash_parts(&[&source.uri()]),
            format!("{} cannot be read: {why}", source.uri()),
        );
        Rejected { source: Some(source.clone()), ..r }
    }

    /// Examines one object of a scan: a transient read failure is tried again (backoff up to 30 s, about three
    /// minutes in all), then the object is rejected with why, so one object never stops a scan.
    async fn scanned_object(&self, source: ObjectRef, size: u64, event_id: &str, discovered_by: Discovery) -> Outcome {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=SCAN_ATTEMPTS {
            match self.object(source.clone(), Some(size), event_id, discovered_by).await {
                Ok(outcome) => return outcome,
                Err(e) if e.disposition == distillery_core::Disposition::Retry && attempt < SCAN_ATTEMPTS => {
                    tracing::warn!(object = %source.uri(), attempt, error = %e, wait_ms = wait.as_millis() as u64, "retrying an object of the scan");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(object = %source.uri(), error = %e, "an object of the scan cannot be read; rejected");
                    return Outcome::Rejected(self.unreadable(&source, &format!("{e} (after {attempt} attempts)")));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Lists a bucket/prefix (a folder for the local store) and examines every object, calling `emit` with
    /// each outcome in key order. Streams: never holds the listing. An object (or a folder of a local
    /// listing) that cannot be read is rejected with why and the scan goes on; only a listing that fails as
    /// a whole (the store unreachable) ends it with an error.
    pub async fn scan<F, Fut>(
        &self,
        kind: StoreKind,
        bucket: &str,
        prefix: &str,
        discovered_by: Discovery,
        mut emit: F,
    ) -> Result<(), StageError>
    where
        F: FnMut(Outcome) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let store = self.stores.get(kind).map_err(|e| StageError::dead_letter("store", e))?;
        let mut listing = store.list(bucket, prefix);
        while let Some(item) = listing.next().await {
            let meta: ObjectMeta = match item {
                Ok(m) => m,
                Err(StoreError::Unreadable { key, message }) => {
                    let source =
                        ObjectRef { store: kind, bucket: bucket.to_string(), key, version_id: None, etag: None };
                    tracing::error!(object = %source.uri(), error = %message, "part of the input cannot be listed; rejected");
                    emit(Outcome::Rejected(self.unreadable(&source, &message))).await;
                    continue;
                }
                Err(e) => return Err(StageError::retry("store_list", e.to_string())),
            };
            let source = ObjectRef {
                store: kind,
                bucket: bucket.to_string(),
                key: meta.key.clone(),
                version_id: None,
                etag: meta.etag.clone(),
            };
            let event_id = format!("scan:{}", meta.last_modified_ms.unwrap_or_default());
            let outcome = self.scanned_object(source, meta.size, &event_id, discovered_by).await;
            emit(outcome).await;
        }
        Ok(())
    }
}

impl Outcome {
    /// The record to publish, if any.
    pub fn into_record(self) -> Option<Record> {
        match self {
            Outcome::Document(d) => Some(Record::Document(d)),
            Outcome::Rejected(r) => Some(Record::Rejected(r)),
            Outcome::Duplicate { .. } | Outcome::Filtered => None,
        }
    }
}

/// The ingest stage: consumes object-store notifications.
#[derive(Debug)]
pub struct Ingest {
    pub ingestor: Ingestor,
}

impl Stage for Ingest {
    fn name(&self) -> &'static str {
        NAME.as_str()
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Events]
    }

    fn default_concurrency(&self) -> usize {
        16
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Payload::Raw(body) = &input.payload else {
            return Err(StageError::dead_letter("unexpected_input", "ingest consumes raw notifications"));
        };
        let created = events::parse(body).map_err(|e| StageError::dead_letter("bad_event", e))?;
        let mut out = Vec::new();
        for ev in created {
            let source = ObjectRef {
                store: StoreKind::S3,
                bucket: ev.bucket.clone(),
                key: ev.key.clone(),
                version_id: ev.version_id.clone(),
                etag: ev.etag.clone(),
            };
            let outcome = self.ingestor.object(source, ev.size, &ev.event_id, Discovery::Notification).await?;
            out.extend(outcome.into_record());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_store::registry::{MemoryClaims, MemoryVersions};

    /// A folder where one file cannot be read (permission denied) and one subfolder cannot be listed: what a
    /// root-owned file in a user's folder looks like (tests run as root, who reads everything).
    #[derive(Debug)]
    struct Locked(distillery_store::LocalStore);

    #[async_trait::async_trait]
    impl distillery_store::ObjectStore for Locked {
        fn kind(&self) -> StoreKind {
            StoreKind::File
        }
        async fn head(&self, b: &str, k: &str) -> Result<ObjectMeta, StoreError> {
            self.0.head(b, k).await
        }
        async fn get(&self, b: &str, k: &str, max: u64) -> Result<(ObjectMeta, bytes::Bytes), StoreError> {
            self.0.get(b, k, max).await
        }
        async fn digest(&self, b: &str, k: &str, max: u64) -> Result<distillery_store::Digest, StoreError> {
            if k == "locked.md" {
                return Err(StoreError::Denied(format!("{k}: Permission denied (os error 13)")));
            }
            self.0.digest(b, k, max).await
        }
        fn list<'a>(
            &'a self,
            b: &'a str,
            p: &'a str,
        ) -> futures::stream::BoxStream<'a, Result<ObjectMeta, StoreError>> {
            let private = futures::stream::iter([Err(StoreError::Unreadable {
                key: "private/".into(),
                message: "Permission denied (os error 13)".into(),
            })]);
            private.chain(self.0.list(b, p)).boxed()
        }
        async fn put(&self, b: &str, k: &str, body: bytes::Bytes, ct: &str) -> Result<(), StoreError> {
            self.0.put(b, k, body, ct).await
        }
        async fn put_if_absent(&self, b: &str, k: &str, body: bytes::Bytes, ct: &str) -> Result<bool, StoreError> {
            self.0.put_if_absent(b, k, body, ct).await
        }
    }

    /// Issue 14, defect 10: one unreadable object aborted the whole scan. It is rejected with why, and every
    /// other object still becomes a document.
    #[tokio::test]
    async fn an_unreadable_object_is_rejected_and_the_scan_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.md", "locked.md", "z.md"] {
            std::fs::write(dir.path().join(name), format!("# {name}\n\ntext of {name}")).unwrap();
        }
        let ing = Ingestor {
            stores: Stores { s3: None, local: Arc::new(Locked(distillery_store::LocalStore)) },
            claims: Arc::new(MemoryClaims::default()),
            versions: Arc::new(MemoryVersions::default()),
            cfg: IngestConfig::default(),
        };
        let mut outcomes = Vec::new();
        ing.scan(StoreKind::File, dir.path().to_str().unwrap(), "", Discovery::Local, |o| {
            outcomes.push(o);
            async {}
        })
        .await
        .expect("the scan finishes");
        let docs: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| if let Outcome::Document(d) = o { Some(d.source.key.as_str()) } else { None })
            .collect();
        assert_eq!(docs, vec!["a.md", "z.md"]);
        let rejected: Vec<&Rejected> =
            outcomes.iter().filter_map(|o| if let Outcome::Rejected(r) = o { Some(r) } else { None }).collect();
        assert_eq!(rejected.len(), 2, "{outcomes:?}");
        assert!(rejected.iter().any(|r| r.detail.contains("locked.md") && r.detail.contains("Permission denied")));
        assert!(rejected.iter().any(|r| r.detail.contains("private/") && r.detail.contains("Permission denied")));
    }

    #[test]
    fn filters() {
        let cfg = IngestConfig {
            include_prefixes: vec!["docs/".into()],
            include_suffixes: vec![".PDF".into(), ".md".into()],
            ..Default::default()
        };
        assert!(cfg.accepts("docs/a.pdf"));
        assert!(cfg.accepts("docs/x/b.MD"));
        assert!(!cfg.accepts("other/a.pdf"));
        assert!(!cfg.accepts("docs/a.png"));
        assert!(!cfg.accepts("docs/dir/"));
        assert!(IngestConfig::default().accepts("anything"));
        assert!(!IngestConfig::default().accepts(".distillery/claims/abc"), "registry markers are never documents");
    }

    #[tokio::test]
    async fn identical_bytes_are_one_document_and_replays_re_emit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        std::fs::write(dir.path().join("a.md"), "# Same\n\nbytes").unwrap();
        std::fs::write(dir.path().join("copy.md"), "# Same\n\nbytes").unwrap();
        std::fs::write(dir.path().join("big.txt"), vec![b'x'; 2000]).unwrap();
        let ing = Ingestor {
            stores: Stores::local_only(),
            claims: Arc::new(MemoryClaims::default()),
            versions: Arc::new(MemoryVersions::default()),
            cfg: IngestConfig { max_object_bytes: 1000, ..Default::default() },
        };
        let first = ing.object(ObjectRef::file(&root, "a.md"), None, "e1", Discovery::Local).await.unwrap();
        let Outcome::Document(doc) = first else { panic!("{first:?}") };
        assert_eq!(doc.id, distillery_core::ids::hash_bytes(b"# Same\n\nbytes"));
        assert_eq!(doc.media_type, "text/markdown");
        let replay = ing.object(ObjectRef::file(&root, "a.md"), None, "e1", Discovery::Local).await.unwrap();
        assert_eq!(
            replay,
            Outcome::Document(Document {
                discovered_at_ms: match &replay {
                    Outcome::Document(d) => d.discovered_at_ms,
                    _ => 0,
                },
                ..doc.clone()
            })
        );
        let copy = ing.object(ObjectRef::file(&root, "copy.md"), None, "e2", Discovery::Local).await.unwrap();
        assert!(matches!(copy, Outcome::Duplicate { .. }));
        let reupload = ing.object(ObjectRef::file(&root, "a.md"), None, "e3", Discovery::Local).await.unwrap();
        assert!(matches!(reupload, Outcome::Duplicate { .. }));
        // The same key with new content is a new version that supersedes the first.
        std::fs::write(dir.path().join("a.md"), "# Same\n\nbytes, edited").unwrap();
        let edited = ing.object(ObjectRef::file(&root, "a.md"), None, "e6", Discovery::Local).await.unwrap();
        let Outcome::Document(v2) = edited else { panic!("{edited:?}") };
        assert_eq!(v2.supersedes.as_deref(), Some(doc.id.as_str()));
        assert_eq!(ing.versions.superseded_by(&doc.id).await.unwrap(), Some(v2.id.clone()));
        let big = ing.object(ObjectRef::file(&root, "big.txt"), None, "e4", Discovery::Local).await.unwrap();
        let Outcome::Rejected(r) = big else { panic!("{big:?}") };
        assert_eq!(r.reason, RejectReason::TooLarge);
        // The size hint alone is enough to refuse without reading.
        let hinted = ing
            .object(ObjectRef::file(&root, "missing-but-huge.pdf"), Some(5000), "e5", Discovery::Local)
            .await
            .unwrap();
        assert!(matches!(hinted, Outcome::Rejected(Rejected { reason: RejectReason::TooLarge, .. })));
    }
}
