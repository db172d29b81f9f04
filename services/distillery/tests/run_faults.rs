//! `distillery run` under faults, as a user meets them. Issue 14, defect 6: Ctrl-C. The first interrupt stops
//! taking work, lets what is in flight finish within `runtime.drain_timeout_secs`, then cancels it (the LLM
//! call's connection is closed) and still writes the summary (exit status 130); a second interrupt exits at
//! once. Defect 10: a file the user cannot read is rejected with why, the rest of the folder is processed
//! and the summary printed. The LLM peer is a local fault injector that accepts chat requests and never
//! answers (a hung server), so nothing here depends on model speed.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
struct Hung {
    /// Chat requests received (never answered).
    chats: AtomicUsize,
    /// Chat connections the client closed (the call was cancelled).
    closed: AtomicUsize,
}

/// An OpenAI-compatible peer that answers `/models` and `/props` and holds every chat request forever.
async fn hung_llm() -> (String, Arc<Hung>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Hung::default());
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The request head.
                let head_end = loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                if head.starts_with("POST") {
                    s.chats.fetch_add(1, Ordering::SeqCst);
                    // Never answer; notice when the client gives up.
                    loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    s.closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let body = if head.contains("/props") {
                    r#"{"total_slots": 2}"#
                } else {
                    r#"{"object": "list", "data": [{"id": "hung", "object": "model"}]}"#
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/v1"), state)
}

struct Run {
    child: Child,
    dir: tempfile::TempDir,
}

impl Run {
    fn start(llm: &str, drain_timeout_secs: u64) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(
            docs.join("leave.md"),
            "# Leave\n\nEmployees get 25 days of paid leave per year. Unused leave can be carried over to March 31 \
             of the next year, up to 5 days. Requests go to the manager two weeks ahead.\n",
        )
        .unwrap();
        let config = dir.path().join("run.toml");
        std::fs::write(
            &config,
            format!("parquet = false\n[runtime]\ndrain_timeout_secs = {drain_timeout_secs}\n[llm.generator]\ntimeout_secs = 3600\n"),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_distillery"))
            .arg("run")
            .arg(&docs)
            .arg("--out")
            .arg(dir.path().join("out"))
            .arg("--config")
            .arg(&config)
            .args(["--llm-base-url", llm, "--llm-model", "hung", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the distillery binary runs");
        Run { child, dir }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// The exit status, if the process ends within `limit` (a liveness bound, not a measurement).
    async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_chat(state: &Hung, run: &mut Run) {
    let started = Instant::now();
    while state.chats.load(Ordering::SeqCst) == 0 {
        if let Some(status) = run.child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            run.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("the run ended before calling the model ({status}): {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the run never called the model");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_interrupt_drains_within_its_timeout_cancels_the_llm_call_and_writes_the_summary() {
    let (llm, state) = hung_llm().await;
    let mut run = Run::start(&llm, 2);
    wait_for_chat(&state, &mut run).await;
    run.signal("INT");
    let status = run.exited_within(Duration::from_secs(90)).await.expect("the run stops after its drain timeout");
    assert_eq!(status.code(), Some(130), "an interrupted run says so");
    assert!(state.closed.load(Ordering::SeqCst) >= 1, "the hung LLM call was cancelled (its connection closed)");
    let summary = run.dir.path().join("out/summary.json");
    assert!(summary.exists(), "the summary is written after an interrupt");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
    assert_eq!(summary["accepted"], 0);
}

#[tokio::test]
async fn a_second_interrupt_exits_at_once() {
    let (llm, state) = hung_llm().await;
    // A drain that would wait an hour: only the second interrupt can end it.
    let mut run = Run::start(&llm, 3600);
    wait_for_chat(&state, &mut run).await;
    run.signal("INT");
    assert!(run.exited_within(Duration::from_secs(2)).await.is_none(), "the first interrupt drains, it does not exit");
    run.signal("INT");
    let status = run.exited_within(Duration::from_secs(30)).await.expect("the second interrupt exits");
    assert_eq!(status.code(), Some(130));
}

/// Issue 14, defect 10: one unreadable file used to abort the whole scan, and the run exited without a
/// summary. The run goes as an unprivileged user (root reads every file), on a folder with a file only root
/// can read: that file is rejected with why, the others are processed, and the summary is printed.
// Multi-threaded: the fake LLM peer keeps answering while this thread waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_is_rejected_and_the_run_still_summarises() {
    if !nix_root() {
        eprintln!("skipped: needs root to run the command as another user");
        return;
    }
    let (llm, _state) = hung_llm().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // The binary and the embedding model, where the unprivileged user can reach them (hard links: no copy).
    let bin = root.join("distillery");
    std::fs::hard_link(env!("CARGO_BIN_EXE_distillery"), &bin)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_distillery"), &bin).map(|_| ()))
        .unwrap();
    let model = std::env::var("DISTILLERY_EMBED_MODEL_DIR").expect(
        "DISTILLERY_EMBED_MODEL_DIR is not set: run through scripts/test (or scripts/test-servers start and source .cache/run/test-env)",
    );
    let model_copy = root.join("model");
    std::fs::create_dir_all(&model_copy).unwrap();
    for e in std::fs::read_dir(&model).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            let to = model_copy.join(e.file_name());
            std::fs::hard_link(e.path(), &to).or_else(|_| std::fs::copy(e.path(), &to).map(|_| ())).unwrap();
        }
    }
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("empty.md"), "   \n").unwrap();
    std::fs::write(docs.join("secret.md"), "# Salaries\n\nOnly root reads this.\n").unwrap();
    std::fs::set_permissions(docs.join("secret.md"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for p in [&docs, &model_copy] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let out = root.join("out");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .arg("run")
        .arg(&docs)
        .arg("--out")
        .arg(&out)
        .args(["--llm-base-url", &llm, "--llm-model", "hung", "--quiet"])
        .env("DISTILLERY_EMBED_MODEL_DIR", &model_copy)
        .env("HOME", root)
        .current_dir(root)
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the run finishes: {stderr}\n{stdout}");
    let json_end = stdout.rfind("}\ndataset written").expect("the summary is printed") + 1;
    let summary: serde_json::Value = serde_json::from_str(&stdout[..json_end]).unwrap();
    assert_eq!(summary["rejected"], 2, "{summary:#}");
    assert_eq!(summary["rejected_by_reason"]["empty_document"], 1, "{summary:#}");
    assert_eq!(summary["rejected_by_reason"]["other"], 1, "{summary:#}");
    let rejected = std::fs::read_to_string(out.join("rejected.jsonl")).unwrap();
    assert!(
        rejected.lines().any(|l| l.contains("secret.md") && l.contains("Permission denied")),
        "the unreadable file is rejected with why: {rejected}"
    );
}

fn nix_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
