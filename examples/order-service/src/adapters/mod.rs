//! Adapters: the HTTP controller, the messaging consumers and the outbox of the choreographed
//! saga, the SQLite and PostgreSQL repositories, the HTTP clients of the other four
//! services (figure 24's `*HTTPClient`s) and the database set-up.

pub(crate) mod db;
pub(crate) mod http;
pub(crate) mod messaging;
pub(crate) mod postgres;
pub(crate) mod repository;
#[cfg(test)]
mod repository_tests;
pub(crate) mod saga_store;
#[cfg(test)]
mod saga_store_tests;
pub(crate) mod upstream;
