//! The configuration of `distillery run`: every stage's section in one file, loaded like each service's
//! (embedded defaults, then a TOML file, then `DISTILLERY__SECTION__FIELD` variables; unknown fields are
//! errors and every invalid value is reported at once).

use distillery_core::config::Settings;
use distillery_dedup::DedupConfig;
use distillery_dedup::vectors::EmbedderConfig;
use distillery_export::Format;
use distillery_extract::ExtractConfig;
use distillery_generate::GenerateConfig;
use distillery_ingest::IngestConfig;
use distillery_judge::JudgeConfig;
use distillery_kafka::service::validate_runtime;
use distillery_llm::LlmConfig;
use distillery_runtime::RuntimeConfig;
use distillery_sink::SinkConfig;
use distillery_store::S3Config;
use serde::{Deserialize, Serialize};

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
        self.judge.clone().unwrap_or_else(|| distillery_judge::service::judge_llm(&self.generator))
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
        from_toml::<distillery_generate::service::GenerateServiceConfig>("").unwrap();
        from_toml::<distillery_judge::service::JudgeServiceConfig>("").unwrap();
        from_toml::<distillery_extract::service::ExtractServiceConfig>("").unwrap();
        from_toml::<distillery_ingest::service::IngestServiceConfig>("").unwrap();
        from_toml::<distillery_dedup::service::DedupServiceConfig>("").unwrap();
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
        let err = from_toml::<distillery_generate::service::GenerateServiceConfig>("[llm]\nmodle = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("modle"), "{err}");
    }

    #[test]
    fn judge_defaults_to_the_generator_server() {
        let c: RunConfig = from_toml("[llm.generator]\nmodel = \"m\"\nbase_url = \"http://h:1/v1\"").unwrap();
        let j = c.llm.judge();
        assert_eq!((j.model.as_str(), j.base_url.as_str(), j.temperature), ("m", "http://h:1/v1", 0.1));
    }
}
