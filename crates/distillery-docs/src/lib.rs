//! From document bytes to chunks with context: media detection, extraction into structural blocks,
//! token counting and structure-aware chunking.

pub mod blocks;
pub mod chunk;
pub mod docx;
pub mod html;
pub mod markdown;
pub mod media;
pub mod names;
pub mod pdf;
pub mod pii;
pub mod text;
pub mod tokens;

use distillery_core::RejectReason;

pub use blocks::{Block, BlockKind, Extracted};
pub use chunk::{ChunkConfig, Piece, chunk, context_members, context_text, contexts};
pub use media::MediaType;
pub use tokens::{ApproxCounter, HfTokenizer, TokenCounter};

/// Why a document yields no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ExtractError {
    #[error("unsupported file type {0}")]
    Unsupported(String),
    #[error("the file is corrupt: {0}")]
    Corrupt(String),
    #[error("the file is encrypted")]
    Encrypted,
    #[error("the document has no text")]
    Empty,
    #[error("the PDF has no text layer (scanned?)")]
    NoTextLayer,
    #[error("extraction took longer than {0} s")]
    Timeout(u64),
    #[error("the document exceeds a limit: {0}")]
    TooLarge(String),
}

impl ExtractError {
    pub fn reason(&self) -> RejectReason {
        match self {
            ExtractError::Unsupported(_) => RejectReason::UnsupportedType,
            ExtractError::Corrupt(_) => RejectReason::Corrupt,
            ExtractError::Encrypted => RejectReason::Encrypted,
            ExtractError::Empty => RejectReason::EmptyDocument,
            ExtractError::NoTextLayer => RejectReason::NoTextLayer,
            ExtractError::Timeout(_) => RejectReason::ExtractionTimeout,
            ExtractError::TooLarge(_) => RejectReason::TooLarge,
        }
    }
}

/// Extracts structural text from a document's bytes.
pub fn extract(media: MediaType, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let doc = match media {
        MediaType::Text => text::extract(bytes),
        MediaType::Markdown => markdown::extract(bytes),
        MediaType::Html => html::extract(bytes)?,
        MediaType::Pdf => pdf::extract(bytes)?,
        MediaType::Docx => docx::extract(bytes)?,
        MediaType::Unsupported => return Err(ExtractError::Unsupported("unrecognised file type".into())),
    };
    if doc.text_chars() == 0 {
        return Err(ExtractError::Empty);
    }
    Ok(doc)
}

/// [`extract`], with a parser panic turned into `Corrupt` instead of unwinding into the caller.
pub fn extract_guarded(media: MediaType, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| extract(media, bytes))) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ExtractError::Corrupt(format!("the parser crashed: {msg}")))
        }
    }
}
