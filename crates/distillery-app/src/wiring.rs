//! Building the pieces stages need from configuration: stores, LLM clients, embedders, indexes, outputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use distillery_core::Metrics;
use distillery_docs::{ApproxCounter, HfTokenizer, TokenCounter};
use distillery_llm::{LlmClient, LlmConfig, ProviderKind};
use distillery_store::{ObjectStore, S3Config, S3Store};
use distillery_vector::{Embedder, HttpEmbedder, MemoryIndex, MiniLm, QdrantIndex, VectorIndex};

use crate::config::{EmbedderConfig, VectorConfig};

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
pub async fn embedder(cfg: &EmbedderConfig) -> anyhow::Result<Arc<dyn Embedder>> {
    if let Some(url) = &cfg.url {
        return Ok(Arc::new(HttpEmbedder {
            base_url: url.clone(),
            model: cfg.model.clone(),
            api_key: (!cfg.api_key.is_empty()).then(|| cfg.api_key.expose().to_string()),
            dim: cfg.dim,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
        }));
    }
    let dir = match &cfg.model_dir {
        Some(d) => d.clone(),
        None => embed_model_candidates()
            .into_iter()
            .find(|d| d.join("model.safetensors").exists())
            .with_context(|| {
                format!(
                    "no embedding model found (looked in {}); run scripts/models, or set embedder.model_dir or embedder.url",
                    embed_model_candidates().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            })?,
    };
    let m = tokio::task::spawn_blocking(move || {
        MiniLm::load(&dir).with_context(|| format!("loading embedding model {}", dir.display()))
    })
    .await??;
    Ok(Arc::new(m))
}

/// The vector index.
pub async fn index(cfg: &VectorConfig, dim: usize) -> anyhow::Result<Arc<dyn VectorIndex>> {
    Ok(match &cfg.qdrant_url {
        Some(url) => {
            let key = (!cfg.qdrant_api_key.is_empty()).then(|| cfg.qdrant_api_key.expose().to_string());
            Arc::new(
                QdrantIndex::connect(url, key, &cfg.collection, dim)
                    .await
                    .with_context(|| format!("connecting to Qdrant at {url}"))?,
            )
        }
        None => Arc::new(MemoryIndex::new(dim)),
    })
}

/// The token counter for chunk budgets: a `tokenizer.json` or a `.gguf` model, else ~4 chars per token.
pub fn token_counter(tokenizer: Option<&Path>) -> anyhow::Result<Arc<dyn TokenCounter>> {
    Ok(match tokenizer {
        Some(p) => Arc::new(distillery_docs::tokens::load_tokenizer(p).map_err(anyhow::Error::msg)?),
        None => Arc::new(ApproxCounter),
    })
}

/// The tokenizer of the model an OpenAI-compatible llama.cpp server is serving, when its model file is on
/// this machine (the local default): chunk budgets then count exactly what the model counts.
pub async fn served_model_tokenizer(cfg: &LlmConfig) -> Option<HfTokenizer> {
    if cfg.provider != ProviderKind::Openai {
        return None;
    }
    let base = cfg.base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    let props: serde_json::Value = reqwest::Client::new()
        .get(format!("{root}/props"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let path = PathBuf::from(props.get("model_path")?.as_str()?);
    if !path.exists() {
        return None;
    }
    tokio::task::spawn_blocking(move || distillery_docs::tokens::tokenizer_from_gguf(&path).ok()).await.ok().flatten()
}

/// An S3 client.
pub async fn s3(cfg: &S3Config) -> Arc<dyn ObjectStore> {
    Arc::new(S3Store::connect(cfg).await)
}

/// Fails fast when an OpenAI-compatible server does not answer.
pub async fn check_llm(cfg: &LlmConfig) -> anyhow::Result<()> {
    if cfg.provider != ProviderKind::Openai && cfg.provider != ProviderKind::Ollama {
        return Ok(());
    }
    let base = cfg.base_url.trim_end_matches('/');
    let url = match cfg.provider {
        ProviderKind::Ollama => format!("{base}/api/tags"),
        _ => format!("{base}/models"),
    };
    let mut req = reqwest::Client::new().get(&url).timeout(Duration::from_secs(10));
    if !cfg.api_key.is_empty() {
        req = req.bearer_auth(cfg.api_key.expose());
    }
    match req.send().await {
        Ok(r) if r.status().is_success() || r.status().as_u16() == 401 => Ok(()),
        Ok(r) => bail!("the LLM server at {base} answered {} to {url}", r.status()),
        Err(e) => bail!(
            "the LLM server at {base} is not reachable ({e}); start one with `scripts/local-llm start` or pass --llm-base-url"
        ),
    }
}

/// Generator and judge clients; on the same server they share its parallel slots.
pub async fn llm_clients(
    generator: &LlmConfig,
    judge: &LlmConfig,
    metrics: Arc<Metrics>,
) -> (Arc<LlmClient>, Arc<LlmClient>) {
    let g = LlmClient::connect(generator.clone(), "generator", metrics.clone()).await;
    let j = if judge.base_url == generator.base_url && judge.provider == generator.provider {
        LlmClient::sharing(&g, judge.clone(), "judge")
    } else {
        LlmClient::connect(judge.clone(), "judge", metrics).await
    };
    (Arc::new(g), Arc::new(j))
}
