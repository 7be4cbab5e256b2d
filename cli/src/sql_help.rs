//! `\h [COMMAND]`: SQL syntax help in psql's layout ("Command:",
//! "Description:", "Syntax:", "URL:").
//!
//! psql ships the synopsis of every SQL command (its `sql_help.c` is
//! generated from the documentation). iam-pg carries the commands a broker
//! session may run — reading, writing rows, session settings, transaction
//! control, COPY, EXPLAIN — with their synopses shortened to the forms the
//! broker lets through; the URL names the full page of PostgreSQL 15's
//! documentation.

struct Help {
    name: &'static str,
    description: &'static str,
    syntax: &'static str,
    /// The documentation page: `sql-NAME.html`.
    page: &'static str,
}

const SELECT_SYNTAX: &str = "\
[ WITH [ RECURSIVE ] with_query [, ...] ]
SELECT [ ALL | DISTINCT [ ON ( expression [, ...] ) ] ]
    [ * | expression [ [ AS ] output_name ] [, ...] ]
    [ FROM from_item [, ...] ]
    [ WHERE condition ]
    [ GROUP BY [ ALL | DISTINCT ] grouping_element [, ...] ]
    [ HAVING condition ]
    [ WINDOW window_name AS ( window_definition ) [, ...] ]
    [ { UNION | INTERSECT | EXCEPT } [ ALL | DISTINCT ] select ]
    [ ORDER BY expression [ ASC | DESC | USING operator ] [ NULLS { FIRST | LAST } ] [, ...] ]
    [ LIMIT { count | ALL } ]
    [ OFFSET start [ ROW | ROWS ] ]
    [ FETCH { FIRST | NEXT } [ count ] { ROW | ROWS } { ONLY | WITH TIES } ]

where from_item can be one of:

    [ ONLY ] table_name [ * ] [ [ AS ] alias [ ( column_alias [, ...] ) ] ]
                [ TABLESAMPLE sampling_method ( argument [, ...] ) [ REPEATABLE ( seed ) ] ]
    [ LATERAL ] ( select ) [ AS ] alias [ ( column_alias [, ...] ) ]
    with_query_name [ [ AS ] alias [ ( column_alias [, ...] ) ] ]
    [ LATERAL ] function_name ( [ argument [, ...] ] )
                [ WITH ORDINALITY ] [ [ AS ] alias [ ( column_alias [, ...] ) ] ]
    from_item join_type from_item { ON join_condition | USING ( join_column [, ...] ) }
    from_item NATURAL join_type from_item
    from_item CROSS JOIN from_item

and with_query is:

    with_query_name [ ( column_name [, ...] ) ] AS [ [ NOT ] MATERIALIZED ] ( select | values | insert | update | delete )

TABLE [ ONLY ] table_name [ * ]";

const HELP: &[Help] = &[
    Help {
        name: "ABORT",
        description: "abort the current transaction",
        syntax: "ABORT [ WORK | TRANSACTION ]",
        page: "abort",
    },
    Help {
        name: "BEGIN",
        description: "start a transaction block",
        syntax: "BEGIN [ WORK | TRANSACTION ] [ transaction_mode [, ...] ]\n\nwhere transaction_mode is one of:\n\n    ISOLATION LEVEL { SERIALIZABLE | REPEATABLE READ | READ COMMITTED | READ UNCOMMITTED }\n    READ WRITE | READ ONLY\n    [ NOT ] DEFERRABLE",
        page: "begin",
    },
    Help {
        name: "COMMIT",
        description: "commit the current transaction",
        syntax: "COMMIT [ WORK | TRANSACTION ] [ AND [ NO ] CHAIN ]",
        page: "commit",
    },
    Help {
        name: "COPY",
        description: "copy data between a file and a table",
        syntax: "COPY table_name [ ( column_name [, ...] ) ]\n    FROM STDIN\n    [ [ WITH ] ( option [, ...] ) ]\n    [ WHERE condition ]\n\nCOPY { table_name [ ( column_name [, ...] ) ] | ( query ) }\n    TO STDOUT\n    [ [ WITH ] ( option [, ...] ) ]\n\nwhere option can be one of:\n\n    FORMAT format_name\n    FREEZE [ boolean ]\n    DELIMITER 'delimiter_character'\n    NULL 'null_string'\n    HEADER [ boolean | MATCH ]\n    QUOTE 'quote_character'\n    ESCAPE 'escape_character'\n    FORCE_QUOTE { ( column_name [, ...] ) | * }\n    FORCE_NOT_NULL ( column_name [, ...] )\n    FORCE_NULL ( column_name [, ...] )\n    ENCODING 'encoding_name'",
        page: "copy",
    },
    Help {
        name: "DELETE",
        description: "delete rows of a table",
        syntax: "[ WITH [ RECURSIVE ] with_query [, ...] ]\nDELETE FROM [ ONLY ] table_name [ * ] [ [ AS ] alias ]\n    [ USING from_item [, ...] ]\n    [ WHERE condition | WHERE CURRENT OF cursor_name ]\n    [ RETURNING * | output_expression [ [ AS ] output_name ] [, ...] ]",
        page: "delete",
    },
    Help {
        name: "END",
        description: "commit the current transaction",
        syntax: "END [ WORK | TRANSACTION ] [ AND [ NO ] CHAIN ]",
        page: "end",
    },
    Help {
        name: "EXPLAIN",
        description: "show the execution plan of a statement",
        syntax: "EXPLAIN [ ( option [, ...] ) ] statement\nEXPLAIN [ ANALYZE ] [ VERBOSE ] statement\n\nwhere option can be one of:\n\n    ANALYZE [ boolean ]\n    VERBOSE [ boolean ]\n    COSTS [ boolean ]\n    SETTINGS [ boolean ]\n    BUFFERS [ boolean ]\n    WAL [ boolean ]\n    TIMING [ boolean ]\n    SUMMARY [ boolean ]\n    FORMAT { TEXT | XML | JSON | YAML }",
        page: "explain",
    },
    Help {
        name: "INSERT",
        description: "create new rows in a table",
        syntax: "[ WITH [ RECURSIVE ] with_query [, ...] ]\nINSERT INTO table_name [ AS alias ] [ ( column_name [, ...] ) ]\n    [ OVERRIDING { SYSTEM | USER } VALUE ]\n    { DEFAULT VALUES | VALUES ( { expression | DEFAULT } [, ...] ) [, ...] | query }\n    [ ON CONFLICT [ conflict_target ] conflict_action ]\n    [ RETURNING * | output_expression [ [ AS ] output_name ] [, ...] ]\n\nwhere conflict_target can be one of:\n\n    ( { index_column_name | ( index_expression ) } [ COLLATE collation ] [ opclass ] [, ...] ) [ WHERE index_predicate ]\n    ON CONSTRAINT constraint_name\n\nand conflict_action is one of:\n\n    DO NOTHING\n    DO UPDATE SET { column_name = { expression | DEFAULT } |\n                    ( column_name [, ...] ) = [ ROW ] ( { expression | DEFAULT } [, ...] ) |\n                    ( column_name [, ...] ) = ( sub-SELECT )\n                  } [, ...]\n              [ WHERE condition ]",
        page: "insert",
    },
    Help {
        name: "RELEASE SAVEPOINT",
        description: "destroy a previously defined savepoint",
        syntax: "RELEASE [ SAVEPOINT ] savepoint_name",
        page: "release-savepoint",
    },
    Help {
        name: "RESET",
        description: "restore the value of a run-time parameter to the default value",
        syntax: "RESET configuration_parameter\nRESET ALL",
        page: "reset",
    },
    Help {
        name: "ROLLBACK",
        description: "abort the current transaction",
        syntax: "ROLLBACK [ WORK | TRANSACTION ] [ AND [ NO ] CHAIN ]",
        page: "rollback",
    },
    Help {
        name: "ROLLBACK TO SAVEPOINT",
        description: "roll back to a savepoint",
        syntax: "ROLLBACK [ WORK | TRANSACTION ] TO [ SAVEPOINT ] savepoint_name",
        page: "rollback-to",
    },
    Help {
        name: "SAVEPOINT",
        description: "define a new savepoint within the current transaction",
        syntax: "SAVEPOINT savepoint_name",
        page: "savepoint",
    },
    Help {
        name: "SELECT",
        description: "retrieve rows from a table or view",
        syntax: SELECT_SYNTAX,
        page: "select",
    },
    Help {
        name: "SET",
        description: "change a run-time parameter",
        syntax: "SET [ SESSION | LOCAL ] configuration_parameter { TO | = } { value | 'value' | DEFAULT }\nSET [ SESSION | LOCAL ] TIME ZONE { value | 'value' | LOCAL | DEFAULT }",
        page: "set",
    },
    Help {
        name: "SHOW",
        description: "show the value of a run-time parameter",
        syntax: "SHOW name\nSHOW ALL",
        page: "show",
    },
    Help {
        name: "START TRANSACTION",
        description: "start a transaction block",
        syntax: "START TRANSACTION [ transaction_mode [, ...] ]\n\nwhere transaction_mode is one of:\n\n    ISOLATION LEVEL { SERIALIZABLE | REPEATABLE READ | READ COMMITTED | READ UNCOMMITTED }\n    READ WRITE | READ ONLY\n    [ NOT ] DEFERRABLE",
        page: "start-transaction",
    },
    Help {
        name: "TABLE",
        description: "retrieve rows from a table or view",
        syntax: SELECT_SYNTAX,
        page: "select",
    },
    Help {
        name: "UPDATE",
        description: "update rows of a table",
        syntax: "[ WITH [ RECURSIVE ] with_query [, ...] ]\nUPDATE [ ONLY ] table_name [ * ] [ [ AS ] alias ]\n    SET { column_name = { expression | DEFAULT } |\n          ( column_name [, ...] ) = [ ROW ] ( { expression | DEFAULT } [, ...] ) |\n          ( column_name [, ...] ) = ( sub-SELECT )\n        } [, ...]\n    [ FROM from_item [, ...] ]\n    [ WHERE condition | WHERE CURRENT OF cursor_name ]\n    [ RETURNING * | output_expression [ [ AS ] output_name ] [, ...] ]",
        page: "update",
    },
    Help {
        name: "VALUES",
        description: "compute a set of rows",
        syntax: "VALUES ( expression [, ...] ) [, ...]\n    [ ORDER BY sort_expression [ ASC | DESC | USING operator ] [, ...] ]\n    [ LIMIT { count | ALL } ]\n    [ OFFSET start [ ROW | ROWS ] ]\n    [ FETCH { FIRST | NEXT } [ count ] { ROW | ROWS } ONLY ]",
        page: "values",
    },
    Help {
        name: "WITH",
        description: "retrieve rows from a table or view",
        syntax: SELECT_SYNTAX,
        page: "select",
    },
];

/// The command names, for completion after `\h`.
pub fn names() -> impl Iterator<Item = &'static str> {
    HELP.iter().map(|h| h.name)
}

/// What `\h` prints for `topic` (`None`: the list of commands).
pub fn help(topic: Option<&str>) -> String {
    let Some(topic) = topic.map(str::trim).filter(|t| !t.is_empty()) else {
        return list();
    };
    if topic == "*" {
        return HELP.iter().map(entry).collect::<Vec<_>>().join("\n");
    }
    // As psql: the longest command name the words begin with, case and
    // spacing aside ("rollback to" finds ROLLBACK TO SAVEPOINT's page
    // only when typed so far; "select *" finds SELECT).
    let words: Vec<String> = topic
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    for n in (1..=words.len()).rev() {
        let wanted = words[..n].join(" ");
        let found: Vec<&Help> = HELP
            .iter()
            .filter(|h| h.name == wanted || (n > 1 && h.name.starts_with(&wanted)))
            .collect();
        if !found.is_empty() {
            return found.into_iter().map(entry).collect::<Vec<_>>().join("\n");
        }
    }
    format!(
        "No help available for \"{topic}\".\nTry \\h with no arguments to see available help.\n"
    )
}

fn entry(h: &Help) -> String {
    format!(
        "Command:     {}\nDescription: {}\nSyntax:\n{}\n\nURL: https://www.postgresql.org/docs/15/sql-{}.html\n",
        h.name, h.description, h.syntax, h.page
    )
}

/// "Available help:" in two columns, down then across, as psql lays it out.
fn list() -> String {
    let names: Vec<&str> = names().collect();
    let rows = names.len().div_ceil(2);
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut out = String::from("Available help:\n");
    for r in 0..rows {
        let left = names[r];
        match names.get(r + rows) {
            Some(right) => out.push_str(&format!("  {left:<width$}  {right}\n")),
            None => out.push_str(&format!("  {left}\n")),
        }
    }
    out.push_str(
        "\n(iam-pg carries help for the statements a broker session may run; psql's \\h covers every SQL command.)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_command_in_psqls_layout() {
        assert_eq!(
            help(Some("show")),
            "Command:     SHOW\nDescription: show the value of a run-time parameter\nSyntax:\nSHOW name\nSHOW ALL\n\nURL: https://www.postgresql.org/docs/15/sql-show.html\n"
        );
        assert!(help(Some("SELECT * FROM x")).starts_with("Command:     SELECT\n"));
        assert!(help(Some("rollback to")).starts_with("Command:     ROLLBACK TO SAVEPOINT\n"));
        assert!(help(Some("rollback")).starts_with("Command:     ROLLBACK\n"));
    }

    #[test]
    fn the_list_and_what_is_missing() {
        let list = help(None);
        assert!(list.starts_with("Available help:\n  ABORT"));
        for name in [
            "SELECT",
            "INSERT",
            "UPDATE",
            "DELETE",
            "WITH",
            "SET",
            "SHOW",
            "COPY",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT",
            "EXPLAIN",
        ] {
            assert!(list.contains(name), "{name}");
        }
        assert_eq!(
            help(Some("nosuch")),
            "No help available for \"nosuch\".\nTry \\h with no arguments to see available help.\n"
        );
    }
}
