//! PostgreSQL values (binary wire format) to JSON, and JSON parameters to
//! PostgreSQL text.
//!
//! Results are written straight into the outgoing frame buffer, one cell at
//! a time, without building a `serde_json::Value` per cell: the broker's
//! memory then depends on the chunk size, not on the result. The mapping is
//! the table in DESIGN.md; a type not in it is refused up front, before any
//! row is sent, with a hint to cast it.

use bytes::BytesMut;
use serde_json::Value;
use std::error::Error as StdError;
use std::fmt::Write as _;
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type};

/// A value that does not decode as its type claims (a broker bug or a
/// server we do not understand).
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a value of type {type_name}: {problem}")]
pub struct DecodeError {
    type_name: String,
    problem: &'static str,
}

fn bad(ty: &Type, problem: &'static str) -> DecodeError {
    DecodeError {
        type_name: ty.name().to_owned(),
        problem,
    }
}

/// Whether values of `ty` can be sent as JSON.
pub fn is_supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Array(elem) => is_supported(elem),
        Kind::Enum(_) => true,
        Kind::Domain(base) => is_supported(base),
        _ => {
            matches!(
                *ty,
                Type::BOOL
                    | Type::INT2
                    | Type::INT4
                    | Type::INT8
                    | Type::OID
                    | Type::FLOAT4
                    | Type::FLOAT8
                    | Type::NUMERIC
                    | Type::TEXT
                    | Type::VARCHAR
                    | Type::BPCHAR
                    | Type::NAME
                    | Type::CHAR
                    | Type::UNKNOWN
                    | Type::UUID
                    | Type::BYTEA
                    | Type::DATE
                    | Type::TIME
                    | Type::TIMETZ
                    | Type::TIMESTAMP
                    | Type::TIMESTAMPTZ
                    | Type::INTERVAL
                    | Type::JSON
                    | Type::JSONB
                    | Type::XID
                    | Type::CID
                    | Type::XID8
                    | Type::INET
                    | Type::CIDR
                    | Type::MACADDR
            ) || ty.name() == "citext"
        }
    }
}

/// How one result column's cells are written, chosen once per column:
/// the common types of a big result skip the per-cell type dispatch of
/// [`write_cell`] (comparing `Type`s, `kind()`, [`is_supported`]), which
/// was a fifth of the broker's CPU on a 100,000-row result. Everything
/// else goes through [`write_cell`], with the same output.
#[derive(Debug, Clone)]
pub enum CellWriter {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `text`, `varchar`, `bpchar`, `name` (binary format = text).
    Text(Type),
    /// `bytea`.
    Bytea,
    /// `timestamp` (`false`) or `timestamptz` (`true`).
    Timestamp(Type, bool),
    /// Any other type, through [`write_cell`].
    Other(Type),
}

impl CellWriter {
    /// The writer for cells of `ty`.
    pub fn for_type(ty: &Type) -> CellWriter {
        match *ty {
            Type::BOOL => CellWriter::Bool,
            Type::INT2 => CellWriter::Int2,
            Type::INT4 => CellWriter::Int4,
            Type::INT8 => CellWriter::Int8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => CellWriter::Text(ty.clone()),
            Type::BYTEA => CellWriter::Bytea,
            Type::TIMESTAMP => CellWriter::Timestamp(ty.clone(), false),
            Type::TIMESTAMPTZ => CellWriter::Timestamp(ty.clone(), true),
            _ => CellWriter::Other(ty.clone()),
        }
    }

    /// Appends the cell as JSON, exactly as [`write_cell`] would.
    pub fn write(&self, out: &mut Vec<u8>, raw: Option<&[u8]>) -> Result<(), DecodeError> {
        let Some(raw) = raw else {
            out.extend_from_slice(b"null");
            return Ok(());
        };
        match self {
            CellWriter::Bool => write_cell(out, &Type::BOOL, Some(raw))?,
            CellWriter::Int2 => write_int(out, i16::from_be_bytes(fixed(&Type::INT2, raw)?)),
            CellWriter::Int4 => write_int(out, i32::from_be_bytes(fixed(&Type::INT4, raw)?)),
            CellWriter::Int8 => write_int(out, i64::from_be_bytes(fixed(&Type::INT8, raw)?)),
            CellWriter::Text(ty) => write_str(out, ty, raw)?,
            CellWriter::Bytea => write_bytea(out, raw),
            CellWriter::Timestamp(ty, zone) => {
                write_timestamp(out, i64::from_be_bytes(fixed(ty, raw)?), *zone)
            }
            CellWriter::Other(ty) => write_cell(out, ty, Some(raw))?,
        }
        Ok(())
    }
}

/// How the broker's connection renders the types whose text depends on a
/// setting ([`TextWriter`] writes PostgreSQL's text for them only in the
/// settings it knows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rendering {
    /// `DateStyle` begins with `ISO` (the default).
    pub iso_dates: bool,
    /// `bytea_output` is `hex` (the default).
    pub hex_bytea: bool,
}

/// PostgreSQL's own text of a value, written from its binary form — for
/// the types where that text is the same for every session or depends only
/// on [`Rendering`]: a result whose columns all have one is sent without
/// the text protocol's round of `EXECUTE` (a big result of such columns
/// costs PostgreSQL less in binary). The text equals what PostgreSQL's
/// output function prints; `tests/it/values.rs` compares it with psql.
pub enum TextWriter {
    /// `bool`: `t` / `f`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid`.
    Oid,
    /// `text`, `varchar`, `bpchar`, `name`: their binary form is the text.
    Text(Type),
    /// `bytea` with `bytea_output = hex`.
    Bytea,
    /// `timestamp` in the ISO `DateStyle`.
    Timestamp,
    /// `uuid`, `numeric`: version 1's string is PostgreSQL's text.
    Same(Type),
}

impl TextWriter {
    /// The writer for `ty` under `r`, if there is one.
    pub fn for_type(ty: &Type, r: Rendering) -> Option<TextWriter> {
        Some(match *ty {
            Type::BOOL => TextWriter::Bool,
            Type::INT2 => TextWriter::Int2,
            Type::INT4 => TextWriter::Int4,
            Type::INT8 => TextWriter::Int8,
            Type::OID => TextWriter::Oid,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => TextWriter::Text(ty.clone()),
            Type::BYTEA if r.hex_bytea => TextWriter::Bytea,
            Type::TIMESTAMP if r.iso_dates => TextWriter::Timestamp,
            Type::UUID | Type::NUMERIC => TextWriter::Same(ty.clone()),
            _ => return None,
        })
    }

    /// Appends the cell as a JSON string of its text (or `null`).
    pub fn write(&self, out: &mut Vec<u8>, raw: Option<&[u8]>) -> Result<(), DecodeError> {
        let Some(raw) = raw else {
            out.extend_from_slice(b"null");
            return Ok(());
        };
        let quoted = |out: &mut Vec<u8>, write: &dyn Fn(&mut Vec<u8>)| {
            out.push(b'"');
            write(out);
            out.push(b'"');
        };
        match self {
            TextWriter::Bool => match raw {
                [0] => out.extend_from_slice(b"\"f\""),
                [_] => out.extend_from_slice(b"\"t\""),
                _ => return Err(bad(&Type::BOOL, "wrong length")),
            },
            TextWriter::Int2 => {
                let v = i16::from_be_bytes(fixed(&Type::INT2, raw)?);
                quoted(out, &|o| write_int(o, v));
            }
            TextWriter::Int4 => {
                let v = i32::from_be_bytes(fixed(&Type::INT4, raw)?);
                quoted(out, &|o| write_int(o, v));
            }
            TextWriter::Int8 => {
                let v = i64::from_be_bytes(fixed(&Type::INT8, raw)?);
                quoted(out, &|o| write_int(o, v));
            }
            TextWriter::Oid => {
                let v = u32::from_be_bytes(fixed(&Type::OID, raw)?);
                quoted(out, &|o| write_int(o, v));
            }
            TextWriter::Text(ty) => write_str(out, ty, raw)?,
            TextWriter::Bytea => write_bytea(out, raw),
            TextWriter::Timestamp => {
                let micros = i64::from_be_bytes(fixed(&Type::TIMESTAMP, raw)?);
                out.push(b'"');
                write_timestamp_text(out, micros);
                out.push(b'"');
            }
            TextWriter::Same(ty) => write_cell(out, ty, Some(raw))?,
        }
        Ok(())
    }
}

/// A `timestamp` as PostgreSQL prints it in the ISO `DateStyle`:
/// `2025-11-03 06:04:21.872`, `0044-03-15 12:00:00 BC`, `infinity`.
fn write_timestamp_text(out: &mut Vec<u8>, micros: i64) {
    if micros == i64::MAX {
        out.extend_from_slice(b"infinity");
        return;
    }
    if micros == i64::MIN {
        out.extend_from_slice(b"-infinity");
        return;
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days + DAYS_1970_TO_2000);
    // Astronomical year 0 is 1 BC.
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    let digits = year.to_string();
    for _ in digits.len()..4 {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
    out.push(b' ');
    let secs = (in_day / 1_000_000) as u32;
    let frac = (in_day % 1_000_000) as u32;
    push_digits(out, secs / 3600, 2);
    out.push(b':');
    push_digits(out, secs / 60 % 60, 2);
    out.push(b':');
    push_digits(out, secs % 60, 2);
    if frac != 0 {
        out.push(b'.');
        push_digits(out, frac, 6);
        while out.last() == Some(&b'0') {
            out.pop();
        }
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// A cell as PostgreSQL sent it: the raw bytes of any type, or NULL.
pub struct RawCell<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawCell<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawCell(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Appends the JSON form of one cell to `out`.
pub fn write_cell(out: &mut Vec<u8>, ty: &Type, raw: Option<&[u8]>) -> Result<(), DecodeError> {
    let Some(raw) = raw else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    match ty.kind() {
        Kind::Array(elem) => return write_array(out, ty, elem, raw),
        Kind::Enum(_) => return write_str(out, ty, raw),
        Kind::Domain(base) => return write_cell(out, base, Some(raw)),
        _ => {}
    }
    match *ty {
        Type::BOOL => match raw {
            [0] => out.extend_from_slice(b"false"),
            [_] => out.extend_from_slice(b"true"),
            _ => return Err(bad(ty, "bool is not one byte")),
        },
        Type::INT2 => write_int(out, i16::from_be_bytes(fixed(ty, raw)?)),
        Type::INT4 => write_int(out, i32::from_be_bytes(fixed(ty, raw)?)),
        Type::INT8 => write_int(out, i64::from_be_bytes(fixed(ty, raw)?)),
        Type::OID | Type::XID | Type::CID => {
            write_display(out, u32::from_be_bytes(fixed(ty, raw)?))
        }
        Type::XID8 => write_display(out, u64::from_be_bytes(fixed(ty, raw)?)),
        Type::INET | Type::CIDR => {
            let text = inet_to_string(raw, *ty == Type::CIDR)
                .ok_or_else(|| bad(ty, "malformed address"))?;
            write_json_str(out, &text);
        }
        Type::MACADDR => {
            let b: [u8; 6] = fixed(ty, raw)?;
            let text = b
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            write_json_str(out, &text);
        }
        Type::FLOAT4 => {
            let v = f32::from_be_bytes(fixed(ty, raw)?);
            write_float(
                out,
                v.is_nan(),
                v.is_infinite(),
                v.is_sign_negative(),
                || serde_json::to_string(&v).unwrap_or_default(),
            )
        }
        Type::FLOAT8 => {
            let v = f64::from_be_bytes(fixed(ty, raw)?);
            write_float(
                out,
                v.is_nan(),
                v.is_infinite(),
                v.is_sign_negative(),
                || serde_json::to_string(&v).unwrap_or_default(),
            )
        }
        Type::NUMERIC => {
            let text = numeric_to_string(raw).ok_or_else(|| bad(ty, "malformed numeric"))?;
            write_json_str(out, &text);
        }
        Type::UUID => {
            let b: [u8; 16] = fixed(ty, raw)?;
            let mut s = String::with_capacity(36);
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                let _ = write!(s, "{byte:02x}");
            }
            write_json_str(out, &s);
        }
        Type::BYTEA => write_bytea(out, raw),
        Type::DATE => {
            let days = i32::from_be_bytes(fixed(ty, raw)?);
            write_json_str(out, &format_date(days));
        }
        Type::TIME => {
            let micros = i64::from_be_bytes(fixed(ty, raw)?);
            write_json_str(out, &format_time(micros));
        }
        Type::TIMETZ => {
            if raw.len() != 12 {
                return Err(bad(ty, "timetz is not 12 bytes"));
            }
            let micros = i64::from_be_bytes(fixed(ty, &raw[..8])?);
            // PostgreSQL stores the zone as seconds *west* of UTC.
            let west = i32::from_be_bytes(fixed(ty, &raw[8..])?);
            let mut s = format_time(micros);
            push_offset(&mut s, -west);
            write_json_str(out, &s);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(ty, raw)?);
            write_timestamp(out, micros, *ty == Type::TIMESTAMPTZ);
        }
        Type::INTERVAL => {
            if raw.len() != 16 {
                return Err(bad(ty, "interval is not 16 bytes"));
            }
            let micros = i64::from_be_bytes(fixed(ty, &raw[..8])?);
            let days = i32::from_be_bytes(fixed(ty, &raw[8..12])?);
            let months = i32::from_be_bytes(fixed(ty, &raw[12..])?);
            write_json_str(out, &format_interval(months, days, micros));
        }
        Type::JSON => write_json_verbatim(out, ty, raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => write_json_verbatim(out, ty, text)?,
            _ => return Err(bad(ty, "unknown jsonb version")),
        },
        Type::CHAR => {
            // "char" is one byte; non-ASCII bytes are shown as PostgreSQL's
            // text output does, as an octal escape.
            match raw {
                [b] if b.is_ascii() => write_json_str(out, &(*b as char).to_string()),
                [b] => write_json_str(out, &format!("\\{b:03o}")),
                _ => write_json_str(out, ""),
            }
        }
        _ if is_supported(ty) => write_str(out, ty, raw)?,
        _ => return Err(bad(ty, "type is not supported")),
    }
    Ok(())
}

fn fixed<const N: usize>(ty: &Type, raw: &[u8]) -> Result<[u8; N], DecodeError> {
    raw.try_into().map_err(|_| bad(ty, "wrong length"))
}

fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn write_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

fn write_float(
    out: &mut Vec<u8>,
    nan: bool,
    inf: bool,
    negative: bool,
    finite: impl FnOnce() -> String,
) {
    // JSON has no NaN or infinities: they travel as PostgreSQL spells them.
    if nan {
        out.extend_from_slice(b"\"NaN\"");
    } else if inf && negative {
        out.extend_from_slice(b"\"-Infinity\"");
    } else if inf {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(finite().as_bytes());
    }
}

/// `bytea` as PostgreSQL's hex text (`"\\x0a1b"`).
fn write_bytea(out: &mut Vec<u8>, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(raw.len() * 2 + 5);
    out.extend_from_slice(b"\"\\\\x");
    for byte in raw {
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 15) as usize]);
    }
    out.push(b'"');
}

fn write_str(out: &mut Vec<u8>, ty: &Type, raw: &[u8]) -> Result<(), DecodeError> {
    let s = std::str::from_utf8(raw).map_err(|_| bad(ty, "text is not UTF-8"))?;
    write_json_str(out, s);
    Ok(())
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
///
/// Eight bytes at a time: a word without `"`, `\\` or a control character
/// is copied as it is (bytes of multi-byte characters need no escaping in
/// JSON); only words holding one of those go byte by byte.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether any byte of `w` is zero (exact: no false positives).
    fn has_zero(w: u64) -> bool {
        w.wrapping_sub(ONES) & !w & HIGH != 0
    }
    /// Whether any byte of `w` is below 0x20 (bytes ≥ 0x80 never count).
    fn has_control(w: u64) -> bool {
        w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
    }
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_ne_bytes(word);
            if !has_control(w) && !has_zero(w ^ (ONES * 0x22)) && !has_zero(w ^ (ONES * 0x5c)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            } else {
                out.extend_from_slice(escape);
            }
            i += 1;
            start = i;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// PostgreSQL has validated json/jsonb text, so it is copied as it is. The
/// one change: raw newlines, carriage returns and tabs (possible only as
/// whitespace between tokens, since JSON strings escape them) become spaces,
/// because a frame must stay on one line.
fn write_json_verbatim(out: &mut Vec<u8>, ty: &Type, text: &[u8]) -> Result<(), DecodeError> {
    if std::str::from_utf8(text).is_err() {
        return Err(bad(ty, "json is not UTF-8"));
    }
    out.extend(text.iter().map(|b| match b {
        b'\n' | b'\r' | b'\t' => b' ',
        b => *b,
    }));
    Ok(())
}

fn write_array(out: &mut Vec<u8>, ty: &Type, elem: &Type, raw: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader { raw, pos: 0 };
    let ndim = r.i32(ty)?;
    let _has_null = r.i32(ty)?;
    let _elem_oid = r.i32(ty)?;
    if !(0..=6).contains(&ndim) {
        return Err(bad(ty, "array has an impossible number of dimensions"));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        let len = r.i32(ty)?;
        let _lower = r.i32(ty)?;
        if len < 0 {
            return Err(bad(ty, "array dimension is negative"));
        }
        dims.push(len as usize);
    }
    if dims.is_empty() {
        out.extend_from_slice(b"[]");
        return Ok(());
    }
    write_dims(out, ty, elem, &dims, &mut r)
}

fn write_dims(
    out: &mut Vec<u8>,
    ty: &Type,
    elem: &Type,
    dims: &[usize],
    r: &mut Reader<'_>,
) -> Result<(), DecodeError> {
    out.push(b'[');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(b',');
        }
        if dims.len() > 1 {
            write_dims(out, ty, elem, &dims[1..], r)?;
        } else {
            let len = r.i32(ty)?;
            let cell = if len < 0 {
                None
            } else {
                Some(r.take(ty, len as usize)?)
            };
            write_cell(out, elem, cell)?;
        }
    }
    out.push(b']');
    Ok(())
}

struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, ty: &Type, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.raw.len())
            .ok_or_else(|| bad(ty, "array is truncated"))?;
        let slice = &self.raw[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn i32(&mut self, ty: &Type) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(fixed(ty, self.take(ty, 4)?)?))
    }
}

/// PostgreSQL's binary numeric (base-10000 digits) as exact decimal text,
/// the way `numeric_out` prints it.
fn numeric_to_string(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            raw.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let d = word(4 + i)?;
        if d > 9999 {
            return None;
        }
        digits.push(d);
    }
    let digit = |i: i32| -> u16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::with_capacity(ndigits * 4 + dscale + 2);
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let start = s.len();
        let mut i = weight + 1;
        while s.len() - start < dscale {
            let _ = write!(s, "{:04}", digit(i));
            i += 1;
        }
        s.truncate(start + dscale);
    }
    Some(s)
}

/// inet/cidr as PostgreSQL prints them: `addr` (inet with a full mask) or
/// `addr/bits`.
fn inet_to_string(raw: &[u8], cidr: bool) -> Option<String> {
    let (&family, rest) = raw.split_first()?;
    let (&bits, rest) = rest.split_first()?;
    let (_is_cidr, rest) = rest.split_first()?;
    let (&len, addr) = rest.split_first()?;
    if addr.len() != len as usize {
        return None;
    }
    let (text, full) = match family {
        2 => (
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(addr).ok()?).to_string(),
            32,
        ),
        3 => (
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?).to_string(),
            128,
        ),
        _ => return None,
    };
    Some(if cidr || bits != full {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// Days since 2000-01-01 to `YYYY-MM-DD`.
fn format_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (y, m, d) = civil_from_days(days as i64 + DAYS_1970_TO_2000);
            format_ymd(y, m, d)
        }
    }
}

const DAYS_1970_TO_2000: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn format_ymd(y: i64, m: u32, d: u32) -> String {
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        // ISO 8601's expanded years; year 0 is 1 BC (astronomical numbering).
        format!("{y:+05}-{m:02}-{d:02}")
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date of
/// the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Microseconds since midnight to `HH:MM:SS[.ffffff]`.
fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(&mut s, frac);
    s
}

/// Appends `.ffffff` without trailing zeros, as PostgreSQL prints it.
fn push_fraction(s: &mut String, frac: i64) {
    if frac != 0 {
        let digits = format!("{frac:06}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
}

fn push_offset(s: &mut String, east_secs: i32) {
    let sign = if east_secs < 0 { '-' } else { '+' };
    let a = east_secs.unsigned_abs();
    let _ = write!(s, "{sign}{:02}:{:02}", a / 3600, a / 60 % 60);
    if a % 60 != 0 {
        let _ = write!(s, ":{:02}", a % 60);
    }
}

/// `n` as exactly `width` decimal digits (the caller keeps it in range).
fn push_digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// A timestamp as a JSON string, written straight into `out` (a big
/// result has one per row and column; going through `format!` cost an
/// allocation and the formatting machinery each). The text equals
/// [`format_timestamp`]'s.
fn write_timestamp(out: &mut Vec<u8>, micros: i64, with_zone: bool) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days + DAYS_1970_TO_2000);
    if micros == i64::MAX || micros == i64::MIN || !(0..=9999).contains(&y) {
        write_json_str(out, &format_timestamp(micros, with_zone));
        return;
    }
    let secs = (in_day / 1_000_000) as u32;
    let frac = (in_day % 1_000_000) as u32;
    out.push(b'"');
    push_digits(out, y as u32, 4);
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
    out.push(b'T');
    push_digits(out, secs / 3600, 2);
    out.push(b':');
    push_digits(out, secs / 60 % 60, 2);
    out.push(b':');
    push_digits(out, secs % 60, 2);
    if frac != 0 {
        out.push(b'.');
        push_digits(out, frac, 6);
        while out.last() == Some(&b'0') {
            out.pop();
        }
    }
    if with_zone {
        out.extend_from_slice(b"+00:00");
    }
    out.push(b'"');
}

/// Microseconds since 2000-01-01 00:00 to ISO 8601 (`T` between date and
/// time; timestamptz in UTC with `+00:00`).
fn format_timestamp(micros: i64, with_zone: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days + DAYS_1970_TO_2000);
    let mut s = format_ymd(y, m, d);
    s.push('T');
    s.push_str(&format_time(in_day));
    if with_zone {
        s.push_str("+00:00");
    }
    s
}

/// An interval as an ISO 8601 duration, field signs as PostgreSQL's
/// `IntervalStyle = iso_8601` prints them (`P1Y2M3DT4H5M6.5S`, `PT0S`).
fn format_interval(months: i32, days: i32, micros: i64) -> String {
    if months == 0 && days == 0 && micros == 0 {
        return "PT0S".into();
    }
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (v, unit) in [
        (years as i64, 'Y'),
        (months as i64, 'M'),
        (days as i64, 'D'),
    ] {
        if v != 0 {
            let _ = write!(s, "{v}{unit}");
        }
    }
    if micros != 0 {
        s.push('T');
        let negative = micros < 0;
        let a = micros.unsigned_abs();
        let (h, m, sec, frac) = (
            a / 3_600_000_000,
            a / 60_000_000 % 60,
            a / 1_000_000 % 60,
            a % 1_000_000,
        );
        let sign = if negative { "-" } else { "" };
        if h != 0 {
            let _ = write!(s, "{sign}{h}H");
        }
        if m != 0 {
            let _ = write!(s, "{sign}{m}M");
        }
        if sec != 0 || frac != 0 {
            let _ = write!(s, "{sign}{sec}");
            push_fraction(&mut s, frac as i64);
            s.push('S');
        }
    }
    s
}

/// A JSON parameter bound as text, so PostgreSQL parses it by the
/// parameter's type — psycopg2's literal binding, without string splicing.
#[derive(Debug)]
pub struct TextParam(Option<String>);

impl TextParam {
    /// The value as an SQL literal for `EXECUTE name(…)`: `NULL`, or an
    /// `E'…'` string (backslashes and quotes escaped, so the literal means
    /// the same whatever `standard_conforming_strings` says), which
    /// PostgreSQL converts to the parameter's type by its input function —
    /// as it does a value bound as text. `None` for text with a NUL byte,
    /// which no PostgreSQL text can hold.
    pub fn literal(&self) -> Option<String> {
        match &self.0 {
            None => Some("NULL".to_owned()),
            Some(text) if text.contains('\0') => None,
            Some(text) => {
                let mut out = String::with_capacity(text.len() + 3);
                out.push_str("E'");
                for c in text.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                Some(out)
            }
        }
    }

    /// The text form of a JSON value: strings as they are, numbers and
    /// booleans as written, arrays as PostgreSQL array literals, objects as
    /// JSON text, null as SQL NULL.
    pub fn from_json(value: &Value) -> TextParam {
        TextParam(match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(array_literal(items)),
            other => Some(other.to_string()),
        })
    }
}

fn array_literal(items: &[Value]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match item {
            Value::Null => s.push_str("NULL"),
            Value::Array(inner) => s.push_str(&array_literal(inner)),
            Value::String(text) => quote_element(&mut s, text),
            Value::Object(_) => quote_element(&mut s, &item.to_string()),
            other => s.push_str(&other.to_string()),
        }
    }
    s.push('}');
    s
}

fn quote_element(s: &mut String, text: &str) {
    s.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ty: &Type, raw: &[u8]) -> String {
        let mut out = Vec::new();
        write_cell(&mut out, ty, Some(raw)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_are_exact() {
        assert_eq!(
            cell(&Type::NUMERIC, &numeric(0, 0, 2, &[12, 3400])),
            "\"12.34\""
        );
        assert_eq!(
            cell(&Type::NUMERIC, &numeric(1, 0x4000, 0, &[1, 0])),
            "\"-10000\""
        );
        assert_eq!(
            cell(&Type::NUMERIC, &numeric(-2, 0, 6, &[1200])),
            "\"0.000012\""
        );
        assert_eq!(cell(&Type::NUMERIC, &numeric(0, 0, 0, &[])), "\"0\"");
        assert_eq!(cell(&Type::NUMERIC, &numeric(0, 0, 3, &[])), "\"0.000\"");
        assert_eq!(cell(&Type::NUMERIC, &numeric(0, 0xC000, 0, &[])), "\"NaN\"");
        assert_eq!(
            cell(&Type::NUMERIC, &numeric(2, 0, 1, &[12, 3456, 7890, 1000])),
            "\"1234567890.1\""
        );
    }

    #[test]
    fn timestamps_as_postgresql_prints_them() {
        let text = |micros: i64| {
            let mut out = Vec::new();
            write_timestamp_text(&mut out, micros);
            String::from_utf8(out).unwrap()
        };
        // 2000-01-01 is PostgreSQL's epoch.
        assert_eq!(text(0), "2000-01-01 00:00:00");
        assert_eq!(text(1), "2000-01-01 00:00:00.000001");
        assert_eq!(text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(text(500_000), "2000-01-01 00:00:00.5");
        assert_eq!(text(i64::MAX), "infinity");
        assert_eq!(text(i64::MIN), "-infinity");
        // 0044-03-15 12:00:00 BC, astronomical year -43.
        let days = -(2000 - (-43)) as i64 * 365; // rough, then check the shape
        assert!(text(days * 86_400_000_000).ends_with(" BC"));
        // Year 10000 has five digits.
        assert!(text(253_402_300_800_000_000 - 946_684_800_000_000).starts_with("10000-01-01"));
    }

    #[test]
    fn timestamps_written_directly_equal_the_formatted_ones() {
        let samples = [
            0i64,
            1,
            -1,
            999_999,
            1_000_000,
            10,
            123_456_789_012_345,
            -123_456_789_012_345,
            // 0001-01-01 and 9999-12-31 23:59:59.999999, the direct path's
            // ends, and years outside it.
            -63_082_281_600_000_000,
            252_455_615_999_999_999,
            252_455_616_000_000_000,
            -63_082_281_600_000_001,
            -211_813_488_000_000_000,
            i64::MAX,
            i64::MIN,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let random = (0..10_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state as i64) >> 8
        });
        for micros in samples.into_iter().chain(random) {
            for zone in [false, true] {
                let mut direct = Vec::new();
                write_timestamp(&mut direct, micros, zone);
                let mut formatted = Vec::new();
                write_json_str(&mut formatted, &format_timestamp(micros, zone));
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(formatted).unwrap(),
                    "{micros} {zone}"
                );
            }
        }
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain ascii text, longer than eight bytes".into(),
            "Žluťoučký kůň úpěl ďábelské ódy".into(),
            "quote \" backslash \\ slash / end".into(),
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}".into(),
            "abcdefg\"".into(),
            "abcdefgh\\".into(),
            "\u{1F600} emoji and 中文".into(),
        ];
        // Every byte value below 0x80 at every position of a 17-byte text.
        for b in 0u8..0x80 {
            for pos in 0..17 {
                let mut text = vec![b'x'; 17];
                text[pos] = b;
                samples.push(String::from_utf8(text).unwrap());
            }
        }
        for s in &samples {
            let mut ours = Vec::new();
            write_json_str(&mut ours, s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn column_writers_write_what_write_cell_writes() {
        let cells: Vec<(Type, Vec<u8>)> = vec![
            (Type::BOOL, vec![1]),
            (Type::BOOL, vec![0]),
            (Type::INT2, (-7i16).to_be_bytes().to_vec()),
            (Type::INT4, i32::MIN.to_be_bytes().to_vec()),
            (Type::INT8, i64::MAX.to_be_bytes().to_vec()),
            (Type::TEXT, "Příliš \"žluťoučký\"\n".as_bytes().to_vec()),
            (Type::VARCHAR, b"jan.novak".to_vec()),
            (Type::BPCHAR, b"x  ".to_vec()),
            (Type::NAME, b"pg_class".to_vec()),
            (Type::BYTEA, vec![0, 1, 0xab, 0xff]),
            (
                Type::TIMESTAMP,
                123_456_789_012_345i64.to_be_bytes().to_vec(),
            ),
            (Type::TIMESTAMPTZ, (-1i64).to_be_bytes().to_vec()),
            (Type::TIMESTAMP, i64::MAX.to_be_bytes().to_vec()),
            (Type::FLOAT8, 1.5f64.to_be_bytes().to_vec()),
            (Type::DATE, 0i32.to_be_bytes().to_vec()),
        ];
        for (ty, raw) in &cells {
            let writer = CellWriter::for_type(ty);
            for cell in [Some(raw.as_slice()), None] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                writer.write(&mut a, cell).unwrap();
                write_cell(&mut b, ty, cell).unwrap();
                assert_eq!(a, b, "{ty}");
            }
        }
        // Wrong lengths and bad text fail the same way too.
        for (ty, raw) in [
            (Type::INT4, vec![1u8]),
            (Type::TEXT, vec![0xff]),
            (Type::TIMESTAMP, vec![0]),
        ] {
            let writer = CellWriter::for_type(&ty);
            let a = writer.write(&mut Vec::new(), Some(&raw)).unwrap_err();
            let b = write_cell(&mut Vec::new(), &ty, Some(&raw)).unwrap_err();
            assert_eq!(a.to_string(), b.to_string());
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_date(9190), "2025-02-28");
        assert_eq!(format_date(i32::MAX), "infinity");
        assert_eq!(
            format_timestamp(86_400_000_000 + 3_723_500_000, true),
            "2000-01-02T01:02:03.5+00:00"
        );
        assert_eq!(format_timestamp(-1, false), "1999-12-31T23:59:59.999999");
        assert_eq!(format_time(45_296_000_001), "12:34:56.000001");
        assert_eq!(format_interval(14, 3, 14_706_500_000), "P1Y2M3DT4H5M6.5S");
        assert_eq!(format_interval(0, 0, -90_000_000), "PT-1M-30S");
        assert_eq!(format_interval(0, 0, 0), "PT0S");
        let mut s = String::new();
        push_offset(&mut s, 3600 + 1800);
        assert_eq!(s, "+01:30");
    }

    #[test]
    fn floats_and_specials() {
        assert_eq!(cell(&Type::FLOAT8, &0.1f64.to_be_bytes()), "0.1");
        assert_eq!(cell(&Type::FLOAT4, &0.1f32.to_be_bytes()), "0.1");
        assert_eq!(cell(&Type::FLOAT8, &f64::NAN.to_be_bytes()), "\"NaN\"");
        assert_eq!(
            cell(&Type::FLOAT8, &f64::NEG_INFINITY.to_be_bytes()),
            "\"-Infinity\""
        );
    }

    #[test]
    fn bytea_uuid_json_and_arrays() {
        assert_eq!(cell(&Type::BYTEA, &[0xde, 0xad, 0x01]), r#""\\xdead01""#);
        let uuid: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            cell(&Type::UUID, &uuid),
            "\"00010203-0405-0607-0809-0a0b0c0d0e0f\""
        );
        assert_eq!(cell(&Type::JSON, b"{\"a\":\n [1,\t2]}"), "{\"a\":  [1, 2]}");
        assert_eq!(cell(&Type::JSONB, b"\x01{\"a\": 1}"), "{\"a\": 1}");
        // int4[] {{1,NULL},{3,4}}
        let mut raw = Vec::new();
        for v in [2i32, 1, 23, 2, 1, 2, 1] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        for v in [Some(1i32), None, Some(3), Some(4)] {
            match v {
                Some(v) => {
                    raw.extend_from_slice(&4i32.to_be_bytes());
                    raw.extend_from_slice(&v.to_be_bytes());
                }
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(cell(&Type::INT4_ARRAY, &raw), "[[1,null],[3,4]]");
        let mut out = Vec::new();
        assert!(write_cell(&mut out, &Type::INT4_ARRAY, Some(&raw[..10])).is_err());
    }

    #[test]
    fn params_become_postgres_text() {
        let text = |v: Value| TextParam::from_json(&v).0;
        assert_eq!(text(serde_json::json!(null)), None);
        assert_eq!(text(serde_json::json!("admin")), Some("admin".into()));
        assert_eq!(text(serde_json::json!(42)), Some("42".into()));
        assert_eq!(text(serde_json::json!(true)), Some("true".into()));
        assert_eq!(
            text(serde_json::json!([1, null, "a\"b", [2]])),
            Some(r#"{1,NULL,"a\"b",{2}}"#.into())
        );
        assert_eq!(text(serde_json::json!({"k": 1})), Some(r#"{"k":1}"#.into()));
    }

    #[test]
    fn unsupported_types_are_named() {
        assert!(!is_supported(&Type::TS_VECTOR));
        assert!(!is_supported(&Type::POINT_ARRAY));
        assert!(is_supported(&Type::TEXT_ARRAY));
    }
}
