fn main() -> std::process::ExitCode {
    distillery_app::cli::main()
}
