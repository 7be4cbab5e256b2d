//! Arbitrary text to the guard, in every mode. It must never panic, never
//! allow what PostgreSQL's grammar rejects, and agree with what pg_query's
//! own (partial) tree walk sees.

#![no_main]

use iam_pgbroker_sql::{rules, Mode, Permit, RuleKind, SqlGuard};
use libfuzzer_sys::fuzz_target;
use pg_query::{NodeEnum, NodeRef};

const MODES: [Mode; 3] = [
    Mode::Read,
    Mode::Write { ddl: false },
    Mode::Write { ddl: true },
];

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let guard = SqlGuard::new();
    let results = MODES.map(|mode| guard.check(sql, mode));

    // A grant never takes anything away: what a read session may do, a
    // write session may do, and so on.
    let allowed = results.each_ref().map(|r| r.is_ok());
    assert!(
        !allowed[0] || allowed[1],
        "read allows but write refuses: {sql:?}"
    );
    assert!(
        !allowed[1] || allowed[2],
        "write allows but ddl refuses: {sql:?}"
    );
    if let Ok(verdict) = &results[0] {
        assert!(
            !verdict.writes && !verdict.ddl,
            "read verdict that writes: {sql:?} {verdict:?}"
        );
    }

    let parsed = pg_query::parse(sql, 0);
    let Ok(parsed) = parsed else {
        // Never allow what cannot be parsed.
        assert!(
            !allowed.iter().any(|a| *a),
            "unparsable text allowed: {sql:?}"
        );
        for result in &results {
            let refusal = result.as_ref().unwrap_err();
            let _ = refusal.to_string();
        }
        return;
    };
    if !allowed[2] {
        return;
    }

    // Allowed somewhere: exactly one statement, of a kind the table permits.
    assert_eq!(parsed.protobuf.stmts.len(), 1, "{sql:?}");
    let node = parsed.protobuf.stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.as_ref())
        .expect("a statement");
    let forbidden_everywhere = matches!(
        node,
        NodeEnum::TransactionStmt(_)
            | NodeEnum::VariableSetStmt(_)
            | NodeEnum::CopyStmt(_)
            | NodeEnum::DoStmt(_)
            | NodeEnum::CallStmt(_)
            | NodeEnum::ListenStmt(_)
            | NodeEnum::NotifyStmt(_)
            | NodeEnum::UnlistenStmt(_)
            | NodeEnum::PrepareStmt(_)
            | NodeEnum::ExecuteStmt(_)
            | NodeEnum::DeallocateStmt(_)
            | NodeEnum::DeclareCursorStmt(_)
            | NodeEnum::FetchStmt(_)
            | NodeEnum::ClosePortalStmt(_)
            | NodeEnum::DiscardStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::LoadStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreateRoleStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
    );
    assert!(!forbidden_everywhere, "{sql:?} allowed: {node:?}");
    if allowed[0] {
        assert!(
            matches!(
                node,
                NodeEnum::SelectStmt(_) | NodeEnum::ExplainStmt(_) | NodeEnum::VariableShowStmt(_)
            ),
            "read session allowed {sql:?}"
        );
    }

    // pg_query's own walk visits fewer positions than ours; whatever it
    // finds, ours must have found too. (Its joined names, `functions()`,
    // cannot be split back: a quoted component may contain a dot.)
    for (node, _, _, _) in parsed.protobuf.nodes() {
        let name = match node {
            NodeRef::FuncCall(call) => match call.funcname.last().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::String(s)) => s.sval.to_lowercase(),
                _ => continue,
            },
            NodeRef::RangeVar(range) => {
                let name = range.relname.to_lowercase();
                let secret = rules().iter().any(|r| {
                    r.kind == RuleKind::Relation && r.permit == Permit::Never && r.matches(&name)
                });
                assert!(!secret, "{sql:?} allowed although it reads {name}");
                continue;
            }
            _ => continue,
        };
        let rule = rules()
            .iter()
            .find(|r| r.kind == RuleKind::Function && r.matches(&name));
        if let Some(rule) = rule {
            assert!(
                rule.permit != Permit::Never,
                "{sql:?} allowed although it calls {name}"
            );
        }
    }
});
