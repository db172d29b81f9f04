//! Synthetic tables from a plain-language description.
//!
//! The flow has two halves that never mix:
//!
//! 1. **Design** ([`design()`]): one LLM call turns the description into a [`TableSchema`], a list of
//!    columns each with a generator kind and its parameters. The model answers in a deliberately flat JSON
//!    form ([`DesignTable`], constrained by [`llm_json_schema`]) that is converted and then validated
//!    strictly ([`TableSchema::validate`]); an invalid schema gets one repair round trip that quotes every
//!    problem, then a clear [`TabularError::DesignFailed`]. Schemas are cached by normalised description and
//!    model ([`SchemaCache`]), so the same request never costs a second call. A caller may also pass or edit
//!    a schema directly ([`parse_schema`]) and skip the model.
//! 2. **Generation** ([`RowGenerator`], [`write_table`], [`stream_table`]): no model involved. Values come
//!    from the `fake` crate's locale tables, numeric distributions, weighted categories, foreign keys over
//!    earlier rows and `evalexpr` expressions over earlier columns of the row, all drawn from one seeded
//!    ChaCha stream per block of rows: the same schema, seed and row count give the same bytes, whatever the
//!    number of threads. Writers stream CSV, JSONL or Parquet in blocks; memory stays bounded for any row
//!    count.
//!
//! ```no_run
//! use distillery_tabular::{Format, TableSchema, write_table};
//! let schema: TableSchema = distillery_tabular::parse_schema(r#"{
//!   "name": "orders", "locale": "en",
//!   "columns": [
//!     {"name": "order_id", "kind": "id"},
//!     {"name": "customer", "kind": "full_name"},
//!     {"name": "quantity", "kind": "integer", "min": 1, "max": 10},
//!     {"name": "unit_price", "kind": "float", "min": 1, "max": 500,
//!      "distribution": {"type": "lognormal", "mu": 3.5, "sigma": 0.8}, "decimals": 2},
//!     {"name": "total", "kind": "expression", "expr": "quantity * unit_price", "type": "float", "decimals": 2}
//!   ]}"#).unwrap();
//! let stats = write_table(&schema, 1_000_000, 42, Format::Csv, std::io::stdout().lock()).unwrap();
//! eprintln!("{} rows, {} bytes", stats.rows, stats.bytes);
//! ```

// Layering, bottom up. A module uses only modules listed above it (its `use crate::` imports, plus the
// `TableSchema::validate`/`check` methods that `validate` defines), tests included, so there is no cycle:
//   error     nothing
//   schema    nothing (the types and their serde, plain date and name helpers, the one list of kinds)
//   locale    schema
//   cells     locale, schema
//   expr      schema
//   engine    cells, expr, locale, schema
//   validate  engine, error, expr, schema
//   generate  engine, error, schema, validate (tests: cells)
//   flat      schema (tests: validate)
//   parse     error, flat, schema, validate
//   design    error, flat, schema, validate
//   write     cells, engine, error, generate, schema
//   stream    error, generate, schema, write

mod cells;
pub mod design;
mod engine;
pub mod error;
mod expr;
pub mod flat;
pub mod generate;
mod locale;
mod parse;
pub mod schema;
pub mod stream;
mod validate;
pub mod write;

pub use design::{
    DesignOptions, Designed, SchemaCache, column_tolerance, design, listed_fields, normalize_description,
    requested_columns, requested_rows,
};
pub use error::TabularError;
pub use flat::{DesignColumn, DesignTable, llm_json_schema, llm_json_schema_for};
pub use generate::{Row, RowGenerator, Value};
pub use parse::parse_schema;
pub use schema::{Column, Distribution, ExprType, Generator, Locale, MAX_COLUMNS, TableSchema, ValueType};
pub use stream::{TableStream, stream_table, stream_table_with};
pub use write::{BLOCK_ROWS, Format, WriteOptions, WriteStats, write_table, write_table_with};
