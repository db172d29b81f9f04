//! Five domains end to end against the real local LLM (llama.cpp's OpenAI-compatible server, started by
//! `scripts/test-servers start`): design a schema from a plain-English description, check it is valid and
//! plausible for the domain, then generate 1000 rows in CSV, JSONL and Parquet and read each back.
//!
//! `DISTILLERY_TEST_LLM` (e.g. `http://127.0.0.1:18090/v1`) and `DISTILLERY_TEST_LLM_MODEL` name the server;
//! without them the test fails: the suite always starts the servers, so a missing variable is a broken setup,
//! not a reason to skip. The five designs run concurrently (the server has 4 slots).

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use distillery_core::Metrics;
use distillery_llm::{LlmClient, LlmConfig};
use distillery_tabular::{
    DesignOptions, Designed, Format, SchemaCache, TableSchema, TabularError, WriteOptions, design, write_table_with,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const ROWS: u64 = 1000;

struct Domain {
    name: &'static str,
    description: &'static str,
    /// Kinds a sensible design for the domain uses; at least two must appear.
    expected: &'static [&'static str],
}

const DOMAINS: [Domain; 5] = [
    Domain {
        name: "e-commerce",
        description: "Orders of an online shop: order id, customer name and email, order date in 2024, product \
                      category, quantity, unit price and the order total (quantity times unit price).",
        expected: &["id", "full_name", "email", "date", "datetime", "category", "integer", "float", "expression"],
    },
    Domain {
        name: "healthcare",
        description: "Hospital patient admissions: patient id, patient name, age, gender, admission date, \
                      department, diagnosis, length of stay in days and whether the patient was readmitted.",
        expected: &["id", "uuid", "full_name", "integer", "category", "date", "datetime", "boolean", "expression"],
    },
    Domain {
        name: "finance",
        description: "Bank card transactions: transaction id, account holder name, transaction timestamp, \
                      merchant company, merchant city, amount in dollars, currency, card type and a fraud flag.",
        expected: &["id", "uuid", "full_name", "datetime", "date", "company", "city", "float", "category", "boolean"],
    },
    Domain {
        name: "education",
        description: "University students: student id, first name, last name, email, enrollment year, major, \
                      GPA between 0 and 4, credits completed and whether they have a scholarship.",
        expected: &["id", "first_name", "last_name", "email", "integer", "category", "float", "boolean"],
    },
    Domain {
        name: "social media",
        description: "Social media posts: post id, username, post text, posted at timestamp, number of likes, \
                      number of shares, platform and whether the post is sponsored.",
        expected: &["id", "uuid", "username", "text", "datetime", "date", "integer", "category", "boolean"],
    },
];

fn llm_config() -> LlmConfig {
    let base_url = std::env::var("DISTILLERY_TEST_LLM").unwrap_or_else(|_| {
        panic!(
            "DISTILLERY_TEST_LLM is not set: start the test servers with `scripts/test-servers start && source \
             .cache/run/test-env` (it points at the local llama.cpp server, e.g. http://127.0.0.1:18090/v1)"
        )
    });
    let model = std::env::var("DISTILLERY_TEST_LLM_MODEL").unwrap_or_else(|_| {
        panic!("DISTILLERY_TEST_LLM_MODEL is not set (source .cache/run/test-env after scripts/test-servers start)")
    });
    LlmConfig { base_url, model, timeout_secs: 900, max_retries: 2, initial_backoff_ms: 1000, ..LlmConfig::default() }
}

fn kinds(schema: &TableSchema) -> BTreeSet<&'static str> {
    schema.columns.iter().map(|c| c.generator.kind()).collect()
}

/// Writes `ROWS` rows in every format and reads each back.
fn generate_and_read_back(domain: &str, schema: &TableSchema) {
    let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    for format in Format::ALL {
        let mut out = Vec::new();
        let opts = WriteOptions { threads: 2, ..WriteOptions::default() };
        let stats = write_table_with(schema, ROWS, 7, format, &mut out, &opts)
            .unwrap_or_else(|e| panic!("{domain}: writing {format} failed: {e}"));
        assert_eq!(stats.rows, ROWS);
        assert_eq!(stats.bytes, out.len() as u64);
        match format {
            Format::Csv => {
                let head: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().take(4).collect();
                eprintln!("{domain}: first CSV lines:\n{}", head.join("\n"));
                let mut r = csv::Reader::from_reader(out.as_slice());
                let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
                assert_eq!(header, names, "{domain}: CSV header");
                let mut n = 0;
                for rec in r.records() {
                    let rec = rec.unwrap_or_else(|e| panic!("{domain}: CSV does not parse: {e}"));
                    assert_eq!(rec.len(), names.len(), "{domain}: CSV column count");
                    n += 1;
                }
                assert_eq!(n, ROWS, "{domain}: CSV rows");
            }
            Format::Jsonl => {
                let text = String::from_utf8(out).unwrap();
                let mut n = 0;
                for line in text.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
                    assert_eq!(keys.len(), names.len(), "{domain}: JSONL keys");
                    n += 1;
                }
                assert_eq!(n, ROWS, "{domain}: JSONL rows");
            }
            Format::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out)).unwrap();
                let fields: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
                assert_eq!(fields, names, "{domain}: Parquet fields");
                let rows: usize = builder.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
                assert_eq!(rows as u64, ROWS, "{domain}: Parquet rows");
            }
        }
    }
}

async fn run_domain(llm: &LlmClient, cache: &SchemaCache, d: &Domain) -> Result<(Designed, f64), TabularError> {
    let started = Instant::now();
    let designed =
        design(llm, d.description, Some(cache), &DesignOptions { seed: Some(1), ..Default::default() }).await?;
    Ok((designed, started.elapsed().as_secs_f64()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_domains_designed_by_the_real_llm_generate_valid_tables() {
    let cfg = llm_config();
    let llm = LlmClient::connect(cfg, distillery_llm::LlmRole::Schema, Metrics::isolated()).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = SchemaCache::open(dir.path()).unwrap();

    let started = Instant::now();
    let results = futures::future::join_all(DOMAINS.iter().map(|d| run_domain(&llm, &cache, d))).await;
    eprintln!("designed {} schemas in {:.1}s", DOMAINS.len(), started.elapsed().as_secs_f64());

    let mut failures = Vec::new();
    for (d, result) in DOMAINS.iter().zip(results) {
        let (designed, secs) = match result {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", d.name));
                continue;
            }
        };
        let schema = &designed.schema;
        eprintln!(
            "--- {} ({secs:.1}s, {} calls, {} tokens{}):\n{}",
            d.name,
            designed.calls,
            designed.tokens(),
            if designed.repaired { ", repaired" } else { "" },
            serde_json::to_string(schema).unwrap()
        );
        assert!(!designed.cached);
        schema.validate().unwrap_or_else(|e| panic!("{}: the designed schema is invalid: {e:?}", d.name));
        let n = schema.columns.len();
        assert!((4..=20).contains(&n), "{}: {n} columns is not a plausible design", d.name);
        let used = kinds(schema);
        let hits: Vec<&str> = d.expected.iter().copied().filter(|k| used.contains(k)).collect();
        assert!(hits.len() >= 2, "{}: expected some of {:?}, got kinds {used:?}", d.name, d.expected);
        assert!(used.len() >= 3, "{}: a design with only the kinds {used:?} is too flat", d.name);
        assert!(
            used.iter().any(|k| matches!(*k, "integer" | "float" | "expression" | "boolean")),
            "{}: no numeric or boolean column in {used:?}",
            d.name
        );
        generate_and_read_back(d.name, schema);

        // The same description again: the cache answers, no call.
        let again = design(&llm, d.description, Some(&cache), &DesignOptions { seed: Some(1), ..Default::default() })
            .await
            .unwrap();
        assert!(again.cached && again.calls == 0, "{}: the second design was not a cache hit", d.name);
        assert_eq!(&again.schema, schema);
    }
    assert!(failures.is_empty(), "design failed for:\n{}", failures.join("\n"));
}
