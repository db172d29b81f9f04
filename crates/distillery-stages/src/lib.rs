//! The stages of the pipeline.

pub mod claims;
pub mod dedup;
pub mod events;
pub mod extract;
pub mod generate;
pub mod grounding;
pub mod ingest;
pub mod judge;
pub mod prompts;
pub mod quality;
pub mod sink;
pub mod stores;
pub mod usage;
