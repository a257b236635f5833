//! What the event tests share: the consumer's clock and decimal literals.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

/// The consumer's "now" in every event test: noon on the test day.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 7, 12, 0, 0)
        .single()
        .expect("valid date")
}

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}
