//! The LLM client shared by every stage that calls a model.

pub mod client;
pub mod config;
pub mod error;
pub mod json;
pub mod providers;
pub mod types;

pub use client::{DEFAULT_CONCURRENCY, LlmClient, Structured};
pub use config::{LlmConfig, Price, ProviderKind};
pub use error::LlmError;
pub use types::{ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, OutputSchema, Usage};
