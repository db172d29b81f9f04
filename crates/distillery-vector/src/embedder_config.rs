//! The sentence encoder's configuration and the encoder it builds: all-MiniLM-L6-v2 in process, or an
//! OpenAI-compatible `/v1/embeddings` server. Shared by the stages that compare texts by meaning (dedup, and
//! generate's check for repeated questions).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use distillery_core::config::Secret;
use serde::{Deserialize, Serialize};

use crate::{Embedder, HttpEmbedder, MiniLm};

/// The sentence encoder used for comparing texts by meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// A sentence-transformers folder (config.json, tokenizer.json, model.safetensors) run in-process.
    /// Unset: `$DISTILLERY_EMBED_MODEL_DIR`, else `.cache/models/all-MiniLM-L6-v2` in the working
    /// directory or beside the executable, else `~/.cache/distillery/models/all-MiniLM-L6-v2`.
    pub model_dir: Option<PathBuf>,
    /// Use an OpenAI-compatible /v1/embeddings server instead (base URL ending in /v1).
    pub url: Option<String>,
    /// Model name for the embeddings server.
    pub model: String,
    /// Vector size of the embeddings server's model.
    pub dim: usize,
    /// API key of the embeddings server (secret).
    pub api_key: Secret,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            model_dir: None,
            url: None,
            model: "all-MiniLM-L6-v2".into(),
            dim: 384,
            api_key: Secret::default(),
        }
    }
}

/// Folder name of the default embedding model.
pub const EMBED_MODEL: &str = "all-MiniLM-L6-v2";

/// Candidate folders of the default embedding model, in search order.
pub fn embed_model_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(dir) = std::env::var_os("DISTILLERY_EMBED_MODEL_DIR") {
        c.push(PathBuf::from(dir));
    }
    if let Ok(cwd) = std::env::current_dir() {
        c.push(cwd.join(".cache/models").join(EMBED_MODEL));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            c.push(dir.join(".cache/models").join(EMBED_MODEL));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        c.push(Path::new(&home).join(".cache/distillery/models").join(EMBED_MODEL));
    }
    c
}

/// The sentence encoder.
pub async fn embedder(cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>, String> {
    if let Some(url) = &cfg.url {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
        return Ok(Arc::new(HttpEmbedder {
            base_url: url.clone(),
            model: cfg.model.clone(),
            api_key: (!cfg.api_key.is_empty()).then(|| cfg.api_key.expose().to_string()),
            dim: cfg.dim,
            http,
        }));
    }
    let dir = match &cfg.model_dir {
        Some(d) => d.clone(),
        None => embed_model_candidates().into_iter().find(|d| d.join("model.safetensors").exists()).ok_or_else(|| {
            format!(
                "no embedding model found (looked in {}); run scripts/test-servers start (it installs it), or set embedder.model_dir or embedder.url",
                embed_model_candidates().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?,
    };
    let m = tokio::task::spawn_blocking(move || {
        MiniLm::load(&dir).map_err(|e| format!("loading embedding model {}: {e}", dir.display()))
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(Arc::new(m))
}
