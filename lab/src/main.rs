//! `aiods-lab`: the lab beside the aiods platform (see [`aiods_lab::cli`]).

fn main() -> std::process::ExitCode {
    aiods_lab::cli::run()
}
