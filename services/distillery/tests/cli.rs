//! The command line as a user meets it, run as a process: the printed configuration is the one `run` reads,
//! and every topic's contract prints.

use std::process::Command;

fn distillery(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_distillery")).args(args).output().expect("the distillery binary runs")
}

#[test]
fn the_printed_configuration_reads_back() {
    let out = distillery(&["config"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(&file, &text).unwrap();
    let back: distillery::config::RunConfig = distillery_core::config::load(Some(&file)).unwrap();
    assert_eq!(back, distillery::config::RunConfig::default());
}

#[test]
fn every_record_kind_has_a_schema() {
    let out = distillery(&["schema", "regenerate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["name"], "Regenerate");
    let unknown = distillery(&["service", "nonsense"]);
    assert!(!unknown.status.success());
}

/// Issue 14, defect 8 ("Done when"): a schema expression nested 100,000 deep aborted `distillery tabular`
/// (a stack overflow, exit 134). It is an invalid schema, reported with the limit, exit status 1.
#[test]
fn a_deeply_nested_expression_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("deep.json");
    let expr = format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000));
    let json = serde_json::json!({"name": "t", "columns": [
        {"name": "x", "kind": "integer", "min": 1, "max": 9},
        {"name": "y", "kind": "expression", "expr": expr, "type": "integer"}]});
    std::fs::write(&schema, json.to_string()).unwrap();
    let out = distillery(&["tabular", "--schema", schema.to_str().unwrap(), "--rows", "3", "--out", "-"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("over the limit"), "{stderr}");
}
