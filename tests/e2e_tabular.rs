//! Synthetic tables end to end with the real local model: `distillery tabular` designs a schema with one
//! call, caches it, and writes the rows; the API service streams a table for a description over HTTP.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Servers, Service, free_port};
use serde_json::Value;

fn tabular(cache: &Path, args: &[&str]) -> Output {
    Command::new(common::binary())
        .arg("tabular")
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("DISTILLERY_LLM_BASE_URL")
        .env_remove("DISTILLERY_LLM_MODEL")
        .output()
        .expect("run distillery tabular")
}

fn ok(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "distillery tabular failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn the_cli_designs_once_caches_and_writes_every_format() {
    let servers = Servers::from_env();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let csv_path = dir.path().join("churn.csv");
    let description = "Customer churn data for a telecom company with 10 columns";
    let llm = ["--llm-base-url", &servers.llm, "--llm-model", &servers.llm_model];

    let mut args = vec![description, "--rows", "2000", "--out", csv_path.to_str().unwrap(), "--print-schema"];
    args.extend(llm);
    let (stdout, stderr) = ok(&tabular(&cache, &args));
    assert!(stderr.contains("designed by"), "{stderr}");
    let schema: Value = serde_json::from_str(&stdout).expect("--print-schema writes the schema as JSON");
    let columns: Vec<String> =
        schema["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert!((6..=14).contains(&columns.len()), "about the 10 columns asked for: {columns:?}");

    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, columns, "the CSV has the designed columns in order");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2000);
    // Realistic, not constant: every column takes more than one value over 2000 rows, unless it is a
    // boolean-like or category column the model chose with a single value.
    let varied = (0..columns.len())
        .filter(|&i| rows.iter().map(|r| &r[i]).collect::<std::collections::HashSet<_>>().len() > 1)
        .count();
    assert!(varied * 10 >= columns.len() * 8, "most columns vary ({varied} of {})", columns.len());

    // The same request again: the cache answers, no LLM call (the URL now points nowhere).
    let parquet = dir.path().join("churn.parquet");
    let (_, stderr) = ok(&tabular(
        &cache,
        &[
            "customer churn data for a telecom company   with 10 columns.",
            "--rows",
            "500",
            "--out",
            parquet.to_str().unwrap(),
            "--llm-base-url",
            "http://127.0.0.1:9/v1",
            "--llm-model",
            &servers.llm_model,
        ],
    ));
    assert!(stderr.contains("from the cache"), "{stderr}");
    let bytes = std::fs::read(&parquet).unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));

    // An edited schema file skips the model; the same seed gives the same bytes on stdout.
    let schema_file = dir.path().join("schema.json");
    std::fs::write(&schema_file, &stdout).unwrap();
    let run = |seed: &str| {
        let out = tabular(
            &cache,
            &[
                "--schema",
                schema_file.to_str().unwrap(),
                "--rows",
                "300",
                "--format",
                "jsonl",
                "--out",
                "-",
                "--seed",
                seed,
            ],
        );
        ok(&out).0
    };
    let a = run("3");
    assert_eq!(a.lines().count(), 300);
    let first: Value = serde_json::from_str(a.lines().next().unwrap()).unwrap();
    assert_eq!(first.as_object().unwrap().len(), columns.len());
    assert_eq!(a, run("3"), "same schema and seed, same bytes");
    assert_ne!(a, run("4"));
}

#[tokio::test]
async fn the_api_service_streams_a_table_for_a_description() {
    let servers = Servers::from_env();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("api.toml");
    std::fs::write(
        &config,
        format!(
            "[ops]\nlisten = \"127.0.0.1:{port}\"\n[llm]\nbase_url = \"{}\"\nmodel = \"{}\"\n[tabular]\ncache_dir = \"{}\"\n[api]\ntoken = \"e2e-tabular-token\"\n",
            servers.llm,
            servers.llm_model,
            dir.path().join("schemas").display()
        ),
    )
    .unwrap();
    let mut api = Service::start("api", &config, port, dir.path());
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the API became ready: {}", std::fs::read_to_string(&api.log).unwrap_or_default());

    let body = serde_json::json!({
        "description": "Students of a university: name, email, faculty, enrolment year, GPA and whether they have a scholarship",
        "rows": 1500,
        "format": "csv",
        "seed": 11
    });
    let resp =
        http.post(format!("{base}/v1/tabular")).bearer_auth("e2e-tabular-token").json(&body).send().await.unwrap();
    let status = resp.status();
    let source = resp.headers().get("x-distillery-schema-source").map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(source.as_deref(), Some("llm"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let width = reader.headers().unwrap().len();
    assert!(width >= 4, "a plausible table: {:?}", reader.headers().unwrap());
    assert_eq!(reader.records().map(|r| assert_eq!(r.unwrap().len(), width)).count(), 1500);

    // The same description again: cached, identical bytes for the same seed.
    let again =
        http.post(format!("{base}/v1/tabular")).bearer_auth("e2e-tabular-token").json(&body).send().await.unwrap();
    assert_eq!(again.headers()["x-distillery-schema-source"], "cache");
    assert_eq!(again.text().await.unwrap(), text);

    let metrics = api.metrics().await;
    assert!(metrics.contains(r#"distillery_tabular_requests_total{outcome="ok",schema="llm"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"distillery_tabular_requests_total{outcome="ok",schema="cache"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"distillery_tabular_rows_total{format="csv"} 3000"#), "{metrics}");
    assert!(api.stop(10).is_some_and(|s| s.success()), "SIGTERM stops the API cleanly");
}
