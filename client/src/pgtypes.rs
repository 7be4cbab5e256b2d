//! Typed readings of PostgreSQL's text forms (protocol version 2), for the
//! types JSON has no shape for: timestamps with their zone offset,
//! intervals, ranges. Each implements [`FromValue`], so
//! `row.get::<TimestampTz>("created")` works, and keeps what PostgreSQL
//! said exactly (no rounding, no zone conversion).
//!
//! ```
//! use iam_pgconnect::pgtypes::{Interval, Range, TimestampTz};
//!
//! let t: TimestampTz = "2025-11-03 07:04:21.872+01".parse().unwrap();
//! assert_eq!((t.hour, t.minute, t.microsecond, t.offset_seconds), (7, 4, 872_000, 3600));
//! assert_eq!(t.unix_micros(), 1_762_149_861_872_000);
//!
//! let i: Interval = "1 year 2 mons 3 days 04:05:06.5".parse().unwrap();
//! assert_eq!((i.months, i.days, i.microseconds), (14, 3, 14_706_500_000));
//! assert_eq!("P1Y2M3DT4H5M6.5S".parse::<Interval>().unwrap(), i);
//!
//! let r: Range = "[1,5)".parse().unwrap();
//! assert_eq!((r.lower.as_deref(), r.upper.as_deref()), (Some("1"), Some("5")));
//! assert!(r.lower_inclusive && !r.upper_inclusive);
//! ```

use crate::row::{ConversionError, FromValue};
use serde_json::Value;
use std::str::FromStr;

/// A `timestamptz` (or, with offset 0 and `has_offset == false`, a
/// `timestamp`) as PostgreSQL printed it in the ISO `DateStyle`: the wall
/// clock in the session's time zone and that zone's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampTz {
    /// Year (negative for BC: 1 BC is 0, as ISO 8601 counts).
    pub year: i32,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–60.
    pub second: u8,
    /// 0–999999.
    pub microsecond: u32,
    /// The zone's offset east of UTC, in seconds.
    pub offset_seconds: i32,
    /// Whether the text had an offset (a `timestamptz`).
    pub has_offset: bool,
}

impl TimestampTz {
    /// Microseconds since 1970-01-01 00:00 UTC.
    pub fn unix_micros(&self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_seconds);
        secs * 1_000_000 + i64::from(self.microsecond)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number<T: FromStr>(text: &str, what: &str) -> Result<T, ConversionError> {
    text.parse()
        .map_err(|_| ConversionError::from(format!("{text:?} is not a {what}")))
}

/// Seconds with up to six decimals, as microseconds.
fn micros(text: &str) -> Result<i64, ConversionError> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} has more than microseconds").into());
    }
    let whole: i64 = number(whole, "number of seconds")?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        number::<i64>(frac, "fraction")? * 10_i64.pow(6 - frac.len() as u32)
    };
    let us = whole * 1_000_000 + frac;
    Ok(if negative { -us } else { us })
}

impl FromStr for TimestampTz {
    type Err = ConversionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ConversionError::from(format!("{text:?} is not an ISO timestamp"));
        let (body, bc) = match text.strip_suffix(" BC") {
            Some(b) => (b, true),
            None => (text, false),
        };
        let (date, time) = body.split_once(' ').ok_or_else(bad)?;
        let mut d = date.splitn(3, '-');
        let year: i32 = number(d.next().ok_or_else(bad)?, "year")?;
        let month: u8 = number(d.next().ok_or_else(bad)?, "month")?;
        let day: u8 = number(d.next().ok_or_else(bad)?, "day")?;
        // The offset: +01, -05:30, +05:30:15.
        let split = time.find(['+', '-']);
        let (clock, offset) = match split {
            Some(i) => (&time[..i], Some(&time[i..])),
            None => (time, None),
        };
        let mut c = clock.splitn(3, ':');
        let hour: u8 = number(c.next().ok_or_else(bad)?, "hour")?;
        let minute: u8 = number(c.next().ok_or_else(bad)?, "minute")?;
        let seconds = micros(c.next().ok_or_else(bad)?)?;
        let offset_seconds = match offset {
            None => 0,
            Some(o) => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let mut parts = o[1..].split(':');
                let h: i32 = number(parts.next().ok_or_else(bad)?, "offset")?;
                let m: i32 = parts
                    .next()
                    .map(|p| number(p, "offset"))
                    .transpose()?
                    .unwrap_or(0);
                let s: i32 = parts
                    .next()
                    .map(|p| number(p, "offset"))
                    .transpose()?
                    .unwrap_or(0);
                sign * (h * 3600 + m * 60 + s)
            }
        };
        Ok(TimestampTz {
            year: if bc { 1 - year } else { year },
            month,
            day,
            hour,
            minute,
            second: (seconds / 1_000_000) as u8,
            microsecond: (seconds % 1_000_000) as u32,
            offset_seconds,
            has_offset: offset.is_some(),
        })
    }
}

/// An `interval` as PostgreSQL keeps it: months, days and microseconds,
/// each with its own sign. Reads the `postgres` (the default) and
/// `iso_8601` `IntervalStyle`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval {
    /// Years × 12 + months.
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Hours, minutes, seconds and fractions, in microseconds.
    pub microseconds: i64,
}

impl FromStr for Interval {
    type Err = ConversionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(iso) = text.strip_prefix('P') {
            return iso_interval(iso, text);
        }
        let mut out = Interval::default();
        let mut words = text.split_whitespace().peekable();
        while let Some(word) = words.next() {
            if word.contains(':') {
                let (negative, clock) = match word.strip_prefix('-') {
                    Some(c) => (true, c),
                    None => (false, word.strip_prefix('+').unwrap_or(word)),
                };
                let mut parts = clock.splitn(3, ':');
                let h: i64 = number(parts.next().unwrap_or("0"), "hours")?;
                let m: i64 = number(parts.next().unwrap_or("0"), "minutes")?;
                let s = micros(parts.next().unwrap_or("0"))?;
                let us = (h * 3600 + m * 60) * 1_000_000 + s;
                out.microseconds += if negative { -us } else { us };
                continue;
            }
            let n: i64 = number(word, "number")?;
            let unit = words
                .next()
                .ok_or_else(|| ConversionError::from(format!("{text:?} is not an interval")))?;
            match unit.trim_end_matches('s') {
                "year" => out.months += (n * 12) as i32,
                "mon" => out.months += n as i32,
                "day" => out.days += n as i32,
                _ => return Err(format!("{text:?}: unknown unit {unit:?}").into()),
            }
        }
        Ok(out)
    }
}

fn iso_interval(iso: &str, text: &str) -> Result<Interval, ConversionError> {
    let mut out = Interval::default();
    let mut in_time = false;
    let mut number_text = String::new();
    for c in iso.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' | '-' => number_text.push(c),
            unit => {
                let value = std::mem::take(&mut number_text);
                match (in_time, unit) {
                    (false, 'Y') => out.months += number::<i32>(&value, "years")? * 12,
                    (false, 'M') => out.months += number::<i32>(&value, "months")?,
                    (false, 'W') => out.days += number::<i32>(&value, "weeks")? * 7,
                    (false, 'D') => out.days += number::<i32>(&value, "days")?,
                    (true, 'H') => {
                        out.microseconds += number::<i64>(&value, "hours")? * 3_600_000_000
                    }
                    (true, 'M') => {
                        out.microseconds += number::<i64>(&value, "minutes")? * 60_000_000
                    }
                    (true, 'S') => out.microseconds += micros(&value)?,
                    _ => return Err(format!("{text:?} is not an ISO 8601 interval").into()),
                }
            }
        }
    }
    Ok(out)
}

/// A range as PostgreSQL prints it (`[1,5)`, `(,2025-01-01]`, `empty`):
/// its bounds as text, to read with the element type's reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Range {
    /// `empty`.
    pub empty: bool,
    /// The lower bound, `None` when unbounded.
    pub lower: Option<String>,
    /// The upper bound, `None` when unbounded.
    pub upper: Option<String>,
    /// `[` rather than `(`.
    pub lower_inclusive: bool,
    /// `]` rather than `)`.
    pub upper_inclusive: bool,
}

impl FromStr for Range {
    type Err = ConversionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "empty" {
            return Ok(Range {
                empty: true,
                ..Range::default()
            });
        }
        let bad = || ConversionError::from(format!("{text:?} is not a range"));
        let lower_inclusive = match text.chars().next() {
            Some('[') => true,
            Some('(') => false,
            _ => return Err(bad()),
        };
        let upper_inclusive = match text.chars().last() {
            Some(']') => true,
            Some(')') => false,
            _ => return Err(bad()),
        };
        let inner = &text[1..text.len() - 1];
        let (lower, upper) = split_bounds(inner).ok_or_else(bad)?;
        Ok(Range {
            empty: false,
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
        })
    }
}

/// `lower,upper` with either side possibly quoted (`"2025-01-01 10:00:00+00"`).
fn split_bounds(inner: &str) -> Option<(Option<String>, Option<String>)> {
    let mut bounds = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                quoted = false;
            }
            '"' => {
                quoted = true;
                was_quoted = true;
            }
            '\\' if quoted => current.push(chars.next()?),
            ',' if !quoted => {
                bounds.push((std::mem::take(&mut current), was_quoted));
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    bounds.push((current, was_quoted));
    if bounds.len() != 2 {
        return None;
    }
    let mut it = bounds
        .into_iter()
        .map(|(b, q)| if b.is_empty() && !q { None } else { Some(b) });
    Some((it.next()?, it.next()?))
}

macro_rules! from_text {
    ($($t:ty),*) => {$(
        impl<'a> FromValue<'a> for $t {
            fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
                match value {
                    Value::String(text) => text.parse(),
                    other => Err(format!("{other} is not text to read as {}", stringify!($t)).into()),
                }
            }
        }
    )*};
}

from_text!(TimestampTz, Interval, Range);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t: TimestampTz = "2024-02-29 13:14:15+05:30".parse().unwrap();
        assert_eq!(t.offset_seconds, 5 * 3600 + 1800);
        assert_eq!(t.unix_micros(), 1_709_192_655_000_000);
        let t: TimestampTz = "1970-01-01 00:00:00".parse().unwrap();
        assert!(!t.has_offset);
        assert_eq!(t.unix_micros(), 0);
        let t: TimestampTz = "0044-03-15 12:00:00-00:19:32 BC".parse().unwrap();
        assert_eq!(t.year, -43);
        assert_eq!(t.offset_seconds, -(19 * 60 + 32));
        assert!("2024-02-29".parse::<TimestampTz>().is_err());
    }

    #[test]
    fn intervals() {
        let i: Interval = "-1 years -2 mons +3 days -04:05:06.25".parse().unwrap();
        assert_eq!((i.months, i.days), (-14, 3));
        assert_eq!(
            i.microseconds,
            -(4 * 3600 + 5 * 60 + 6) * 1_000_000 - 250_000
        );
        assert_eq!("00:00:00".parse::<Interval>().unwrap(), Interval::default());
        let iso: Interval = "P-1Y-2M3DT-4H-5M-6.25S".parse().unwrap();
        assert_eq!(iso, i);
        assert_eq!("PT0S".parse::<Interval>().unwrap(), Interval::default());
        assert!("1 fortnight".parse::<Interval>().is_err());
    }

    #[test]
    fn ranges() {
        let r: Range = "(,\"2025-01-02 10:00:00+00\"]".parse().unwrap();
        assert_eq!(r.lower, None);
        assert_eq!(r.upper.as_deref(), Some("2025-01-02 10:00:00+00"));
        assert!(r.upper_inclusive && !r.lower_inclusive);
        assert!("empty".parse::<Range>().unwrap().empty);
        assert!("1,2".parse::<Range>().is_err());
    }
}
