//! The commands besides `run` and `service`.

pub mod export;
pub mod extract;
pub mod judge;
pub mod rejudge;
pub mod replay;
pub mod schema;
pub mod serve;
pub mod status;
pub mod topics;

/// The SQLite URL of a run folder's dataset store (`<dir>/distillery.db`); an error saying what to do when
/// the folder has none (`distillery status DIR`, `distillery serve --from DIR`).
pub fn run_folder_store(dir: &std::path::Path) -> anyhow::Result<String> {
    let db = dir.join(distillery_dataset::STORE_FILE);
    anyhow::ensure!(
        db.is_file(),
        "{} has no dataset store ({}): run `distillery run INPUT --out {}` first, or give --store URL",
        dir.display(),
        distillery_dataset::STORE_FILE,
        dir.display()
    );
    Ok(distillery_dataset::sql::sqlite_url(&db))
}
