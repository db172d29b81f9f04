//! `distillery-dedup`: the same as `distillery service dedup`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_dedup::service::main()
}
