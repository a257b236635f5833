//! globalmart-stream: Kafka topics into the realtime database, effectively once. `consume`
//! reads the topics in a consumer group and cuts batches; `sink` saves a batch, its dead letters
//! and its offsets in one transaction, with `tally` adding the realtime metrics of the events it
//! inserted, `stock` the stock on hand and `patterns` suspicious orders and high demand; `sweep` records abandoned carts periodically and
//! `alerts` publishes the alerts to alerts-topic; `report` logs and counts what
//! happened.

pub mod alerts;
pub mod config;
pub mod consume;
pub mod patterns;
pub mod report;
pub mod sink;
pub mod stock;
pub mod sweep;
pub mod tally;
