//! Event timestamps: we write RFC 3339 UTC with microseconds (PostgreSQL's precision, so a value
//! survives a round trip through the database unchanged) and read RFC 3339 as well as the naive
//! ISO timestamps of the replaced platform's producers, which carry no zone and mean UTC.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::{de, Deserialize, Deserializer};

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
    let mut buf = Formatted::default();
    match write(t, &mut buf) {
        Some(text) => text.to_owned(),
        None => t.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Room for one timestamp as [`format`] writes it.
pub(crate) type Formatted = [u8; "2025-12-07T10:15:00.123456Z".len()];

/// [`format`] into `buf`, digit by digit: the generator writes two or three timestamps per
/// event, a million events a second, and chrono's formatting machinery was a sixteenth of that
/// work. None for what this layout cannot hold (years outside 0..=9999, a leap second), which
/// chrono then formats.
pub(crate) fn write<'b>(t: &DateTime<Utc>, buf: &'b mut Formatted) -> Option<&'b str> {
    // One conversion: DateTime's own accessors each convert from UTC to "local" again.
    let (date, time) = (t.date_naive(), t.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let micros = Some(time.nanosecond() / 1000).filter(|m| *m < 1_000_000)?;
    let seconds = time.num_seconds_from_midnight();
    buf.copy_from_slice(b"0000-00-00T00:00:00.000000Z");
    // (value, first byte, width)
    let fields = [
        (year, 0, 4),
        (date.month(), 5, 2),
        (date.day(), 8, 2),
        (seconds / 3600, 11, 2),
        (seconds / 60 % 60, 14, 2),
        (seconds % 60, 17, 2),
        (micros, 20, 6),
    ];
    for (mut value, at, width) in fields {
        for digit in buf[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
}

/// Truncates to whole microseconds, the precision events are written and stored with.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `#[serde(deserialize_with = "crate::timestamp::deserialize")]` for a `DateTime<Utc>` field.
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
    fn writes_what_chrono_writes_and_leaves_it_chrono_beyond_the_layout() {
        let chrono = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        // Every field at its smallest and largest, the epoch, and a spread of instants.
        let mut instants = vec![
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).single(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single(),
            DateTime::from_timestamp(0, 0),
            DateTime::from_timestamp(1_764_410_096, 999_999_999),
            DateTime::from_timestamp(-1, 1_000),
        ];
        instants.extend((0..2000_i64).map(|i| {
            DateTime::from_timestamp(
                i * 7_919_993_071 % 253_402_300_799,
                (i * 7_777_777 % 1_000_000_000) as u32,
            )
        }));
        for t in instants.into_iter().map(|t| t.expect("a valid instant")) {
            assert_eq!(format(&t), chrono(t));
        }
        // Outside the fixed layout: a five-digit year, a negative one, a leap second.
        let beyond = [
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).single(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).single(),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000),
        ];
        for t in beyond.into_iter().map(|t| t.expect("a valid instant")) {
            let mut buf = Formatted::default();
            assert_eq!(write(&t, &mut buf), None, "{t:?}");
            assert_eq!(format(&t), chrono(t));
        }
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
