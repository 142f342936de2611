//! Online log template mining (no I/O).
//!
//! [`Miner`] is a Drain-style online template miner: each line is tokenised (on whitespace and
//! structural punctuation such as `=`, `:`, `,`, brackets and quotes), variable-looking tokens
//! are masked to `<*>` (anything containing a digit — numbers, IPs, hex ids, UUIDs, timestamps,
//! durations, sizes — long hex strings, paths and URLs, month/weekday names, booleans), and the
//! line is routed down a fixed-depth tree keyed by token count and the masked header (the tokens
//! before the first `word:` of a timestamped header, so `Mon 10:00 host sshd[42]: ...` style
//! prefixes do not distort similarity). Within a leaf the most similar template (share of
//! positions with equal tokens, at least [`MinerConfig::similarity`]) absorbs the line, turning
//! differing positions into `<*>`; otherwise the line starts a new template. Exact masked token
//! sequences are cached, so repeated shapes cost one hash lookup.
//!
//! Template ids are stable: a line keeps the id it was given. [`Miner::resolve`] additionally
//! follows merges made by [`Miner::consolidate`], which unifies templates that ended up equal
//! (or equal up to the length of `<*>` runs) once all lines are seen; batch users assign every
//! line its final id that way.
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
