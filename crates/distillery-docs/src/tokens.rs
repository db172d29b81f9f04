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

/// The pre-tokenizer regex of Qwen2-family vocabularies (as llama.cpp applies it): single digits,
/// letters with an optional leading non-letter, punctuation runs, newlines and spaces.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Builds the tokenizer of a GGUF model from its metadata (BPE vocabularies: `tokenizer.ggml.model` =
/// `gpt2`), so that chunk budgets count exactly what the served model counts.
pub fn tokenizer_from_gguf(path: &Path) -> Result<HfTokenizer, String> {
    use candle_core::quantized::gguf_file::Content;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let content = Content::read(&mut f).map_err(|e| format!("{}: not a GGUF model: {e}", path.display()))?;
    let meta = |k: &str| content.metadata.get(k).ok_or_else(|| format!("{}: no {k} in the model", path.display()));
    let model = meta("tokenizer.ggml.model")?.to_string().map_err(|e| e.to_string())?.clone();
    if model != "gpt2" {
        return Err(format!(
            "{}: tokenizer type {model:?} is not supported (only BPE `gpt2` vocabularies)",
            path.display()
        ));
    }
    let tokens = meta("tokenizer.ggml.tokens")?.to_vec().map_err(|e| e.to_string())?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| t.to_string().map(|s| (s.clone(), i as u32)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let merges: Vec<(String, String)> = meta("tokenizer.ggml.merges")?
        .to_vec()
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|m| m.to_string().ok())
        .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| e.to_string())?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    let pre = content.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    let byte_level = ByteLevel::default().add_prefix_space(false).trim_offsets(false);
    if pre.starts_with("qwen") || pre == "deepseek-r1-qwen" {
        let split = Split::new(SplitPattern::Regex(QWEN2_SPLIT.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| e.to_string())?;
        let byte_level = byte_level.use_regex(false);
        tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Split(split),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ]))));
    } else {
        tokenizer.with_pre_tokenizer(Some(byte_level));
    }
    let name = content
        .metadata
        .get("general.name")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| path.display().to_string());
    Ok(HfTokenizer::new(tokenizer, format!("gguf:{name}")))
}

/// A tokenizer from a `tokenizer.json` or from a `.gguf` model file.
pub fn load_tokenizer(path: &Path) -> Result<HfTokenizer, String> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        tokenizer_from_gguf(path)
    } else {
        HfTokenizer::from_file(path)
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
