//! Streaming writers: CSV, JSON Lines and Parquet, generated block by block on worker threads.
//!
//! Worker `w` of `T` generates and encodes blocks `w, w + T, w + 2T, ...` and hands each one over a bounded
//! channel of its own; the writing thread takes block `k` from worker `k mod T`, so blocks are written in
//! order without a reordering buffer, and at most `T × 3` encoded blocks exist at any time: memory is bounded
//! whatever the row count. Each block's content depends only on (schema, seed, block index), so the bytes are
//! the same for any number of threads.
//!
//! - CSV: a header row, RFC 4180 quoting (only fields with a comma, quote or line break are quoted, quotes
//!   doubled), `\n` line ends, nulls as empty fields, booleans `true`/`false`, dates `YYYY-MM-DD`,
//!   date-times `YYYY-MM-DDTHH:MM:SS`, floats with their `decimals` or in shortest exact form.
//! - JSONL: one object per line with the columns in schema order; nulls as `null`.
//! - Parquet: one row group per [`WriteOptions::row_group_blocks`] blocks, Snappy-compressed, typed nullable
//!   columns (Int64, Float64, Boolean, Utf8, Date32, Timestamp(µs)); the encoded row group is passed on to
//!   the output as soon as it is complete.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::cells;
pub use crate::engine::BLOCK_ROWS;
use crate::engine::{Block, ColValues, Compiled, block_count, rows_in_block};
use crate::error::TabularError;
use crate::generate::RowGenerator;
use crate::schema::{TableSchema, ValueType};

/// Encoded blocks each worker may have queued.
const QUEUE_PER_WORKER: usize = 2;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON Lines: one object per row.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Csv, Format::Jsonl, Format::Parquet];

    /// Lowercase name (`csv`, `jsonl`, `parquet`), also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// The file extension (without the dot).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = TabularError;

    /// `csv`, `jsonl` (also `ndjson`, `json`) or `parquet` (also `pq`), any case.
    fn from_str(s: &str) -> Result<Format, TabularError> {
        match s.trim().to_ascii_lowercase().trim_start_matches('.') {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" | "jsonlines" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            other => Err(TabularError::InvalidRequest(format!("unknown format {other:?} (use csv, jsonl or parquet)"))),
        }
    }
}

/// How a table is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Generation threads; 0 = one per available core. The output does not depend on it.
    pub threads: usize,
    /// Blocks of [`BLOCK_ROWS`] rows per Parquet row group.
    pub row_group_blocks: usize,
    /// Write the CSV header row.
    pub csv_header: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { threads: 0, row_group_blocks: 16, csv_header: true }
    }
}

impl WriteOptions {
    /// The thread count to use (resolving 0 to the available cores).
    pub fn effective_threads(&self) -> usize {
        if self.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { self.threads }
    }
}

/// What a write produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteStats {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Columns per row.
    pub columns: usize,
    /// Generation threads used.
    pub threads: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl WriteStats {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes `rows` rows of `schema` generated from `seed` to `out`, with the default [`WriteOptions`]
/// (all cores). The schema is validated first.
pub fn write_table<W: Write>(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    out: W,
) -> Result<WriteStats, TabularError> {
    write_table_with(schema, rows, seed, format, out, &WriteOptions::default())
}

/// [`write_table`] with explicit options.
pub fn write_table_with<W: Write>(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteStats, TabularError> {
    let generator = RowGenerator::new(schema, seed)?;
    write_rows(&generator, rows, format, out, opts)
}

/// Writes the rows of an already validated generator.
pub(crate) fn write_rows<W: Write>(
    generator: &RowGenerator,
    rows: u64,
    format: Format,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteStats, TabularError> {
    let started = Instant::now();
    let threads = opts.effective_threads().max(1);
    let compiled: &Compiled = generator.compiled();
    let seed = generator.seed();
    let mut out = Counting { inner: out, bytes: 0 };
    match format {
        Format::Csv | Format::Jsonl => {
            let text = TextLayout::new(compiled, format);
            if format == Format::Csv && opts.csv_header {
                let names: Vec<&str> = compiled.schema.columns.iter().map(|c| c.name.as_str()).collect();
                let mut header = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        header.push(b',');
                    }
                    cells::put_csv_str(&mut header, n);
                }
                header.push(b'\n');
                out.write_all(&header)?;
            }
            pipeline(
                rows,
                threads,
                |k| {
                    let block = compiled.block(seed, k, rows_in_block(rows, k));
                    let mut buf = Vec::with_capacity(block.len * 24 * compiled.types.len().max(1));
                    text.encode(&block, &mut buf);
                    Ok(buf)
                },
                |buf| out.write_all(&buf).map_err(TabularError::from),
            )?;
        }
        Format::Parquet => {
            let arrow_schema = arrow_schema(&compiled.schema, &compiled.types);
            let group_blocks = opts.row_group_blocks.max(1);
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(group_blocks * BLOCK_ROWS))
                .build();
            let mut writer = ArrowWriter::try_new(Vec::<u8>::new(), arrow_schema.clone(), Some(props))?;
            let mut written_blocks = 0usize;
            pipeline(
                rows,
                threads,
                |k| to_batch(&arrow_schema, compiled.block(seed, k, rows_in_block(rows, k))),
                |batch| {
                    writer.write(&batch)?;
                    written_blocks += 1;
                    if written_blocks.is_multiple_of(group_blocks) {
                        writer.flush()?;
                    }
                    let encoded = std::mem::take(writer.inner_mut());
                    out.write_all(&encoded)?;
                    Ok(())
                },
            )?;
            let rest = writer.into_inner()?;
            out.write_all(&rest)?;
        }
    }
    out.flush()?;
    Ok(WriteStats { rows, bytes: out.bytes, columns: compiled.types.len(), threads, elapsed: started.elapsed() })
}

/// Produces blocks `0..block_count(rows)` with `produce` on `threads` workers and hands them to `consume` in
/// order. With one thread (or one block) everything runs on the calling thread.
fn pipeline<P: Send>(
    rows: u64,
    threads: usize,
    produce: impl Fn(u64) -> Result<P, TabularError> + Sync,
    mut consume: impl FnMut(P) -> Result<(), TabularError>,
) -> Result<(), TabularError> {
    let blocks = block_count(rows);
    let threads = (threads as u64).min(blocks).max(1) as usize;
    if threads == 1 {
        for k in 0..blocks {
            consume(produce(k)?)?;
        }
        return Ok(());
    }
    let produce = &produce;
    std::thread::scope(|scope| {
        let mut receivers: Vec<Receiver<Result<P, TabularError>>> = Vec::with_capacity(threads);
        for w in 0..threads {
            let (tx, rx) = sync_channel(QUEUE_PER_WORKER);
            receivers.push(rx);
            scope.spawn(move || {
                for k in (w as u64..blocks).step_by(threads) {
                    let item = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| produce(k)))
                        .unwrap_or_else(|p| Err(TabularError::Worker(panic_message(&p))));
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for k in 0..blocks {
            let item = receivers[(k % threads as u64) as usize]
                .recv()
                .map_err(|_| TabularError::Worker(format!("the worker of block {k} stopped")))?;
            consume(item?)?;
        }
        // Dropping the receivers (on success or on an early return) stops any worker still sending.
        Ok(())
    })
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a generation worker panicked".into())
}

/// Counts the bytes passed to the inner writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Precomputed per-column pieces of the text formats.
struct TextLayout {
    format: Format,
    /// JSONL: `{"name":` for the first column, `,"name":` for the others.
    keys: Vec<Vec<u8>>,
    decimals: Vec<Option<u8>>,
}

impl TextLayout {
    fn new(c: &Compiled, format: Format) -> TextLayout {
        let keys = c
            .schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let mut k = vec![if i == 0 { b'{' } else { b',' }];
                cells::put_json_str(&mut k, &col.name);
                k.push(b':');
                k
            })
            .collect();
        TextLayout { format, keys, decimals: c.decimals.clone() }
    }

    fn encode(&self, block: &Block, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => self.csv(block, out),
            _ => self.jsonl(block, out),
        }
    }

    fn csv(&self, block: &Block, out: &mut Vec<u8>) {
        for r in 0..block.len {
            for (i, col) in block.cols.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !col.valid[r] {
                    continue;
                }
                match &col.values {
                    ColValues::Int(v) => cells::put_i64(out, v[r]),
                    ColValues::Float(v) => cells::put_f64(out, v[r], self.decimals[i], false),
                    ColValues::Bool(v) => out.extend_from_slice(if v[r] { b"true" } else { b"false" }),
                    ColValues::Str { .. } => cells::put_csv_str(out, col.str_at(r).unwrap_or_default()),
                    ColValues::Date(v) => cells::put_date(out, v[r]),
                    ColValues::DateTime(v) => cells::put_datetime(out, v[r]),
                }
            }
            out.push(b'\n');
        }
    }

    fn jsonl(&self, block: &Block, out: &mut Vec<u8>) {
        for r in 0..block.len {
            for (i, col) in block.cols.iter().enumerate() {
                out.extend_from_slice(&self.keys[i]);
                if !col.valid[r] {
                    out.extend_from_slice(b"null");
                    continue;
                }
                match &col.values {
                    ColValues::Int(v) => cells::put_i64(out, v[r]),
                    ColValues::Float(v) if v[r].is_finite() => cells::put_f64(out, v[r], self.decimals[i], true),
                    ColValues::Float(_) => out.extend_from_slice(b"null"),
                    ColValues::Bool(v) => out.extend_from_slice(if v[r] { b"true" } else { b"false" }),
                    ColValues::Str { .. } => cells::put_json_str(out, col.str_at(r).unwrap_or_default()),
                    ColValues::Date(v) => {
                        out.push(b'"');
                        cells::put_date(out, v[r]);
                        out.push(b'"');
                    }
                    ColValues::DateTime(v) => {
                        out.push(b'"');
                        cells::put_datetime(out, v[r]);
                        out.push(b'"');
                    }
                }
            }
            if block.cols.is_empty() {
                out.push(b'{');
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

/// The Arrow schema of a table: one nullable field per column.
pub(crate) fn arrow_schema(schema: &TableSchema, types: &[ValueType]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .columns
        .iter()
        .zip(types)
        .map(|(c, t)| {
            let dt = match t {
                ValueType::Int => DataType::Int64,
                ValueType::Float => DataType::Float64,
                ValueType::Bool => DataType::Boolean,
                ValueType::String => DataType::Utf8,
                ValueType::Date => DataType::Date32,
                ValueType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            };
            Field::new(&c.name, dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A block as an Arrow record batch.
fn to_batch(schema: &SchemaRef, block: Block) -> Result<RecordBatch, TabularError> {
    let n = block.len;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(block.cols.len());
    for col in &block.cols {
        let all_valid = col.nulls == 0;
        let array: ArrayRef = match &col.values {
            ColValues::Int(v) => {
                let mut b = Int64Builder::with_capacity(n);
                if all_valid {
                    b.append_slice(v)
                } else {
                    b.append_values(v, &col.valid)
                }
                Arc::new(b.finish())
            }
            ColValues::Float(v) => {
                let mut b = Float64Builder::with_capacity(n);
                if all_valid {
                    b.append_slice(v)
                } else {
                    b.append_values(v, &col.valid)
                }
                Arc::new(b.finish())
            }
            ColValues::Bool(v) => {
                let mut b = BooleanBuilder::with_capacity(n);
                if all_valid {
                    b.append_slice(v)
                } else {
                    b.append_values(v, &col.valid)?
                }
                Arc::new(b.finish())
            }
            ColValues::Str { buf, .. } => {
                let mut b = StringBuilder::with_capacity(n, buf.len());
                for r in 0..n {
                    match col.str_at(r) {
                        Some(s) => b.append_value(s),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            ColValues::Date(v) => {
                let mut b = Date32Builder::with_capacity(n);
                if all_valid {
                    b.append_slice(v)
                } else {
                    b.append_values(v, &col.valid)
                }
                Arc::new(b.finish())
            }
            ColValues::DateTime(v) => {
                let micros: Vec<i64> = v.iter().map(|s| s.saturating_mul(1_000_000)).collect();
                let mut b = TimestampMicrosecondBuilder::with_capacity(n);
                if all_valid {
                    b.append_slice(&micros)
                } else {
                    b.append_values(&micros, &col.valid)
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::realistic;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn bytes_of(schema: &TableSchema, rows: u64, seed: u64, format: Format, threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let opts = WriteOptions { threads, row_group_blocks: 2, ..WriteOptions::default() };
        let stats = write_table_with(schema, rows, seed, format, &mut out, &opts).unwrap();
        assert_eq!(stats.rows, rows);
        assert_eq!(stats.bytes, out.len() as u64);
        out
    }

    /// A schema with every kind, nulls and an awkward text column.
    fn everything() -> TableSchema {
        let mut s = realistic();
        let extra: TableSchema = serde_json::from_value(serde_json::json!({"name": "x", "columns": [
            {"name": "uid", "kind": "uuid"},
            {"name": "full", "kind": "full_name"},
            {"name": "user", "kind": "username"},
            {"name": "street", "kind": "street_address"},
            {"name": "region", "kind": "state"},
            {"name": "country", "kind": "country"},
            {"name": "zip", "kind": "postcode"},
            {"name": "company", "kind": "company"},
            {"name": "job", "kind": "job_title"},
            {"name": "site", "kind": "url"},
            {"name": "ip", "kind": "ip"},
            {"name": "seen_at", "kind": "datetime", "start": "2024-01-01", "end": "2024-06-30", "null_rate": 0.1},
            {"name": "note", "kind": "category", "values": ["a,b", "say \"hi\"", "line\nbreak", "plain"]},
            {"name": "bio", "kind": "text", "min_words": 3, "max_words": 20, "null_rate": 0.2},
            {"name": "score", "kind": "float", "min": 0, "max": 1},
            {"name": "referrer", "kind": "foreign_key", "column": "customer_id"}
        ]}))
        .unwrap();
        s.columns.extend(extra.columns);
        s
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("CSV".parse::<Format>().unwrap(), Format::Csv);
        assert_eq!("ndjson".parse::<Format>().unwrap(), Format::Jsonl);
        assert_eq!(".parquet".parse::<Format>().unwrap(), Format::Parquet);
        assert!("xlsx".parse::<Format>().is_err());
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
    }

    #[test]
    fn output_is_byte_identical_for_any_thread_count() {
        let s = everything();
        let rows = BLOCK_ROWS as u64 * 3 + 123;
        for format in Format::ALL {
            let one = bytes_of(&s, rows, 42, format, 1);
            let two = bytes_of(&s, rows, 42, format, 2);
            let five = bytes_of(&s, rows, 42, format, 5);
            assert!(one == two && one == five, "{format}: bytes differ across thread counts");
            assert_eq!(one, bytes_of(&s, rows, 42, format, 1), "{format}: same seed, same bytes");
            assert_ne!(one, bytes_of(&s, rows, 43, format, 2), "{format}: another seed, other bytes");
        }
    }

    #[test]
    fn csv_parses_back_with_the_csv_crate() {
        let s = everything();
        let rows = 5000;
        let out = bytes_of(&s, rows, 1, Format::Csv, 2);
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        assert_eq!(header, s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len() as u64, rows);
        let note = s.column_index("note").unwrap();
        let generator = RowGenerator::new(&s, 1).unwrap();
        for (rec, row) in records.iter().zip(generator.rows(rows)) {
            assert_eq!(rec.len(), s.columns.len());
            assert!(["a,b", "say \"hi\"", "line\nbreak", "plain"].contains(&&rec[note]));
            // The CSV text of every cell is the Display form of the generated value (floats aside).
            for (i, v) in row.values.iter().enumerate() {
                match v {
                    Value::Float(x) => {
                        let back: f64 = rec[i].parse().unwrap();
                        assert!((back - x).abs() <= 0.005 + 1e-9, "{back} vs {x}");
                    }
                    other => assert_eq!(rec[i], other.to_string(), "column {i}"),
                }
            }
        }
    }

    use crate::generate::Value;

    #[test]
    fn jsonl_parses_back_with_types() {
        let s = everything();
        let rows = 3000;
        let out = bytes_of(&s, rows, 2, Format::Jsonl, 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, rows);
        let types = s.column_types();
        let mut nulls = 0;
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), s.columns.len());
            for (c, t) in s.columns.iter().zip(&types) {
                let cell = &obj[&c.name];
                let ok = match t {
                    _ if cell.is_null() => {
                        nulls += 1;
                        true
                    }
                    ValueType::Int => cell.is_i64(),
                    ValueType::Float => cell.is_f64(),
                    ValueType::Bool => cell.is_boolean(),
                    ValueType::String => cell.is_string(),
                    ValueType::Date => cell.as_str().is_some_and(|d| crate::schema::parse_date(d).is_some()),
                    ValueType::DateTime => {
                        cell.as_str().is_some_and(|d| crate::schema::parse_datetime(d, false).is_some())
                    }
                };
                assert!(ok, "{} = {cell} is not {}", c.name, t.as_str());
            }
        }
        assert!(nulls > 0);
    }

    #[test]
    fn parquet_reads_back_with_row_count_and_types() {
        let s = everything();
        let rows = BLOCK_ROWS as u64 * 5 + 7;
        let out = bytes_of(&s, rows, 3, Format::Parquet, 2);
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out)).unwrap();
        let meta = builder.metadata().clone();
        assert_eq!(meta.file_metadata().num_rows() as u64, rows);
        assert_eq!(meta.num_row_groups(), 3, "two blocks per row group in this test");
        let schema = builder.schema().clone();
        let expect = arrow_schema(&s, &s.column_types());
        for (got, want) in schema.fields().iter().zip(expect.fields()) {
            assert_eq!((got.name(), got.data_type(), got.is_nullable()), (want.name(), want.data_type(), true));
        }
        assert_eq!(schema.field_with_name("signup_date").unwrap().data_type(), &DataType::Date32);
        assert_eq!(schema.field_with_name("age").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("churned").unwrap().data_type(), &DataType::Boolean);
        let reader = builder.build().unwrap();
        let mut total = 0;
        let mut bio_nulls = 0;
        for batch in reader {
            let batch = batch.unwrap();
            total += batch.num_rows();
            bio_nulls += batch.column_by_name("bio").unwrap().null_count();
        }
        assert_eq!(total as u64, rows);
        let share = bio_nulls as f64 / rows as f64;
        assert!((share - 0.2).abs() < 0.02, "{share}");
    }

    #[test]
    fn an_invalid_schema_is_refused_before_writing() {
        let mut s = realistic();
        s.columns[7].null_rate = 2.0;
        let mut out = Vec::new();
        let e = write_table(&s, 10, 1, Format::Csv, &mut out).unwrap_err();
        assert!(matches!(e, TabularError::InvalidSchema(_)));
        assert!(out.is_empty());
    }

    #[test]
    fn a_failing_writer_stops_generation() {
        struct Broken(usize);
        impl Write for Broken {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 > 100_000 {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
                }
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let opts = WriteOptions { threads: 2, ..WriteOptions::default() };
        let e = write_table_with(&realistic(), 10_000_000, 1, Format::Csv, Broken(0), &opts).unwrap_err();
        assert!(matches!(e, TabularError::Io(ref io) if io.kind() == std::io::ErrorKind::BrokenPipe), "{e}");
    }
}
