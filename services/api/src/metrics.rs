//! The tables API's metrics: requests by outcome and schema source, rows and bytes written by format.

use distillery_core::Metrics;
use distillery_core::prometheus::IntCounterVec;

/// The API's families, registered in a process's [`Metrics`] registry.
#[derive(Debug, Clone)]
pub struct TabularMetrics {
    /// Synthetic-table requests by outcome (ok, invalid, design_failed, llm_error, aborted) and schema
    /// source (given, cache, llm).
    pub requests: IntCounterVec,
    /// Synthetic-table rows written, by format.
    pub rows: IntCounterVec,
    /// Synthetic-table bytes written, by format.
    pub bytes: IntCounterVec,
}

impl TabularMetrics {
    pub fn of(m: &Metrics) -> TabularMetrics {
        TabularMetrics {
            requests: m.counter_vec(
                "tabular_requests_total",
                "Synthetic-table requests by outcome and schema source",
                &["outcome", "schema"],
            ),
            rows: m.counter_vec("tabular_rows_total", "Synthetic-table rows written", &["format"]),
            bytes: m.counter_vec("tabular_bytes_total", "Synthetic-table bytes written", &["format"]),
        }
    }
}
