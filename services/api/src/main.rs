//! `distillery-api`: the same as `distillery service api`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_api::service::main()
}
