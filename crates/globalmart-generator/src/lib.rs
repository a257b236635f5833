//! globalmart-generator: realistic e-commerce events into Kafka. `catalogue` builds the shop and
//! `customers` its customers,
//! `session` plays one shopper, `mix` drives many of them into the 60/30/10 stream, `timeline`
//! is the simulated clock of a backfill and `pace` the rate of live events, `producer` delivers
//! (or prints, with --dry-run), `monitoring` tells what happened, and `generate` runs them:
//! `main` builds the output, the metrics endpoint and the shutdown signal and hands them over.

pub mod catalogue;
pub mod config;
pub mod customers;
pub mod generate;
pub mod mix;
pub mod monitoring;
pub mod pace;
pub mod producer;
pub mod publication;
pub mod session;
pub mod timeline;

/// The one random generator of a run: a named algorithm, so a seed gives the same sequence on
/// every platform and rand release.
pub type Rng = rand::rngs::Xoshiro256PlusPlus;
