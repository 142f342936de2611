//! Writes the template miner's labelled development corpus (see `logmine::corpus`): for each
//! generator family, `<dir>/<family>.log` (the lines) and `<dir>/<family>.labels` (each line's
//! true template), reproducible from the seed.
//!
//! `cargo run --release -p aiops-platform --example log_corpus -- <dir> [lines per family] [seed]`

use std::io::Write;

use aiops_platform::logmine::corpus::{Family, generate};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: log_corpus <dir> [lines per family, default 2000] [seed, default 1]");
        std::process::exit(2);
    };
    let parse = |a: Option<String>, default: u64| {
        a.map_or(Ok(default), |s| s.parse::<u64>())
            .unwrap_or_else(|e| {
                eprintln!("not a number: {e}");
                std::process::exit(2)
            })
    };
    let n = parse(args.next(), 2000);
    let seed = parse(args.next(), 1);
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for family in Family::ALL {
        let lines = generate(family, usize::try_from(n).unwrap_or(usize::MAX), seed);
        let mut log = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("{}.log", family.name())),
        )?);
        let mut labels = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("{}.labels", family.name())),
        )?);
        for l in &lines {
            writeln!(log, "{}", l.line)?;
            writeln!(labels, "{}", l.template)?;
        }
        log.flush()?;
        labels.flush()?;
    }
    Ok(())
}
