//! Object stores behind one interface: S3 (aws-sdk-s3, any S3-compatible server such as MinIO or Ceph
//! RGW; feature `s3`, so stages that read no bucket do not link it) and a local folder (the embedded run),
//! and the registry of content claims and document versions kept as marker objects in a store.
//! Reads are bounded: an object over the size limit is refused from its metadata, never fetched. Hashing
//! streams the body.

pub mod local;
pub mod registry;
#[cfg(feature = "s3")]
pub mod s3;
pub mod stores;

use async_trait::async_trait;
use bytes::Bytes;
use distillery_core::StoreKind;
use futures::stream::BoxStream;

pub use local::LocalStore;
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Store};
pub use stores::Stores;

/// What a store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    pub last_modified_ms: Option<i64>,
}

/// The streamed digest of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub meta: ObjectMeta,
    /// sha256 of the bytes (hex).
    pub sha256: String,
    /// The first bytes, for media type detection.
    pub head: Vec<u8>,
}

/// How many leading bytes `Digest::head` keeps.
pub const HEAD_BYTES: usize = 8192;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("access denied: {0}")]
    Denied(String),
    #[error("store I/O: {0}")]
    Io(String),
    /// One entry of a listing (a file, a folder) that cannot be read; the rest of the listing goes on.
    #[error("{key} cannot be read: {message}")]
    Unreadable { key: String, message: String },
}

impl StoreError {
    /// Worth trying again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// An object store.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> StoreKind;

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError>;

    /// The whole object, refused (from its metadata, before fetching) when over `max_bytes`.
    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<(ObjectMeta, Bytes), StoreError>;

    /// sha256 and the first bytes of an object, streamed.
    async fn digest(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Digest, StoreError>;

    /// Every object under a prefix, in key order, page by page.
    fn list<'a>(&'a self, bucket: &'a str, prefix: &'a str) -> BoxStream<'a, Result<ObjectMeta, StoreError>>;

    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError>;

    /// Creates the object only if no object is at `key` (S3: a conditional `If-None-Match: *` put; a folder:
    /// an exclusive create). `Ok(false)` when one already is: of two writers racing, exactly one wins.
    async fn put_if_absent(&self, bucket: &str, key: &str, body: Bytes, content_type: &str)
    -> Result<bool, StoreError>;
}
