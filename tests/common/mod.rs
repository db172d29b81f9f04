//! Harness of the end-to-end tests: the real servers started by `scripts/test-servers`, the `distillery`
//! binary run as separate service processes, and helpers to watch topics and the dataset.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use distillery_core::{Codec, Record, Topic};
use distillery_kafka::KafkaConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};

/// The servers the suite runs against.
#[derive(Debug, Clone)]
pub struct Servers {
    pub kafka: String,
    pub s3: String,
    pub s3_key: String,
    pub s3_secret: String,
    pub llm: String,
    pub llm_model: String,
    pub embed_dir: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the end-to-end tests need the real servers; run them through `scripts/test` (or `scripts/test-servers start` and source .cache/run/test-env)")
    })
}

impl Servers {
    pub fn from_env() -> Servers {
        Servers {
            kafka: var("DISTILLERY_TEST_KAFKA"),
            s3: var("DISTILLERY_TEST_S3"),
            s3_key: var("DISTILLERY_TEST_S3_ACCESS_KEY"),
            s3_secret: var("DISTILLERY_TEST_S3_SECRET_KEY"),
            llm: var("DISTILLERY_TEST_LLM"),
            llm_model: var("DISTILLERY_TEST_LLM_MODEL"),
            embed_dir: var("DISTILLERY_EMBED_MODEL_DIR"),
        }
    }

    pub fn s3_config(&self) -> distillery_store::S3Config {
        distillery_store::S3Config {
            endpoint: Some(self.s3.clone()),
            region: "default".into(),
            access_key_id: Some(self.s3_key.clone()),
            secret_access_key: distillery_core::config::Secret::new(self.s3_secret.clone()),
            force_path_style: true,
            timeout_secs: 30,
        }
    }

    pub fn s3_toml(&self) -> String {
        format!(
            "[s3]\nendpoint = \"{}\"\nregion = \"default\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.s3, self.s3_key, self.s3_secret
        )
    }
}

/// A unique namespace for one test: topic prefix, consumer groups, bucket, temp folder.
pub struct Scope {
    pub name: String,
    pub prefix: String,
    pub bucket: String,
    pub dir: tempfile::TempDir,
}

impl Scope {
    pub fn new(test: &str) -> Scope {
        let tag = format!(
            "{}{}",
            test,
            &distillery_core::ids::hash_parts(&[test, &distillery_core::now_ms().to_string()])[..8]
        );
        Scope {
            name: tag.clone(),
            prefix: format!("{tag}."),
            bucket: tag.to_lowercase().replace('_', "-"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn kafka(&self, servers: &Servers) -> KafkaConfig {
        KafkaConfig {
            brokers: servers.kafka.clone(),
            topic_prefix: self.prefix.clone(),
            group_prefix: format!("{}-", self.name),
            session_timeout_ms: 6000,
            partitions: 3,
            ..Default::default()
        }
    }

    /// The `[kafka]`, `[runtime]` and `[ops]` sections every service config starts with.
    pub fn service_toml(&self, servers: &Servers, port: u16) -> String {
        format!(
            "[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\ngroup_prefix = \"{}-\"\nsession_timeout_ms = 6000\npartitions = 3\nstatistics_interval_ms = 1000\n\
             [runtime]\ndrain_timeout_secs = 60\n[runtime.retry]\nmax_attempts = 4\ninitial_backoff_ms = 200\nmax_backoff_ms = 2000\n\
             [ops]\nlisten = \"127.0.0.1:{port}\"\n",
            servers.kafka, self.prefix, self.name
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A free TCP port on loopback, never one this test process was given before: the listener is dropped
/// before the caller binds the port, and the kernel may hand the same port out again meanwhile (a Kafka
/// end-to-end run once gave the sink's ops port to dedup too, which then could not start).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// The `distillery` binary built for this test.
/// The `distillery` binary of this build: beside the test executable's `deps/` folder (cargo builds it
/// for the `distillery` package's own tests; `cargo build -p distillery` otherwise).
pub fn binary() -> PathBuf {
    // A build directory shared by several checkouts may hold another checkout's binary there: this one's can
    // be named instead.
    if let Some(bin) = std::env::var_os("DISTILLERY_TEST_BINARY").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("tests run from <target>/<profile>/deps");
    let bin = dir.join(format!("distillery{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p distillery`", bin.display());
    bin
}

/// A stage running as its own process.
pub struct Service {
    pub stage: &'static str,
    pub config: PathBuf,
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(stage: &'static str, config: &Path, port: u16, logs: &Path) -> Service {
        Service::start_logging(stage, config, port, logs, "info,rdkafka=warn")
    }

    /// [`Service::start`] with its own `RUST_LOG` filter (a test that must explain a stall logs more).
    pub fn start_logging(stage: &'static str, config: &Path, port: u16, logs: &Path, filter: &str) -> Service {
        let log = logs.join(format!("{stage}-{}.log", distillery_core::now_ms()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .args(["service", stage, "--config"])
            .arg(config)
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn the distillery binary");
        Service { stage, config: config.to_path_buf(), port, child, log }
    }

    pub fn signal(&self, sig: &str) {
        let status =
            Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// SIGTERM, then the exit status within `secs`.
    pub fn stop(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        for _ in 0..secs * 10 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        None
    }

    pub fn restart(&mut self, logs: &Path) {
        *self = Service::start(self.stage, &self.config.clone(), self.port, logs);
    }

    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads every record of some topics from the start (its own consumer group).
pub struct Tap {
    consumer: StreamConsumer,
    names: distillery_core::TopicNames,
    pub seen: HashMap<Topic, Vec<Record>>,
}

impl Tap {
    pub fn new(kafka: &KafkaConfig, topics: &[Topic]) -> Tap {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("group.id", format!("{}tap-{}", kafka.group_prefix, distillery_core::now_ms()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("tap consumer");
        let names = kafka.topic_names();
        let list: Vec<String> = topics.iter().map(|t| names.name(*t)).collect();
        consumer.subscribe(&list.iter().map(String::as_str).collect::<Vec<_>>()).expect("subscribe");
        Tap { consumer, names, seen: HashMap::new() }
    }

    /// Collects what arrives within `wait`.
    pub async fn poll(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(m)) = tokio::time::timeout_at(deadline, self.consumer.recv()).await {
            let Some(topic) = self.names.resolve(m.topic()) else { continue };
            let record = Codec::global()
                .decode(m.payload().unwrap_or_default(), topic.record_kind())
                .expect("topics carry valid records");
            self.seen.entry(topic).or_default().push(record);
        }
    }

    pub fn records(&self, topic: Topic) -> &[Record] {
        self.seen.get(&topic).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Parsed lines of a JSONL file (missing file: none).
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: invalid JSON line {l:?}: {e}", path.display())))
        .collect()
}

/// The example documents shipped in the repository.
pub fn example_docs() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/docs");
    let mut docs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("examples/docs")
        .map(|e| e.expect("entry").path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    docs.sort();
    docs
}

/// An S3 ObjectCreated notification exactly as MinIO publishes it to a Kafka target.
pub fn minio_event(bucket: &str, key: &str, size: usize, etag: &str, sequencer: &str) -> serde_json::Value {
    let encoded = urlencode(key);
    serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{encoded}"),
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "awsRegion": "",
            "eventTime": "2026-11-22T10:00:00.000Z",
            "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
                                 "x-amz-request-id": "17A0B0F1F1F1F1F1", "x-minio-deployment-id": "2c4ae6b3",
                                 "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": encoded, "size": size, "eTag": etag, "contentType": "application/octet-stream",
                           "userMetadata": {"content-type": "application/octet-stream"}, "sequencer": sequencer}
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"}
        }]
    })
}

/// An S3 ObjectRemoved notification exactly as MinIO publishes it to a Kafka target (no size or ETag).
pub fn minio_removed_event(bucket: &str, key: &str, sequencer: &str) -> serde_json::Value {
    let mut e = minio_event(bucket, key, 0, "", sequencer);
    e["EventName"] = "s3:ObjectRemoved:Delete".into();
    let r = &mut e["Records"][0];
    r["eventName"] = "s3:ObjectRemoved:Delete".into();
    let object = r["s3"]["object"].as_object_mut().expect("object");
    object.remove("size");
    object.remove("eTag");
    object.remove("contentType");
    object.remove("userMetadata");
    e
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates an SNS topic on Ceph RGW that pushes to `endpoint` and subscribes `bucket`'s ObjectCreated and
/// ObjectRemoved events to it: the same notification setup MinIO users do with `mc event add`.
pub async fn rgw_notify(servers: &Servers, bucket: &str, topic: &str, endpoint: &str) {
    rgw_notify_with(servers, bucket, topic, endpoint, None).await
}

/// [`rgw_notify`], with the topic's `OpaqueData` attribute (RGW puts it in every notification it sends:
/// how a token reaches ingest's webhook from RGW, which sends no custom header).
pub async fn rgw_notify_with(servers: &Servers, bucket: &str, topic: &str, endpoint: &str, opaque: Option<&str>) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let mut body = format!(
        "Action=CreateTopic&Name={topic}&Attributes.entry.1.key=push-endpoint&Attributes.entry.1.value={}\
         &Attributes.entry.2.key=persistent&Attributes.entry.2.value=false",
        urlencode_form(endpoint)
    );
    if let Some(opaque) = opaque {
        body += &format!("&Attributes.entry.3.key=OpaqueData&Attributes.entry.3.value={}", urlencode_form(opaque));
    }
    let creds = aws_credential_types::Credentials::new(&servers.s3_key, &servers.s3_secret, None, None, "test");
    let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("default")
        .name("sns")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let url = format!("{}/", servers.s3);
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let signable = SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
        .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = reqwest::Client::new().post(&url).header("content-type", headers[0].1).body(body.clone());
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("CreateTopic");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "CreateTopic failed: {status} {text}");
    let arn =
        text.split("<TopicArn>").nth(1).and_then(|s| s.split("</TopicArn>").next()).expect("TopicArn").to_string();

    let s3 = distillery_store::S3Store::connect(&servers.s3_config()).await;
    use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};
    let cfg = NotificationConfiguration::builder()
        .topic_configurations(
            TopicConfiguration::builder()
                .id(format!("{topic}-created"))
                .topic_arn(arn)
                .events(Event::S3ObjectCreated)
                .events(Event::S3ObjectRemoved)
                .build()
                .expect("topic configuration"),
        )
        .build();
    s3.client()
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(cfg)
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
}

fn urlencode_form(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prints a figure and, when `DISTILLERY_FIGURES` names a file (scripts/test sets it), appends it there so
/// the suite can print every figure at its end (cargo test hides a passing test's output).
pub fn report(text: &str) {
    print!("{text}");
    if let Ok(path) = std::env::var("DISTILLERY_FIGURES") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// The test venv's Python (`DISTILLERY_TEST_PYTHON`, written by `scripts/test-servers`): `None` outside the
/// suite, a panic under CI (a test that needs it must not skip there).
pub fn python() -> Option<String> {
    match std::env::var("DISTILLERY_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("DISTILLERY_TEST_PYTHON is not set: run the suite through scripts/test (it sources the test-env)")
        }
        _ => None,
    }
}
