//! `distillery-sink`: the same as `distillery service sink`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_sink::service::main()
}
