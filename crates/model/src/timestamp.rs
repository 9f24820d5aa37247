//! Times as Steward stores, serves and compares them.
//!
//! Every stored time is text in one form — UTC, RFC 3339, exactly three fractional digits,
//! `Z` (`2026-12-07T01:04:12.345Z`) — so that two stored times, or a stored time and a
//! cutoff made here, compare as text in time order: the database's `time >= $1` and a
//! `<` between two strings both mean "earlier". RFC 3339's own freedom (fractions of any
//! length or none, offsets) breaks that: `…:05.5Z` sorts before `…:05Z`. Times that come
//! from outside (query parameters, repository files) are read with [`parse`] and, where
//! they are compared with stored ones, rewritten with [`format`] first.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// The stored form's layout (applied to a UTC time).
const LAYOUT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The earliest and latest times the stored form can hold (four-digit years).
const FLOOR: &str = "0000-01-01T00:00:00.000Z";
const CEILING: &str = "9999-12-31T23:59:59.999Z";

/// `t` in the stored form. Times outside years 0–9999 are clamped to the nearest end, so
/// they still sort where they belong.
pub fn format(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    match utc.format(LAYOUT) {
        Ok(s) if utc.year() >= 0 => s,
        _ if utc.year() < 0 => FLOOR.to_owned(),
        _ => CEILING.to_owned(),
    }
}

/// The current time in the stored form.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// A Unix time (seconds) in the stored form; out-of-range values are clamped.
pub fn from_unix(secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format(t),
        Err(_) if secs < 0 => FLOOR.to_owned(),
        Err(_) => CEILING.to_owned(),
    }
}

/// Reads any RFC 3339 time (stored, or written by a person or another system).
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `text` rewritten in the stored form, ready to compare with stored times; `None` if it
/// is not RFC 3339.
pub fn normalize(text: &str) -> Option<String> {
    parse(text).map(format)
}

/// The Unix time (seconds) of an RFC 3339 time.
pub fn to_unix(text: &str) -> Option<i64> {
    parse(text).map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_stored_form_is_fixed_width_utc() {
        assert_eq!(from_unix(0), "1970-01-01T00:00:00.000Z");
        let t = parse("2026-12-07T02:04:12.5+01:00").unwrap();
        assert_eq!(format(t), "2026-12-07T01:04:12.500Z");
        assert_eq!(
            normalize("2026-12-07T01:04:12Z").as_deref(),
            Some("2026-12-07T01:04:12.000Z")
        );
        assert_eq!(normalize("yesterday"), None);
        assert_eq!(from_unix(i64::MAX), CEILING);
        assert_eq!(from_unix(i64::MIN), FLOOR);
        assert_eq!(to_unix("1970-01-01T00:01:00Z"), Some(60));
    }

    proptest! {
        /// Text order is time order (to the millisecond the form keeps).
        #[test]
        fn text_order_is_time_order(a in -62_000_000_000_000i64..253_000_000_000_000, b in -62_000_000_000_000i64..253_000_000_000_000) {
            let at = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let (sa, sb) = (format(at(a)), format(at(b)));
            prop_assert_eq!(sa.len(), 24);
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b), "{} vs {}", sa, sb);
            prop_assert_eq!(parse(&sa).map(|t| t.unix_timestamp_nanos() / 1_000_000), Some(i128::from(a)));
        }
    }
}
