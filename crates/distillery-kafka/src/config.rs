//! Kafka connection and topic settings, and the librdkafka client configurations built from them.
//!
//! Secrets never leave this module except into librdkafka: `sasl_password` is a [`Secret`], the files of
//! `secret_properties_dir` (a mounted Kubernetes Secret: TLS key passwords, OAuth client secrets) are read
//! only into the client configuration, and the `Debug` of [`KafkaConfig`] redacts every `properties` value
//! whose key names a secret (see `is_secret_property`).
//!
//! Message size: `message_max_bytes` is the one limit, applied to the producer (`message.max.bytes`), to the
//! topics this service creates (`max.message.bytes`) and to the consumer's fetch sizes (never below it), so
//! a record the producer accepts is one the broker stores and the consumers read. A record over it is refused
//! for good: the input that made it is dead-lettered, not retried.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use distillery_core::TopicNames;
use distillery_core::config::Secret;
use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

/// Kafka connection and topic settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Prefix of every pipeline topic name (`<prefix>documents`, ...).
    pub topic_prefix: String,
    /// Topic the object store publishes ObjectCreated notifications to (default `<prefix>events`).
    pub events_topic: Option<String>,
    /// A stage's consumer group is `<group_prefix><stage>`.
    pub group_prefix: String,
    /// Consumer session timeout in milliseconds.
    pub session_timeout_ms: u32,
    /// Create missing topics at startup.
    pub create_topics: bool,
    /// Partitions of the topics this service creates.
    pub partitions: i32,
    /// Replication factor of the topics this service creates (3 on a production cluster).
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics this service creates (2 with a replication factor of 3, so that a
    /// record acknowledged with `acks=all` survives the loss of a broker); unset: the broker's default.
    pub min_insync_replicas: Option<i32>,
    /// The largest record, in bytes: the producer's `message.max.bytes`, the created topics'
    /// `max.message.bytes`, and a lower bound of the consumer's fetch sizes.
    pub message_max_bytes: u32,
    /// How long a consumer may go without polling before the group evicts it, in milliseconds (the runtime
    /// keeps polling while inputs are processed, pausing partitions instead).
    pub max_poll_interval_ms: u32,
    /// Producer compression: none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// How long the producer waits to fill a batch, in milliseconds.
    pub linger_ms: u32,
    /// How often librdkafka reports statistics (consumer lag), in milliseconds; 0 disables.
    pub statistics_interval_ms: u32,
    /// SASL password (secret), when `properties` select a SASL mechanism.
    pub sasl_password: Secret,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`). Never logged.
    pub properties: BTreeMap<String, String>,
    /// A folder of secret librdkafka properties, one file each, named after the property
    /// (`ssl.key.password`, `sasl.oauthbearer.client.secret`, ...), holding its value: a Kubernetes Secret
    /// mounted as a volume. Read when a client is created; never logged.
    pub secret_properties_dir: Option<PathBuf>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "distillery.".into(),
            events_topic: None,
            group_prefix: "distillery-".into(),
            session_timeout_ms: 30_000,
            create_topics: true,
            partitions: 6,
            replication_factor: 1,
            min_insync_replicas: None,
            message_max_bytes: 1_000_000,
            max_poll_interval_ms: 600_000,
            compression: "zstd".into(),
            linger_ms: 5,
            statistics_interval_ms: 10_000,
            sasl_password: Secret::default(),
            properties: BTreeMap::new(),
            secret_properties_dir: None,
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self, errors: &mut Vec<String>) {
        if self.brokers.trim().is_empty() {
            errors.push("kafka.brokers must not be empty".into());
        }
        if self.partitions < 1 {
            errors.push(format!("kafka.partitions must be >= 1 (got {})", self.partitions));
        }
        if self.replication_factor < 1 {
            errors.push(format!("kafka.replication_factor must be >= 1 (got {})", self.replication_factor));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            errors.push(format!(
                "kafka.compression must be one of none, gzip, snappy, lz4, zstd (got {})",
                self.compression
            ));
        }
        if self.session_timeout_ms < 1000 {
            errors.push("kafka.session_timeout_ms must be >= 1000".into());
        }
        if self.max_poll_interval_ms < self.session_timeout_ms {
            errors.push("kafka.max_poll_interval_ms must be >= kafka.session_timeout_ms".into());
        }
        if let Some(m) = self.min_insync_replicas
            && (m < 1 || m > self.replication_factor)
        {
            errors.push(format!(
                "kafka.min_insync_replicas must be between 1 and kafka.replication_factor ({}), got {m}",
                self.replication_factor
            ));
        }
        if !(1000..=1_000_000_000).contains(&self.message_max_bytes) {
            errors.push(format!(
                "kafka.message_max_bytes must be between 1000 and 1000000000 (got {})",
                self.message_max_bytes
            ));
        }
        if let Some(dir) = &self.secret_properties_dir
            && !dir.is_dir()
        {
            errors.push(format!("kafka.secret_properties_dir {} is not a folder", dir.display()));
        }
    }

    /// The topic configuration of the topics this service creates.
    pub fn topic_config(&self) -> Vec<(&'static str, String)> {
        let mut c = vec![("max.message.bytes", self.message_max_bytes.to_string())];
        if let Some(m) = self.min_insync_replicas {
            c.push(("min.insync.replicas", m.to_string()));
        }
        c
    }

    /// The secret properties of `secret_properties_dir` (file name -> trimmed content; hidden files, such as
    /// the `..data` links of a mounted Secret, are skipped).
    fn secret_properties(&self) -> Vec<(String, String)> {
        let Some(dir) = &self.secret_properties_dir else { return Vec::new() };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot read kafka.secret_properties_dir");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(v) => out.push((name, v.trim_end_matches(['\n', '\r']).to_string())),
                Err(e) => tracing::error!(property = %name, error = %e, "cannot read a secret Kafka property"),
            }
        }
        out.sort();
        out
    }

    pub fn topic_names(&self) -> TopicNames {
        TopicNames::new(self.topic_prefix.clone(), self.events_topic.clone())
    }

    pub(crate) fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        if !self.sasl_password.is_empty() {
            c.set("sasl.password", self.sasl_password.expose());
        }
        for (k, v) in self.secret_properties() {
            c.set(k, v);
        }
        c
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.max.bytes", self.message_max_bytes.to_string())
            .set("message.timeout.ms", "120000");
        c
    }

    pub(crate) fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (self.session_timeout_ms / 3).max(100).to_string())
            .set("max.poll.interval.ms", self.max_poll_interval_ms.to_string())
            // A scaling step moves only the partitions that change owner; the others keep working.
            .set("partition.assignment.strategy", "cooperative-sticky")
            // Fetch sizes never below the largest record the producers may write.
            .set("fetch.max.bytes", self.message_max_bytes.max(52_428_800).to_string())
            .set("max.partition.fetch.bytes", self.message_max_bytes.max(1_048_576).to_string())
            .set("receive.message.max.bytes", (self.message_max_bytes.max(100_000_000) + 100_000).to_string());
        if self.statistics_interval_ms > 0 {
            c.set("statistics.interval.ms", self.statistics_interval_ms.to_string());
        }
        c
    }
}

/// Whether a librdkafka property carries a secret (`sasl.password`, `ssl.key.password`, `ssl.key.pem`,
/// `sasl.oauthbearer.client.secret`, ...): its key contains `password`, `secret`, `key` or `token`, in any case.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token"].iter().any(|word| key.contains(word))
}

/// Stands in for a redacted value in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `properties` as `Debug` shows them: keys in clear, secret values redacted.
struct RedactedProperties<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedProperties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let v: &dyn fmt::Debug = if is_secret_property(k) { &Redacted } else { v };
                (k, v)
            }))
            .finish()
    }
}

/// Like the derived `Debug`, but `properties` values that are secrets are redacted (`sasl_password` redacts
/// itself). Destructures `self` so that a new field cannot be forgotten here.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let KafkaConfig {
            brokers,
            topic_prefix,
            events_topic,
            group_prefix,
            session_timeout_ms,
            create_topics,
            partitions,
            replication_factor,
            min_insync_replicas,
            message_max_bytes,
            max_poll_interval_ms,
            compression,
            linger_ms,
            statistics_interval_ms,
            sasl_password,
            properties,
            secret_properties_dir,
        } = self;
        f.debug_struct("KafkaConfig")
            .field("brokers", brokers)
            .field("topic_prefix", topic_prefix)
            .field("events_topic", events_topic)
            .field("group_prefix", group_prefix)
            .field("session_timeout_ms", session_timeout_ms)
            .field("create_topics", create_topics)
            .field("partitions", partitions)
            .field("replication_factor", replication_factor)
            .field("min_insync_replicas", min_insync_replicas)
            .field("message_max_bytes", message_max_bytes)
            .field("max_poll_interval_ms", max_poll_interval_ms)
            .field("compression", compression)
            .field("linger_ms", linger_ms)
            .field("statistics_interval_ms", statistics_interval_ms)
            .field("sasl_password", sasl_password)
            .field("properties", &RedactedProperties(properties))
            .field("secret_properties_dir", secret_properties_dir)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut cfg = KafkaConfig { sasl_password: Secret::new("hunter2-sasl"), ..KafkaConfig::default() };
        for (k, v) in [
            ("sasl.password", "pw-value-1"),
            ("ssl.key.password", "pw-value-2"),
            ("ssl.key.pem", "pem-value-3"),
            ("sasl.oauthbearer.client.secret", "secret-value-4"),
            ("sasl.oauthbearer.TOKEN.endpoint.url", "token-value-5"),
            ("SASL.PASSWORD", "pw-value-6"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "distillery-user"),
        ] {
            cfg.properties.insert(k.into(), v.into());
        }
        for pretty in [false, true] {
            let out = if pretty { format!("{cfg:#?}") } else { format!("{cfg:?}") };
            for secret in ["hunter2-sasl", "pw-value", "pem-value", "secret-value", "token-value"] {
                assert!(!out.contains(secret), "{secret} printed in clear: {out}");
            }
            // Keys stay visible, and so do the values of non-secret properties and the other fields.
            for shown in [
                "sasl.password",
                "ssl.key.password",
                "SASL_SSL",
                "SCRAM-SHA-512",
                "distillery-user",
                "127.0.0.1:9092",
                "Secret(<redacted>)",
            ] {
                assert!(out.contains(shown), "{shown} missing: {out}");
            }
        }
        assert_eq!(format!("{cfg:?}").matches("<redacted>").count(), 7, "{cfg:?}");
    }

    #[test]
    fn debug_matches_derived_shape() {
        let mut cfg = KafkaConfig::default();
        cfg.properties.insert("security.protocol".into(), "SASL_SSL".into());
        cfg.properties.insert("sasl.password".into(), "pw".into());
        assert_eq!(
            format!("{cfg:?}"),
            "KafkaConfig { brokers: \"127.0.0.1:9092\", topic_prefix: \"distillery.\", events_topic: None, \
             group_prefix: \"distillery-\", session_timeout_ms: 30000, create_topics: true, partitions: 6, \
             replication_factor: 1, min_insync_replicas: None, message_max_bytes: 1000000, \
             max_poll_interval_ms: 600000, compression: \"zstd\", linger_ms: 5, statistics_interval_ms: 10000, \
             sasl_password: Secret(<empty>), properties: {\"sasl.password\": <redacted>, \
             \"security.protocol\": \"SASL_SSL\"}, secret_properties_dir: None }"
        );
    }

    #[test]
    fn secret_properties_come_from_a_mounted_folder_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ssl.key.password"), "tls-key-pw-1\n").unwrap();
        std::fs::write(dir.path().join("sasl.oauthbearer.client.secret"), "oauth-secret-2").unwrap();
        // A mounted Secret's bookkeeping entries are not properties.
        std::fs::write(dir.path().join("..data"), "x").unwrap();
        let toml = format!("secret_properties_dir = {:?}\n[properties]\n\"security.protocol\" = \"SSL\"", dir.path());
        let cfg: KafkaConfig = toml::from_str(&toml).unwrap();
        let mut errors = Vec::new();
        cfg.validate(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let client = cfg.base();
        assert_eq!(client.get("ssl.key.password"), Some("tls-key-pw-1"));
        assert_eq!(client.get("sasl.oauthbearer.client.secret"), Some("oauth-secret-2"));
        assert_eq!(client.get("security.protocol"), Some("SSL"));
        assert_eq!(client.get("..data"), None);
        for shown in [format!("{cfg:?}"), format!("{cfg:#?}")] {
            assert!(!shown.contains("tls-key-pw") && !shown.contains("oauth-secret"), "{shown}");
        }
        let missing =
            KafkaConfig { secret_properties_dir: Some("/definitely/not/here".into()), ..KafkaConfig::default() };
        let mut errors = Vec::new();
        missing.validate(&mut errors);
        assert!(errors.iter().any(|e| e.contains("secret_properties_dir")), "{errors:?}");
    }

    #[test]
    fn one_message_size_limit_for_producer_topics_and_consumer() {
        let cfg = KafkaConfig { message_max_bytes: 2_000_000, min_insync_replicas: Some(1), ..KafkaConfig::default() };
        assert_eq!(cfg.producer_config().get("message.max.bytes"), Some("2000000"));
        let consumer = cfg.consumer_config("g");
        assert_eq!(consumer.get("max.partition.fetch.bytes"), Some("2000000"));
        assert_eq!(consumer.get("partition.assignment.strategy"), Some("cooperative-sticky"));
        assert!(cfg.topic_config().contains(&("max.message.bytes", "2000000".to_string())));
        assert!(cfg.topic_config().contains(&("min.insync.replicas", "1".to_string())));
        let mut errors = Vec::new();
        KafkaConfig { min_insync_replicas: Some(2), ..KafkaConfig::default() }.validate(&mut errors);
        assert!(errors.iter().any(|e| e.contains("min_insync_replicas")), "{errors:?}");
    }

    #[test]
    fn secret_properties() {
        for k in ["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "Client.Secret", "token"]
        {
            assert!(is_secret_property(k), "{k}");
        }
        for k in ["bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.username", "ssl.ca.location"] {
            assert!(!is_secret_property(k), "{k}");
        }
    }
}
