//! Documentation that must match the code.

use iam_pgbroker_tests::repo_root;

const BEGIN: &str = "<!-- guard-table:begin (generated from sql/src/rules.rs; UPDATE_DOCS=1 cargo test -p iam-pgbroker-tests --test it docs) -->\n";
const END: &str = "<!-- guard-table:end -->";

/// docs/security.md shows the guard's one table, exactly as the code has it.
#[test]
fn security_md_shows_the_guard_table_of_the_code() {
    let path = repo_root().join("docs/security.md");
    let text = std::fs::read_to_string(&path).expect("docs/security.md");
    let table = iam_pgbroker_sql::markdown_table();
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/security.md lacks the guard-table markers");
    };
    let shown = &text[start + BEGIN.len()..end];
    if shown != table {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{BEGIN}{table}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).expect("write docs/security.md");
            return;
        }
        panic!(
            "docs/security.md's guard table differs from the code; regenerate with UPDATE_DOCS=1"
        );
    }
}
