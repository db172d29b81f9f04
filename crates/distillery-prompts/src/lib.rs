//! What the LLM stages (generate, judge) share: the tasks and their templates and output schemas, and the
//! one path of an LLM call (request, call with token accounting, seed, transcript, call record), and the
//! gathering of records that one call serves.

pub mod gather;
pub mod llm_call;
pub mod task;
pub mod templates;

pub use gather::{Gather, Member};
pub use llm_call::{LlmCaller, seed_of, transcript};
pub use task::Task;
pub use templates::Templates;
