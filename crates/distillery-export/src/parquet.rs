//! Parquet export of dataset records, written in row groups as the records stream by.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, Int32Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::view::ExampleView;

/// Rows per row group.
pub const ROW_GROUP: usize = 8192;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, true),
        Field::new("answer", DataType::Utf8, true),
        Field::new("messages_json", DataType::Utf8, false),
        Field::new("reasoning", DataType::Utf8, true),
        Field::new("question_type", DataType::Utf8, true),
        Field::new("difficulty", DataType::Utf8, true),
        Field::new("evidence", DataType::Utf8, true),
        Field::new("score", DataType::Int32, true),
        Field::new("faithfulness", DataType::Int32, true),
        Field::new("correctness", DataType::Int32, true),
        Field::new("clarity", DataType::Int32, true),
        Field::new("usefulness", DataType::Int32, true),
        Field::new("rationale", DataType::Utf8, true),
        Field::new("attempt", DataType::Int32, true),
        Field::new("rejected_answer", DataType::Utf8, true),
        Field::new("document_id", DataType::Utf8, true),
        Field::new("chunk_id", DataType::Utf8, true),
        Field::new("generator_model", DataType::Utf8, true),
        Field::new("judge_model", DataType::Utf8, true),
        Field::new("prompt_tokens", DataType::Int32, true),
        Field::new("completion_tokens", DataType::Int32, true),
        Field::new("nearest_similarity", DataType::Float32, true),
    ]))
}

struct Builders {
    s: Vec<StringBuilder>,
    i: Vec<Int32Builder>,
    f: Float32Builder,
}

impl Builders {
    fn new() -> Self {
        Builders {
            s: (0..15).map(|_| StringBuilder::new()).collect(),
            i: (0..8).map(|_| Int32Builder::new()).collect(),
            f: Float32Builder::new(),
        }
    }

    fn push(&mut self, v: &ExampleView) {
        let s = &mut self.s;
        s[0].append_value(&v.id);
        s[1].append_value(&v.kind);
        s[2].append_option(v.question.as_deref());
        s[3].append_option(v.answer.as_deref());
        s[4].append_value(serde_json::to_string(&v.messages).unwrap_or_default());
        s[5].append_option(v.reasoning.as_deref());
        s[6].append_option(v.question_type.as_deref());
        s[7].append_option(v.difficulty.as_deref());
        s[8].append_option(v.evidence.as_deref());
        s[9].append_option(v.rationale.as_deref());
        let rejected = v
            .previous
            .as_ref()
            .and_then(|p| p.messages.iter().rev().find(|t| t.role == "assistant"))
            .map(|t| t.content.as_str());
        s[10].append_option(rejected);
        s[11].append_option(v.document_id.as_deref());
        s[12].append_option(v.chunk_id.as_deref());
        s[13].append_option(v.generator.as_ref().map(|g| g.model.as_str()));
        s[14].append_option(v.judge.as_ref().map(|g| g.model.as_str()));
        let i = &mut self.i;
        i[0].append_option(v.scores.map(|x| x.overall));
        i[1].append_option(v.scores.map(|x| x.faithfulness));
        i[2].append_option(v.scores.map(|x| x.correctness));
        i[3].append_option(v.scores.map(|x| x.clarity));
        i[4].append_option(v.scores.map(|x| x.usefulness));
        i[5].append_option(v.attempt);
        let gen_tokens = |f: fn(&crate::view::ModelView) -> i32| {
            let g = v.generator.as_ref().map(f).unwrap_or(0);
            let j = v.judge.as_ref().map(f).unwrap_or(0);
            (v.generator.is_some() || v.judge.is_some()).then_some(g + j)
        };
        i[6].append_option(gen_tokens(|m| m.prompt_tokens));
        i[7].append_option(gen_tokens(|m| m.completion_tokens));
        self.f.append_option(v.nearest_similarity);
    }

    fn finish(&mut self, schema: &Arc<Schema>) -> Result<RecordBatch, String> {
        let s: Vec<ArrayRef> = self.s.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        let i: Vec<ArrayRef> = self.i.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        let cols: Vec<ArrayRef> = vec![
            s[0].clone(),
            s[1].clone(),
            s[2].clone(),
            s[3].clone(),
            s[4].clone(),
            s[5].clone(),
            s[6].clone(),
            s[7].clone(),
            s[8].clone(),
            i[0].clone(),
            i[1].clone(),
            i[2].clone(),
            i[3].clone(),
            i[4].clone(),
            s[9].clone(),
            i[5].clone(),
            s[10].clone(),
            s[11].clone(),
            s[12].clone(),
            s[13].clone(),
            s[14].clone(),
            i[6].clone(),
            i[7].clone(),
            Arc::new(self.f.finish()),
        ];
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| e.to_string())
    }
}

/// A Parquet file being written (zstd), one row group per [`ROW_GROUP`] records pushed.
pub struct ParquetStream {
    schema: Arc<Schema>,
    writer: ArrowWriter<File>,
    builders: Builders,
    pending: usize,
    total: usize,
}

impl std::fmt::Debug for ParquetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetStream").field("total", &self.total).finish()
    }
}

impl ParquetStream {
    pub fn create(path: &Path) -> Result<ParquetStream, String> {
        let schema = schema();
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| e.to_string())?))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
        Ok(ParquetStream { schema, writer, builders: Builders::new(), pending: 0, total: 0 })
    }

    pub fn push(&mut self, v: &ExampleView) -> Result<(), String> {
        self.builders.push(v);
        self.pending += 1;
        self.total += 1;
        if self.pending == ROW_GROUP {
            self.writer.write(&self.builders.finish(&self.schema)?).map_err(|e| e.to_string())?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Writes what is pending and the footer; returns the row count.
    pub fn close(mut self) -> Result<usize, String> {
        if self.pending > 0 {
            self.writer.write(&self.builders.finish(&self.schema)?).map_err(|e| e.to_string())?;
        }
        self.writer.close().map_err(|e| e.to_string())?;
        Ok(self.total)
    }
}

/// Writes records to a Parquet file (zstd), one row group per [`ROW_GROUP`] records. Returns the row count.
pub fn write_parquet(path: &Path, records: impl IntoIterator<Item = ExampleView>) -> Result<usize, String> {
    let mut out = ParquetStream::create(path)?;
    for v in records {
        out.push(&v)?;
    }
    out.close()
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::Accepted;
    use distillery_core::codec::fixtures;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn writes_readable_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let v = ExampleView::accepted(&Accepted {
            id: "d1".into(),
            judged: fixtures::judged(),
            nearest_similarity: Some(0.3),
            accepted_at_ms: 1,
        });
        let rows = write_parquet(&path, (0..10).map(|i| ExampleView { id: format!("d{i}"), ..v.clone() })).unwrap();
        assert_eq!(rows, 10);
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 10);
        let names: Vec<String> =
            reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.name().to_string()).collect();
        assert!(names.contains(&"question".to_string()) && names.contains(&"rejected_answer".to_string()));
        let first = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
        assert!(first.to_string().contains("How many days of paid leave"));
    }
}
