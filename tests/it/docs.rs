//! Documentation that must match the code.

use iam_pgbroker_tests::repo_root;

const BEGIN: &str = "<!-- guard-table:begin (generated from sql/src/rules.rs; UPDATE_DOCS=1 cargo test -p iam-pgbroker-tests --test it docs) -->\n";
const END: &str = "<!-- guard-table:end -->";

/// `generated` between `begin` and `end` in `file`, or the whole file when
/// there are no markers; rewritten with UPDATE_DOCS=1, else compared.
fn check_generated(file: &str, markers: Option<(&str, &str)>, generated: &str) {
    let path = repo_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (head, shown, tail) = match markers {
        Some((begin, end)) => {
            let (Some(start), Some(stop)) = (text.find(begin), text.find(end)) else {
                panic!("{file} lacks the markers {begin:?} … {end:?}");
            };
            (
                &text[..start + begin.len()],
                &text[start + begin.len()..stop],
                &text[stop..],
            )
        }
        None => ("", text.as_str(), ""),
    };
    if shown != generated {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{head}{generated}{tail}")).expect("write the doc");
            return;
        }
        panic!("{file} differs from the code; regenerate with UPDATE_DOCS=1");
    }
}

/// docs/security.md shows the guard's one table, exactly as the code has it.
#[test]
fn security_md_shows_the_guard_table_of_the_code() {
    check_generated(
        "docs/security.md",
        Some((BEGIN, END)),
        &iam_pgbroker_sql::markdown_table(),
    );
}

/// docs/guard-catalog.md shows, for every function, operator and type
/// PostgreSQL and its contrib extensions ship, what the guard decides.
#[test]
fn guard_catalog_md_shows_every_decision_of_the_code() {
    let text = format!(
        "# What the guard decides for each function PostgreSQL ships\n\n\
         Generated from `sql/src/rules.rs` and `sql/catalog/*.tsv` (see \
         [security.md](security.md), \"The allow-list\"); a test keeps it equal to the code \
         (`UPDATE_DOCS=1 cargo test -p iam-pgbroker-tests --test it docs` rewrites it).\n\n{}",
        iam_pgbroker_sql::markdown_catalog()
    );
    check_generated("docs/guard-catalog.md", None, &text);
}
