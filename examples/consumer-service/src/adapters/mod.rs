//! Adapters: the HTTP controller, the SQLite repository and the database set-up.

pub(crate) mod db;
pub(crate) mod http;
pub(crate) mod repository;
