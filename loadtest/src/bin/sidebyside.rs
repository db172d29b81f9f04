//! distilabel and Distillery side by side, on one llama.cpp server (same model, slots, threads) and the same
//! documents, in one run: starts the server, runs the distilabel baseline (loadtest/distilabel/pipeline.py:
//! TextGeneration, one QA pair per ~1,000-character chunk, then UltraFeedback's 1-5 overall rating by the
//! same model, kept at >= 4), then `distillery run`, sampling the server's `/slots` during each, and prints
//! one table: wall time, verified unique pairs, unique pairs per hour, tokens per verified pair and how busy
//! the server was. Both systems' pairs are counted the same way: accepted (rating or judge score >= 4) and
//! unique by normalised question (NFKC, lower case, punctuation and spacing folded).
//!
//!   loadtest/sidebyside.sh [FOLDER] [--model qwen2.5-0.5b] [--port 18097]     (installs, builds, runs this)
//!   $CARGO_TARGET_DIR/release/sidebyside [FOLDER] --python .cache/distilabel-venv/bin/python
//!
//! It prints figures and asserts nothing about them. The server is always stopped at the end (also on
//! errors, timeouts and Ctrl-C); a port that already answers is refused rather than shared.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use distillery_loadtest::{BusyStats, SlotSampler};
use serde_json::{Value, json};

/// A document from `distillery extract`: its id, its name, and its chunks' (ordinal, text).
type ExtractedDoc = (String, String, Vec<(i64, String)>);

#[derive(Parser, Debug)]
#[command(
    about = "distilabel vs Distillery on one llama.cpp server: verified unique pairs/hour, tokens per pair, server busy"
)]
struct Args {
    /// The documents (any format `distillery run` reads; distilabel gets the same text via `distillery extract`).
    #[arg(default_value = "examples/docs")]
    input: PathBuf,
    /// qwen2.5-0.5b or qwen2.5-1.5b (scripts/local-llm).
    #[arg(long, default_value = "qwen2.5-0.5b")]
    model: String,
    /// The server's port (not 18090, the test suite's, nor 8080, the default server's).
    #[arg(long, default_value_t = 18097)]
    port: u16,
    #[arg(long, default_value_t = 2)]
    parallel: u32,
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Server context (default: scripts/local-llm's, 4096 per slot).
    #[arg(long)]
    ctx: Option<u32>,
    /// Where both systems write their outputs, and results.json / table.md.
    #[arg(long, default_value = "loadtest/results/sidebyside")]
    out: PathBuf,
    /// The distillery binary (default: beside this one).
    #[arg(long)]
    distillery_bin: Option<PathBuf>,
    /// A TOML configuration for `distillery run` (default: the built-in one).
    #[arg(long)]
    distillery_config: Option<PathBuf>,
    /// The distilabel venv's python (default: what loadtest/distilabel/install.sh installs).
    #[arg(long)]
    python: Option<PathBuf>,
    /// distilabel's chunk size in characters.
    #[arg(long, default_value_t = 1000)]
    chunk_chars: usize,
    /// Give distilabel's rater the passage too (default: UltraFeedback as designed, question and answer).
    #[arg(long)]
    grounded_rating: bool,
    /// Minutes each system may take before it is stopped and reported as timed out.
    #[arg(long, default_value_t = 90)]
    timeout_min: u64,
    /// Minutes the server may take to start (the first start on a machine builds llama.cpp: ~15 min).
    #[arg(long, default_value_t = 45)]
    server_timeout_min: u64,
    #[arg(long)]
    skip_distilabel: bool,
    #[arg(long)]
    skip_distillery: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let ctrl_c = tokio::signal::ctrl_c();
    let result = tokio::select! {
        r = run(args) => r,
        _ = ctrl_c => Err(anyhow::anyhow!("interrupted")),
    };
    // `run` owns the server guard: whichever way it ended, the server has been stopped by now (the guard's
    // drop runs when the future is dropped by the select above).
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidebyside: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let repo = repo_root()?;
    let input = absolute(&args.input)?;
    if !input.exists() {
        bail!("input {} does not exist", input.display());
    }
    let out = absolute(&args.out)?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let distillery = match &args.distillery_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("distillery"),
    };
    if !distillery.is_file() {
        bail!(
            "no distillery binary at {} (build it with `cargo build --release -p distillery`, or pass --distillery-bin)",
            distillery.display()
        );
    }
    let python = match &args.python {
        Some(p) => p.clone(),
        None => repo.join(".cache/distilabel-venv/bin/python"),
    };
    if !args.skip_distilabel && !python.is_file() {
        bail!("no distilabel venv python at {} (run loadtest/distilabel/install.sh)", python.display());
    }

    // The text distilabel works on: what `distillery extract` reads from the same files (PII placeholders
    // included, as Distillery's prompts have them), one line per document.
    let files = input_files(&input);
    if files.is_empty() {
        bail!("no files under {}", input.display());
    }
    let docs_jsonl = out.join("docs.jsonl");
    let ndocs = extract_documents(&distillery, &files, &docs_jsonl, &repo).await?;
    eprintln!("sidebyside: {} files, {ndocs} with text, from {}", files.len(), input.display());

    let server = Server::start(&repo, &args).await?;
    let base_url = server.base_url.clone();
    eprintln!("sidebyside: llama.cpp {} at {base_url} ({} slots, {} threads)", args.model, args.parallel, args.threads);
    let timeout = Duration::from_secs(args.timeout_min * 60);

    let mut rows = Vec::new();
    if !args.skip_distilabel {
        let dir = out.join("distilabel");
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(repo.join("loadtest/distilabel/pipeline.py"))
            .arg("--docs")
            .arg(&docs_jsonl)
            .args(["--base-url", &base_url, "--model", &args.model])
            .arg("--out")
            .arg(&dir)
            .args(["--chunk-chars", &args.chunk_chars.to_string()]);
        if args.grounded_rating {
            cmd.arg("--grounded-rating");
        }
        let m = measure("distilabel", cmd, &dir, &server, timeout).await?;
        rows.push(distilabel_row(&dir, m));
    }
    if !args.skip_distillery {
        let dir = out.join("distillery");
        let mut cmd = tokio::process::Command::new(&distillery);
        cmd.arg("run").arg(&input).arg("--out").arg(&dir).args([
            "--llm-base-url",
            &base_url,
            "--llm-model",
            &args.model,
            "--quiet",
        ]);
        if let Some(c) = &args.distillery_config {
            cmd.arg("--config").arg(absolute(c)?);
        }
        let m = measure("distillery", cmd, &dir, &server, timeout).await?;
        rows.push(distillery_row(&dir, m));
    }
    server.stop();

    let table = render(&args, &input, &rows);
    println!("{table}");
    std::fs::write(out.join("table.md"), &table)?;
    let results = json!({
        "input": input.display().to_string(),
        "model": args.model,
        "parallel": args.parallel,
        "threads": args.threads,
        "chunk_chars": args.chunk_chars,
        "grounded_rating": args.grounded_rating,
        "systems": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")?;
    eprintln!("sidebyside: outputs, results.json and table.md in {}", out.display());
    if let Some(r) = rows.iter().find(|r| r.error.is_some()) {
        bail!("{} did not finish: {}", r.system, r.error.as_deref().unwrap_or_default());
    }
    Ok(())
}

/// The project root: the working directory if it is one, else the one this crate was built in.
fn repo_root() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    if cwd.join("scripts/local-llm").is_file() {
        return Ok(cwd);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("scripts/local-llm").is_file() {
        return Ok(built.canonicalize()?);
    }
    bail!("run from the project root (no scripts/local-llm in {})", cwd.display())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

fn input_files(input: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    if input.is_file() {
        v.push(input.to_path_buf());
    } else {
        walk(input, &mut v);
    }
    v
}

/// Runs `distillery extract` on the files and writes one {document, text} line per document with text.
async fn extract_documents(distillery: &Path, files: &[PathBuf], to: &Path, repo: &Path) -> anyhow::Result<usize> {
    let mut cmd = tokio::process::Command::new(distillery);
    cmd.arg("extract").args(files).current_dir(repo).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .context("`distillery extract` took over 10 minutes")?
        .context("running `distillery extract`")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("sidebyside: extract: {line}");
    }
    // Chunks in document order, each document's chunks in ordinal order; overlap is off by default, so
    // joining them gives the document's text.
    let mut docs: Vec<ExtractedDoc> = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines().filter(|l| !l.trim().is_empty()) {
        let c: Value = serde_json::from_str(line).context("a `distillery extract` line is not JSON")?;
        // Grouped by document id (two files of one name in different folders stay apart), named by path.
        let id = c["document_id"].as_str().unwrap_or_default();
        let name = format!(
            "{}/{}",
            c["source"]["bucket"].as_str().unwrap_or_default(),
            c["source"]["key"].as_str().unwrap_or(id)
        );
        let ord = c["ordinal"].as_i64().unwrap_or(0);
        let text = c["text"].as_str().unwrap_or_default().to_string();
        match docs.iter_mut().find(|(d, _, _)| d == id) {
            Some((_, _, v)) => v.push((ord, text)),
            None => docs.push((id.to_string(), name, vec![(ord, text)])),
        }
    }
    if docs.is_empty() {
        bail!("`distillery extract` produced no text ({})", stderr.trim());
    }
    let mut body = String::new();
    for (_, doc, mut chunks) in docs.iter().cloned() {
        chunks.sort_by_key(|(o, _)| *o);
        let text = chunks.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n\n");
        body.push_str(&serde_json::to_string(&json!({"document": doc, "text": text}))?);
        body.push('\n');
    }
    std::fs::write(to, body)?;
    Ok(docs.len())
}

/// The llama.cpp server, started by scripts/local-llm and stopped when dropped.
struct Server {
    repo: PathBuf,
    port: u16,
    root: String,
    base_url: String,
    stopped: bool,
}

impl Server {
    async fn start(repo: &Path, args: &Args) -> anyhow::Result<Server> {
        let root = format!("http://127.0.0.1:{}", args.port);
        let http = reqwest::Client::new();
        if http.get(format!("{root}/health")).timeout(Duration::from_secs(2)).send().await.is_ok() {
            bail!("something already answers on port {}: pick a free one with --port", args.port);
        }
        let mut cmd = tokio::process::Command::new(repo.join("scripts/local-llm"));
        cmd.arg("start")
            .args(["--model", &args.model])
            .args(["--port", &args.port.to_string()])
            .args(["--parallel", &args.parallel.to_string()])
            .args(["--threads", &args.threads.to_string()]);
        if let Some(ctx) = args.ctx {
            cmd.args(["--ctx", &ctx.to_string()]);
        }
        cmd.current_dir(repo).stdin(Stdio::null()).stderr(Stdio::inherit());
        // From here on the guard stops whatever local-llm managed to start.
        let mut server =
            Server { repo: repo.to_path_buf(), port: args.port, root, base_url: String::new(), stopped: false };
        let output = tokio::time::timeout(Duration::from_secs(args.server_timeout_min * 60), cmd.output())
            .await
            .with_context(|| format!("the server did not start in {} minutes", args.server_timeout_min))?
            .context("running scripts/local-llm")?;
        if !output.status.success() {
            bail!("scripts/local-llm start failed ({}); log: .cache/run/llama-{}.log", output.status, args.port);
        }
        server.base_url = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_string();
        if !server.base_url.starts_with("http") {
            bail!("scripts/local-llm printed no base URL");
        }
        // /slots must be on (local-llm passes --slots): without it there is no busy fraction.
        let slots: Value = http
            .get(format!("{}/slots", server.root))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .context("GET /slots")?
            .json()
            .await
            .context("/slots is not JSON")?;
        if slots.as_array().is_none_or(|a| a.len() != args.parallel as usize) {
            bail!("/slots does not list {} slots: {slots}", args.parallel);
        }
        Ok(server)
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.repo.join(format!(".cache/run/llama-{}.pid", self.port))).ok()?.trim().parse().ok()
    }

    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let status = std::process::Command::new(self.repo.join("scripts/local-llm"))
            .args(["stop", "--port", &self.port.to_string()])
            .current_dir(&self.repo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("sidebyside: warning: `scripts/local-llm stop --port {}` failed; stop it by hand", self.port);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Counters read from the server and the machine around one system's run.
#[derive(Debug, Clone, Default)]
struct Measured {
    wall_s: f64,
    busy: BusyStats,
    /// llama.cpp's /metrics deltas: prompt tokens evaluated, taken from the cache, generated; decode calls.
    server_prompt: f64,
    server_cached: f64,
    server_predicted: f64,
    /// CPU seconds of the llama-server process, and the machine's busy share, over the run.
    server_cpu_s: Option<f64>,
    machine_busy: Option<f64>,
    error: Option<String>,
}

async fn measure(
    name: &str,
    mut cmd: tokio::process::Command,
    dir: &Path,
    server: &Server,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(dir)?;
    let log = dir.join("run.log");
    let logf = std::fs::File::create(&log)?;
    cmd.current_dir(&server.repo)
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .process_group(0)
        .kill_on_drop(true);
    eprintln!("sidebyside: running {name} (log: {})", log.display());
    let http = reqwest::Client::new();
    let metrics_before = server_metrics(&http, &server.root).await?;
    let cpu_before = server.pid().and_then(process_cpu_s);
    let stat_before = machine_cpu();
    let sampler = SlotSampler::start(&server.base_url, Duration::from_millis(200));
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let pgid = child.id();
    // Ends the whole process group (distilabel runs its steps in child processes) if this future is dropped
    // (Ctrl-C) or times out.
    let mut group = Group(pgid);
    let error = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => None,
        Ok(Ok(s)) => Some(format!("exited with {s}; last lines of {}:\n{}", log.display(), tail(&log, 25))),
        Ok(Err(e)) => Some(format!("wait failed: {e}")),
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            Some(format!("timed out after {} s; log: {}", timeout.as_secs(), log.display()))
        }
    };
    group.0 = None;
    let wall_s = started.elapsed().as_secs_f64();
    let busy = sampler.finish().await;
    let metrics_after = server_metrics(&http, &server.root).await?;
    let d = |k: &str| metrics_after.get(k).copied().unwrap_or(0.0) - metrics_before.get(k).copied().unwrap_or(0.0);
    let server_cpu_s = match (cpu_before, server.pid().and_then(process_cpu_s)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let machine_busy = match (stat_before, machine_cpu()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) / (t1 - t0)),
        _ => None,
    };
    if let Some(e) = &error {
        eprintln!("sidebyside: {name} failed: {e}");
    }
    eprintln!("sidebyside: {name} took {wall_s:.1} s");
    Ok(Measured {
        wall_s,
        busy,
        server_prompt: d("llamacpp:prompt_tokens_total"),
        server_cached: d("llamacpp:prompt_tokens_cached_total"),
        server_predicted: d("llamacpp:tokens_predicted_total"),
        server_cpu_s,
        machine_busy,
        error,
    })
}

/// A child's process group, ended (TERM, then KILL) when dropped unless disarmed.
struct Group(Option<u32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pg) = self.0.take() {
            let group = format!("-{pg}");
            let _ = std::process::Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
            std::thread::sleep(Duration::from_secs(2));
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// llama.cpp's Prometheus counters (`--metrics`).
async fn server_metrics(http: &reqwest::Client, root: &str) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    let text = http
        .get(format!("{root}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .context("GET /metrics (the server needs --metrics)")?
        .text()
        .await?;
    Ok(parse_metrics(&text))
}

fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// utime + stime of a process, in seconds (Linux; clock ticks of 1/100 s).
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// (busy, total) jiffies of all CPUs (Linux).
fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0.0);
    Some((total - idle, total))
}

/// The same-question key of both systems: NFKC, lower case, every run of non-alphanumerics one space
/// (loadtest/distilabel/pipeline.py's `normalize_question` is the same).
fn question_key(q: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = q
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, Default)]
struct Row {
    system: String,
    m: Measured,
    /// Accepted items before the cross-system dedup, and unique by question.
    accepted: u64,
    unique: u64,
    /// Distillery only: unique user turns, conversations counted turn by turn.
    unique_turns: Option<u64>,
    llm_calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    notes: String,
    error: Option<String>,
}

impl Row {
    fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
    fn per_hour(&self) -> f64 {
        if self.m.wall_s > 0.0 { self.unique as f64 * 3600.0 / self.m.wall_s } else { 0.0 }
    }
    fn tokens_per_verified(&self) -> Option<f64> {
        (self.unique > 0).then(|| self.tokens() as f64 / self.unique as f64)
    }
    /// Tokens the server computed (prompt tokens not served from its prefix cache, and generated tokens)
    /// per verified pair: what the pairs cost in compute when the server caches prefixes.
    fn computed_per_verified(&self) -> Option<f64> {
        (self.unique > 0 && self.m.server_prompt + self.m.server_predicted > 0.0)
            .then(|| (self.m.server_prompt + self.m.server_predicted) / self.unique as f64)
    }
    fn to_json(&self) -> Value {
        json!({
            "system": self.system,
            "wall_s": self.m.wall_s,
            "accepted": self.accepted,
            "verified_unique": self.unique,
            "verified_unique_turns": self.unique_turns,
            "unique_per_hour": self.per_hour(),
            "llm_calls": self.llm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_verified": self.tokens_per_verified(),
            "computed_tokens_per_verified": self.computed_per_verified(),
            "server_busy": self.m.busy.busy_fraction(),
            "slot_occupancy": self.m.busy.occupancy(),
            "busy_samples": self.m.busy.samples,
            "server_prompt_tokens_evaluated": self.m.server_prompt,
            "server_prompt_tokens_cached": self.m.server_cached,
            "server_tokens_predicted": self.m.server_predicted,
            "server_cpu_s": self.m.server_cpu_s,
            "machine_cpu_busy": self.m.machine_busy,
            "notes": self.notes,
            "error": self.error,
        })
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn distilabel_row(dir: &Path, m: Measured) -> Row {
    let kept = read_jsonl(&dir.join("kept.jsonl"));
    let unique: HashSet<String> =
        kept.iter().filter_map(|k| k["question"].as_str()).map(question_key).filter(|k| !k.is_empty()).collect();
    let s = read_json(&dir.join("summary.json")).unwrap_or(Value::Null);
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let error = m.error.clone().or_else(|| s.is_null().then(|| "no summary.json".to_string()));
    Row {
        system: "distilabel".into(),
        accepted: kept.len() as u64,
        unique: unique.len() as u64,
        unique_turns: None,
        llm_calls: n("llm_calls"),
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        notes: format!(
            "{} chunks; {} generations ({} no QA pair, {} LLM failures); {} rated ({} rating unparsed, {} LLM failures), \
             ratings {}; {} kept >= 4",
            n("chunks"),
            n("generations"),
            n("qa_unparsed"),
            n("generation_llm_failed"),
            n("rated"),
            n("rating_unparsed"),
            n("rating_llm_failed"),
            s["rating_histogram"],
            n("kept"),
        ),
        error,
        m,
    }
}

/// Questions of Distillery's accepted records: a QA pair's question; a conversation's user turns.
fn distillery_questions(rec: &Value) -> Vec<String> {
    if let Some(q) = rec["question"].as_str() {
        return vec![q.to_string()];
    }
    rec["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn distillery_row(dir: &Path, m: Measured) -> Row {
    let accepted = read_jsonl(&dir.join("accepted.jsonl"));
    // One verified item per accepted record, keyed by its (first) question; a conversation whose opening
    // question another record already has is a repeat. Turn by turn is reported beside it.
    let mut unique = HashSet::new();
    let mut turns = HashSet::new();
    let mut conversations = 0;
    for rec in &accepted {
        let qs = distillery_questions(rec);
        conversations += usize::from(rec["kind"] == "conversation");
        if let Some(first) = qs.first() {
            let k = question_key(first);
            if !k.is_empty() {
                unique.insert(k);
            }
        }
        turns.extend(qs.iter().map(|q| question_key(q)).filter(|k| !k.is_empty()));
    }
    let s = read_json(&dir.join("summary.json")).unwrap_or(Value::Null);
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let error = m.error.clone().or_else(|| s.is_null().then(|| "no summary.json".to_string()));
    Row {
        system: "distillery".into(),
        accepted: accepted.len() as u64,
        unique: unique.len() as u64,
        unique_turns: Some(turns.len() as u64),
        llm_calls: n("llm_calls"),
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        notes: format!(
            "{} chunks; {} drafts ({} regenerated, {} repaired); {} accepted ({} conversations); rejected {}",
            n("chunks"),
            n("drafts"),
            n("regenerated"),
            n("repaired"),
            n("accepted"),
            conversations,
            s["rejected_by_reason"],
        ),
        error,
        m,
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn opt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

fn render(args: &Args, input: &Path, rows: &[Row]) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "\nside by side on {} — llama.cpp {}, {} slots, {} threads, one server; distilabel chunks of ~{} characters{}\n\n",
        input.display(),
        args.model,
        args.parallel,
        args.threads,
        args.chunk_chars,
        if args.grounded_rating { ", rater sees the passage" } else { "" }
    ));
    t.push_str("| system | wall s | verified unique | unique/h | tokens per verified | computed tokens per verified | server busy |\n");
    t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        t.push_str(&format!(
            "| {}{} | {:.1} | {} | {:.1} | {} | {} | {} |\n",
            r.system,
            if r.error.is_some() { " (FAILED)" } else { "" },
            r.m.wall_s,
            r.unique,
            r.per_hour(),
            opt(r.tokens_per_verified(), 0),
            opt(r.computed_per_verified(), 0),
            pct(r.m.busy.busy_fraction()),
        ));
    }
    if let (Some(a), Some(b)) =
        (rows.iter().find(|r| r.system == "distilabel"), rows.iter().find(|r| r.system == "distillery"))
    {
        let rate = if a.per_hour() > 0.0 { Some(b.per_hour() / a.per_hour()) } else { None };
        let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if x > 0.0 => Some(y / x),
            _ => None,
        };
        let tok = ratio(a.tokens_per_verified(), b.tokens_per_verified());
        let computed = ratio(a.computed_per_verified(), b.computed_per_verified());
        t.push_str(&format!(
            "| distillery / distilabel | {:.2}x | | {}x (goal >= 4x) | {}x (goal <= 0.33x) | {}x | goal >= 90% |\n",
            b.m.wall_s / a.m.wall_s.max(f64::EPSILON),
            opt(rate, 2),
            opt(tok, 2),
            opt(computed, 2),
        ));
    }
    t.push_str("\n| system | accepted | unique turns | LLM calls | prompt tok | completion tok | slot occupancy | server prompt eval / cached / predicted | server CPU (cores) | machine CPU busy |\n");
    t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} | {} | {} |\n",
            r.system,
            r.accepted,
            r.unique_turns.map_or_else(|| "-".into(), |n| n.to_string()),
            r.llm_calls,
            r.prompt_tokens,
            r.completion_tokens,
            pct(r.m.busy.occupancy()),
            r.m.server_prompt,
            r.m.server_cached,
            r.m.server_predicted,
            opt(r.m.server_cpu_s.map(|c| c / r.m.wall_s.max(f64::EPSILON)), 2),
            r.m.machine_busy.map_or_else(|| "-".into(), pct),
        ));
    }
    t.push('\n');
    for r in rows {
        t.push_str(&format!("- {}: {}\n", r.system, r.notes));
        if let Some(e) = &r.error {
            t.push_str(&format!("  FAILED: {}\n", e.lines().next().unwrap_or_default()));
        }
    }
    t.push_str(
        "\nverified unique: accepted (distilabel: UltraFeedback overall rating >= 4; Distillery: critic score >= 4, \
         its own checks and dedup) and unique by normalised question; a Distillery conversation counts once (its \
         user turns: 'unique turns'). tokens: prompt + completion from the server's usage fields, every call \
         counted. computed tokens: the server's own count of prompt tokens it evaluated (not served from its \
         prefix cache) plus tokens it generated. server busy: share of /slots samples (every 200 ms) with a slot processing; slot occupancy: mean \
         share of slots processing.\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_keys_fold_case_punctuation_and_width() {
        assert_eq!(question_key("  What is the ANNUAL-leave policy?? "), "what is the annual leave policy");
        assert_eq!(question_key("What is the annual leave policy"), question_key("what is the annual  leave policy?"));
        assert_eq!(question_key("ＷＨＡＴ is 25%?"), "what is 25");
        assert_ne!(question_key("How many days of sick leave?"), question_key("How many days of annual leave?"));
    }

    #[test]
    fn distillery_records_give_their_questions() {
        let qa = json!({"kind": "qa", "question": "How long?", "answer": "Two days."});
        let conv = json!({"kind": "conversation", "messages": [
            {"role": "user", "content": "Who approves leave?"}, {"role": "assistant", "content": "The manager."},
            {"role": "user", "content": "And sick leave?"}, {"role": "assistant", "content": "HR."}]});
        assert_eq!(distillery_questions(&qa), vec!["How long?"]);
        assert_eq!(distillery_questions(&conv), vec!["Who approves leave?", "And sick leave?"]);
    }

    #[test]
    fn rows_count_unique_questions_from_their_files() {
        let dir = std::env::temp_dir().join(format!("sidebyside-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(
            dir.join("a/kept.jsonl"),
            "{\"question\": \"What is X?\"}\n{\"question\": \"what is x\"}\n{\"question\": \"What is Y?\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("a/summary.json"),
            r#"{"prompt_tokens": 900, "completion_tokens": 100, "llm_calls": 6}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("b/accepted.jsonl"),
            concat!(
                "{\"kind\": \"qa\", \"question\": \"What is X?\"}\n",
                "{\"kind\": \"conversation\", \"messages\": [{\"role\": \"user\", \"content\": \"What is X\"}, ",
                "{\"role\": \"assistant\", \"content\": \"x\"}, {\"role\": \"user\", \"content\": \"And Z?\"}]}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("b/summary.json"), r#"{"prompt_tokens": 50, "completion_tokens": 50}"#).unwrap();
        let m = Measured { wall_s: 360.0, server_prompt: 300.0, server_predicted: 100.0, ..Default::default() };
        let a = distilabel_row(&dir.join("a"), m.clone());
        assert_eq!((a.accepted, a.unique, a.tokens_per_verified()), (3, 2, Some(500.0)));
        assert_eq!(a.computed_per_verified(), Some(200.0), "the server's evaluated and generated tokens per pair");
        assert!((a.per_hour() - 20.0).abs() < 1e-9);
        let b = distillery_row(&dir.join("b"), m);
        assert_eq!((b.accepted, b.unique, b.unique_turns), (2, 1, Some(2)));
        assert!(a.error.is_none() && b.error.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn prometheus_text_parses() {
        let m = parse_metrics("# HELP x\nllamacpp:prompt_tokens_total 3755\nllamacpp:requests_processing 4\n");
        assert_eq!(m.get("llamacpp:prompt_tokens_total"), Some(&3755.0));
        assert_eq!(m.get("llamacpp:requests_processing"), Some(&4.0));
    }
}
