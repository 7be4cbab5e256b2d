use serde_json::Value;

/// A value that can be passed as a statement parameter.
///
/// Parameters are passed as a slice of trait objects, like the `postgres`
/// crate does: `&[]` for none, `&[&"admin", &3]` for several. Each value is
/// sent as JSON and bound as text, so PostgreSQL parses it according to the
/// parameter's type — the same semantics as psycopg2's `%s`.
///
/// | Rust | sent as |
/// | --- | --- |
/// | `bool` | `true` / `false` |
/// | integers, `f32`, `f64` | a JSON number (NaN and ±infinity as PostgreSQL's spellings `"NaN"`, `"Infinity"`, `"-Infinity"`) |
/// | `str`, `String`, `char` | a string |
/// | `Option<T>` | `null` for `None` (SQL `NULL`) |
/// | `[T]`, `[T; N]`, `Vec<T>` | a JSON array (a PostgreSQL array) |
/// | `serde_json::Value` | itself |
///
/// Implement it for your own types by returning the [`Value`] to send:
///
/// ```
/// use iam_pgconnect::ToParam;
/// use serde_json::Value;
///
/// struct Username(String);
///
/// impl ToParam for Username {
///     fn to_param(&self) -> Value {
///         Value::String(self.0.clone())
///     }
/// }
/// ```
pub trait ToParam {
    /// The JSON value sent to the broker for this parameter.
    fn to_param(&self) -> Value;

    /// Appends the JSON of [`ToParam::to_param`] to `out`. The default
    /// makes the value and serializes it; strings write themselves
    /// without the intermediate value.
    fn write_param(&self, out: &mut Vec<u8>) {
        // A JSON value serializes without failing.
        if serde_json::to_writer(&mut *out, &self.to_param()).is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Value {
        (**self).to_param()
    }

    fn write_param(&self, out: &mut Vec<u8>) {
        (**self).write_param(out);
    }
}

impl ToParam for Value {
    fn to_param(&self) -> Value {
        self.clone()
    }
}

impl ToParam for bool {
    fn to_param(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToParam for str {
    fn to_param(&self) -> Value {
        Value::String(self.to_owned())
    }

    fn write_param(&self, out: &mut Vec<u8>) {
        // A string serializes without failing.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

impl ToParam for String {
    fn to_param(&self) -> Value {
        Value::String(self.clone())
    }

    fn write_param(&self, out: &mut Vec<u8>) {
        self.as_str().write_param(out);
    }
}

impl ToParam for char {
    fn to_param(&self) -> Value {
        Value::String(self.to_string())
    }
}

macro_rules! integer_params {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Value {
                Value::from(*self)
            }
        }
    )*};
}

integer_params!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

fn float_param(x: f64) -> Value {
    // JSON has no NaN or infinity; PostgreSQL's float input accepts these
    // spellings, and the value is bound as text anyway.
    if x.is_nan() {
        Value::from("NaN")
    } else if x == f64::INFINITY {
        Value::from("Infinity")
    } else if x == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(x)
    }
}

impl ToParam for f64 {
    fn to_param(&self) -> Value {
        float_param(*self)
    }
}

impl ToParam for f32 {
    fn to_param(&self) -> Value {
        float_param(f64::from(*self))
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Value {
        match self {
            Some(v) => v.to_param(),
            None => Value::Null,
        }
    }
}

impl<T: ToParam> ToParam for [T] {
    fn to_param(&self) -> Value {
        Value::Array(self.iter().map(ToParam::to_param).collect())
    }
}

impl<T: ToParam, const N: usize> ToParam for [T; N] {
    fn to_param(&self) -> Value {
        self.as_slice().to_param()
    }
}

impl<T: ToParam> ToParam for Vec<T> {
    fn to_param(&self) -> Value {
        self.as_slice().to_param()
    }
}

/// Converts a parameter slice to the values sent on the wire.
pub(crate) fn to_values(params: &[&dyn ToParam]) -> Vec<Value> {
    params.iter().map(|p| p.to_param()).collect()
}

/// The parameters as the JSON array a request carries, into `out`
/// (cleared first): the bytes serializing [`to_values`] gives.
pub(crate) fn write_params(params: &[&dyn ToParam], out: &mut Vec<u8>) {
    out.clear();
    out.push(b'[');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        p.write_param(out);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn written_params_are_the_serialized_values() {
        let name = String::from("Jiří \"Dvořák\"\n\u{1}");
        let v = json!({"a": [1, null]});
        let params: [&dyn ToParam; 9] = [
            &"admin",
            &name,
            &&name,
            &3i64,
            &f64::NAN,
            &Some("x"),
            &None::<i32>,
            &vec!["a", "b c"],
            &v,
        ];
        let mut out = Vec::new();
        write_params(&params, &mut out);
        assert_eq!(out, serde_json::to_vec(&to_values(&params)).unwrap());
        write_params(&[], &mut out);
        assert_eq!(out, b"[]");
    }

    #[test]
    fn values_on_the_wire() {
        let name = String::from("Jiří Dvořák");
        let none: Option<i32> = None;
        let params: &[&dyn ToParam] = &[
            &"admin",
            &name,
            &3,
            &-7i64,
            &u64::MAX,
            &1.5,
            &f64::NAN,
            &f32::NEG_INFINITY,
            &true,
            &none,
            &Some("x"),
            &[1, 2, 3],
            &vec!["a", "b"],
            &json!({"k": [1]}),
        ];
        assert_eq!(
            Value::Array(to_values(params)),
            json!([
                "admin",
                "Jiří Dvořák",
                3,
                -7,
                u64::MAX,
                1.5,
                "NaN",
                "-Infinity",
                true,
                null,
                "x",
                [1, 2, 3],
                ["a", "b"],
                {"k": [1]}
            ])
        );
    }

    #[test]
    fn no_params() {
        assert!(to_values(&[]).is_empty());
    }
}
