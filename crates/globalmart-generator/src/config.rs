//! The generator's settings: the replaced platform's `DATA_GEN_*` keys plus the shared Kafka and
//! metrics settings, all read by the one loader in globalmart-core.

use std::net::SocketAddr;

use clap::Parser;
use globalmart_core::config::KafkaArgs;

/// How fast to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// This many events per second.
    PerSecond(u32),
    /// As fast as the broker takes them.
    Max,
}

impl Rate {
    fn parse(text: &str) -> Result<Rate, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(Rate::PerSecond(n)),
            _ => Err("expected a positive whole number of events per second, or \"max\"".into()),
        }
    }
}

/// Generates realistic e-commerce events (product views, cart events, transactions) and the
/// product and user catalogue into Kafka.
#[derive(Debug, Parser)]
#[command(name = "globalmart-generator", version, about)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Events per second, or "max" for as fast as the broker takes them.
    #[arg(long = "rate", env = "DATA_GEN_EVENTS_PER_SECOND", default_value = "50", value_parser = Rate::parse)]
    pub rate: Rate,

    /// Number of users in the catalogue.
    #[arg(long = "users", env = "DATA_GEN_NUM_USERS", default_value = "10000",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub users: u32,

    /// Number of products in the catalogue.
    #[arg(long = "products", env = "DATA_GEN_NUM_PRODUCTS", default_value = "1000",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub products: u32,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_addr: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_accepts_positive_numbers_and_max() {
        assert_eq!(Rate::parse("500"), Ok(Rate::PerSecond(500)));
        assert_eq!(Rate::parse("MAX"), Ok(Rate::Max));
        for bad in ["0", "-5", "fast", "1.5", ""] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
