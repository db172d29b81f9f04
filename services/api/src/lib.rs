//! The API service: synthetic tables over HTTP (`POST /v1/tabular`, `POST /v1/tabular/schema`) with the ops
//! endpoint, and the `distillery tabular` command that shares its code.

pub mod metrics;
pub mod service;
pub mod tabular;
