//! The one Kafka client configuration: every producer and consumer of the workspace starts from
//! [`client_config`], so connection settings (brokers today; security settings when they come)
//! are read in one place and reach every client alike.

use rdkafka::ClientConfig;

use crate::config::KafkaArgs;

/// A client configuration for `kafka`'s brokers, named `client_id` in the broker's logs and
/// metrics. Callers add what is particular to their client (acks, group, offsets).
pub fn client_config(kafka: &KafkaArgs, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id);
    config
}
