//! Every error's advice names a real command (issue 14, "also": a missing embedding model said "run
//! scripts/models", a script that never existed). Each `scripts/NAME` the sources mention is a file of the
//! repository.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() && !name.starts_with('.') && name != "target" {
            sources(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_script_the_sources_name_exists() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    for dir in ["crates", "services", "tests", "loadtest"] {
        sources(&repo.join(dir), &mut files);
    }
    let mut named = 0;
    let mut missing = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("advice_commands.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("scripts/") {
            // Only the repository's scripts folder (not e.g. `loadtest/scripts/` or `.../scripts/x` paths).
            if at > 0 && text.as_bytes()[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            let name: String = text[at + "scripts/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect();
            let name = name.trim_end_matches('.');
            if name.is_empty() {
                continue;
            }
            named += 1;
            if !repo.join("scripts").join(name).exists() {
                missing.push(format!("{}: scripts/{name}", file.strip_prefix(&repo).unwrap().display()));
            }
        }
    }
    assert!(named > 0, "the sources name scripts");
    assert!(missing.is_empty(), "advice naming scripts that do not exist:\n{}", missing.join("\n"));
}
