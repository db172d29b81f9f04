#![recursion_limit = "512"]
//! The API service: the dataset API (documents and their progress, records, totals, uploads, exports;
//! bearer-protected), synthetic tables over HTTP (`POST /v1/tabular`, `POST /v1/tabular/schema`), the
//! ops routes and the OpenAPI document, and the `distillery tabular` command that shares its code.
//!
//! Files, bottom up: `http` (errors, routes, bearer), `dataset` (configuration, the `Uploads` and
//! `Exporter` traits and their implementations), `openapi`, `tabular`, `dataset_api`, `review` (the review
//! page over the dataset routes' state), `service` (the router and the process).

pub mod dataset;
pub mod dataset_api;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod review;
pub mod service;
pub mod tabular;
