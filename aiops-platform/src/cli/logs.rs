//! `aiops logs templates`: log template mining over a file.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use crate::logmine::{Miner, TemplateId};

/// Arguments of `aiops logs templates`.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplatesArgs {
    /// Input log file, one record per line; `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Output TSV; `-` (default) for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
}

/// Errors of `aiops logs`.
#[derive(Debug, thiserror::Error)]
pub enum LogsCliError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Runs `aiops logs templates`.
pub fn templates(args: &TemplatesArgs) -> Result<(), LogsCliError> {
    let in_name = args.input.display().to_string();
    let out_name = args.output.display().to_string();
    let io_in = |source| LogsCliError::Io {
        path: in_name.clone(),
        source,
    };
    let mut raw = Vec::new();
    if in_name == "-" {
        io::stdin().lock().read_to_end(&mut raw).map_err(io_in)?;
    } else {
        BufReader::new(File::open(&args.input).map_err(io_in)?)
            .read_to_end(&mut raw)
            .map_err(io_in)?;
    }
    // Invalid UTF-8 is replaced rather than rejected: logs are often messy.
    let text = String::from_utf8_lossy(&raw);
    // The whole file is the user's own and read once: no vocabulary or template cap (those
    // bound the platform's long-lived miners, fed by anyone who can send logs).
    let mut miner = Miner::unbounded();
    let ids: Vec<TemplateId> = text.lines().map(|l| miner.observe(l).id).collect();
    miner.consolidate();
    let io_out = |source| LogsCliError::Io {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = if out_name == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(File::create(&args.output).map_err(io_out)?))
    };
    let mut texts: Vec<Option<String>> = vec![None; miner.len()];
    for id in ids {
        let root = miner.resolve(id);
        let t = texts[root.0 as usize].get_or_insert_with(|| miner.template(root));
        writeln!(out, "{root}\t{t}").map_err(io_out)?;
    }
    out.flush().map_err(io_out)?;
    Ok(())
}
