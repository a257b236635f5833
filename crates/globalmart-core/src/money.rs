//! Money as it arrives in JSON. A value is read with its own digits (serde_json's arbitrary
//! precision: never through a float), so a dead letter quotes the payload's text.
//!
//! A producer in a language whose numbers are binary doubles (the replaced platform's Python
//! generators, most JSON libraries) writes a cent amount it computed, such as a cart's value
//! summed from prices, as the nearest double printed in full: `524.4300000000001` for 524.43.
//! Such floating-point noise is read as the cents it stands for. A value further from whole
//! cents than noise can be (`19.999`) keeps its digits, and the contract's "at most 2 decimal
//! places" rule rejects it (docs/ARCHITECTURE.md, "The event contract").

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

/// How far from whole cents a value may be and still be noise, relative to its size (at least
/// 1): summing a hundred doubles errs by about 1e-14 of the sum, and a real third decimal at
/// ten million dollars is 1e-10 of it.
const NOISE: Decimal = Decimal::from_parts(1, 0, 0, false, 12);

/// `value` rounded to cents if it differs from them by floating-point noise only, else `value`
/// unchanged.
pub fn cents_if_noise(value: Decimal) -> Decimal {
    let cents = value.round_dp(2);
    if cents == value {
        return value;
    }
    let scale = value.abs().max(Decimal::ONE);
    match (value - cents).abs().checked_div(scale) {
        Some(relative) if relative <= NOISE => cents,
        _ => value,
    }
}

/// Reads a JSON number as money: see the module documentation.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    <Decimal as Deserialize>::deserialize(deserializer).map(cents_if_noise)
}

/// [`deserialize`] for a field that may be absent or null.
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<Decimal>::deserialize(deserializer)?.map(cents_if_noise))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("a decimal literal")
    }

    #[test]
    fn float_noise_is_read_as_the_cents_it_stands_for() {
        for (noisy, cents) in [
            ("524.4300000000001", "524.43"),
            ("204.66000000000005", "204.66"),
            ("0.30000000000000004", "0.30"),
            ("9999999.989999998", "9999999.99"),
            ("19.989999999999998", "19.99"),
        ] {
            assert_eq!(cents_if_noise(dec(noisy)), dec(cents), "{noisy}");
        }
    }

    #[test]
    fn a_real_third_decimal_keeps_its_digits() {
        for value in ["19.999", "0.001", "524.4301", "10000000.001", "3.14159"] {
            assert_eq!(cents_if_noise(dec(value)).to_string(), value);
        }
    }

    #[test]
    fn money_is_read_from_the_payload_digits_not_through_a_float() {
        // 204.66000000000004 and ...05 are different texts of nearly the same double.
        let read: Decimal = serde_json::from_str("204.66000000000004").expect("a number");
        assert_eq!(read.to_string(), "204.66000000000004");
        let mut de = serde_json::Deserializer::from_str("19.9990");
        assert_eq!(
            deserialize(&mut de).expect("a number").to_string(),
            "19.9990"
        );
    }
}
