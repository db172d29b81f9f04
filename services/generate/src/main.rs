//! `distillery-generate`: the same as `distillery service generate`, as its own binary for its own image.
fn main() -> std::process::ExitCode {
    distillery_generate::service::main()
}
