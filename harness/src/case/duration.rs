//! Durations as case files write them: a whole number and one unit, `"250ms"`, `"5s"`, `"2m"`,
//! `"1h"`. Nothing else is accepted (no fractions, no spaces, no compound `"1m30s"`, no bare
//! numbers), so a duration always means what it looks like.

use std::time::Duration;

use serde::Serializer;

/// What every rejected duration says after the offending text.
pub const HINT: &str =
    "write a whole number and a unit (ms, s, m or h), e.g. \"250ms\", \"5s\", \"2m\", \"1h\"";

/// Parse `"250ms"`, `"5s"`, `"2m"` or `"1h"`. The error is the message to show at the value.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {text:?}: {HINT}");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let millis = n
        .checked_mul(millis_per)
        .ok_or_else(|| format!("duration {text:?} is too long"))?;
    Ok(Duration::from_millis(millis))
}

/// The shortest exact form of a duration: `"1h"`, `"90s"`, `"250ms"`. `parse(format(d)) == d`
/// for every duration `parse` returns.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// `#[serde(serialize_with = "duration::serialize")]`: a duration as its case-file string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// [`serialize`] for an optional duration (`null` when absent).
pub fn serialize_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_units_parse() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("90s", Duration::from_secs(90)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn anything_else_is_rejected_with_the_hint() {
        for bad in [
            "", "5", "s", "5 s", " 5s", "5s ", "1.5s", "-1s", "+1s", "5S", "5sec", "1m30s", "5d", "05s",
            "5us", "ms", "1e3ms", "٣s",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e, format!("bad duration {bad:?}: {HINT}"), "{bad:?}");
        }
        assert_eq!(
            parse("99999999999999999h").unwrap_err(),
            "duration \"99999999999999999h\" is too long"
        );
    }

    #[test]
    fn format_is_the_shortest_exact_form_and_round_trips() {
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
        assert_eq!(format(Duration::ZERO), "0s");
        for text in ["250ms", "5s", "2m", "1h", "61s", "1001ms"] {
            assert_eq!(parse(&format(parse(text).unwrap())), parse(text));
        }
    }
}
