use crate::Error;
use iam_pgbroker_proto::Column;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::error::Error as StdError;
use std::fmt;
use std::ops::Index;
use std::sync::Arc;

/// One result row: values in column order, addressable by column name or
/// position.
///
/// Values are PostgreSQL's own text form — the text psql prints — as JSON
/// strings, for every type (timestamps in the session's time zone,
/// `numeric` exact, `json` verbatim, arrays as `{…}` literals, `bytea` as
/// `\x…`), except that `int2`, `int4`, `int8` and `oid` are JSON numbers and
/// `bool` is `true`/`false`; SQL `NULL` is `null` (a jsonb `null` is the
/// string `"null"`). [`Row::text`] gives any value's text form;
/// [`Row::get`] converts (`i64`, `f64`, `bool`, `String`, `Vec<T>` from an
/// array, …). Against a broker that speaks only protocol version 1 the
/// values are that version's typed JSON (`docs/protocol.md`). Rows of one
/// result share one column list, so a row costs its values and a reference
/// count.
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let mut db = iam_pgconnect::connect()?;
/// for row in db.query("SELECT username, disabled FROM idm_identity", &[])? {
///     // By name, like the seed library's dicts (panics on an unknown name):
///     println!("{}", row["username"]);
///     // Typed, with a clear error on NULL or a type mismatch:
///     let disabled: bool = row.try_get("disabled")?;
///     // Typed by position, panicking on a mismatch:
///     let username: &str = row.get(0);
///     println!("{username} disabled={disabled}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Column]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Column]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// The result's columns (name and PostgreSQL type).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The values in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the row, returning its values in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// Number of values (columns).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns (`SELECT;`).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(column name, value)` pairs in column order.
    pub fn iter(&self) -> RowValues<'_> {
        RowValues {
            columns: self.columns.iter(),
            values: self.values.iter(),
        }
    }

    /// The value of a column by name (the first column of that name) or
    /// position, or `None` when there is no such column.
    pub fn value(&self, idx: impl ColumnIndex) -> Option<&Value> {
        idx.position(&self.columns).and_then(|i| self.values.get(i))
    }

    /// A column's value converted to `T`.
    ///
    /// # Panics
    ///
    /// When the column does not exist, is `NULL` and `T` is not an
    /// `Option`, or holds another type; use [`Row::try_get`] to handle
    /// those as errors.
    pub fn get<'a, T: FromValue<'a>>(&'a self, idx: impl ColumnIndex) -> T {
        match self.try_get(idx) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// A column's value converted to `T`, or an error (code `bad_request`)
    /// naming the column when it does not exist, is `NULL` and `T` is not
    /// an `Option`, or holds another type.
    pub fn try_get<'a, T: FromValue<'a>>(&'a self, idx: impl ColumnIndex) -> Result<T, Error> {
        let Some(i) = idx.position(&self.columns) else {
            return Err(Error::column(
                format!("no column {idx} in this result (columns: {})", self.names()),
                None,
            ));
        };
        let column = &self.columns[i];
        T::from_value(&self.values[i]).map_err(|e| {
            Error::column(
                format!("column {:?} ({}): {e}", column.name, column.type_name),
                Some(e),
            )
        })
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }
}

impl Row {
    /// PostgreSQL's text form of the value at `idx` — what psql prints —
    /// or `None` for SQL NULL (panics on an unknown column, like
    /// [`Row::get`]).
    pub fn text(&self, idx: impl ColumnIndex) -> Option<std::borrow::Cow<'_, str>> {
        match self.value(idx) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(std::borrow::Cow::Borrowed(s)),
            Some(Value::Bool(b)) => Some(std::borrow::Cow::Borrowed(if *b { "t" } else { "f" })),
            Some(other) => Some(std::borrow::Cow::Owned(other.to_string())),
        }
    }

    /// The type OID of column `idx` (protocol version 2), to decode its
    /// text by.
    pub fn oid(&self, idx: impl ColumnIndex) -> Option<u32> {
        let i = idx.position(&self.columns)?;
        self.columns.get(i)?.oid
    }
}

impl Index<&str> for Row {
    type Output = Value;

    /// The value of the first column named `name`.
    ///
    /// # Panics
    ///
    /// When there is no such column, like indexing a `HashMap`.
    fn index(&self, name: &str) -> &Value {
        match self.value(name) {
            Some(v) => v,
            None => panic!(
                "no column {name:?} in this result (columns: {})",
                self.names()
            ),
        }
    }
}

impl Index<usize> for Row {
    type Output = Value;

    /// The value at position `i` (from 0).
    ///
    /// # Panics
    ///
    /// When `i` is not less than the number of columns.
    fn index(&self, i: usize) -> &Value {
        &self.values[i]
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A row serializes as an object in column order (`{"id":…,"username":…}`).
impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'a> IntoIterator for &'a Row {
    type Item = (&'a str, &'a Value);
    type IntoIter = RowValues<'a>;

    fn into_iter(self) -> RowValues<'a> {
        self.iter()
    }
}

/// Iterator over a row's `(column name, value)` pairs; see [`Row::iter`].
#[derive(Debug, Clone)]
pub struct RowValues<'a> {
    columns: std::slice::Iter<'a, Column>,
    values: std::slice::Iter<'a, Value>,
}

impl<'a> Iterator for RowValues<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.columns.next()?.name.as_str(), self.values.next()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.values.size_hint()
    }
}

impl ExactSizeIterator for RowValues<'_> {}

/// How a column is named in [`Row::get`], [`Row::try_get`] and
/// [`Row::value`]: a `&str` (the first column of that name), a `String`, or
/// a `usize` position from 0. Sealed.
pub trait ColumnIndex: fmt::Display + sealed::Sealed {
    /// The position of the column in `columns`, if it is there.
    fn position(&self, columns: &[Column]) -> Option<usize>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl ColumnIndex for str {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name == self)
    }
}

impl ColumnIndex for String {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        self.as_str().position(columns)
    }
}

impl<T: ColumnIndex + ?Sized> ColumnIndex for &T {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        (**self).position(columns)
    }
}

/// The error type of [`FromValue`]: any error, boxed.
pub type ConversionError = Box<dyn StdError + Send + Sync>;

/// A Rust type a column's JSON value can be read as; used by
/// [`Row::get`] and [`Row::try_get`].
///
/// Conversions are strict, so a surprise shows as an error rather than a
/// silently changed value:
///
/// | Rust | accepts |
/// | --- | --- |
/// | `bool` | `true` / `false` |
/// | `i16`, `i32`, `i64` | a JSON integer in range (not `numeric`, which arrives as a string: read it as `String` or cast in SQL) |
/// | `f32`, `f64` | any JSON number, and the strings `"NaN"`, `"Infinity"`, `"-Infinity"` that float columns use |
/// | `String`, `&str` | a JSON string (text, `numeric`, `uuid`, timestamps, `bytea` as `\x…`) |
/// | `Vec<T>` | a JSON array (a PostgreSQL array) whose elements convert to `T` |
/// | `serde_json::Value`, `&Value` | anything, including `null` |
/// | `Option<T>` | `null` as `None`, anything else as `T` |
///
/// `NULL` converts only to `Option<T>` and `Value`.
pub trait FromValue<'a>: Sized {
    /// Converts the value, or says why it cannot.
    fn from_value(value: &'a Value) -> Result<Self, ConversionError>;
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a JSON object",
    }
}

fn mismatch(value: &Value, wanted: &str) -> ConversionError {
    if value.is_null() {
        format!("is NULL; read it as Option<{wanted}>").into()
    } else {
        format!("cannot read {} as {wanted}", kind(value)).into()
    }
}

impl<'a> FromValue<'a> for Value {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        Ok(value.clone())
    }
}

impl<'a> FromValue<'a> for &'a Value {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        Ok(value)
    }
}

impl<'a> FromValue<'a> for bool {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        match value {
            Value::Bool(b) => Ok(*b),
            // An array element's text.
            Value::String(s) if s == "t" || s == "true" => Ok(true),
            Value::String(s) if s == "f" || s == "false" => Ok(false),
            _ => Err(mismatch(value, "bool")),
        }
    }
}

impl<'a> FromValue<'a> for i64 {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        if let Value::String(s) = value {
            return s.parse::<i64>().map_err(|_| {
                format!("{s:?} is not an integer that fits in i64 (read it as String, or cast it in SQL)")
                    .into()
            });
        }
        value.as_i64().ok_or_else(|| match value {
            Value::Number(n) => format!("the number {n} does not fit in i64").into(),
            _ => mismatch(value, "i64"),
        })
    }
}

macro_rules! narrow_integer {
    ($($t:ty),*) => {$(
        impl<'a> FromValue<'a> for $t {
            fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
                let wide = i64::from_value(value)
                    .map_err(|_| mismatch(value, stringify!($t)))?;
                <$t>::try_from(wide).map_err(|_| {
                    format!("the number {wide} does not fit in {}", stringify!($t)).into()
                })
            }
        }
    )*};
}

narrow_integer!(i16, i32);

impl<'a> FromValue<'a> for f64 {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        match value {
            Value::Number(n) => n.as_f64().ok_or_else(|| mismatch(value, "f64")),
            // The broker's spellings for float values JSON cannot carry.
            // PostgreSQL's text form (NaN, Infinity and -Infinity too).
            Value::String(s) => s
                .parse::<f64>()
                .map_err(|_| format!("{s:?} is not a number").into()),
            _ => Err(mismatch(value, "f64")),
        }
    }
}

impl<'a> FromValue<'a> for f32 {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        // Narrowing a float rounds, which is what reading float4 means.
        f64::from_value(value)
            .map(|x| x as f32)
            .map_err(|_| mismatch(value, "f32"))
    }
}

impl<'a> FromValue<'a> for String {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| mismatch(value, "String"))
    }
}

impl<'a> FromValue<'a> for &'a str {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        value.as_str().ok_or_else(|| mismatch(value, "&str"))
    }
}

impl<'a, T: FromValue<'a>> FromValue<'a> for Option<T> {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl<'a, T: for<'b> FromValue<'b>> FromValue<'a> for Vec<T> {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        let parsed;
        let items = match value {
            Value::Array(items) => items,
            Value::String(text) if text.starts_with('{') || text.starts_with('[') => {
                parsed = parse_array(text)
                    .ok_or_else(|| ConversionError::from(format!("{text:?} is not an array")))?;
                &parsed
            }
            _ => return Err(mismatch(value, "Vec<_>")),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                T::from_value(item).map_err(|e| format!("element {}: {e}", i + 1).into())
            })
            .collect()
    }
}

/// PostgreSQL's array literal (`{1,2}`, `{"a b",NULL}`, `{{1,2},{3,4}}`,
/// `[0:1]={7,8}`) as nested arrays of text elements (`null` for NULL).
/// `None` when the text is no array literal.
pub fn parse_array(text: &str) -> Option<Vec<Value>> {
    // Explicit bounds come first: `[1:2]={…}`.
    let body = match text.strip_prefix('[') {
        Some(_) => text.split_once('=')?.1,
        None => text,
    };
    let mut chars = body.chars().peekable();
    let parsed = parse_level(&mut chars)?;
    chars.next().is_none().then_some(parsed)
}

fn parse_level(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Vec<Value>> {
    if chars.next()? != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(items);
    }
    loop {
        match chars.peek()? {
            '{' => items.push(Value::Array(parse_level(chars)?)),
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                items.push(Value::String(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' || c == ';' {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        s.push(chars.next()?);
                    } else {
                        s.push(c);
                    }
                }
                let s = s.trim();
                items.push(if s.eq_ignore_ascii_case("NULL") {
                    Value::Null
                } else {
                    Value::String(s.to_owned())
                });
            }
        }
        match chars.next()? {
            ',' | ';' => continue,
            '}' => return Some(items),
            _ => return None,
        }
    }
}

/// Protocol version 2's text cells, typed where JSON holds them exactly:
/// integers (`int2`, `int4`, `int8`, `oid`) as numbers, `bool` as
/// `true`/`false`; every other value stays PostgreSQL's text.
pub(crate) fn typed(columns: &[Column], mut values: Vec<Value>) -> Vec<Value> {
    for (value, column) in values.iter_mut().zip(columns) {
        let Value::String(text) = value else {
            continue;
        };
        match column.oid {
            // int8, int2, int4, oid
            Some(20 | 21 | 23 | 26) => {
                if let Ok(n) = text.parse::<i64>() {
                    *value = Value::from(n);
                } else if let Ok(n) = text.parse::<u64>() {
                    *value = Value::from(n);
                }
            }
            Some(16) => *value = Value::Bool(text == "t"),
            _ => {}
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use iam_pgbroker_proto::ErrorCode;
    use serde_json::json;

    fn row() -> Row {
        let columns: Arc<[Column]> = [
            ("username", "varchar"),
            ("total", "int8"),
            ("ratio", "float8"),
            ("amount", "numeric"),
            ("disabled", "bool"),
            ("email", "varchar"),
            ("tags", "_text"),
        ]
        .iter()
        .map(|(n, t)| Column {
            name: (*n).into(),
            type_name: (*t).into(),
            oid: None,
        })
        .collect();
        Row::new(
            columns,
            vec![
                json!("Jiří"),
                json!(42),
                json!("NaN"),
                json!("12.50"),
                json!(false),
                Value::Null,
                json!(["a", "b"]),
            ],
        )
    }

    #[test]
    fn index_by_name_and_position() {
        let r = row();
        assert_eq!(r["username"], json!("Jiří"));
        assert_eq!(r[1], json!(42));
        assert_eq!(r.len(), 7);
        assert_eq!(r.value("nope"), None);
        let names: Vec<&str> = r.iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "username");
    }

    #[test]
    #[should_panic(expected = "no column \"nope\"")]
    fn unknown_name_panics_like_a_map() {
        let _ = &row()["nope"];
    }

    #[test]
    fn typed_getters() {
        let r = row();
        assert_eq!(r.get::<&str>("username"), "Jiří");
        assert_eq!(r.get::<String>(0), "Jiří");
        assert_eq!(r.get::<i64>("total"), 42);
        assert_eq!(r.get::<i32>("total"), 42);
        assert!(r.get::<f64>("ratio").is_nan());
        assert_eq!(r.get::<f64>("total"), 42.0);
        assert!(!r.get::<bool>("disabled"));
        assert_eq!(r.get::<Option<String>>("email"), None);
        assert_eq!(r.get::<Option<&str>>("username"), Some("Jiří"));
        assert_eq!(r.get::<Value>("email"), Value::Null);
        assert_eq!(r.get::<Vec<String>>("tags"), vec!["a", "b"]);
        assert_eq!(r.get::<String>("amount"), "12.50");
    }

    #[test]
    fn conversion_errors_name_the_column() {
        let r = row();
        let e = r.try_get::<String>("email").unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.message().contains("\"email\""), "{e}");
        assert!(e.message().contains("Option<String>"), "{e}");
        let e = r.try_get::<i64>("amount").unwrap_err();
        assert!(e.message().contains("numeric"), "{e}");
        let e = r.try_get::<i16>("username").unwrap_err();
        assert!(e.message().contains("i16"), "{e}");
        let e = r.try_get::<bool>(99).unwrap_err();
        assert!(e.message().contains("no column 99"), "{e}");
        assert!(!e.is_closed());
    }

    #[test]
    fn serializes_in_column_order() {
        let text = serde_json::to_string(&row()).unwrap();
        assert!(
            text.starts_with(r#"{"username":"Jiří","total":42,"#),
            "{text}"
        );
    }
}
