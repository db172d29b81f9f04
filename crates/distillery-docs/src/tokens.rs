//! Token counting for chunk budgets: a real tokenizer (Hugging Face `tokenizer.json`) that matches the
//! generation model, or a character estimate when none is configured.

use std::fmt::Debug;
use std::path::Path;

/// Counts tokens of text.
pub trait TokenCounter: Send + Sync + Debug {
    fn count(&self, text: &str) -> usize;
    /// What is counting (for provenance and logs).
    fn name(&self) -> String;
}

/// A Hugging Face tokenizer.
pub struct HfTokenizer {
    tokenizer: tokenizers::Tokenizer,
    name: String,
}

impl Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HfTokenizer({})", self.name)
    }
}

impl HfTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| format!("tokenizer {}: {e}", path.display()))?;
        // Counting must not pad or truncate.
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        Ok(HfTokenizer { tokenizer, name: format!("hf:{}", path.display()) })
    }

    /// Wraps a tokenizer built elsewhere.
    pub fn new(mut tokenizer: tokenizers::Tokenizer, name: impl Into<String>) -> Self {
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        HfTokenizer { tokenizer, name: name.into() }
    }
}

impl TokenCounter for HfTokenizer {
    fn count(&self, text: &str) -> usize {
        match self.tokenizer.encode_fast(text, false) {
            Ok(enc) => enc.len(),
            Err(_) => ApproxCounter.count(text),
        }
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// About four characters per token (English BPE average); used only when no tokenizer is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproxCounter;

impl TokenCounter for ApproxCounter {
    fn count(&self, text: &str) -> usize {
        text.chars().count().div_ceil(4)
    }
    fn name(&self) -> String {
        "approx:chars/4".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approx_counts_chars_over_four() {
        assert_eq!(ApproxCounter.count(""), 0);
        assert_eq!(ApproxCounter.count("abcd"), 1);
        assert_eq!(ApproxCounter.count("abcde"), 2);
        assert_eq!(ApproxCounter.count("ééééé"), 2);
    }
}
