//! Adapters: the HTTP controller, the SQLite repository, the HTTP clients of the other four
//! services (figure 24's `*HTTPClient`s) and the database set-up.

pub(crate) mod db;
pub(crate) mod http;
pub(crate) mod repository;
pub(crate) mod upstream;
