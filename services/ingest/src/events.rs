//! S3 ObjectCreated notifications in the shapes stores publish: MinIO's (`EventName`, `Key`, `Records`),
//! AWS's and Ceph RGW's (`Records` with `eventName` and `s3.bucket`/`s3.object`).

use serde::Deserialize;

/// One created object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    /// Unique per event (S3 `sequencer`, else the event time): tells a replayed message from a new upload.
    pub event_id: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Records", default)]
    records: Vec<EventRecord>,
}

#[derive(Deserialize)]
struct EventRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: String,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// The `opaqueData` of every record of a notification (Ceph RGW copies a topic's `OpaqueData` attribute into
/// each event it sends); `None` when the body is not an event or a record has none.
pub fn opaque_data(body: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Opaque {
        #[serde(rename = "Records", default)]
        records: Vec<OpaqueRecord>,
    }
    #[derive(Deserialize)]
    struct OpaqueRecord {
        #[serde(rename = "opaqueData")]
        opaque_data: Option<String>,
    }
    let env: Opaque = serde_json::from_slice(body).ok()?;
    if env.records.is_empty() {
        return None;
    }
    env.records.into_iter().map(|r| r.opaque_data).collect()
}

/// Parses a notification body; returns the ObjectCreated entries (other events are ignored).
pub fn parse(body: &[u8]) -> Result<Vec<ObjectCreated>, String> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| format!("not an S3 event: {e}"))?;
    Ok(env
        .records
        .into_iter()
        .filter(|r| r.event_name.trim_start_matches("s3:").starts_with("ObjectCreated"))
        .filter_map(|r| {
            let s3 = r.s3?;
            let key = decode_key(&s3.object.key);
            let event_id =
                s3.object.sequencer.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| r.event_time.clone());
            Some(ObjectCreated {
                bucket: s3.bucket.name,
                key,
                size: s3.object.size,
                etag: s3.object.etag.filter(|e| !e.is_empty()),
                version_id: s3.object.version_id.filter(|v| !v.is_empty() && v != "null"),
                event_id,
            })
        })
        .collect())
}

/// S3 event keys are form-URL-encoded (`+` for space).
fn decode_key(key: &str) -> String {
    let plus = key.replace('+', " ");
    urlencoding::decode(&plus).map(|c| c.into_owned()).unwrap_or(plus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON MinIO publishes to a Kafka notification target.
    pub const MINIO: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"docs/hr/leave+policy%282%29.md","Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2026-11-22T10:00:00.000Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","x-amz-request-id":"17A0B0F1F1F1F1F1","x-minio-deployment-id":"2c4ae6b3","x-minio-origin-endpoint":"http://127.0.0.1:9000"},"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"docs","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::docs"},"object":{"key":"hr%2Fleave+policy%282%29.md","size":1234,"eTag":"0123456789abcdef0123456789abcdef","contentType":"text/markdown","userMetadata":{"content-type":"text/markdown"},"sequencer":"17A0B0F1F2F3F4F5"}},"source":{"host":"127.0.0.1","port":"","userAgent":"MinIO (linux; amd64) minio-go/v7.0.70"}}]}"#;

    #[test]
    fn minio_events_parse() {
        let e = parse(MINIO.as_bytes()).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].bucket, "docs");
        assert_eq!(e[0].key, "hr/leave policy(2).md");
        assert_eq!(e[0].size, Some(1234));
        assert_eq!(e[0].event_id, "17A0B0F1F2F3F4F5");
    }

    #[test]
    fn other_events_and_garbage() {
        let removed = MINIO.replace("s3:ObjectCreated:Put", "s3:ObjectRemoved:Delete");
        assert!(parse(removed.as_bytes()).unwrap().is_empty());
        assert!(parse(br#"{"Event":"s3:TestEvent"}"#).unwrap().is_empty());
        assert!(parse(b"not json").is_err());
        // AWS / Ceph shape: no "s3:" prefix, no sequencer: the event time identifies it.
        let aws = r#"{"Records":[{"eventName":"ObjectCreated:CompleteMultipartUpload","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"b"},"object":{"key":"a%20b.pdf","size":5,"eTag":"","versionId":"null"}}}]}"#;
        let e = parse(aws.as_bytes()).unwrap();
        assert_eq!((e[0].key.as_str(), e[0].etag.clone(), e[0].version_id.clone()), ("a b.pdf", None, None));
        assert_eq!(e[0].event_id, "2026-01-01T00:00:00Z");
    }
}
