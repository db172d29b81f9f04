fn main() -> std::process::ExitCode {
    distillery::cli::main()
}
