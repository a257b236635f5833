//! globalmart-batch: the realtime database into the warehouse.
//!
//! - `etl`: one module per warehouse table (dimensions by the SCD2 rule, then facts), each
//!   with the same verbs `extract`, `transform`, `load`, run chunk by chunk, each chunk one
//!   transaction with its watermark;
//! - `analytics`: the day's snapshots (product performance, RFM, segments, trends);
//! - `quality`: `check` and `validate`; `reset`: the warehouse emptied;
//! - `schedule`: one run, or `run --every`;
//! - `history`: each run and step recorded in batch_runs / batch_run_steps, with its
//!   `figures`; `monitoring`: the Prometheus metrics.
//!
//! `main` builds the parts (configuration, pools, metrics endpoint, shutdown signal) and runs
//! the command.

pub mod analytics;
pub mod config;
pub mod error;
pub mod etl;
pub mod figures;
mod history;
pub mod monitoring;
pub mod quality;
pub mod reset;
pub mod schedule;
