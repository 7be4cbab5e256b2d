//! Time stamps of records (UTC, RFC 3339, always six fractional digits, so
//! that they sort as text) and the bounds `audit show --since/--until`
//! accepts.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// `2026-11-27T21:05:03.123456Z`: fixed width, so text order is time order.
const RECORD: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// `t` as a record's time stamp.
pub fn format_utc(t: OffsetDateTime) -> String {
    let mut out = Vec::with_capacity(27);
    write_utc(t, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `t` as a record's time stamp.
pub(crate) fn write_utc(t: OffsetDateTime, out: &mut Vec<u8>) {
    let t = t.to_offset(UtcOffset::UTC);
    // Every record has one: the digits by hand for years of four digits
    // (the format's own machinery costs more than the rest of the line).
    if (0..=9999).contains(&t.year()) {
        digits(out, t.year() as u32, 4);
        out.push(b'-');
        digits(out, u32::from(u8::from(t.month())), 2);
        out.push(b'-');
        digits(out, u32::from(t.day()), 2);
        out.push(b'T');
        digits(out, u32::from(t.hour()), 2);
        out.push(b':');
        digits(out, u32::from(t.minute()), 2);
        out.push(b':');
        digits(out, u32::from(t.second()), 2);
        out.push(b'.');
        digits(out, t.microsecond(), 6);
        out.push(b'Z');
        return;
    }
    // Formatting a valid date with a fixed description into a Vec cannot
    // fail; the fallback keeps the record parseable if it ever did.
    if t.format_into(out, RECORD).is_err() {
        out.extend_from_slice(b"1970-01-01T00:00:00.000000Z");
    }
}

/// Appends the current time as a record's time stamp.
pub(crate) fn write_now(out: &mut Vec<u8>) {
    write_at(std::time::SystemTime::now(), out);
}

/// Appends `t` as a record's time stamp: the date and the whole seconds
/// are formatted once per second (and thread) and reused, only the
/// microseconds each time — every record needs one.
pub(crate) fn write_at(t: std::time::SystemTime, out: &mut Vec<u8>) {
    use std::cell::Cell;
    thread_local! {
        // The second, and `YYYY-MM-DDTHH:MM:SS.` for it.
        static SECOND: Cell<Option<(u64, [u8; 20])>> = const { Cell::new(None) };
    }
    let Ok(since) = t.duration_since(std::time::UNIX_EPOCH) else {
        return write_utc(OffsetDateTime::from(t), out);
    };
    let secs = since.as_secs();
    if let Some((_, prefix)) = SECOND.get().filter(|(s, _)| *s == secs) {
        out.extend_from_slice(&prefix);
        digits(out, since.subsec_micros(), 6);
        out.push(b'Z');
        return;
    }
    // A new second: the whole stamp, whose fixed-width head is kept.
    let start = out.len();
    write_utc(OffsetDateTime::from(t), out);
    let stamp = &out[start..];
    if stamp.len() == 27 {
        if let Ok(prefix) = <[u8; 20]>::try_from(&stamp[..20]) {
            SECOND.set(Some((secs, prefix)));
        }
    }
}

/// Appends `n` as exactly `width` (at most 6) decimal digits, zero-padded.
fn digits(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = [b'0'; 6];
    let mut n = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Parses a `--since`/`--until` bound, relative to `now`:
///
/// - a date or time in UTC: `2026-11-20`, `2026-11-20 14:30`,
///   `2026-11-20T14:30:00Z`, or RFC 3339 with an offset
///   (`2026-11-20T14:30:00+01:00`);
/// - `now`, `today` (00:00 UTC), `yesterday`;
/// - an age: `7d`, `-7d`, `7 days ago`, `12h`, `90 min ago`, `2 weeks`
///   (units `s`, `m`/`min`, `h`, `d`, `w` and their English words).
pub fn parse_bound(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let midnight = |d: Date| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc();
    match lower.as_str() {
        "now" => return Ok(now),
        "today" => return Ok(midnight(now.date())),
        "yesterday" => return Ok(midnight(now.date()) - Duration::days(1)),
        _ => {}
    }
    if let Some(age) = parse_age(&lower) {
        return Ok(now - age);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let plain = text
        .strip_suffix(['Z', 'z'])
        .unwrap_or(text)
        .replacen(' ', "T", 1);
    if let Ok(d) = Date::parse(&plain, format_description!("[year]-[month]-[day]")) {
        return Ok(midnight(d));
    }
    for format in [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
    ] {
        if let Ok(t) = PrimitiveDateTime::parse(&plain, format) {
            return Ok(t.assume_utc());
        }
    }
    Err(format!(
        "{text:?} is not a time: give a UTC date or time (2026-11-20, 2026-11-20 14:30), \
         RFC 3339 with an offset, now/today/yesterday, or an age (7d, \"7 days ago\", 12h)"
    ))
}

/// `7d`, `-7d`, `7 days ago`, `3 h`: a non-negative age.
fn parse_age(text: &str) -> Option<Duration> {
    let text = text.strip_prefix('-').unwrap_or(text).trim();
    let text = text.strip_suffix("ago").unwrap_or(text).trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::seconds(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stamps_of_the_second_reused_are_the_full_stamps() {
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
        let mut t = start;
        for i in 0..5_000u64 {
            let (mut quick, mut full) = (Vec::new(), Vec::new());
            write_at(t, &mut quick);
            write_utc(OffsetDateTime::from(t), &mut full);
            assert_eq!(
                String::from_utf8(quick).unwrap(),
                String::from_utf8(full).unwrap()
            );
            // Several stamps per second, across many seconds and days.
            t += std::time::Duration::from_nanos(123_456_789 + i * 7_919_000);
        }
        assert!(t > start + std::time::Duration::from_secs(86_400));
    }

    #[test]
    fn hand_written_stamps_are_the_format_descriptions() {
        let mut t = datetime!(1970-01-01 00:00:00 UTC);
        while t.year() < 2200 {
            let mut fast = Vec::new();
            write_utc(t, &mut fast);
            let reference = t.format(RECORD).unwrap();
            assert_eq!(String::from_utf8(fast).unwrap(), reference);
            t += Duration::seconds(7_654_321) + Duration::microseconds(123_457);
        }
    }

    #[test]
    fn record_stamps_are_fixed_width() {
        assert_eq!(
            format_utc(datetime!(2026-11-27 21:05:03.1234567 UTC)),
            "2026-11-27T21:05:03.123456Z"
        );
        assert_eq!(
            format_utc(datetime!(2026-01-02 03:04:05 +01:00)),
            "2026-01-02T02:04:05.000000Z"
        );
    }

    #[test]
    fn bounds() {
        let now = datetime!(2026-11-27 21:05:03 UTC);
        let p = |s: &str| parse_bound(s, now).map(format_utc);
        assert_eq!(p("2026-11-20").unwrap(), "2026-11-20T00:00:00.000000Z");
        assert_eq!(
            p("2026-11-20 14:30").unwrap(),
            "2026-11-20T14:30:00.000000Z"
        );
        assert_eq!(
            p("2026-11-20T14:30:05Z").unwrap(),
            "2026-11-20T14:30:05.000000Z"
        );
        assert_eq!(
            p("2026-11-20T14:30:00+01:00").unwrap(),
            "2026-11-20T13:30:00.000000Z"
        );
        assert_eq!(p("7 days ago").unwrap(), "2026-11-20T21:05:03.000000Z");
        assert_eq!(p("-7d").unwrap(), "2026-11-20T21:05:03.000000Z");
        assert_eq!(p("7d").unwrap(), "2026-11-20T21:05:03.000000Z");
        assert_eq!(p("12h").unwrap(), "2026-11-27T09:05:03.000000Z");
        assert_eq!(p("90 min ago").unwrap(), "2026-11-27T19:35:03.000000Z");
        assert_eq!(p("1 week").unwrap(), "2026-11-20T21:05:03.000000Z");
        assert_eq!(p("today").unwrap(), "2026-11-27T00:00:00.000000Z");
        assert_eq!(p("yesterday").unwrap(), "2026-11-26T00:00:00.000000Z");
        assert!(p("last tuesday").is_err());
        assert!(p("7 fortnights").is_err());
    }
}
