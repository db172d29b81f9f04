//! Embeddings, lexical features and vector indexes for near-duplicate filtering.

pub mod diversity;
pub mod embed;
pub mod embedder_config;
pub mod index;
pub mod lexical;

pub use diversity::Diversity;
pub use embed::{EmbedError, Embedder, HttpEmbedder, MiniLm, dot, normalize};
pub use embedder_config::EmbedderConfig;
pub use index::{Hit, IndexError, MemoryIndex, Point, QdrantIndex, Scope, Stored, VectorIndex, point_uuid, rank};

pub mod conformance;
pub mod edge;
pub use edge::EdgeIndex;
