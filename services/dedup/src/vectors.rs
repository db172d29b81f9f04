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
    /// Without a Qdrant server: a folder the index is kept in, by Qdrant's engine in this process
    /// (qdrant-edge), so accepted examples outlive the process (the embedded run keeps it in its output
    /// folder, and a later run there compares against every earlier one). Unset: process memory.
    pub path: Option<std::path::PathBuf>,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig {
            qdrant_url: None,
            qdrant_api_key: Secret::default(),
            collection: "distillery-accepted".into(),
            path: None,
        }
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
        None => match &cfg.path {
            Some(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    distillery_vector::EdgeIndex::open(&path, dim)
                        .map_err(|e| format!("opening the vector index in {}: {e}", path.display()))
                })
                .await
                .map_err(|e| e.to_string())??;
                Arc::new(opened)
            }
            None => Arc::new(MemoryIndex::new(dim)),
        },
    })
}
