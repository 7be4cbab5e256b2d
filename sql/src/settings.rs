//! The session settings a client may change: `SET`, `SET LOCAL` and
//! `RESET` of an allow-list of harmless parameters (psql users set the
//! time zone, the date style, the search path, …). Everything else about
//! the session stays refused: `SET ROLE`, `SET SESSION AUTHORIZATION`,
//! `RESET ALL` (it would also reset the broker's session name), any other
//! parameter, and `set_config()`.
//!
//! The guard checks what it can see in the text (the parameter, the form
//! of its value, `search_path`'s schemas); what depends on the session's
//! grant — `statement_timeout` and `lock_timeout` no longer than the
//! rule's, `work_mem` under the broker's cap, `application_name` kept
//! behind the broker's session tag — is checked by the broker with the
//! [`SettingChange`] the verdict carries.

use pg_query::protobuf::{a_const, VariableSetKind, VariableSetStmt};
use pg_query::NodeEnum;

/// The parameters a session may change, by PostgreSQL's (lower-case)
/// name, with why each is harmless.
pub const ALLOWED_SETTINGS: &[(&str, &str)] = &[
    ("timezone", "how times are shown and read (SET TIME ZONE)"),
    ("datestyle", "how dates are shown and read"),
    ("intervalstyle", "how intervals are shown"),
    ("extra_float_digits", "how floating-point numbers are shown"),
    ("bytea_output", "how bytea values are shown"),
    ("client_min_messages", "which notices the client receives"),
    (
        "search_path",
        "where unqualified names are looked up: schemas only; pg_catalog stays first \
         and pg_temp out (no schema named pg_*), and PostgreSQL's privileges still decide \
         what may be read",
    ),
    (
        "statement_timeout",
        "no longer than the rule's (the broker checks the value; 0 only when the rule has none)",
    ),
    (
        "lock_timeout",
        "no longer than the rule's (the broker checks the value; 0 only when the rule has none)",
    ),
    (
        "work_mem",
        "memory per sort or hash, up to the broker's cap",
    ),
    (
        "application_name",
        "the broker keeps its session tag in front of the client's name",
    ),
];

/// A change of an allowed setting, for the broker's own checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// PostgreSQL's name of the parameter, lower case (`timezone`, …).
    pub name: &'static str,
    /// The value as the statement gives it (several values joined with
    /// `, `); `None` for `RESET` and `SET … TO DEFAULT`.
    pub value: Option<String>,
    /// `SET LOCAL`: until the transaction ends.
    pub local: bool,
}

/// The allowed parameter `name` (case-insensitive), if it is one.
pub fn allowed(name: &str) -> Option<&'static str> {
    ALLOWED_SETTINGS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name))
}

/// Whether `stmt` is a plain `SET`/`RESET` of an allowed parameter (the
/// value is judged by [`judge`]).
pub(crate) fn is_allowed(stmt: &VariableSetStmt) -> bool {
    matches!(
        stmt.kind(),
        VariableSetKind::VarSetValue | VariableSetKind::VarSetDefault | VariableSetKind::VarReset
    ) && allowed(&stmt.name).is_some()
}

/// The change `stmt` makes, or why its value is refused.
pub(crate) fn judge(stmt: &VariableSetStmt) -> Result<SettingChange, String> {
    let Some(name) = allowed(&stmt.name) else {
        return Err(format!("the setting {} may not be changed", stmt.name));
    };
    let value = match stmt.kind() {
        VariableSetKind::VarSetDefault | VariableSetKind::VarReset => None,
        _ => {
            let mut parts = Vec::with_capacity(stmt.args.len());
            for arg in &stmt.args {
                parts.push(constant(arg.node.as_ref(), name)?);
            }
            Some(parts)
        }
    };
    if name == "search_path" {
        for schema in value.iter().flatten() {
            let lower = schema.to_ascii_lowercase();
            if lower.starts_with("pg_") {
                return Err(format!(
                    "search_path may not name {schema}: pg_catalog stays first and pg_temp out \
                     of the path (only ordinary schemas, and \"$user\")"
                ));
            }
            if schema.is_empty() || schema.contains(',') {
                return Err(format!("search_path takes schema names, not {schema:?}"));
            }
        }
    }
    Ok(SettingChange {
        name,
        value: value.map(|v| v.join(", ")),
        local: stmt.is_local,
    })
}

/// A value's text: a constant, or (for `SET TIME ZONE INTERVAL '…'`) a
/// constant cast to a type.
fn constant(node: Option<&NodeEnum>, name: &str) -> Result<String, String> {
    match node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Ival(i)) => Ok(i.ival.to_string()),
            Some(a_const::Val::Fval(f)) => Ok(f.fval.clone()),
            Some(a_const::Val::Sval(s)) => Ok(s.sval.clone()),
            Some(a_const::Val::Boolval(b)) => Ok(b.boolval.to_string()),
            _ => Err(format!("{name} takes a constant value")),
        },
        Some(NodeEnum::TypeCast(cast)) if name == "timezone" => {
            constant(cast.arg.as_ref().and_then(|a| a.node.as_ref()), name)
        }
        _ => Err(format!("{name} takes a constant value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sql: &str) -> Result<SettingChange, String> {
        let parsed = pg_query::parse(sql, 0).unwrap();
        let node = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|n| n.node.clone());
        match node {
            Some(NodeEnum::VariableSetStmt(s)) => judge(&s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_read_from_each_form() {
        let c = change("SET TIME ZONE 'Europe/Prague'").unwrap();
        assert_eq!(
            (c.name, c.value.as_deref(), c.local),
            ("timezone", Some("Europe/Prague"), false)
        );
        let c = change("SET LOCAL statement_timeout = 500").unwrap();
        assert_eq!(
            (c.name, c.value.as_deref(), c.local),
            ("statement_timeout", Some("500"), true)
        );
        let c = change("set DateStyle to iso, dmy").unwrap();
        assert_eq!(
            (c.name, c.value.as_deref()),
            ("datestyle", Some("iso, dmy"))
        );
        let c = change("RESET work_mem").unwrap();
        assert_eq!((c.name, c.value), ("work_mem", None));
        let c = change("SET lock_timeout TO DEFAULT").unwrap();
        assert_eq!(c.value, None);
        let c = change("SET TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE").unwrap();
        assert_eq!(c.value.as_deref(), Some("+01:00"));
        let c = change("SET search_path = \"$user\", public, idm").unwrap();
        assert_eq!(c.value.as_deref(), Some("$user, public, idm"));
    }

    #[test]
    fn search_path_keeps_pg_catalog_first_and_pg_temp_out() {
        for sql in [
            "SET search_path = pg_temp, public",
            "SET search_path = public, pg_catalog",
            "SET search_path = 'PG_TEMP'",
            "SET search_path = 'a,b'",
        ] {
            assert!(change(sql).is_err(), "{sql}");
        }
    }
}
