//! One typed configuration per service, plus the one-process run's. Each loads embedded defaults, then a
//! TOML file, then `DISTILLERY__SECTION__FIELD` variables, rejects unknown fields and reports every
//! invalid value at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use distillery_core::config::{Secret, Settings};
use distillery_export::Format;
use distillery_kafka::KafkaConfig;
use distillery_llm::LlmConfig;
use distillery_runtime::RuntimeConfig;
use distillery_stages::dedup::DedupConfig;
use distillery_stages::extract::ExtractConfig;
use distillery_stages::generate::GenerateConfig;
use distillery_stages::ingest::IngestConfig;
use distillery_stages::judge::JudgeConfig;
use distillery_stages::sink::SinkConfig;
use distillery_store::S3Config;
use serde::{Deserialize, Serialize};

/// The operations endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Address serving /metrics, /healthz and /readyz.
    pub listen: SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig { listen: "0.0.0.0:9100".parse().expect("valid address") }
    }
}

/// The sentence encoder used for near-duplicate detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// A sentence-transformers folder (config.json, tokenizer.json, model.safetensors) run in-process.
    /// Unset: `$DISTILLERY_EMBED_MODEL_DIR`, else `.cache/models/all-MiniLM-L6-v2` in the working
    /// directory or beside the executable, else `~/.cache/distillery/models/all-MiniLM-L6-v2`.
    pub model_dir: Option<PathBuf>,
    /// Use an OpenAI-compatible /v1/embeddings server instead (base URL ending in /v1).
    pub url: Option<String>,
    /// Model name for the embeddings server.
    pub model: String,
    /// Vector size of the embeddings server's model.
    pub dim: usize,
    /// API key of the embeddings server (secret).
    pub api_key: Secret,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            model_dir: None,
            url: None,
            model: "all-MiniLM-L6-v2".into(),
            dim: 384,
            api_key: Secret::default(),
        }
    }
}

/// Where near-duplicate vectors live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// Qdrant gRPC URL (e.g. http://qdrant:6334); unset keeps vectors in process memory.
    pub qdrant_url: Option<String>,
    /// Qdrant API key (secret).
    pub qdrant_api_key: Secret,
    /// Collection name.
    pub collection: String,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig { qdrant_url: None, qdrant_api_key: Secret::default(), collection: "distillery-accepted".into() }
    }
}

/// Where the sink writes the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// A folder (local disk or a mounted volume)...
    pub dir: Option<PathBuf>,
    /// ...or an S3 bucket, with part files under `prefix`.
    pub bucket: Option<String>,
    /// Key prefix in the bucket.
    pub prefix: String,
    /// Most lines per durable write.
    pub batch_lines: usize,
    /// Longest wait to fill a batch, in milliseconds.
    pub linger_ms: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { dir: None, bucket: None, prefix: "dataset/".into(), batch_lines: 2000, linger_ms: 1000 }
    }
}

/// Object-store notifications over HTTP (MinIO webhook target, Ceph RGW push endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Serve `POST /events` on the ops endpoint.
    pub enabled: bool,
    /// Shared token the store sends as `Authorization: Bearer <token>` (or `?token=`); empty disables the check.
    pub token: Secret,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { enabled: true, token: Secret::default() }
    }
}

/// The periodic reconcile scan that catches objects whose notification was missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// `bucket` or `bucket/prefix` entries to list.
    pub targets: Vec<String>,
    /// Seconds between scans; 0 scans once at startup only.
    pub interval_secs: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig { targets: Vec::new(), interval_secs: 300 }
    }
}

/// The registry of content claims (which object first brought a content) and document versions (which
/// document is current at a key), kept as small marker objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsConfig {
    /// Bucket of the marker objects; unset keeps them in memory (single replica only; extract and sink
    /// then do not mark records of superseded documents).
    pub bucket: Option<String>,
    /// Key prefix of the markers.
    pub prefix: String,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig { bucket: None, prefix: ".distillery/claims/".into() }
    }
}

macro_rules! service_config {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        service_config!(@def [Default] $(#[$m])* $name { $($(#[$fm])* $field : $ty),* } validate($s, $e) $body);
    };
    (no_default $(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        service_config!(@def [] $(#[$m])* $name { $($(#[$fm])* $field : $ty),* } validate($s, $e) $body);
    };
    (@def [$($d:ident)?] $(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? } validate($s:ident, $e:ident) $body:block) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize $(, $d)?)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Kafka connection and topics.
            pub kafka: KafkaConfig,
            /// Concurrency, retries and draining.
            pub runtime: RuntimeConfig,
            /// The /metrics endpoint.
            pub ops: OpsConfig,
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl Settings for $name {
            fn validate(&self, $e: &mut Vec<String>) {
                self.kafka.validate($e);
                validate_runtime(&self.runtime, $e);
                let $s = self;
                $body
            }
        }
    };
}

fn validate_runtime(r: &RuntimeConfig, errors: &mut Vec<String>) {
    if r.concurrency == Some(0) {
        errors.push("runtime.concurrency must be > 0".into());
    }
    if r.retry.max_attempts == 0 {
        errors.push("runtime.retry.max_attempts must be >= 1".into());
    }
}

service_config!(
    /// The ingest service: notifications (Kafka topic and webhook) and reconcile scans to `documents`.
    IngestServiceConfig {
        /// The S3-compatible store.
        s3: S3Config,
        /// Filters and limits.
        ingest: IngestConfig,
        /// Where content claims are kept.
        claims: ClaimsConfig,
        /// The HTTP notification endpoint.
        webhook: WebhookConfig,
        /// The reconcile scan.
        scan: ScanConfig,
    }
    validate(s, errors) {
        s.s3.validate("s3", errors);
        s.ingest.validate("ingest", errors);
        for t in &s.scan.targets {
            if t.trim().is_empty() {
                errors.push("scan.targets must not contain empty entries".into());
            }
        }
    }
);

service_config!(
    /// The extract service: `documents` to `chunks` (and the extracted document back to `documents`).
    ExtractServiceConfig {
        /// The S3-compatible store.
        s3: S3Config,
        /// Extraction, chunking, context and redaction settings.
        extract: ExtractConfig,
        /// The registry, to mark chunks of superseded documents.
        claims: ClaimsConfig,
    }
    validate(s, errors) {
        s.s3.validate("s3", errors);
        s.extract.validate("extract", errors);
    }
);

service_config!(
    /// The generate service: `chunks` and `regenerate` to `drafts`.
    GenerateServiceConfig {
        /// The generator model.
        llm: LlmConfig,
        /// What to generate.
        generate: GenerateConfig,
    }
    validate(s, errors) {
        s.llm.validate("llm", errors);
        s.generate.validate("generate", errors);
    }
);

service_config!(
    no_default
    /// The judge service: `drafts` to `judged`, `regenerate` or `rejected`.
    JudgeServiceConfig {
        /// The judge model.
        llm: LlmConfig,
        /// Threshold and attempts.
        judge: JudgeConfig,
    }
    validate(s, errors) {
        s.llm.validate("llm", errors);
        s.judge.validate("judge", errors);
    }
);

service_config!(
    /// The dedup service: `judged` to `accepted` or `rejected`.
    DedupServiceConfig {
        /// Similarity threshold.
        dedup: DedupConfig,
        /// The sentence encoder.
        embedder: EmbedderConfig,
        /// The vector index.
        vectors: VectorConfig,
    }
    validate(s, errors) {
        s.dedup.validate("dedup", errors);
    }
);

service_config!(
    /// The sink service: `accepted`, `rejected`, `dead-letter` and extracted `documents` into the dataset.
    SinkServiceConfig {
        /// The S3-compatible store (when the output is a bucket).
        s3: S3Config,
        /// Where the dataset goes.
        output: OutputConfig,
        /// Formats written as records arrive.
        sink: SinkConfig,
        /// The registry, to mark records of superseded documents.
        claims: ClaimsConfig,
    }
    validate(s, errors) {
        if s.output.dir.is_none() == s.output.bucket.is_none() {
            errors.push("output: set exactly one of output.dir and output.bucket".into());
        }
        if s.sink.formats.contains(&Format::Parquet) {
            errors.push("sink.formats: parquet is written by `distillery export`, not per record".into());
        }
        s.s3.validate("s3", errors);
    }
);

impl Default for JudgeServiceConfig {
    /// A judge samples cold and answers short: the same defaults as the judge of the one-process run.
    fn default() -> Self {
        JudgeServiceConfig {
            kafka: KafkaConfig::default(),
            runtime: RuntimeConfig::default(),
            ops: OpsConfig::default(),
            llm: Models::default().judge(),
            judge: JudgeConfig::default(),
        }
    }
}

/// The generator and judge models of the one-process run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Models {
    /// The generator.
    pub generator: LlmConfig,
    /// The judge; unset uses the generator's server and model at temperature 0.1.
    pub judge: Option<LlmConfig>,
}

impl Models {
    /// The judge's settings.
    pub fn judge(&self) -> LlmConfig {
        self.judge.clone().unwrap_or_else(|| LlmConfig { temperature: 0.1, max_tokens: 256, ..self.generator.clone() })
    }
}

/// `distillery run`: every stage in one process over in-memory topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Generator and judge models.
    pub llm: Models,
    /// The S3-compatible store, when the input is `s3://bucket/prefix`.
    pub s3: S3Config,
    /// Filters and limits of the input.
    pub ingest: IngestConfig,
    /// Extraction, chunking and context settings.
    pub extract: ExtractConfig,
    /// What to generate.
    pub generate: GenerateConfig,
    /// Threshold and attempts.
    pub judge: JudgeConfig,
    /// Similarity threshold.
    pub dedup: DedupConfig,
    /// The sentence encoder.
    pub embedder: EmbedderConfig,
    /// Formats written as records arrive.
    pub sink: SinkConfig,
    /// Retries; concurrency is per stage below.
    pub runtime: RuntimeConfig,
    /// Write `dataset.parquet` at the end.
    pub parquet: bool,
    /// Records in flight in the process at most (bounds memory on large inputs).
    pub max_pending: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            llm: Models::default(),
            s3: S3Config::default(),
            ingest: IngestConfig::default(),
            extract: ExtractConfig::default(),
            generate: GenerateConfig::default(),
            judge: JudgeConfig::default(),
            dedup: DedupConfig::default(),
            embedder: EmbedderConfig::default(),
            sink: SinkConfig::default(),
            runtime: RuntimeConfig::default(),
            parquet: true,
            max_pending: 2000,
        }
    }
}

impl Settings for RunConfig {
    fn validate(&self, errors: &mut Vec<String>) {
        self.llm.generator.validate("llm.generator", errors);
        if let Some(j) = &self.llm.judge {
            j.validate("llm.judge", errors);
        }
        self.s3.validate("s3", errors);
        self.ingest.validate("ingest", errors);
        self.extract.validate("extract", errors);
        self.generate.validate("generate", errors);
        self.judge.validate("judge", errors);
        self.dedup.validate("dedup", errors);
        validate_runtime(&self.runtime, errors);
        if self.max_pending < 16 {
            errors.push("max_pending must be >= 16".into());
        }
        if self.sink.formats.contains(&Format::Parquet) {
            errors.push("sink.formats: parquet is written at the end (set parquet = true), not per record".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::config::from_toml;

    #[test]
    fn defaults_are_valid() {
        from_toml::<RunConfig>("").unwrap();
        from_toml::<GenerateServiceConfig>("").unwrap();
        from_toml::<JudgeServiceConfig>("").unwrap();
        from_toml::<ExtractServiceConfig>("").unwrap();
        from_toml::<IngestServiceConfig>("").unwrap();
        from_toml::<DedupServiceConfig>("").unwrap();
        assert!(from_toml::<SinkServiceConfig>("").is_err(), "the sink needs an output");
        from_toml::<SinkServiceConfig>("[output]\ndir = \"/tmp/x\"").unwrap();
    }

    #[test]
    fn every_error_is_listed() {
        let err = from_toml::<RunConfig>(
            "max_pending = 1\n[llm.generator]\ntemperature = 9.0\nbase_url = \"nope\"\n[judge]\nthreshold = 7\n[extract.chunking]\nmax_tokens = 4",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "max_pending",
            "llm.generator.temperature",
            "llm.generator.base_url",
            "judge.threshold",
            "extract.chunking.max_tokens",
        ] {
            assert!(err.contains(needle), "{needle} missing from:\n{err}");
        }
        let err = from_toml::<GenerateServiceConfig>("[llm]\nmodle = \"x\"").unwrap_err().to_string();
        assert!(err.contains("modle"), "{err}");
    }

    #[test]
    fn the_judge_service_samples_like_the_run_judge() {
        let c: JudgeServiceConfig = from_toml("").unwrap();
        assert_eq!((c.llm.temperature, c.llm.max_tokens), (0.1, 256));
    }

    #[test]
    fn judge_defaults_to_the_generator_server() {
        let c: RunConfig = from_toml("[llm.generator]\nmodel = \"m\"\nbase_url = \"http://h:1/v1\"").unwrap();
        let j = c.llm.judge();
        assert_eq!((j.model.as_str(), j.base_url.as_str(), j.temperature), ("m", "http://h:1/v1", 0.1));
    }
}
