//! The broker's side of the session settings a client may change (the
//! guard's allow-list, `iam_pgbroker_sql::settings`): the checks that
//! depend on the session's grant, and the statement that runs.
//!
//! - `statement_timeout` and `lock_timeout`: no longer than the rule's
//!   (0, no limit, only when the rule has none); `RESET` and `DEFAULT`
//!   return to the rule's (the connection's startup options).
//! - `work_mem`: at most [`MAX_WORK_MEM_KB`].
//! - `application_name`: the broker's session tag stays in front
//!   (`pgbroker <session> <user>(<uid>) pid <pid>: <client's name>`), cut
//!   to PostgreSQL's 63 bytes; `RESET` returns to the tag.
//!
//! What was changed is undone before the connection serves another session
//! (the pool's `RESET ALL`, [`crate::pool::RESET_SQL`]).

use crate::error::RequestError;
use iam_pgbroker_sql::SettingChange;

/// The largest `work_mem` a session may set, in kB (256 MB): enough for
/// a big sort in memory, not enough for one session to starve the server.
pub const MAX_WORK_MEM_KB: u64 = 256 * 1024;

/// The limits a session's settings are checked against.
#[derive(Debug, Clone, Copy)]
pub struct SettingLimits {
    /// The rule's `statement_timeout`, ms (0: none).
    pub statement_timeout_ms: u64,
    /// The rule's `lock_timeout`, ms (0: none).
    pub lock_timeout_ms: u64,
}

/// Checks `change` against `limits`; `Ok(Some(sql))` when the broker runs
/// `sql` in place of the client's text (`application_name`).
pub fn check(
    change: &SettingChange,
    limits: SettingLimits,
    session_name: &str,
) -> Result<Option<String>, RequestError> {
    let refuse = |why: String| Err(RequestError::Forbidden(why));
    match change.name {
        "statement_timeout" | "lock_timeout" => {
            let rule = if change.name == "statement_timeout" {
                limits.statement_timeout_ms
            } else {
                limits.lock_timeout_ms
            };
            let Some(value) = &change.value else {
                return Ok(None);
            };
            let Some(ms) = parse_ms(value) else {
                return refuse(format!(
                    "SET {}: cannot read {value:?} as a duration (e.g. 5000, '5s', '2min')",
                    change.name
                ));
            };
            if rule > 0 && (ms == 0 || ms > rule) {
                return refuse(format!(
                    "SET {} to {value}: the session's rule allows at most {rule} ms",
                    change.name
                ));
            }
            Ok(None)
        }
        "work_mem" => {
            let Some(value) = &change.value else {
                return Ok(None);
            };
            match parse_kb(value) {
                Some(kb) if kb <= MAX_WORK_MEM_KB => Ok(None),
                Some(_) => refuse(format!(
                    "SET work_mem to {value}: at most {} MB through the broker",
                    MAX_WORK_MEM_KB / 1024
                )),
                None => refuse(format!(
                    "SET work_mem: cannot read {value:?} as a size (e.g. '64MB')"
                )),
            }
        }
        "application_name" => {
            let name = match change.value.as_deref() {
                None | Some("") => session_name.to_owned(),
                Some(own) => crate::session::application_name_cut(format!("{session_name}: {own}")),
            };
            let local = if change.local { "LOCAL " } else { "" };
            Ok(Some(format!(
                "SET {local}application_name = '{}'",
                name.replace('\'', "''")
            )))
        }
        _ => Ok(None),
    }
}

/// Whether `change` changes how PostgreSQL prints values the broker would
/// otherwise print itself (`DateStyle`, `bytea_output`).
pub fn changes_rendering(change: &SettingChange) -> bool {
    matches!(change.name, "datestyle" | "bytea_output")
}

/// A number with an optional unit, PostgreSQL's way (`1.5s`, `200 ms`).
fn number_and_unit(value: &str) -> Option<(f64, String)> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-' || c == 'e'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n, unit.trim().to_owned()))
}

/// A duration in ms (no unit: ms, as for both timeouts).
fn parse_ms(value: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(value)?;
    let factor = match unit.as_str() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * factor).round() as u64)
}

/// A size in kB (no unit: kB, as for `work_mem`).
fn parse_kb(value: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(value)?;
    let factor = match unit.as_str() {
        "" | "kB" => 1.0,
        "B" => 1.0 / 1024.0,
        "MB" => 1024.0,
        "GB" => 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * factor).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &'static str, value: Option<&str>) -> SettingChange {
        SettingChange {
            name,
            value: value.map(str::to_owned),
            local: false,
        }
    }

    const LIMITS: SettingLimits = SettingLimits {
        statement_timeout_ms: 30_000,
        lock_timeout_ms: 0,
    };

    #[test]
    fn timeouts_stay_within_the_rule() {
        let ok = |n, v| check(&change(n, v), LIMITS, "tag").is_ok();
        assert!(ok("statement_timeout", Some("5000")));
        assert!(ok("statement_timeout", Some("30s")));
        assert!(ok("statement_timeout", Some("0.5min")));
        assert!(ok("statement_timeout", None));
        assert!(!ok("statement_timeout", Some("31s")));
        assert!(!ok("statement_timeout", Some("0")));
        assert!(!ok("statement_timeout", Some("1h")));
        assert!(!ok("statement_timeout", Some("soon")));
        // The rule has no lock_timeout: anything goes, 0 too.
        assert!(ok("lock_timeout", Some("0")));
        assert!(ok("lock_timeout", Some("1d")));
    }

    #[test]
    fn work_mem_has_a_cap() {
        let ok = |v| check(&change("work_mem", Some(v)), LIMITS, "tag").is_ok();
        assert!(ok("64MB"));
        assert!(ok("4096"));
        assert!(ok("256MB"));
        assert!(!ok("257MB"));
        assert!(!ok("1GB"));
        assert!(!ok("lots"));
    }

    #[test]
    fn application_name_keeps_the_tag_in_front() {
        let sql = check(
            &change("application_name", Some("psql's")),
            LIMITS,
            "pgbroker 1 x",
        )
        .unwrap()
        .unwrap();
        assert_eq!(sql, "SET application_name = 'pgbroker 1 x: psql''s'");
        let sql = check(&change("application_name", None), LIMITS, "pgbroker 1 x")
            .unwrap()
            .unwrap();
        assert_eq!(sql, "SET application_name = 'pgbroker 1 x'");
        let long = "é".repeat(100);
        let sql = check(&change("application_name", Some(&long)), LIMITS, "pgbroker")
            .unwrap()
            .unwrap();
        assert!(sql.len() <= 63 + "SET application_name = ''".len(), "{sql}");
    }
}
