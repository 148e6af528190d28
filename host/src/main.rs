//! The `floom` command. Everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    floom_host::cli::main()
}
