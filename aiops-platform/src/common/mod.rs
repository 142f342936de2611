//! Small helpers every folder may use, importing nothing of the crate: the clock and
//! timestamps, tokens and ids, RFC 7807 problems, the Prometheus text format, instance ids.

pub mod exposition;
pub mod instance;
pub mod problem;
pub mod time;
pub mod token;

/// Installs the ring TLS provider for reqwest/sentry (built without a default); idempotent.
pub fn install_crypto_provider() {
    // Err means one is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
