//! The `distillery` command: the one-process pipeline composed from every stage's component, every stage as
//! a Kafka service, extraction, exports, topics and synthetic tables.
//!
//! Files: `cli` parses and dispatches; `composition` wires the embedded run; `summary` is what a run did;
//! `config` is the run's configuration; `service` starts one stage as a Kafka service; `commands` holds the
//! smaller commands.

pub mod cli;
pub mod commands;
pub mod composition;
pub mod config;
pub mod progress;
pub mod service;
pub mod summary;
