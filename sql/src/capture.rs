//! What a data-changing statement changes, row by row — for a change
//! request's content check: the approver sees the rows, and the execution
//! commits only if it changes the very same ones in the very same way.
//!
//! A single `INSERT`, `UPDATE` or `DELETE` is rewritten (on PostgreSQL's
//! own parse tree, then deparsed) into
//!
//! ```sql
//! WITH __iam_changed AS (<the statement> RETURNING <target>.*)
//! SELECT <the row before>::text AS before, row_to_json(__iam_c)::text AS after
//! FROM __iam_changed __iam_c
//! ```
//!
//! `RETURNING` gives the new row of an `INSERT` or `UPDATE` and the old row
//! of a `DELETE`. The old row of an `UPDATE` comes from a sub-query on the
//! same table by its primary key: every part of a statement with a
//! data-modifying `WITH` sees the snapshot from before the change, so the
//! sub-query reads the row as it was. The rewritten statement changes
//! exactly what the original does and returns one row per changed row.
//!
//! ```
//! use iam_pgbroker_sql::capture::{capture_sql, change_target, ChangeKind};
//!
//! let sql = "UPDATE idm_identity SET disabled = true WHERE username = $1";
//! let target = change_target(sql).unwrap();
//! assert_eq!(target.kind, ChangeKind::Update);
//! assert_eq!(target.table, "idm_identity");
//! let captured = capture_sql(sql, &["id".to_owned()]).unwrap();
//! assert!(captured.starts_with("WITH __iam_changed AS (UPDATE idm_identity SET disabled = true"));
//! assert!(captured.contains("RETURNING idm_identity.*"));
//! ```

use pg_query::protobuf::{self, node::Node as N, Node};

/// What a captured statement does to its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New rows: `after` only.
    Insert,
    /// Changed rows: `before` (by primary key) and `after`.
    Update,
    /// Removed rows: `before` only.
    Delete,
}

/// The table a statement writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTarget {
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub kind: ChangeKind,
    /// The schema as written, if any.
    pub schema: Option<String>,
    /// The table (or view) as written.
    pub table: String,
}

impl ChangeTarget {
    /// The name, quoted for `to_regclass` (`"app"."t"` or `"t"`).
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", ident(s), ident(&self.table)),
            None => ident(&self.table),
        }
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_one(sql: &str) -> Option<pg_query::ParseResult> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    (parsed.protobuf.stmts.len() == 1).then_some(parsed)
}

fn statement(parsed: &pg_query::ParseResult) -> Option<&N> {
    parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()
}

fn statement_mut(parsed: &mut pg_query::ParseResult) -> Option<&mut N> {
    parsed
        .protobuf
        .stmts
        .first_mut()?
        .stmt
        .as_mut()?
        .node
        .as_mut()
}

fn target_of(kind: ChangeKind, relation: &Option<protobuf::RangeVar>) -> Option<ChangeTarget> {
    let r = relation.as_ref()?;
    Some(ChangeTarget {
        kind,
        schema: Some(r.schemaname.clone()).filter(|s| !s.is_empty()),
        table: r.relname.clone(),
    })
}

/// The kind and table of a single `INSERT`, `UPDATE` or `DELETE`; `None`
/// for anything else (`MERGE`, which `RETURNING` reaches only from
/// PostgreSQL 17 on, a `SELECT`, text that does not parse).
pub fn change_target(sql: &str) -> Option<ChangeTarget> {
    let parsed = parse_one(sql)?;
    match statement(&parsed)? {
        N::InsertStmt(s) => target_of(ChangeKind::Insert, &s.relation),
        N::UpdateStmt(s) => target_of(ChangeKind::Update, &s.relation),
        N::DeleteStmt(s) => target_of(ChangeKind::Delete, &s.relation),
        _ => None,
    }
}

/// `RETURNING <name>.*`.
fn returning_all(name: &str) -> protobuf::ReturningClause {
    let star = Node {
        node: Some(N::ColumnRef(protobuf::ColumnRef {
            fields: vec![
                Node {
                    node: Some(N::String(protobuf::String {
                        sval: name.to_owned(),
                    })),
                },
                Node {
                    node: Some(N::AStar(protobuf::AStar {})),
                },
            ],
            location: -1,
        })),
    };
    protobuf::ReturningClause {
        options: Vec::new(),
        exprs: vec![Node {
            node: Some(N::ResTarget(Box::new(protobuf::ResTarget {
                name: String::new(),
                indirection: Vec::new(),
                val: Some(Box::new(star)),
                location: -1,
            }))),
        }],
    }
}

/// The name the statement's target goes by (its alias, else the table).
fn reference(relation: &protobuf::RangeVar) -> String {
    relation
        .alias
        .as_ref()
        .map(|a| a.aliasname.clone())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| relation.relname.clone())
}

/// `sql` (one `INSERT`, `UPDATE` or `DELETE`, placeholders as `$n`)
/// rewritten to return, for every row it changes, two text columns:
/// `before` and `after`, each the row as PostgreSQL's `row_to_json` gives
/// it, `NULL` where there is none. `key` names the target's primary key
/// columns: an `UPDATE` needs them to find its rows' old values (without
/// a key, `before` is `NULL`). The statement's own `RETURNING` list, if
/// any, is replaced (a change request's results are its rows, not a
/// client's).
pub fn capture_sql(sql: &str, key: &[String]) -> Result<String, String> {
    let mut parsed = parse_one(sql).ok_or("not a single statement PostgreSQL can parse")?;
    let (kind, relation) = match statement_mut(&mut parsed) {
        Some(N::InsertStmt(s)) => {
            let relation = s.relation.clone().ok_or("an INSERT without a table")?;
            s.returning_clause = Some(returning_all(&reference(&relation)));
            (ChangeKind::Insert, relation)
        }
        Some(N::UpdateStmt(s)) => {
            let relation = s.relation.clone().ok_or("an UPDATE without a table")?;
            s.returning_clause = Some(returning_all(&reference(&relation)));
            (ChangeKind::Update, relation)
        }
        Some(N::DeleteStmt(s)) => {
            let relation = s.relation.clone().ok_or("a DELETE without a table")?;
            s.returning_clause = Some(returning_all(&reference(&relation)));
            (ChangeKind::Delete, relation)
        }
        _ => return Err("not an INSERT, UPDATE or DELETE".into()),
    };
    let inner = pg_query::deparse(&parsed.protobuf, Default::default())
        .map_err(|e| format!("cannot rewrite the statement: {e}"))?;
    let row = "row_to_json(__iam_c)::text";
    let (before, after) = match kind {
        ChangeKind::Insert => ("NULL::text".to_owned(), row.to_owned()),
        ChangeKind::Delete => (row.to_owned(), "NULL::text".to_owned()),
        ChangeKind::Update if key.is_empty() => ("NULL::text".to_owned(), row.to_owned()),
        ChangeKind::Update => {
            let table = match relation.schemaname.as_str() {
                "" => ident(&relation.relname),
                schema => format!("{}.{}", ident(schema), ident(&relation.relname)),
            };
            let only = if relation.inh { "" } else { "ONLY " };
            let old: Vec<String> = key
                .iter()
                .map(|k| format!("__iam_o.{}", ident(k)))
                .collect();
            let new: Vec<String> = key
                .iter()
                .map(|k| format!("__iam_c.{}", ident(k)))
                .collect();
            (
                format!(
                    "(SELECT row_to_json(__iam_o)::text FROM {only}{table} __iam_o \
                     WHERE ({}) IS NOT DISTINCT FROM ({}))",
                    old.join(", "),
                    new.join(", ")
                ),
                row.to_owned(),
            )
        }
    };
    Ok(format!(
        "WITH __iam_changed AS ({inner}) SELECT {before} AS before, {after} AS after \
         FROM __iam_changed __iam_c"
    ))
}

/// Whether `sql` is a `LOCK` in a mode that blocks readers (`EXCLUSIVE`,
/// `ACCESS EXCLUSIVE`): the mode's name, if so.
pub fn blocks_readers(sql: &str) -> Option<&'static str> {
    let parsed = parse_one(sql)?;
    match statement(&parsed)? {
        // PostgreSQL's lock modes: 7 ExclusiveLock, 8 AccessExclusiveLock.
        N::LockStmt(l) if l.mode == 7 => Some("EXCLUSIVE"),
        N::LockStmt(l) if l.mode >= 8 => Some("ACCESS EXCLUSIVE"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = change_target("DELETE FROM app.\"T\" x WHERE x.id = $1").unwrap();
        assert_eq!(t.kind, ChangeKind::Delete);
        assert_eq!(t.quoted(), "\"app\".\"T\"");
        assert_eq!(
            change_target("INSERT INTO t (a) VALUES (1)").unwrap().kind,
            ChangeKind::Insert
        );
        assert!(change_target("SELECT 1").is_none());
        assert!(
            change_target("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE").is_none()
        );
        assert!(change_target("UPDATE t SET a = 1; UPDATE t SET a = 2").is_none());
    }

    #[test]
    fn rewrites_keep_the_statement_and_its_parameters() {
        let u = capture_sql(
            "WITH w AS (SELECT 1 AS x) UPDATE ONLY t AS y SET n = $2 WHERE y.id = $1 RETURNING y.secret",
            &["id".into(), "k 2".into()],
        )
        .unwrap();
        assert!(u.starts_with("WITH __iam_changed AS (WITH w AS (SELECT 1 AS x) UPDATE ONLY t y SET n = $2 WHERE y.id = $1 RETURNING y.*)"), "{u}");
        assert!(
            u.contains("FROM ONLY \"t\" __iam_o WHERE (__iam_o.\"id\", __iam_o.\"k 2\") IS NOT DISTINCT FROM (__iam_c.\"id\", __iam_c.\"k 2\")"),
            "{u}"
        );
        assert!(!u.contains("secret"), "{u}");
        let d = capture_sql("DELETE FROM t WHERE id = 1", &[]).unwrap();
        assert!(
            d.contains("SELECT row_to_json(__iam_c)::text AS before, NULL::text AS after"),
            "{d}"
        );
        let i = capture_sql("INSERT INTO s.t VALUES ($1)", &[]).unwrap();
        assert!(i.contains("RETURNING t.*"), "{i}");
        assert!(
            i.contains("NULL::text AS before, row_to_json(__iam_c)::text AS after"),
            "{i}"
        );
        let no_key = capture_sql("UPDATE t SET a = 1", &[]).unwrap();
        assert!(no_key.contains("NULL::text AS before"), "{no_key}");
        assert!(capture_sql("SELECT 1", &[]).is_err());
    }

    #[test]
    fn locks_that_block_readers() {
        assert_eq!(blocks_readers("LOCK TABLE t"), Some("ACCESS EXCLUSIVE"));
        assert_eq!(
            blocks_readers("LOCK TABLE t IN ACCESS EXCLUSIVE MODE"),
            Some("ACCESS EXCLUSIVE")
        );
        assert_eq!(
            blocks_readers("lock t in exclusive mode"),
            Some("EXCLUSIVE")
        );
        assert_eq!(blocks_readers("LOCK TABLE t IN SHARE MODE"), None);
        assert_eq!(blocks_readers("LOCK TABLE t IN ROW EXCLUSIVE MODE"), None);
        assert_eq!(blocks_readers("SELECT 1"), None);
    }
}
