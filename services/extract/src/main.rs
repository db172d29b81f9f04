//! `distillery-extract`: the same as `distillery service extract`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_extract::service::main()
}
