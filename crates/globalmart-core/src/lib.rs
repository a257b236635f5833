//! GlobalMart's shared contract and plumbing: the events and catalogue every binary exchanges
//! (docs/ARCHITECTURE.md, "The event contract"), their validation, topic names, and the one way
//! each binary reads its configuration, reaches PostgreSQL and Kafka, serves metrics, logs and
//! shuts down.

pub mod config;
pub mod db;
pub mod domain;
mod encode;
pub mod event;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod money;
pub mod pg_tls;
pub mod shutdown;
pub mod timestamp;
pub mod topics;
pub mod validate;
mod wire;
