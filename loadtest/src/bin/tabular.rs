//! Tabular generation speed: rows/s and MB/s for 1,000,000 rows of a 12-column schema (id, full name,
//! e-mail, phone, city, company, date, normal integer, lognormal float, weighted category, boolean and a
//! derived expression) in CSV, JSONL and Parquet, on one thread and on all cores, side by side with Python
//! Faker generating the same columns as CSV (`loadtest/tabular_faker.py`, run in a venv with Faker installed
//! on first use) in the same run. Files go to a temporary directory and are removed after each run.
//!
//!   cargo run --release -p distillery-loadtest --bin tabular -- [--rows 1000000] [--faker-rows 1000000] [--no-faker]

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;
use distillery_tabular::{Format, TableSchema, WriteOptions, WriteStats, parse_schema, write_table_with};

#[derive(Parser, Debug)]
struct Args {
    /// Rows per run.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows for the Python Faker baseline (default: the same as --rows).
    #[arg(long)]
    faker_rows: Option<u64>,
    /// Skip the Python Faker baseline.
    #[arg(long)]
    no_faker: bool,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

const SCHEMA: &str = r#"{"name": "customers", "locale": "en", "columns": [
  {"name": "id", "kind": "id"},
  {"name": "full_name", "kind": "full_name"},
  {"name": "email", "kind": "email"},
  {"name": "phone", "kind": "phone"},
  {"name": "city", "kind": "city"},
  {"name": "company", "kind": "company"},
  {"name": "signup_date", "kind": "date", "start": "2020-01-01", "end": "2024-12-31"},
  {"name": "age", "kind": "integer", "min": 18, "max": 90, "distribution": {"type": "normal", "mean": 40, "std": 12}},
  {"name": "income", "kind": "float", "min": 5000, "max": 500000, "decimals": 2,
   "distribution": {"type": "lognormal", "mu": 10.8, "sigma": 0.6}},
  {"name": "plan", "kind": "category", "values": ["basic", "plus", "premium"], "weights": [6, 3, 1]},
  {"name": "active", "kind": "boolean", "rate": 0.8},
  {"name": "monthly_spend", "kind": "expression", "expr": "income / 12 * 0.05", "type": "float", "decimals": 2}
]}"#;

struct Line {
    engine: String,
    format: String,
    threads: String,
    rows: u64,
    seconds: f64,
    bytes: u64,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn run_rust(
    schema: &TableSchema,
    rows: u64,
    seed: u64,
    format: Format,
    threads: usize,
    dir: &Path,
) -> anyhow::Result<WriteStats> {
    let path = dir.join(format!("bench.{}", format.extension()));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let opts = WriteOptions { threads, ..WriteOptions::default() };
    let stats = write_table_with(schema, rows, seed, format, out, &opts)?;
    std::fs::remove_file(&path).ok();
    Ok(stats)
}

/// A Python with Faker: `.cache/venv` when it already has it, else `.cache/venv-bench` (created, and Faker
/// installed with pip's cache in ~/.cache/distillery/pip, on first use).
fn faker_python(root: &Path) -> anyhow::Result<PathBuf> {
    let has_faker = |py: &Path| {
        py.exists()
            && Command::new(py).args(["-c", "import faker"]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    let shared = root.join(".cache/venv/bin/python");
    if has_faker(&shared) {
        return Ok(shared);
    }
    let venv = root.join(".cache/venv-bench");
    let py = venv.join("bin/python");
    if !py.exists() {
        eprintln!("creating the benchmark venv in {}", venv.display());
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status()?.success();
        if !ok {
            bail!("python3 -m venv {} failed (is python3-venv installed?)", venv.display());
        }
    }
    if !has_faker(&py) {
        let cache = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/distillery/pip"));
        eprintln!("installing Faker into {}", venv.display());
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "pip", "install", "-q", "Faker"]);
        if let Some(c) = cache {
            cmd.arg("--cache-dir").arg(c);
        }
        if !cmd.status()?.success() || !has_faker(&py) {
            bail!("pip install Faker failed");
        }
    }
    Ok(py)
}

fn run_faker(root: &Path, rows: u64, seed: u64, dir: &Path) -> anyhow::Result<(Line, String, f64)> {
    let py = faker_python(root)?;
    let out = dir.join("faker.csv");
    let script = root.join("loadtest/tabular_faker.py");
    eprintln!("running {} for {rows} rows ...", script.display());
    let output = Command::new(&py)
        .arg(&script)
        .args(["--rows", &rows.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(&out)
        .output()
        .context("running the Faker script")?;
    std::fs::remove_file(&out).ok();
    if !output.status.success() {
        bail!("the Faker script failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).with_context(|| format!("reading the Faker timing {last:?}"))?;
    let line = Line {
        engine: "python faker".into(),
        format: "csv".into(),
        threads: "1".into(),
        rows: v["rows"].as_u64().unwrap_or(rows),
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        bytes: v["bytes"].as_u64().unwrap_or(0),
    };
    Ok((line, v["faker"].as_str().unwrap_or("?").to_string(), v["max_rss_mb"].as_f64().unwrap_or(f64::NAN)))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let schema = parse_schema(SCHEMA)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = std::env::temp_dir().join(format!("distillery-tabular-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let root = repo_root();

    // Warm-up (page cache, locale tables, allocator).
    run_rust(&schema, 50_000, args.seed, Format::Csv, cores, &dir)?;

    let mut lines = Vec::new();
    for format in Format::ALL {
        for threads in [1, cores] {
            let stats = run_rust(&schema, args.rows, args.seed, format, threads, &dir)?;
            eprintln!("{format} threads={threads}: {:.2}s", stats.elapsed.as_secs_f64());
            lines.push(Line {
                engine: "distillery-tabular".into(),
                format: format.to_string(),
                threads: if threads == cores { format!("{threads} (all)") } else { threads.to_string() },
                rows: stats.rows,
                seconds: stats.elapsed.as_secs_f64(),
                bytes: stats.bytes,
            });
            if cores == 1 {
                break;
            }
        }
    }
    let rust_rss = peak_rss_mb();

    let mut faker_note = String::new();
    if !args.no_faker {
        match run_faker(&root, args.faker_rows.unwrap_or(args.rows), args.seed, &dir) {
            Ok((line, version, rss)) => {
                faker_note = format!("Python Faker {version}, peak RSS {rss:.0} MB");
                lines.push(line);
            }
            Err(e) => faker_note = format!("Python Faker baseline not run: {e:#}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    println!();
    println!("tabular benchmark: {} columns ({}), {cores} cores, seed {}", names.len(), names.join(", "), args.seed);
    println!(
        "{:<20} {:<8} {:>9} {:>10} {:>9} {:>12} {:>9} {:>9}",
        "engine", "format", "threads", "rows", "seconds", "rows/s", "MB/s", "size MB"
    );
    for l in &lines {
        println!(
            "{:<20} {:<8} {:>9} {:>10} {:>9.2} {:>12.0} {:>9.1} {:>9.1}",
            l.engine,
            l.format,
            l.threads,
            l.rows,
            l.seconds,
            l.rows as f64 / l.seconds,
            l.bytes as f64 / 1e6 / l.seconds,
            l.bytes as f64 / 1e6
        );
    }
    if let Some(rss) = rust_rss {
        println!("peak RSS of the Rust runs: {rss:.0} MB");
    }
    if !faker_note.is_empty() {
        println!("{faker_note}");
    }
    let csv_all =
        lines.iter().find(|l| l.engine == "distillery-tabular" && l.format == "csv" && l.threads.contains("all"));
    if let Some(l) = csv_all.or_else(|| lines.first()) {
        let per_million = l.seconds * 1e6 / l.rows as f64;
        println!(
            "target: 1,000,000 CSV rows in <= 2 s on all cores: {:.2} s per million rows ({})",
            per_million,
            if per_million <= 2.0 { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
