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
