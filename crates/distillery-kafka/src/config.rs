//! Kafka connection and topic settings, and the librdkafka client configurations built from them.
//!
//! Secrets never leave this module except into librdkafka: `sasl_password` is a [`Secret`], and the `Debug`
//! of [`KafkaConfig`] redacts every `properties` value whose key names a secret (see `is_secret_property`).

use std::collections::BTreeMap;
use std::fmt;

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
    /// Replication factor of the topics this service creates.
    pub replication_factor: i32,
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
            compression: "zstd".into(),
            linger_ms: 5,
            statistics_interval_ms: 10_000,
            sasl_password: Secret::default(),
            properties: BTreeMap::new(),
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
        c
    }

    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
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
            .set("max.poll.interval.ms", "600000");
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
            compression,
            linger_ms,
            statistics_interval_ms,
            sasl_password,
            properties,
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
            .field("compression", compression)
            .field("linger_ms", linger_ms)
            .field("statistics_interval_ms", statistics_interval_ms)
            .field("sasl_password", sasl_password)
            .field("properties", &RedactedProperties(properties))
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
             replication_factor: 1, compression: \"zstd\", linger_ms: 5, statistics_interval_ms: 10000, \
             sasl_password: Secret(<empty>), properties: {\"sasl.password\": <redacted>, \
             \"security.protocol\": \"SASL_SSL\"} }"
        );
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
