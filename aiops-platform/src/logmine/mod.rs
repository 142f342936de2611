//! Online log template mining (no I/O).
//!
//! [`Miner`] mines templates in two stages.
//!
//! - **Tokens.** A recognisable header (timestamp, host, `process[pid]:`, level, component,
//!   `[request context]`) is left out: the template is the message's. The message is split on
//!   whitespace and structural punctuation (`=`, `:`, `,`, brackets, quotes). Variables become
//!   `<*>` by their class: numbers and ids (as many digits as letters, a run of three digits,
//!   hex, `0x…`), host names and file names, paths and URLs, dotted names with three dots,
//!   month/weekday names, booleans; the value of a `key=value` or JSON `"key": value` pair
//!   whatever its length (quoted string, list, `Name{…}`), except the message key's; a time
//!   unit after a number (`3 ms`, `<1 sec`). A run of variables is one variable, so
//!   `lifetime 00:01` and `lifetime 01:02:03` have one shape. Words with a short version
//!   suffix (`ssh2`, `SOCKS5`, `HTTP/1.1`) stay words.
//! - **Online grouping (Drain).** A line is routed by its token count and first two tokens;
//!   in that leaf the most similar template (share of equal tokens where either side is a
//!   word, at least [`MinerConfig::similarity`]) absorbs it, differing positions becoming
//!   `<*>`; otherwise the line starts a template. Exact shapes are cached, so a repeated
//!   shape costs one hash lookup.
//! - **Batch grouping (Brain).** [`Miner::consolidate`] groups the templates of one length by
//!   their longest common pattern (the largest set of positions whose words are equally
//!   frequent), then within a group a position is a variable if it holds a `<*>`, five or more
//!   different words (two for a word alone in brackets or after a naming word: `for root`,
//!   `user cyrus`), or different words on at least a third of the group's lines; the other
//!   positions split the group (`GET`/`POST`,
//!   `Failed`/`Accepted`, `HTTPS`/`SOCKS5`). [`Miner::unbounded`], for a batch over a file,
//!   leaves all grouping to this stage (similarity 1: only equal shapes share a template until
//!   then).
//!
//! Template ids are stable: a line keeps the id it was given. [`Miner::resolve`] follows the
//! merges made by [`Miner::consolidate`]; batch users assign every line its final id that way.
//!
//! [`corpus`] generates the labelled development corpus the miner is measured on.
//!
//! [`RateTracker`] turns template observations into incident evidence: a never-seen template at
//! warn/error level, or a template whose rate jumps against its baseline.

pub mod corpus;
mod miner;
mod rate;
#[cfg(test)]
mod tests;
mod token;

pub use miner::{
    DEFAULT_MAX_TEMPLATES, DEFAULT_MAX_TOKENS, Miner, MinerConfig, Observation, TemplateId,
};
pub use rate::{Evidence, Level, RateTracker, detect_level};
pub use token::WILDCARD;

/// Errors of the log-mining module.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LogmineError {
    /// A configuration value is out of range.
    #[error("invalid miner configuration: {0}")]
    InvalidConfig(String),
}
