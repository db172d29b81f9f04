//! How a document record begins: an object found by a notification, a scan or a local listing, identified
//! by the sha256 of its bytes, its media type detected from its name and first bytes.

use crate::media::MediaType;
use crate::records::{Discovery, Document, DocumentStatus, ObjectRef};
use crate::{ids, now_ms};

impl Document {
    /// A newly discovered document of `bytes` at `source`.
    pub fn discovered(source: ObjectRef, bytes: &[u8], discovered_by: Discovery) -> Document {
        let media = MediaType::detect(&source.key, &bytes[..bytes.len().min(8192)]);
        Document {
            id: ids::hash_bytes(bytes),
            source,
            size: bytes.len() as i64,
            media_type: media.mime().to_string(),
            discovered_by,
            discovered_at_ms: now_ms(),
            status: DocumentStatus::Discovered,
            supersedes: None,
            pii_counts: Default::default(),
            pages: None,
            chunks: None,
            chunk_ids: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_document_is_named_by_its_content() {
        let a = Document::discovered(ObjectRef::file("/docs", "a.md"), b"# Leave\n\n25 days.", Discovery::Local);
        let b = Document::discovered(ObjectRef::file("/other", "b.md"), b"# Leave\n\n25 days.", Discovery::Local);
        assert_eq!(a.id, b.id);
        assert_eq!((a.media_type.as_str(), a.size, a.status), ("text/markdown", 17, DocumentStatus::Discovered));
    }
}
