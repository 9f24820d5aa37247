//! The `steward` binary: argument parsing and error reporting live in the library so the
//! binary stays a one-liner.

/// mimalloc returns freed memory to the operating system, so the control plane shrinks
/// back after a large apply instead of keeping its peak (glibc kept ~550 MiB after a
/// 100,000-identity apply; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    steward_cli::main()
}
