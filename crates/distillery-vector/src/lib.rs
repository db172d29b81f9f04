//! Embeddings and vector indexes for near-duplicate filtering.

pub mod embed;
pub mod index;

pub use embed::{EmbedError, Embedder, HttpEmbedder, MiniLm, dot, normalize};
pub use index::{Hit, IndexError, MemoryIndex, QdrantIndex, VectorIndex};
