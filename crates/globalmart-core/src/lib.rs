//! GlobalMart's shared contract and plumbing: the events and catalogue every binary exchanges
//! (SPEC section 3), their validation, topic names, and the one way each binary reads its
//! configuration, reaches PostgreSQL, serves metrics, logs and shuts down.

pub mod config;
pub mod db;
pub mod domain;
mod encode;
pub mod event;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod timestamp;
pub mod topics;
pub mod validate;
