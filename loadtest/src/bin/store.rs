//! Dataset store write throughput: accepted records written the way the sink writes them (one record per
//! call, hundreds of calls in flight, the store group-committing what arrives together), on SQLite (a temp
//! folder) and on PostgreSQL when a URL is given (`--postgres URL` or `$DISTILLERY_TEST_POSTGRES`; the
//! benchmark writes into a database `distillery_bench` it creates there). Prints records/s; asserts
//! nothing about them.
//!
//!   cargo run --release -p distillery-loadtest --bin store -- [--records 20000] [--in-flight 256]

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use distillery_core::codec::fixtures;
use distillery_core::{Accepted, Record};
use distillery_dataset::{DatasetStore, SqlStore};

#[derive(Parser, Debug)]
#[command(about = "Dataset store write throughput (records/s), SQLite and PostgreSQL")]
struct Args {
    /// Accepted records to write.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Writes in flight (the sink keeps up to 256).
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// A PostgreSQL server URL (its database is replaced by distillery_bench).
    #[arg(long, env = "DISTILLERY_TEST_POSTGRES")]
    postgres: Option<String>,
}

fn records(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut judged = fixtures::judged();
            judged.draft.id = format!("{tag}-draft-{i:08}");
            judged.id = format!("{tag}-judged-{i:08}");
            Record::Accepted(Accepted {
                id: judged.draft.id.clone(),
                judged,
                nearest_similarity: None,
                accepted_at_ms: 1,
            })
        })
        .collect()
}

async fn measure(name: &str, store: Arc<dyn DatasetStore>, args: &Args) -> anyhow::Result<()> {
    let recs = records(args.records, name);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(recs.len());
    for r in recs {
        let permit = sem.clone().acquire_owned().await?;
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let res = store.write(vec![r]).await;
            drop(permit);
            res
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let totals = store.totals().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{name:<10} {:>7} accepted records in {secs:>6.2} s: {:>8.0} records/s ({} in flight; store holds {})",
        args.records,
        args.records as f64 / secs,
        args.in_flight,
        totals.accepted
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let sqlite = SqlStore::open(&distillery_dataset::sql::sqlite_url(&dir.path().join("bench.db")))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    measure("sqlite", Arc::new(sqlite), &args).await?;
    if let Some(url) = &args.postgres {
        let admin = SqlStore::open(url).await.map_err(|e| anyhow::anyhow!("{e}")).context("PostgreSQL")?;
        let _ = sqlx::query("DROP DATABASE IF EXISTS distillery_bench").execute(admin.pool()).await;
        sqlx::query("CREATE DATABASE distillery_bench").execute(admin.pool()).await?;
        let (base, _) = url.rsplit_once('/').context("postgres://HOST/DB")?;
        let pg = SqlStore::open(&format!("{base}/distillery_bench")).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        measure("postgres", Arc::new(pg), &args).await?;
    } else {
        println!("postgres   skipped (no --postgres URL or DISTILLERY_TEST_POSTGRES)");
    }
    Ok(())
}
