//! Event timestamps: we write RFC 3339 UTC with microseconds (PostgreSQL's precision, so a value
//! survives a round trip through the database unchanged) and read RFC 3339 as well as the naive
//! ISO timestamps of the replaced platform's producers, which carry no zone and mean UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{de, Deserialize, Deserializer, Serializer};

/// Parses RFC 3339, a naive ISO date-time (`T` or space separated, optional fraction) as UTC, or
/// a bare date as midnight UTC.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Formats as RFC 3339 UTC with microseconds (`2025-12-07T10:15:00.123456Z`).
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Truncates to whole microseconds, the precision events are written and stored with.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `#[serde(with = "crate::timestamp")]` for a `DateTime<Utc>` field.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(t))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| {
        de::Error::custom(format_args!(
            "invalid timestamp \"{text}\": expected RFC 3339 or ISO 8601 (no zone means UTC)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn accepts_rfc3339_naive_iso_and_bare_dates() {
        let expected = Utc.with_ymd_and_hms(2025, 12, 7, 10, 15, 0).single();
        assert_eq!(parse("2025-12-07T10:15:00Z"), expected);
        assert_eq!(parse("2025-12-07T11:15:00+01:00"), expected);
        assert_eq!(parse("2025-12-07T10:15:00"), expected);
        assert_eq!(parse("2025-12-07 10:15:00"), expected);
        assert_eq!(
            parse("2025-12-07T10:15:00.250000").map(|t| t.timestamp_subsec_micros()),
            Some(250_000)
        );
        assert_eq!(
            parse("2025-12-07"),
            Utc.with_ymd_and_hms(2025, 12, 7, 0, 0, 0).single()
        );
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2025-13-07T10:15:00"), None);
    }

    #[test]
    fn formats_utc_with_microseconds_and_round_trips() {
        let t = to_micros(Utc::now());
        let text = format(&t);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(text.len(), "2025-12-07T10:15:00.123456Z".len());
        assert_eq!(parse(&text), Some(t));
    }
}
