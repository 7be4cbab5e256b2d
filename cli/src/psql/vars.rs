//! psql's variables: `\set`, `\unset`, `-v NAME=VALUE`, and the special
//! ones whose value changes how scripts run (`ON_ERROR_STOP`,
//! `AUTOCOMMIT`, `QUIET`, `ECHO`, …), parsed with psql's rules.

use std::collections::BTreeMap;

/// psql's `ECHO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    None,
    Errors,
    Queries,
    All,
}

/// psql's `VERBOSITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Default,
    Verbose,
    Terse,
    Sqlstate,
}

/// psql's `SHOW_CONTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowContext {
    Never,
    Errors,
    Always,
}

/// The settings the special variables hold, decoded.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub autocommit: bool,
    pub on_error_stop: bool,
    pub quiet: bool,
    pub echo: Echo,
    pub echo_hidden: bool,
    pub verbosity: Verbosity,
    pub show_context: ShowContext,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            autocommit: true,
            on_error_stop: false,
            quiet: false,
            echo: Echo::None,
            echo_hidden: false,
            verbosity: Verbosity::Default,
            show_context: ShowContext::Errors,
        }
    }
}

/// psql's boolean parsing (`ParseVariableBool`): a case-insensitive
/// prefix of `true`, `false`, `yes`, `no`, at least two letters of `on`
/// / `off`, or `1` / `0`.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if v.is_empty() {
        None
    } else if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// psql's message for a value a variable does not accept.
fn unrecognized(name: &str, value: &str, expected: &str) -> String {
    format!("unrecognized value \"{value}\" for \"{name}\"{expected}")
}

fn bool_value(name: &str, value: &str) -> Result<bool, String> {
    parse_bool(value).ok_or_else(|| unrecognized(name, value, ": Boolean expected"))
}

/// Whether `name` is a valid variable name (letters, digits, `_`, and
/// non-ASCII characters, as psql's `valid_variable_name`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())
}

/// The variables of one iam-pg run.
#[derive(Debug, Clone)]
pub struct Vars {
    map: BTreeMap<String, String>,
    settings: Settings,
}

impl Default for Vars {
    fn default() -> Self {
        Self::new()
    }
}

impl Vars {
    /// psql's initial variables.
    pub fn new() -> Vars {
        let mut map = BTreeMap::new();
        for (name, value) in [
            ("AUTOCOMMIT", "on"),
            ("COMP_KEYWORD_CASE", "preserve-upper"),
            ("ECHO", "none"),
            ("ECHO_HIDDEN", "off"),
            ("ENCODING", "UTF8"),
            ("FETCH_COUNT", "0"),
            ("HISTCONTROL", "none"),
            ("HISTSIZE", "500"),
            ("IGNOREEOF", "0"),
            ("LAST_ERROR_MESSAGE", ""),
            ("LAST_ERROR_SQLSTATE", "00000"),
            ("ON_ERROR_ROLLBACK", "off"),
            ("ON_ERROR_STOP", "off"),
            ("QUIET", "off"),
            ("SHOW_CONTEXT", "errors"),
            ("SINGLELINE", "off"),
            ("SINGLESTEP", "off"),
            ("VERBOSITY", "default"),
            ("VERSION_NAME", env!("CARGO_PKG_VERSION")),
        ] {
            map.insert(name.to_owned(), value.to_owned());
        }
        Vars {
            map,
            settings: Settings::default(),
        }
    }

    /// The decoded special variables.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// All variables in name order (for `\set` without arguments).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets a variable as `\set` does; a special variable must get a value
    /// it understands, else it keeps its old one and the error is psql's.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!("invalid variable name: \"{name}\""));
        }
        let value = self.hook(name, Some(value))?;
        self.map.insert(name.to_owned(), value);
        Ok(())
    }

    /// Sets a variable the engine itself maintains (`ERROR`, `ROW_COUNT`,
    /// …), without checks.
    pub fn set_internal(&mut self, name: &str, value: impl Into<String>) {
        self.map.insert(name.to_owned(), value.into());
    }

    /// `\unset NAME`: a special variable goes back to its default, as
    /// psql's substitute hooks do (`ON_ERROR_STOP` unset is off).
    pub fn unset(&mut self, name: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!("invalid variable name: \"{name}\""));
        }
        let value = self.hook(name, None)?;
        if value.is_empty() && !is_special(name) {
            self.map.remove(name);
        } else {
            self.map.insert(name.to_owned(), value);
        }
        Ok(())
    }

    /// Checks and applies a special variable's new value; returns the
    /// value to store.
    fn hook(&mut self, name: &str, value: Option<&str>) -> Result<String, String> {
        let s = &mut self.settings;
        match name {
            "AUTOCOMMIT" | "ON_ERROR_STOP" | "QUIET" | "SINGLELINE" | "SINGLESTEP" => {
                let v = value.unwrap_or("off");
                let on = bool_value(name, v)?;
                match name {
                    "AUTOCOMMIT" => s.autocommit = on,
                    "ON_ERROR_STOP" => s.on_error_stop = on,
                    "QUIET" => s.quiet = on,
                    _ => {}
                }
                Ok(v.to_owned())
            }
            "ECHO" => {
                let v = value.unwrap_or("none");
                s.echo = match v.to_ascii_lowercase().as_str() {
                    "none" => Echo::None,
                    "errors" => Echo::Errors,
                    "queries" => Echo::Queries,
                    "all" => Echo::All,
                    _ => {
                        return Err(unrecognized(
                            name,
                            v,
                            "\nAvailable values are: none, errors, queries, all.",
                        ))
                    }
                };
                Ok(v.to_owned())
            }
            "ECHO_HIDDEN" => {
                let v = value.unwrap_or("off");
                s.echo_hidden = if v.eq_ignore_ascii_case("noexec") {
                    true
                } else {
                    bool_value(name, v).map_err(|_| {
                        unrecognized(name, v, "\nAvailable values are: on, off, noexec.")
                    })?
                };
                Ok(v.to_owned())
            }
            "VERBOSITY" => {
                let v = value.unwrap_or("default");
                s.verbosity = match v.to_ascii_lowercase().as_str() {
                    "default" => Verbosity::Default,
                    "verbose" => Verbosity::Verbose,
                    "terse" => Verbosity::Terse,
                    "sqlstate" => Verbosity::Sqlstate,
                    _ => {
                        return Err(unrecognized(
                            name,
                            v,
                            "\nAvailable values are: default, verbose, terse, sqlstate.",
                        ))
                    }
                };
                Ok(v.to_owned())
            }
            "SHOW_CONTEXT" => {
                let v = value.unwrap_or("errors");
                s.show_context = match v.to_ascii_lowercase().as_str() {
                    "never" => ShowContext::Never,
                    "errors" => ShowContext::Errors,
                    "always" => ShowContext::Always,
                    _ => {
                        return Err(unrecognized(
                            name,
                            v,
                            "\nAvailable values are: never, errors, always.",
                        ))
                    }
                };
                Ok(v.to_owned())
            }
            "ON_ERROR_ROLLBACK" => {
                let v = value.unwrap_or("off");
                match parse_bool(v) {
                    Some(false) => Ok(v.to_owned()),
                    // Statement-level rollback needs a savepoint around
                    // every statement; not offered (yet).
                    _ => Err(format!(
                        "ON_ERROR_ROLLBACK \"{v}\" is not supported by iam-pg (only off)"
                    )),
                }
            }
            _ => Ok(value.unwrap_or_default().to_owned()),
        }
    }
}

/// Variables that keep a value when unset (psql's substitute hooks).
fn is_special(name: &str) -> bool {
    matches!(
        name,
        "AUTOCOMMIT"
            | "ON_ERROR_STOP"
            | "QUIET"
            | "SINGLELINE"
            | "SINGLESTEP"
            | "ECHO"
            | "ECHO_HIDDEN"
            | "VERBOSITY"
            | "SHOW_CONTEXT"
            | "ON_ERROR_ROLLBACK"
    )
}

/// `value` as an SQL literal, as libpq's `PQescapeLiteral` makes it
/// (for `:'name'`): quotes doubled, and with backslashes an `E'…'`
/// string with them doubled too.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push_str(" E");
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `value` as a quoted identifier (for `:"name"`).
pub fn quote_ident(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_like_psql() {
        for v in ["on", "ON", "t", "tr", "true", "y", "yes", "1"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["off", "of", "f", "false", "n", "no", "0"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in ["", "o", "2", "truex", "onn", "maybe"] {
            assert_eq!(parse_bool(v), None, "{v}");
        }
    }

    #[test]
    fn special_variables_check_and_decode() {
        let mut v = Vars::new();
        assert!(!v.settings().on_error_stop);
        v.set("ON_ERROR_STOP", "1").unwrap();
        assert!(v.settings().on_error_stop);
        assert_eq!(
            v.set("ON_ERROR_STOP", "maybe").unwrap_err(),
            "unrecognized value \"maybe\" for \"ON_ERROR_STOP\": Boolean expected"
        );
        assert_eq!(v.get("ON_ERROR_STOP"), Some("1"));
        v.unset("ON_ERROR_STOP").unwrap();
        assert!(!v.settings().on_error_stop);
        assert_eq!(v.get("ON_ERROR_STOP"), Some("off"));
        v.set("ECHO", "all").unwrap();
        assert_eq!(v.settings().echo, Echo::All);
        assert!(v.set("ECHO", "loud").is_err());
        v.set("AUTOCOMMIT", "off").unwrap();
        assert!(!v.settings().autocommit);
        assert!(v.set("a-b", "x").is_err());
        v.set("mine", "x").unwrap();
        v.unset("mine").unwrap();
        assert_eq!(v.get("mine"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r" E'a\\b'");
        assert_eq!(quote_ident("Odd\"Name"), "\"Odd\"\"Name\"");
    }
}
