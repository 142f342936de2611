//! The `aiops` platform, built as a binary of this package so tests find it by
//! `CARGO_BIN_EXE_aiops` beside the service binaries.

fn main() -> std::process::ExitCode {
    aiops_platform::cli::run()
}
