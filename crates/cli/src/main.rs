//! The `steward` binary: argument parsing and error reporting live in the library so the
//! binary stays a one-liner.

fn main() -> std::process::ExitCode {
    steward_cli::main()
}
