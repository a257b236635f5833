//! The writers: one module per table group of the realtime database, each owning its tables'
//! SQL. [`crate::save`] calls them in one transaction per batch. The product activity and the
//! cart metrics per minute (`trending_products`, `category_performance`, `cart_metrics`) have no
//! writer: views over the raw events (docs/ARCHITECTURE.md, "Product activity read from the
//! events").
//!
//! | module | tables |
//! |---|---|
//! | `events` | transactions, product_view_events, cart_events |
//! | `catalogue` | products, product_history, users, user_history |
//! | `dead_letters` | dead_letter_events |
//! | `offsets` | stream_offsets |
//! | `metrics` | sales_per_minute, sales_by_country |
//! | `anomalies` | high_value_anomalies, high_quantity_anomalies |
//! | `stock` | product_stock, restock_alerts, high_demand_alerts |
//! | `patterns` | suspicious_patterns |
//! | `alerts` | alerts (the only writer) |

pub mod alerts;
pub mod anomalies;
pub mod catalogue;
pub mod dead_letters;
pub mod events;
pub mod metrics;
pub mod offsets;
pub mod patterns;
pub mod stock;
