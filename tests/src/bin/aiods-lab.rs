//! The lab (`aiods-lab`), built as a binary of this package so tests find it by
//! `CARGO_BIN_EXE_aiods-lab` beside the platform and the service binaries.

fn main() -> std::process::ExitCode {
    aiods_lab::cli::run()
}
