//! globalmart-generator: realistic e-commerce events into Kafka. `catalogue` builds the shop,
//! `session` plays one shopper, `mix` drives many of them into the 60/30/10 stream, `pace` keeps
//! the rate, `producer` delivers (or prints, with --dry-run) and `report` tells what happened.

pub mod catalogue;
pub mod config;
pub mod mix;
pub mod pace;
pub mod producer;
pub mod report;
pub mod run;
pub mod session;

/// The one random generator of a run: a named algorithm, so a seed gives the same sequence on
/// every platform and rand release.
pub type Rng = rand::rngs::Xoshiro256PlusPlus;
