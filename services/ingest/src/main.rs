//! `distillery-ingest`: the same as `distillery service ingest`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_ingest::service::main()
}
