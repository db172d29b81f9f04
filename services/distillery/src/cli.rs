//! The `distillery` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use distillery_core::config::load;
use distillery_export::ExportOptions;
use distillery_runtime::boot::init_tracing;

use crate::composition::{RunOptions, run};
use crate::config::RunConfig;
use crate::service::{ServiceKind, run_service};

#[derive(Parser, Debug)]
#[command(name = "distillery", version, about = "Turn a company's documents into verified LLM training data.")]
pub struct Cli {
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole pipeline in this process on a folder, a file or s3://bucket/prefix.
    Run {
        /// A folder, a file, or s3://bucket/prefix.
        input: String,
        /// Output folder (accepted.jsonl, rejected.jsonl, alpaca.jsonl, ..., summary.json).
        #[arg(long)]
        out: PathBuf,
        /// OpenAI-compatible base URL of the generator (and judge) server, e.g. http://127.0.0.1:8080/v1.
        #[arg(long, env = "DISTILLERY_LLM_BASE_URL")]
        llm_base_url: Option<String>,
        /// Model name on that server.
        #[arg(long, env = "DISTILLERY_LLM_MODEL")]
        llm_model: Option<String>,
        /// A TOML configuration file (see `distillery config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
        /// The dataset store (`postgres://USER@HOST/DB`, `sqlite:PATH`); default `<out>/distillery.db`.
        /// A rerun on the same store skips what is done (no LLM call repeated, no line twice).
        #[arg(long, env = "DISTILLERY_STORE")]
        store: Option<String>,
    },
    /// Every document of a dataset: chunks done / failed / pending, accepted, rejected by reason, tokens.
    Status {
        /// A run folder (the `--out` of `distillery run`).
        dir: Option<PathBuf>,
        /// A dataset store URL instead (`postgres://...`, `sqlite:PATH`).
        #[arg(long, env = "DISTILLERY_STORE")]
        store: Option<String>,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Serve a dataset over HTTP: documents, records, stats, uploads (each starts a run) and exports, behind
    /// the bearer token in DISTILLERY_API_TOKEN (open: /healthz, /readyz, /openapi.json); the same API as
    /// `distillery service api`.
    Serve {
        /// A run folder (the `--out` of `distillery run`): its distillery.db.
        #[arg(long, conflicts_with = "store", required_unless_present = "store")]
        from: Option<PathBuf>,
        /// A dataset store URL instead (`postgres://...`, `sqlite:PATH`).
        #[arg(long)]
        store: Option<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Where uploads, the runs' files and exports go (default: the --from folder, else ./distillery-serve).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The API's TOML configuration ([api] limits and token, [llm] and [tabular] for /v1/tabular).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The configuration of the runs started on uploads (as `distillery run --config`).
        #[arg(long)]
        run_config: Option<PathBuf>,
        /// Store uploads without starting a run on them.
        #[arg(long)]
        no_run: bool,
    },
    /// Run one stage as a Kafka service.
    Service {
        stage: ServiceKind,
        /// The service's TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the chunks documents would produce, one JSON object per line, without calling an LLM.
    Extract {
        files: Vec<PathBuf>,
        /// A TOML file with an [extract] section (chunk budgets, tokenizer).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Judge QA pairs with the pipeline's own judge: one `{"context", "question", "answer"}` object a line
    /// in, one JSON verdict a line out (`accept`, `overall`, the criteria, `rationale`), in the same order.
    Judge {
        /// The pairs (JSON lines).
        pairs: PathBuf,
        /// OpenAI-compatible base URL of the judge model (default: the configured judge, else generator).
        #[arg(long, env = "DISTILLERY_LLM_BASE_URL")]
        llm_base_url: Option<String>,
        /// Model name on that server.
        #[arg(long, env = "DISTILLERY_LLM_MODEL")]
        llm_model: Option<String>,
        /// A TOML configuration file (its [llm] and [judge] sections: threshold, checks, template).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-decide a dataset's retained drafts with another judge model or threshold, without generating:
    /// writes a new dataset version and a diff (newly accepted, newly rejected). With --judge-model or
    /// --llm-base-url the judge scores every retained draft again; with only --threshold the stored
    /// verdicts are read against it (no LLM call).
    Rejudge {
        /// A run folder (the `--out` of `distillery run`): its distillery.db; the diff goes to
        /// DIR/versions/N/ and the folder's training files are rewritten.
        #[arg(long, conflicts_with = "store", required_unless_present = "store")]
        from: Option<PathBuf>,
        /// A dataset store URL instead (`postgres://...`, `sqlite:PATH`).
        #[arg(long)]
        store: Option<String>,
        /// The judge model (on --llm-base-url, else the configured judge server).
        #[arg(long)]
        judge_model: Option<String>,
        /// Lowest overall score (1-5) that passes (default: the configured judge threshold).
        #[arg(long)]
        threshold: Option<i32>,
        /// OpenAI-compatible base URL of the judge model.
        #[arg(long)]
        llm_base_url: Option<String>,
        /// A TOML configuration file (its [llm] and [judge] sections).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the diff (diff.jsonl, version.json) goes (default: DIR/versions/N with --from).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Kafka replay: read the drafts again from the pipeline's `drafts` topic (a new consumer group,
        /// nothing published) with the [kafka] section of this service configuration file.
        #[arg(long)]
        kafka_config: Option<PathBuf>,
        /// Kafka replay: the bootstrap brokers (over --kafka-config's).
        #[arg(long)]
        brokers: Option<String>,
        /// Kafka replay: the pipeline's topic prefix (over --kafka-config's).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Rebuild training exports from a run folder or a dataset store (drops repeated ids and records of
    /// superseded documents).
    Export {
        /// The run folder (with accepted.jsonl, rejected.jsonl, documents.jsonl, summary.json).
        #[arg(long, conflicts_with = "store", required_unless_present = "store")]
        from: Option<PathBuf>,
        /// A dataset store instead: `sqlite:PATH`, a path to a distillery.db file, or `postgres://...`.
        #[arg(long)]
        store: Option<String>,
        /// Where the exports go: with one --format the file itself (a folder for qa-json, the README.md
        /// path for card); with several or none a folder, each format under its own name (default: the
        /// run folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Formats: alpaca, alpaca-text, sharegpt, openai, dpo, dpo-chat, parquet, qa-json, card
        /// (repeatable; default all).
        #[arg(long = "format")]
        formats: Vec<String>,
        /// Put reasoning traces before answers in SFT exports.
        #[arg(long)]
        include_reasoning: bool,
        /// A system message for ShareGPT, OpenAI chat and conversational DPO exports.
        #[arg(long)]
        system_prompt: Option<String>,
        /// Put each example's source context in Alpaca's input (alpaca, alpaca-text).
        #[arg(long)]
        alpaca_input_context: bool,
    },
    /// Create the pipeline's Kafka topics (from flags, or from the [kafka] section of a service config,
    /// with its security properties and DISTILLERY__KAFKA__* overrides).
    Topics {
        /// A service configuration file whose [kafka] section to use.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        partitions: Option<i32>,
        #[arg(long)]
        replication_factor: Option<i32>,
        /// `min.insync.replicas` of the created topics (2 with a replication factor of 3).
        #[arg(long)]
        min_insync_replicas: Option<i32>,
    },
    /// Send what was dead-lettered for a transient cause (a dependency down through every retry) back to the
    /// topic it came from, to be processed again; once per dead letter (progress is kept in the consumer
    /// group `<group_prefix>replay-dead-letters`).
    ReplayDeadLetters {
        /// A service configuration file whose [kafka] section to use.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        /// Only these error kinds (repeatable), e.g. llm_connect, store_read.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only the dead letters of this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Replay permanent failures too (panics, undecodable or oversized records).
        #[arg(long)]
        all: bool,
        /// Count what would be replayed; publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A synthetic table from a plain-English description: one LLM call designs the schema (cached), then
    /// the rows come from a seeded generator (no LLM per row).
    Tabular {
        /// What the table is, e.g. "customer churn data for a telecom company with 20 columns".
        description: Option<String>,
        /// Row count (default: "N rows" in the description, else 1000).
        #[arg(long)]
        rows: Option<u64>,
        /// csv, jsonl or parquet (default: from the --out extension, else csv).
        #[arg(long)]
        format: Option<String>,
        /// Output file (`-` for stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Generation seed (default 42): the same schema and seed give the same bytes.
        #[arg(long)]
        seed: Option<u64>,
        /// A schema file (as --print-schema writes it, or the flat form): no LLM call.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Write the schema as JSON to stdout (to stderr when the table goes to stdout); without --out,
        /// only design the schema.
        #[arg(long)]
        print_schema: bool,
        /// OpenAI-compatible base URL of the model that designs the schema.
        #[arg(long, env = "DISTILLERY_LLM_BASE_URL")]
        llm_base_url: Option<String>,
        /// Model name on that server.
        #[arg(long, env = "DISTILLERY_LLM_MODEL")]
        llm_model: Option<String>,
        /// A TOML file with [llm] and [tabular] sections (as the API service reads).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Neither read nor write the schema cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Print the default configuration of `run` as TOML.
    Config,
    /// Print the standalone Avro schema (references inlined) of a record kind, or of every kind.
    Schema {
        /// document, chunk, draft, judged, regenerate, accepted, rejected or dead-letter.
        kind: Option<String>,
    },
}

/// Entry point of the `distillery` binary.
pub fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(distillery_extract::WORKER_ARG) {
        return distillery_extract::worker_main();
    }
    let cli = Cli::parse();
    let default_level = match (cli.verbose, &cli.command) {
        (0, Command::Service { .. } | Command::Serve { .. }) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    init_tracing(default_level);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(distillery_runtime::shutdown::INTERRUPTED_TWICE as u8)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A run stopped by an interrupt after writing what it had (exit status 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted: what was done is saved; run the same command again to continue where it stopped")]
pub struct Interrupted;

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { input, out, llm_base_url, llm_model, config, quiet, store } => {
            let mut cfg: RunConfig = load(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(url) = llm_base_url {
                cfg.llm.generator.base_url = url.clone();
                if let Some(j) = cfg.llm.judge.as_mut() {
                    j.base_url = url;
                }
            }
            if let Some(model) = llm_model {
                cfg.llm.generator.model = model.clone();
                if let Some(j) = cfg.llm.judge.as_mut() {
                    j.model = model;
                }
            }
            let cancel = distillery_runtime::shutdown_signal();
            let summary =
                run(RunOptions { input, out: out.clone(), config: cfg, progress: !quiet, store }, cancel).await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&summary)?)?;
            writeln!(stdout, "dataset written to {}", out.display())?;
            if let Some(e) = &summary.input_error {
                anyhow::bail!("the input could not be listed in full ({e}); the summary above covers what was found");
            }
            if summary.interrupted {
                return Err(Interrupted.into());
            }
            Ok(())
        }
        Command::Serve { from, store, addr, out, config, run_config, no_run } => {
            let args = crate::commands::serve::ServeArgs { from, store, addr, out, config, run_config, no_run };
            crate::commands::serve::serve(args, distillery_runtime::shutdown_signal()).await
        }
        Command::Service { stage, config } => {
            run_service(stage, config.as_deref(), distillery_runtime::shutdown_signal()).await
        }
        Command::Status { dir, store, json } => {
            crate::commands::status::status(dir.as_deref(), store.as_deref(), json).await
        }
        Command::Extract { files, config } => crate::commands::extract::extract(files, config),
        Command::Judge { pairs, llm_base_url, llm_model, config } => {
            let cfg: RunConfig = load(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::commands::judge::judge(&pairs, cfg, llm_base_url, llm_model).await
        }
        Command::Rejudge {
            from,
            store,
            judge_model,
            threshold,
            llm_base_url,
            config,
            out,
            kafka_config,
            brokers,
            prefix,
        } => {
            let cfg: RunConfig = load(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let kafka = if kafka_config.is_some() || brokers.is_some() || prefix.is_some() {
                Some(crate::commands::topics::valid_kafka_settings(kafka_config.as_deref(), brokers, prefix)?)
            } else {
                None
            };
            let args = crate::commands::rejudge::RejudgeArgs {
                from,
                store,
                judge_model,
                threshold,
                llm_base_url,
                config,
                out,
                kafka,
            };
            let report = crate::commands::rejudge::rejudge(args, cfg).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Export { from, store, out, formats, include_reasoning, system_prompt, alpaca_input_context } => {
            let opts = ExportOptions { include_reasoning, system_prompt, alpaca_input_context };
            crate::commands::export::command(from, store, out, &formats, opts).await
        }
        Command::Topics { config, brokers, prefix, partitions, replication_factor, min_insync_replicas } => {
            crate::commands::topics::topics(
                config,
                brokers,
                prefix,
                partitions,
                replication_factor,
                min_insync_replicas,
            )
            .await
        }
        Command::ReplayDeadLetters { config, brokers, prefix, kinds, stage, all, dry_run } => {
            let filter = distillery_kafka::replay::ReplayFilter { kinds, stage, all, dry_run };
            crate::commands::replay::replay(config, brokers, prefix, filter).await
        }
        Command::Tabular {
            description,
            rows,
            format,
            out,
            seed,
            schema,
            print_schema,
            llm_base_url,
            llm_model,
            config,
            no_cache,
        } => {
            let mut cfg: distillery_api::tabular::ApiServiceConfig =
                load(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(url) = llm_base_url {
                cfg.llm.base_url = url;
            }
            if let Some(model) = llm_model {
                cfg.llm.model = model;
            }
            cfg.tabular.no_cache |= no_cache;
            let format = format.map(|f| f.parse::<distillery_tabular::Format>()).transpose()?;
            let report = distillery_api::tabular::tabular_command(distillery_api::tabular::TabularArgs {
                description,
                rows,
                format,
                out: out.clone(),
                seed,
                schema,
                print_schema,
                config: cfg,
            })
            .await?;
            if let Some(out) = out.filter(|o| o.as_os_str() != "-") {
                eprintln!(
                    "{} rows x {} columns ({:.1} MB) written to {} in {:.2} s ({:.0} rows/s), seed {}",
                    report.rows,
                    report.columns,
                    report.bytes as f64 / 1e6,
                    out.display(),
                    report.write_seconds,
                    report.rows as f64 / report.write_seconds.max(1e-9),
                    report.seed
                );
            }
            Ok(())
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&RunConfig::default())?);
            Ok(())
        }
        Command::Schema { kind } => crate::commands::schema::print(kind.as_deref()),
    }
}
