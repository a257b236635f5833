//! globalmart-stream: Kafka topics into the realtime database, effectively once.
//!
//! The data path, one module per stage (docs/ARCHITECTURE.md, "Where things are"):
//! - `source`: the Kafka consumer, its partition assignments, seeking to the stored offsets,
//!   the lag;
//! - `batcher`: messages into a [`Batch`], each offset and event once;
//! - `save`: a batch in one transaction, through the writers of `write/` (one module per table
//!   group; `write::alerts` is the only writer of `alerts`);
//! - `pipeline`: the loop that cuts batches, saves them and commits offsets;
//! - `housekeeping`: the abandoned-cart sweep, metric retention, raw retention, alert
//!   publishing (`publish`);
//! - `monitoring`: the guide's log lines and the Prometheus metrics.
//!
//! `main` builds the parts (configuration, pool, Kafka clients, metrics endpoint, shutdown
//! signal, the `instance` identity's claim) and hands them to [`pipeline::run`].

mod batcher;
pub mod config;
mod housekeeping;
pub mod instance;
mod monitoring;
pub mod pipeline;
pub mod publish;
pub mod retention;
mod retry;
mod save;
pub mod source;
mod write;

pub use batcher::{Batch, Received};
pub use config::{Config, Thresholds};
pub use housekeeping::{abandoned_carts, prune, refresh_statistics, Sweep};
pub use monitoring::register as register_metrics;
pub use save::Saved;
pub use write::offsets::stored_offsets;
