//! The vector index near-duplicates are found in, built from configuration (the sentence encoder is
//! `distillery_vector::embedder_config`, re-exported here).

use std::sync::Arc;

use distillery_core::config::Secret;
use distillery_vector::{MemoryIndex, QdrantIndex, VectorIndex};
use serde::{Deserialize, Serialize};

/// The encoder's configuration lives with the encoder (generate uses it too).
pub use distillery_vector::embedder_config::{EMBED_MODEL, EmbedderConfig, embed_model_candidates, embedder};

/// Where near-duplicate vectors live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// Qdrant gRPC URL (e.g. http://qdrant:6334); unset keeps vectors in process memory.
    pub qdrant_url: Option<String>,
    /// Qdrant API key (secret).
    pub qdrant_api_key: Secret,
    /// Collection name.
    pub collection: String,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig { qdrant_url: None, qdrant_api_key: Secret::default(), collection: "distillery-accepted".into() }
    }
}

/// The vector index.
pub async fn index(cfg: &VectorConfig, dim: usize) -> Result<Arc<dyn VectorIndex>, String> {
    Ok(match &cfg.qdrant_url {
        Some(url) => {
            let key = (!cfg.qdrant_api_key.is_empty()).then(|| cfg.qdrant_api_key.expose().to_string());
            Arc::new(
                QdrantIndex::connect(url, key, &cfg.collection, dim)
                    .await
                    .map_err(|e| format!("connecting to Qdrant at {url}: {e}"))?,
            )
        }
        None => Arc::new(MemoryIndex::new(dim)),
    })
}
