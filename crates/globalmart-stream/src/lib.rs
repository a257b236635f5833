//! globalmart-stream: Kafka topics into the realtime database, effectively once. `sink` saves a
//! batch of messages, its dead letters and its offsets in one transaction.

pub mod sink;
