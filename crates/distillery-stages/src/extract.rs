//! Extract: a Document's bytes become chunks with their generation context.

use std::sync::Arc;
use std::time::Duration;

use distillery_core::{Chunk, Document, Input, Record, RejectReason, Stage, StageError, Topic, ids};
use distillery_docs::{ChunkConfig, ExtractError, MediaType, TokenCounter, chunk, context_text, contexts};
use distillery_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::stores::Stores;

/// Extraction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractConfig {
    /// Documents larger than this many bytes are rejected, not fetched.
    pub max_object_bytes: u64,
    /// Wall-clock limit of extracting one document, in seconds.
    pub timeout_secs: u64,
    /// Chunking and context budgets.
    pub chunking: ChunkConfig,
    /// A `tokenizer.json` matching the generation model; unset counts ~4 characters per token.
    pub tokenizer: Option<std::path::PathBuf>,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            max_object_bytes: 100 * 1024 * 1024,
            timeout_secs: 120,
            chunking: ChunkConfig::default(),
            tokenizer: None,
        }
    }
}

impl ExtractConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.timeout_secs == 0 {
            errors.push(format!("{section}.timeout_secs must be > 0"));
        }
        self.chunking.validate(&format!("{section}.chunking"), errors);
        if let Some(t) = &self.tokenizer
            && !t.exists()
        {
            errors.push(format!("{section}.tokenizer {} does not exist", t.display()));
        }
    }
}

/// Turns a document's bytes into chunk records (no I/O): the part `distillery extract` runs too.
pub fn chunk_document(
    doc: &Document,
    bytes: &[u8],
    counter: &dyn TokenCounter,
    cfg: &ChunkConfig,
) -> Result<Vec<Chunk>, ExtractError> {
    let media = MediaType::from_mime(&doc.media_type);
    let extracted = distillery_docs::extract(media, bytes)?;
    let pieces = chunk(&extracted, counter, cfg);
    if pieces.is_empty() {
        return Err(ExtractError::Empty);
    }
    let ids: Vec<String> =
        pieces.iter().enumerate().map(|(i, p)| ids::hash_parts(&["chunk", &doc.id, &i.to_string(), &p.text])).collect();
    let groups = contexts(&pieces, cfg);
    let total = pieces.len() as i32;
    Ok(pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let members = &groups[i];
            let member_ids: Vec<String> = members.iter().map(|&m| ids[m].clone()).collect();
            let refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
            Chunk {
                id: ids[i].clone(),
                document_id: doc.id.clone(),
                source: doc.source.clone(),
                ordinal: i as i32,
                total,
                text: p.text.clone(),
                heading_path: p.heading_path.clone(),
                page_start: p.page_start.map(|x| x as i32),
                page_end: p.page_end.map(|x| x as i32),
                char_start: p.char_start as i64,
                char_end: p.char_end as i64,
                token_count: p.tokens as i32,
                context_id: ids::hash_parts(&refs),
                context_chunk_ids: member_ids,
                context_text: context_text(&pieces, members),
            }
        })
        .collect())
}

/// The extract stage.
#[derive(Debug)]
pub struct Extract {
    pub stores: Stores,
    pub counter: Arc<dyn TokenCounter>,
    pub cfg: ExtractConfig,
}

impl Stage for Extract {
    fn name(&self) -> &'static str {
        "extract"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Documents]
    }

    fn default_concurrency(&self) -> usize {
        // CPU-bound: the blocking pool does the work; a few at once keep it busy.
        4
    }

    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Document(doc)) = input.as_record() else {
            return Err(StageError::dead_letter("unexpected_input", "extract consumes documents"));
        };
        let store = self.stores.get(doc.source.store).map_err(|e| StageError::dead_letter("store", e))?;
        let bytes = match store.get(&doc.source.bucket, &doc.source.key, self.cfg.max_object_bytes).await {
            Ok((_, b)) => b,
            Err(StoreError::TooLarge { size, limit }) => {
                return Err(StageError::reject(
                    RejectReason::TooLarge,
                    format!("{size} bytes is over the {limit}-byte limit"),
                ));
            }
            Err(StoreError::NotFound(k)) => {
                return Err(StageError::reject(RejectReason::Other, format!("object {k} no longer exists")));
            }
            Err(e) if e.is_retryable() => return Err(StageError::retry("store_read", e.to_string())),
            Err(e) => return Err(StageError::dead_letter("store_read", e.to_string())),
        };
        if ids::hash_bytes(&bytes) != doc.id {
            // The object changed since ingest; its new content arrives with its own notification.
            return Err(StageError::reject(RejectReason::Other, "object content changed since it was ingested"));
        }
        let (doc2, counter, chunking) = (doc.clone(), self.counter.clone(), self.cfg.chunking.clone());
        let work = tokio::task::spawn_blocking(move || chunk_document(&doc2, &bytes, counter.as_ref(), &chunking));
        let chunks = match tokio::time::timeout(Duration::from_secs(self.cfg.timeout_secs), work).await {
            Err(_) => {
                return Err(StageError::reject(
                    RejectReason::ExtractionTimeout,
                    format!("over {} s", self.cfg.timeout_secs),
                ));
            }
            Ok(Err(join)) => {
                return Err(StageError::reject(RejectReason::Corrupt, format!("extractor crashed: {join}")));
            }
            Ok(Ok(Err(e))) => return Err(StageError::reject(e.reason(), e.to_string())),
            Ok(Ok(Ok(chunks))) => chunks,
        };
        tracing::info!(document = %doc.id, uri = %doc.source.uri(), chunks = chunks.len(), "extracted");
        Ok(chunks.into_iter().map(Record::Chunk).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_docs::ApproxCounter;

    #[test]
    fn chunks_carry_ids_spans_and_contexts() {
        let md = b"# Leave\n\nEmployees get 25 days.\n\nCarry-over is capped at 5 days.\n\n# Pay\n\nSalaries are paid monthly.";
        let mut doc = fixtures::document();
        doc.media_type = "text/markdown".into();
        let chunks =
            chunk_document(&doc, md, &ApproxCounter, &ChunkConfig { min_tokens: 0, ..Default::default() }).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].heading_path, vec!["Leave"]);
        assert_eq!(chunks[0].text, "Employees get 25 days.\n\nCarry-over is capped at 5 days.");
        assert_eq!(chunks[1].context_chunk_ids, vec![chunks[1].id.clone()]);
        assert!(chunks[0].context_text.contains("## Leave"));
        assert!(chunks.iter().all(|c| c.total == 2 && c.document_id == doc.id));
        // Same input, same ids.
        let again =
            chunk_document(&doc, md, &ApproxCounter, &ChunkConfig { min_tokens: 0, ..Default::default() }).unwrap();
        assert_eq!(chunks, again);
    }

    #[test]
    fn empty_and_unsupported_documents_are_refused() {
        let mut doc = fixtures::document();
        doc.media_type = "text/plain".into();
        assert_eq!(
            chunk_document(&doc, b"   \n\n ", &ApproxCounter, &ChunkConfig::default()),
            Err(ExtractError::Empty)
        );
        doc.media_type = "image/png".into();
        assert!(matches!(
            chunk_document(&doc, b"\x89PNG", &ApproxCounter, &ChunkConfig::default()),
            Err(ExtractError::Unsupported(_))
        ));
    }
}
