//! `aiops`: the aiods AIOps platform command line (see [`aiops_platform::cli`]).

fn main() -> std::process::ExitCode {
    aiops_platform::cli::run()
}
