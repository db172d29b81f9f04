//! `distillery-judge`: the same as `distillery service judge`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_judge::service::main()
}
