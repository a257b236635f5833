//! globalmart-batch: the warehouse ETL. Each step extracts the realtime rows after its
//! watermark into Arrow, transforms them with one DataFusion plan and loads them with COPY and
//! a set-based merge, in one transaction with the watermark.

pub mod analytics;
pub mod config;
pub mod dimensions;
pub mod error;
pub mod etl;
pub mod extract;
pub mod facts;
pub mod load;
pub mod quality;
pub mod report;
pub mod runs;
pub mod step;
pub mod transform;
