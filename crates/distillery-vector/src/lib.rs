//! Embeddings and vector indexes for near-duplicate filtering.

pub mod embed;
pub mod index;

pub use embed::{dot, normalize, EmbedError, Embedder, HttpEmbedder, MiniLm};
pub use index::{Hit, IndexError, MemoryIndex, QdrantIndex, VectorIndex};
