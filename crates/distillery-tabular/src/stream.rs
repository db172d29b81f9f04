//! A table as an async stream of byte chunks, for an HTTP response body.
//!
//! Generation runs on its own thread (the same [`crate::write_table_with`] pipeline) and hands chunks of
//! about [`CHUNK_BYTES`] over a bounded channel, so a slow client slows generation down instead of filling
//! memory. Dropping the stream closes the channel; the generating thread's next send fails and it stops.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::error::TabularError;
use crate::generate::RowGenerator;
use crate::schema::TableSchema;
use crate::write::{Format, WriteOptions, write_rows};

/// Size of the chunks a [`TableStream`] yields (the last one may be smaller).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks buffered between the generating thread and the consumer.
const CHANNEL_CHUNKS: usize = 8;

/// The bytes of a table, in chunks, as a [`Stream`]. Yields `Err` once (and then ends) if generation fails.
#[derive(Debug)]
pub struct TableStream {
    rx: mpsc::Receiver<Result<Bytes, TabularError>>,
    format: Format,
}

impl TableStream {
    /// The format of the bytes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The HTTP content type of the bytes.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

impl Stream for TableStream {
    type Item = Result<Bytes, TabularError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Streams `rows` rows of `schema` from `seed` in `format`, generated on all cores. The schema is validated
/// before anything is generated, so an invalid one is an immediate error (a 422, not a broken download).
pub fn stream_table(schema: &TableSchema, rows: u64, seed: u64, format: Format) -> Result<TableStream, TabularError> {
    stream_table_with(schema, rows, seed, format, WriteOptions::default())
}

/// [`stream_table`] with explicit write options.
pub fn stream_table_with(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    opts: WriteOptions,
) -> Result<TableStream, TabularError> {
    spawn(schema, rows, seed, format, opts).map(|(stream, _)| stream)
}

/// Starts the generating thread; the flag turns true when it has ended.
fn spawn(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    opts: WriteOptions,
) -> Result<(TableStream, Arc<AtomicBool>), TabularError> {
    let generator = RowGenerator::new(schema, seed)?;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::Builder::new()
        .name("tabular-stream".into())
        .spawn(move || {
            let mut sink = ChunkSink { tx: tx.clone(), buf: Vec::with_capacity(CHUNK_BYTES) };
            match write_rows(&generator, rows, format, &mut sink, &opts).and_then(|_| sink.send_rest()) {
                Ok(()) => {}
                // The consumer went away: nothing to report to.
                Err(TabularError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe && tx.is_closed() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "table stream failed");
                    let _ = tx.blocking_send(Err(e));
                }
            }
            flag.store(true, Ordering::SeqCst);
        })
        .map_err(|e| TabularError::Worker(format!("could not start the generation thread: {e}")))?;
    Ok((TableStream { rx, format }, done))
}

/// An `io::Write` that sends full chunks down the channel.
struct ChunkSink {
    tx: mpsc::Sender<Result<Bytes, TabularError>>,
    buf: Vec<u8>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the table stream was dropped"))
    }

    fn send_rest(&mut self) -> Result<(), TabularError> {
        Ok(self.send()?)
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let take = (CHUNK_BYTES - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= CHUNK_BYTES {
                self.send()?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Chunks go out when full or at the end; flushing early would only make small chunks.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::realistic;
    use crate::write::write_table_with;
    use futures::StreamExt;

    #[tokio::test]
    async fn the_stream_yields_the_same_bytes_as_the_writer() {
        let s = realistic();
        for format in Format::ALL {
            let mut stream = stream_table(&s, 20_000, 9, format).unwrap();
            assert_eq!(stream.format(), format);
            let mut got = Vec::new();
            let mut chunks = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                assert!(chunk.len() <= CHUNK_BYTES, "chunks stay bounded");
                got.extend_from_slice(&chunk);
                chunks += 1;
            }
            let mut expect = Vec::new();
            write_table_with(&s, 20_000, 9, format, &mut expect, &WriteOptions { threads: 1, ..Default::default() })
                .unwrap();
            assert_eq!(got, expect, "{format}");
            assert!(chunks > 1 || format == Format::Parquet, "{format}: {chunks} chunks");
        }
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_generation() {
        // 50 million rows would take minutes; the generating thread must end soon after the drop.
        let (mut stream, done) = spawn(&realistic(), 50_000_000, 1, Format::Csv, WriteOptions::default()).unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        assert!(!done.load(Ordering::SeqCst));
        drop(stream);
        let started = std::time::Instant::now();
        while !done.load(Ordering::SeqCst) {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "generation kept running");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn an_invalid_schema_fails_before_streaming() {
        let mut s = realistic();
        s.columns.clear();
        assert!(matches!(stream_table(&s, 10, 1, Format::Csv), Err(TabularError::InvalidSchema(_))));
    }
}
