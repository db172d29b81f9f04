//! S3 via aws-sdk-s3, for AWS or any S3-compatible server (MinIO, Ceph RGW) with a custom endpoint.

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use distillery_core::StoreKind;
use distillery_core::config::Secret;
use distillery_core::ids::ContentHasher;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::{Digest, HEAD_BYTES, ObjectMeta, ObjectStore, StoreError};

/// Connection settings of an S3-compatible store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers (MinIO, Ceph); unset for AWS.
    pub endpoint: Option<String>,
    /// Region (any value for MinIO/Ceph).
    pub region: String,
    /// Access key id; unset uses the default AWS credential chain.
    pub access_key_id: Option<String>,
    /// Secret access key (secret).
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub force_path_style: bool,
    /// Timeout of one S3 operation, in seconds.
    pub timeout_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: Secret::default(),
            force_path_style: true,
            timeout_secs: 120,
        }
    }
}

impl S3Config {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if let Some(e) = &self.endpoint
            && url::Url::parse(e).is_err()
        {
            errors.push(format!("{section}.endpoint {e:?} is not a URL"));
        }
        if self.access_key_id.is_some() && self.secret_access_key.is_empty() {
            errors.push(format!("{section}.secret_access_key is required with access_key_id"));
        }
    }
}

/// An S3 client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub async fn connect(cfg: &S3Config) -> S3Store {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(std::time::Duration::from_secs(cfg.timeout_secs))
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build(),
            );
        if let Some(id) = &cfg.access_key_id {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                id.clone(),
                cfg.secret_access_key.expose().to_string(),
                None,
                None,
                "distillery-config",
            ));
        }
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(cfg.force_path_style).build();
        S3Store { client: aws_sdk_s3::Client::from_conf(conf) }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Creates a bucket if it does not exist.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        if self.client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(map_err(bucket, e)),
        }
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

fn map_err<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, e: SdkError<E, HttpResponse>) -> StoreError {
    let code = e.code().map(str::to_string);
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (code.as_deref(), status) {
        (Some("NoSuchKey") | Some("NotFound") | Some("NoSuchBucket"), _) | (_, Some(404)) => {
            StoreError::NotFound(what.to_string())
        }
        (Some("AccessDenied") | Some("InvalidAccessKeyId") | Some("SignatureDoesNotMatch"), _) | (_, Some(403)) => {
            StoreError::Denied(format!("{what}: {}", code.unwrap_or_default()))
        }
        _ => StoreError::Io(format!("{what}: {}", error_text(&e))),
    }
}

fn error_text<E: std::fmt::Debug>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::DispatchFailure(d) => format!("dispatch failure: {d:?}"),
        other => format!("{other:?}").chars().take(300).collect(),
    }
}

fn etag(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> StoreKind {
        StoreKind::S3
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        let out = self.client.head_object().bucket(bucket).key(key).send().await.map_err(|e| map_err(key, e))?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: etag(out.e_tag()),
            version_id: out.version_id().map(str::to_string),
            content_type: out.content_type().map(str::to_string),
            last_modified_ms: out.last_modified().and_then(|t| t.to_millis().ok()),
        })
    }

    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<(ObjectMeta, Bytes), StoreError> {
        let meta = self.head(bucket, key).await?;
        if meta.size > max_bytes {
            return Err(StoreError::TooLarge { size: meta.size, limit: max_bytes });
        }
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some(v) = &meta.version_id {
            req = req.version_id(v);
        }
        let out = req.send().await.map_err(|e| map_err(key, e))?;
        let body = read_bounded(out.body, max_bytes, key).await?;
        Ok((ObjectMeta { size: body.len() as u64, ..meta }, body))
    }

    async fn digest(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Digest, StoreError> {
        let meta = self.head(bucket, key).await?;
        if meta.size > max_bytes {
            return Err(StoreError::TooLarge { size: meta.size, limit: max_bytes });
        }
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some(v) = &meta.version_id {
            req = req.version_id(v);
        }
        let mut body = req.send().await.map_err(|e| map_err(key, e))?.body;
        let mut hasher = ContentHasher::new();
        let mut head = Vec::new();
        let mut total = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::Io(format!("{key}: {e}")))? {
            total += chunk.len() as u64;
            if total > max_bytes {
                return Err(StoreError::TooLarge { size: total, limit: max_bytes });
            }
            hasher.update(&chunk);
            if head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
        }
        Ok(Digest { meta: ObjectMeta { size: total, ..meta }, sha256: hasher.finish(), head })
    }

    fn list<'a>(&'a self, bucket: &'a str, prefix: &'a str) -> BoxStream<'a, Result<ObjectMeta, StoreError>> {
        let pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        stream::unfold(pages, move |mut pages| async move {
            let page = pages.next().await?;
            let items: Vec<Result<ObjectMeta, StoreError>> = match page {
                Ok(p) => p
                    .contents()
                    .iter()
                    .filter(|o| !o.key().unwrap_or_default().ends_with('/'))
                    .map(|o| {
                        Ok(ObjectMeta {
                            key: o.key().unwrap_or_default().to_string(),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            etag: etag(o.e_tag()),
                            version_id: None,
                            content_type: None,
                            last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(map_err(bucket, e))],
            };
            Some((stream::iter(items), pages))
        })
        .flatten()
        .boxed()
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    async fn put_if_absent(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(&e) => Ok(false),
            Err(e) => Err(map_err(key, e)),
        }
    }
}

/// Whether an S3 error is a failed precondition (412: `If-None-Match: *` on an existing key; 409 when a
/// concurrent conditional write is in progress).
fn precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412) | Some(409))
        || matches!(e.code(), Some("PreconditionFailed") | Some("ConditionalRequestConflict"))
}

async fn read_bounded(mut body: ByteStream, max: u64, key: &str) -> Result<Bytes, StoreError> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::Io(format!("{key}: {e}")))? {
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(StoreError::TooLarge { size: (buf.len() + chunk.len()) as u64, limit: max });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
