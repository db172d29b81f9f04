//! The LLM client shared by every stage that calls a model.

pub mod budget;
pub mod client;
pub mod clients;
pub mod config;
pub mod error;
pub mod json;
pub mod ledger;
pub mod metrics;
pub mod providers;
pub mod role;
pub mod types;

pub use budget::{Alone, Budget, BudgetGroup, BudgetShare, BudgetUsage, Limits, Share};
pub use client::{DEFAULT_CONCURRENCY, LlmClient, Structured};
pub use clients::{LlmClients, check_server};
pub use config::{LlmConfig, Price, ProviderKind};
pub use error::LlmError;
pub use ledger::{DocUsage, Ledger};
pub use metrics::LlmMetrics;
pub use role::LlmRole;
pub use types::{ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, OutputSchema, Usage};
