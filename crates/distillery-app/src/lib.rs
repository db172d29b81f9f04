//! Wiring of Distillery: configuration per service, the one-process run, the Kafka services and the CLI.

pub mod cli;
pub mod config;
pub mod export;
pub mod progress;
pub mod run;
pub mod service;
pub mod tabular;
pub mod wiring;
