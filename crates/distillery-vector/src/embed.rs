//! Sentence embeddings: all-MiniLM-L6-v2 run in-process on candle (mean pooling over the attention mask,
//! L2-normalised, as sentence-transformers does), or any OpenAI-compatible `/v1/embeddings` server.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::{Value, json};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model: {0}")]
    Model(String),
    #[error("embedding server: {0}")]
    Server(String),
}

/// Turns texts into unit-length vectors.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    fn dim(&self) -> usize;
    fn name(&self) -> String;
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;
}

struct MiniLmInner {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    dim: usize,
    max_len: usize,
    name: String,
}

/// A BERT sentence encoder (all-MiniLM-L6-v2 by default) on the CPU.
#[derive(Clone)]
pub struct MiniLm(Arc<MiniLmInner>);

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MiniLm({})", self.0.name)
    }
}

fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(e.to_string())
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from a sentence-transformers folder.
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        let config: Config =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).map_err(model_err)?).map_err(model_err)?;
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(model_err)?;
        // The shipped tokenizer pads to 128; batches are padded here, and pooling uses the mask.
        tokenizer.with_padding(None);
        let max_len = 256usize;
        let _ =
            tokenizer.with_truncation(Some(tokenizers::TruncationParams { max_length: max_len, ..Default::default() }));
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(model_err)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(model_err)?;
        let model = BertModel::load(vb, &config).map_err(model_err)?;
        let dim = config.hidden_size;
        Ok(MiniLm(Arc::new(MiniLmInner { model, tokenizer, dim, max_len, name: format!("minilm:{}", dir.display()) })))
    }

    /// Embeds synchronously (call from a blocking context).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &self.0;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = inner.tokenizer.encode_batch(texts.to_vec(), true).map_err(model_err)?;
        let len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(1).clamp(1, inner.max_len);
        let n = encodings.len();
        let mut ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (i, e) in encodings.iter().enumerate() {
            for (j, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).take(len).enumerate() {
                ids[i * len + j] = id;
                mask[i * len + j] = m;
            }
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), &dev).map_err(model_err)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev).map_err(model_err)?;
        let types = ids.zeros_like().map_err(model_err)?;
        let hidden = inner.model.forward(&ids, &types, Some(&mask)).map_err(model_err)?; // (n, len, dim)
        let maskf = mask.to_dtype(DType::F32).map_err(model_err)?.unsqueeze(2).map_err(model_err)?;
        let summed = hidden.broadcast_mul(&maskf).map_err(model_err)?.sum(1).map_err(model_err)?;
        let counts = maskf.sum(1).map_err(model_err)?.clamp(1e-9, f64::MAX).map_err(model_err)?;
        let mean = summed.broadcast_div(&counts).map_err(model_err)?;
        let norm = mean
            .sqr()
            .map_err(model_err)?
            .sum_keepdim(1)
            .map_err(model_err)?
            .sqrt()
            .map_err(model_err)?
            .clamp(1e-12, f64::MAX)
            .map_err(model_err)?;
        let unit = mean.broadcast_div(&norm).map_err(model_err)?;
        unit.to_vec2::<f32>().map_err(model_err)
    }
}

#[async_trait]
impl Embedder for MiniLm {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn name(&self) -> String {
        self.0.name.clone()
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.embed_blocking(&texts)).await.map_err(model_err)?
    }
}

/// An OpenAI-compatible `/v1/embeddings` server (llama.cpp `--embeddings`, vLLM, OpenAI, ...).
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub dim: usize,
    pub http: reqwest::Client,
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn name(&self) -> String {
        format!("http:{}:{}", self.base_url, self.model)
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = format!("{}/embeddings", self.base_url.trim_end_matches('/'));
        let mut req = self.http.post(url).json(&json!({"model": self.model, "input": texts}));
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| EmbedError::Server(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(EmbedError::Server(format!("status {}", resp.status())));
        }
        let body: Value = resp.json().await.map_err(|e| EmbedError::Server(e.to_string()))?;
        let mut data: Vec<(usize, Vec<f32>)> = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| EmbedError::Server("no data array".into()))?
            .iter()
            .map(|d| {
                let idx = d.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let v: Vec<f32> = d
                    .get("embedding")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_f64).map(|x| x as f32).collect())
                    .unwrap_or_default();
                (idx, normalize(v))
            })
            .collect();
        data.sort_by_key(|(i, _)| *i);
        Ok(data.into_iter().map(|(_, v)| v).collect())
    }
}

/// Scales a vector to unit length.
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x /= n;
        }
    }
    v
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
