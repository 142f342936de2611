//! Adapters: the HTTP controller, the SQLite and PostgreSQL repositories and the database set-up.

pub(crate) mod db;
pub(crate) mod email;
pub(crate) mod http;
pub(crate) mod messaging;
pub(crate) mod postgres;
pub(crate) mod repository;
#[cfg(test)]
mod repository_tests;
