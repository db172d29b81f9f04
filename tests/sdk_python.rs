//! The Python SDK (`sdk/python`) against the real `distillery serve`: a store written with the pipeline's
//! records, the binary serving it on a free port with a bearer token, and the SDK's own pytest suite run
//! against it (its models checked against the served `/openapi.json`, auth, record pages, upload, export).
//!
//! Python: `DISTILLERY_TEST_PYTHON` (scripts/test-servers installs httpx, pydantic and pytest into the venv
//! and writes it into the test environment); the SDK is pip-installed (editable) into that venv when it
//! does not import. Without it, outside CI, the test is skipped with a message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distillery_core::codec::fixtures;
use distillery_core::{Accepted, Record};
use distillery_dataset::DatasetStore;
use distillery_dataset::sql::{SqlStore, sqlite_url};

const TOKEN: &str = "sdk-test-token-5f2c";
/// Accepted records written besides the fixtures' one (of a superseded document, in no export).
const EXTRA_ACCEPTED: usize = 4;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python")
}

/// Installs the SDK (editable, no dependencies: scripts/lib.sh pins those) when the venv cannot import it.
fn ensure_sdk(py: &str) {
    let imports = |py: &str| {
        Command::new(py)
            .args(["-c", "import distillery_sdk, httpx, pydantic, pytest"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if imports(py) {
        return;
    }
    let out = Command::new(py)
        .args(["-m", "pip", "install", "-q", "--no-deps", "-e"])
        .arg(sdk_dir())
        .output()
        .expect("running pip");
    assert!(out.status.success(), "pip install sdk/python failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(imports(py), "distillery_sdk (or httpx, pydantic, pytest) does not import after installing");
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn accepted(n: usize) -> Accepted {
    let mut judged = fixtures::judged();
    judged.id = format!("j{n}");
    judged.draft.id = format!("d{n}");
    judged.draft.superseded_by = None;
    Accepted { id: format!("d{n}"), judged, nearest_similarity: None, accepted_at_ms: 1_760_000_003_000 + n as i64 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_passes_its_suite_against_distillery_serve() {
    let Some(py) = common::python() else {
        println!("skipped: DISTILLERY_TEST_PYTHON is not set (scripts/test-servers start writes it)");
        return;
    };
    ensure_sdk(&py);
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("distillery.db");
    {
        let store = SqlStore::open(&sqlite_url(&db)).await.expect("store");
        let mut records = fixtures::all();
        records.extend((2..2 + EXTRA_ACCEPTED).map(|n| Record::Accepted(accepted(n))));
        store.write(records).await.expect("write");
        let docs = store.documents().await.expect("documents");
        assert_eq!(docs.len(), 1);
    }

    let port = common::free_port();
    let log = tmp.path().join("serve.log");
    let child = Command::new(common::binary())
        .args(["serve", "--store", &format!("sqlite:{}", db.display()), "--addr", &format!("127.0.0.1:{port}")])
        .arg("--out")
        .arg(tmp.path().join("served"))
        .arg("--no-run")
        .env("DISTILLERY_API_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starting distillery serve");
    let mut serve = Serve(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if http.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        if let Ok(Some(status)) = serve.0.try_wait() {
            panic!("distillery serve exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "distillery serve not ready in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The binary's own answers, before the SDK's: 401 without the token, the document with it.
    assert_eq!(http.get(format!("{url}/v1/documents")).send().await.unwrap().status(), 401);
    let docs: serde_json::Value =
        http.get(format!("{url}/v1/documents")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(docs["documents"].as_array().map(Vec::len), Some(1), "{docs}");

    let out = tokio::task::spawn_blocking({
        let (py, url) = (py.clone(), url.clone());
        move || {
            Command::new(py)
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"])
                .arg(sdk_dir().join("tests"))
                .env("DISTILLERY_API_URL", url)
                .env("DISTILLERY_API_TOKEN", TOKEN)
                // Every accepted record and the fixtures' rejection.
                .env("DISTILLERY_SDK_EXPECTED_RECORDS", (1 + EXTRA_ACCEPTED + 1).to_string())
                .output()
                .expect("running pytest")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        out.status.success()
            && summary.contains("passed")
            && !summary.contains("failed")
            && !summary.contains("skipped"),
        "pytest did not pass: {summary}\n{stdout}\n{stderr}\nserve log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    common::report(&format!("python sdk: {summary}\n"));
    let served_uploads = tmp.path().join("served/uploads");
    assert!(
        served_uploads.join("travel policy.md").is_file(),
        "the SDK's upload landed in {}",
        served_uploads.display()
    );
    drop(serve);
}
