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
/// Values are JSON as the broker sent them (see the type table in
/// `docs/protocol.md`: integers and floats are numbers, `numeric` is an exact
/// string, timestamps are ISO 8601 strings, `bytea` is `\x…`, `NULL` is
/// `null`). Rows of one result share one column list, so a row costs its
/// values and a reference count.
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
        value.as_bool().ok_or_else(|| mismatch(value, "bool"))
    }
}

impl<'a> FromValue<'a> for i64 {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        value.as_i64().ok_or_else(|| match value {
            Value::Number(n) => format!("the number {n} does not fit in i64").into(),
            Value::String(_) => "cannot read a string as i64 (numeric columns arrive as exact \
                                 strings: read it as String, or cast it in SQL, e.g. ::int8)"
                .into(),
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
            Value::String(s) if s == "NaN" => Ok(f64::NAN),
            Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
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

impl<'a, T: FromValue<'a>> FromValue<'a> for Vec<T> {
    fn from_value(value: &'a Value) -> Result<Self, ConversionError> {
        let Value::Array(items) = value else {
            return Err(mismatch(value, "Vec<_>"));
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
