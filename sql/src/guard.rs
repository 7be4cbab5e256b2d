//! The statement guard: one statement, parsed by PostgreSQL's own grammar,
//! checked against [`RULES`](crate::RULES) for the session's mode.

use std::fmt;
use std::sync::Arc;

use pg_query::protobuf::{ObjectType, TransactionStmtKind, VariableSetKind};
use pg_query::NodeEnum;

use crate::rules::{self, GuardRule, Permit, ReadAllowances, RuleKind};
use crate::walk::{self, Facts, QualName};

/// What the session was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A read session: the broker's transaction is `READ ONLY`.
    Read,
    /// A write session; `ddl` when the granting rule allows schema changes.
    Write {
        /// The granting rule says `ddl = true`.
        ddl: bool,
    },
}

/// The guard. It holds the static table and what the administrator allows
/// in read sessions beyond it ([`ReadAllowances`]); one instance can be
/// shared by every session (it is `Send + Sync`, and cheap to clone).
///
/// ```
/// use iam_pgbroker_sql::{Mode, SqlGuard};
///
/// let guard = SqlGuard::new();
/// let verdict = guard.check("SELECT count(*) FROM idm_identity", Mode::Read).unwrap();
/// assert_eq!(verdict.kind, "SELECT");
/// assert!(!verdict.writes);
///
/// let refusal = guard.check("UPDATE idm_identity SET disabled = true", Mode::Read).unwrap_err();
/// assert_eq!(refusal.to_string(), "UPDATE needs a write session");
///
/// let refusal = guard
///     .check("SELECT pg_catalog.pg_read_file('/etc/passwd')", Mode::Write { ddl: true })
///     .unwrap_err();
/// assert_eq!(
///     refusal.to_string(),
///     "function pg_read_file is not allowed: reads or writes files on the database server"
/// );
///
/// // Read sessions run only functions the guard knows to be safe.
/// let refusal = guard.check("SELECT my_app.cleanup()", Mode::Read).unwrap_err();
/// assert!(refusal.to_string().starts_with("function my_app.cleanup is not allowed"));
/// assert!(guard.check("SELECT my_app.cleanup()", Mode::Write { ddl: false }).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct SqlGuard {
    rules: &'static [GuardRule],
    allow: Arc<ReadAllowances>,
    id: u64,
}

impl Default for SqlGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// A statement the guard lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// The statement's kind, as labelled in the table: `"SELECT"`,
    /// `"VALUES"`, `"SHOW"`, `"EXPLAIN"`, `"INSERT"`, `"UPDATE"`,
    /// `"CREATE TABLE"`, …
    pub kind: &'static str,
    /// It needs a write session: it writes data or locks rows or tables
    /// (also `nextval`, a data-modifying `WITH`, …).
    pub writes: bool,
    /// It needs a write session with a DDL grant.
    pub ddl: bool,
    /// For `SET`/`RESET` of an allowed setting: what it changes, for the
    /// broker's checks that depend on the grant.
    pub setting: Option<crate::settings::SettingChange>,
}

/// Why a statement was refused. Nothing of it was sent to PostgreSQL.
///
/// `Display` gives the message for the client, e.g.
/// `COPY is not allowed through the broker: …`,
/// `function pg_read_file is not allowed: …`, `only one statement per request`,
/// `UPDATE needs a write session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    what: String,
    reason: String,
    rule: Option<&'static GuardRule>,
    /// For a syntax error: where the parser stopped (1-based characters).
    position: Option<u32>,
}

/// The broad reason of a [`Refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// PostgreSQL's grammar rejects the text (a syntax or lexical error).
    Syntax,
    /// The text may be valid, but the guard cannot check it: nested too
    /// deeply for the parse tree to be decoded, or it contains a NUL byte.
    Unparsable,
    /// No statement at all (empty, or only comments and semicolons).
    Empty,
    /// More than one statement.
    MultipleStatements,
    /// Refused in every session.
    Forbidden,
    /// Allowed in write sessions only.
    NeedsWrite,
    /// Allowed in write sessions with a DDL grant only.
    NeedsDdl,
}

impl Refusal {
    fn new(kind: RefusalKind, what: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            kind,
            what: what.into(),
            reason: reason.into(),
            rule: None,
            position: None,
        }
    }

    fn from_rule(rule: &'static GuardRule, what: String) -> Self {
        let kind = match rule.permit {
            Permit::Never | Permit::Read | Permit::Unchecked => RefusalKind::Forbidden,
            Permit::Write => RefusalKind::NeedsWrite,
            Permit::Ddl => RefusalKind::NeedsDdl,
        };
        Refusal {
            kind,
            what,
            reason: rule.reason.to_owned(),
            rule: Some(rule),
            position: None,
        }
    }

    fn from_parse_error(err: pg_query::Error, sql: &str) -> Self {
        const TOO_DEEP: &str = "the statement is nested too deeply for the guard to check \
             (about 45 chained operators or 15 nested sub-queries); simplify or split it";
        match err {
            pg_query::Error::Parse(message)
                if message.contains("stack depth limit exceeded")
                    || message.starts_with("memory exhausted") =>
            {
                Refusal::new(RefusalKind::Unparsable, "statement", TOO_DEEP)
            }
            pg_query::Error::Parse(message) => Refusal {
                position: crate::cursor::syntax_error_position(sql),
                ..Refusal::new(RefusalKind::Syntax, "statement", message)
            },
            // prost's recursion limit while decoding pg_query's protobuf
            // output: the tree is deeper than 100 nested messages.
            pg_query::Error::Decode(_) => {
                Refusal::new(RefusalKind::Unparsable, "statement", TOO_DEEP)
            }
            pg_query::Error::Conversion(_) => Refusal::new(
                RefusalKind::Unparsable,
                "statement",
                "the statement contains a NUL byte",
            ),
            other => Refusal::new(RefusalKind::Unparsable, "statement", other.to_string()),
        }
    }

    /// For a syntax error, where in the statement PostgreSQL's parser
    /// stopped: a 1-based character position, as PostgreSQL's own
    /// position field (psql's `LINE n:` and caret).
    pub fn position(&self) -> Option<u32> {
        self.position
    }

    /// The broad reason.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// What was refused: a statement kind (`"COPY"`), a clause, a function
    /// (`"pg_read_file"`) or a relation (`"pg_authid"`); `"statement"` for a
    /// syntax error or an empty or multiple statement.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Why, in words for the client (for a syntax error: PostgreSQL's
    /// message).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The table row behind the refusal, if one is.
    pub fn rule(&self) -> Option<&'static GuardRule> {
        self.rule
    }

    /// PostgreSQL's grammar rejects the text (SQLSTATE 42601 territory).
    ///
    /// The guard never lets such text through. A caller may report it as a
    /// syntax error rather than a forbidden statement, but must not forward
    /// it to the server "to let PostgreSQL report the error": this parser
    /// speaks PostgreSQL 18's grammar, and older servers accept syntax it
    /// rejects (postfix operators before 14, for one), so text the guard
    /// could not read would run unchecked.
    pub fn is_syntax_error(&self) -> bool {
        self.kind == RefusalKind::Syntax
    }

    /// The statement would pass in a write session (with a DDL grant when
    /// [`RefusalKind::NeedsDdl`]).
    pub fn needs_write(&self) -> bool {
        matches!(self.kind, RefusalKind::NeedsWrite | RefusalKind::NeedsDdl)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = match self.rule.map(|r| r.kind) {
            Some(RuleKind::Function) => format!("function {}", self.what),
            Some(RuleKind::Operator) => format!("operator {}", self.what),
            Some(RuleKind::Type) => format!("type {}", self.what),
            Some(RuleKind::Relation | RuleKind::WriteTarget) => format!("relation {}", self.what),
            _ => self.what.clone(),
        };
        let is_function = matches!(
            self.rule.map(|r| r.kind),
            Some(RuleKind::Function | RuleKind::Operator | RuleKind::Type)
        );
        match self.kind {
            RefusalKind::Syntax => write!(f, "{}", self.reason),
            RefusalKind::Unparsable => write!(f, "{}", self.reason),
            RefusalKind::Empty => f.write_str("empty statement"),
            RefusalKind::MultipleStatements => f.write_str("only one statement per request"),
            RefusalKind::Forbidden if is_function => {
                write!(f, "{subject} is not allowed: {}", self.reason)
            }
            RefusalKind::Forbidden => {
                write!(
                    f,
                    "{subject} is not allowed through the broker: {}",
                    self.reason
                )
            }
            RefusalKind::NeedsWrite if self.rule.is_some_and(|r| r.kind == RuleKind::Statement) => {
                write!(f, "{subject} needs a write session")
            }
            RefusalKind::NeedsWrite => {
                write!(f, "{subject} needs a write session: {}", self.reason)
            }
            RefusalKind::NeedsDdl => write!(
                f,
                "{subject} needs a write session with a DDL grant: {}",
                self.reason
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The requirements of one statement, gathered while checking it.
struct Needs {
    mode: Mode,
    required: Permit,
    refusal: Option<Refusal>,
}

impl Needs {
    fn add(&mut self, rule: &'static GuardRule, what: impl Into<String>) {
        self.required = self.required.max(rule.permit);
        if rule.permit.allows(self.mode) {
            return;
        }
        // Report the hardest refusal: asking for a write grant only to be
        // told "never" next would waste the user's time.
        let replace = match &self.refusal {
            None => true,
            Some(current) => current.rule.is_some_and(|r| r.permit < rule.permit),
        };
        if replace {
            self.refusal = Some(Refusal::from_rule(rule, what.into()));
        }
    }
}

impl SqlGuard {
    /// A guard over [`RULES`](crate::RULES) and PostgreSQL's catalog, with
    /// nothing allowed in read sessions beyond them.
    pub fn new() -> Self {
        SqlGuard::with_read_allowances(ReadAllowances::default())
    }

    /// A guard that also allows, in read sessions, the functions, operators
    /// and types `allow` names (where the guard would otherwise refuse them
    /// for not knowing them).
    pub fn with_read_allowances(allow: ReadAllowances) -> Self {
        // Guards without allowances all judge alike and share id 0; every
        // other one gets an id of its own (never reused), so a cache of
        // verdicts keyed by it cannot hand one guard's answer to another.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = if allow == ReadAllowances::default() {
            0
        } else {
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        SqlGuard {
            rules: rules::RULES,
            allow: Arc::new(allow),
            id,
        }
    }

    /// Two guards with the same id give the same verdict for every
    /// statement: a cache of verdicts may be keyed by it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What this guard allows in read sessions beyond what it knows.
    pub fn read_allowances(&self) -> &ReadAllowances {
        &self.allow
    }

    /// Whether the function, operator, type and relation checks are on.
    /// Always, except in a test-only build (the cargo feature
    /// `unguarded-for-tests`, which no release build enables) run with
    /// `IAM_PGBROKER_UNGUARDED_FOR_TESTS=1`: there they are off, so that a
    /// test can show what PostgreSQL's own privileges hold without them.
    pub fn function_checks_enabled() -> bool {
        !unguarded()
    }

    /// The table this guard applies.
    pub fn rules(&self) -> &'static [GuardRule] {
        self.rules
    }

    /// Checks one statement for a session in `mode`.
    ///
    /// Parses `sql` once with PostgreSQL's grammar and walks the whole tree.
    /// Text that does not parse is always refused.
    pub fn check(&self, sql: &str, mode: Mode) -> Result<Verdict, Refusal> {
        let parsed = pg_query::parse(sql, 0).map_err(|e| Refusal::from_parse_error(e, sql))?;
        let stmts = &parsed.protobuf.stmts;
        let raw = match stmts.as_slice() {
            [] => {
                return Err(Refusal::new(
                    RefusalKind::Empty,
                    "statement",
                    "empty statement",
                ))
            }
            [one] => one,
            _ => {
                return Err(Refusal::new(
                    RefusalKind::MultipleStatements,
                    "statement",
                    "only one statement per request",
                ))
            }
        };
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return Err(Refusal::new(
                RefusalKind::Empty,
                "statement",
                "empty statement",
            ));
        };
        let facts = walk::walk(raw)
            .map_err(|e| Refusal::new(RefusalKind::Unparsable, "statement", e.to_string()))?;

        let mut needs = Needs {
            mode,
            required: Permit::Read,
            refusal: None,
        };
        let top = self.statement(node, &mut needs);
        if !top.plan_only {
            self.clauses(&facts, top.own_modifying, &mut needs);
        }
        self.functions(&facts, &mut needs);
        self.relations(&facts, top.plan_only, &mut needs);

        let setting = match node {
            NodeEnum::VariableSetStmt(s) if crate::settings::is_allowed(s) => {
                match crate::settings::judge(s) {
                    Ok(change) => Some(change),
                    Err(why) => {
                        let what = format!("{} {}", top.label, s.name);
                        needs.refusal = Some(Refusal::new(RefusalKind::Forbidden, what, why));
                        None
                    }
                }
            }
            _ => None,
        };
        match needs.refusal {
            Some(refusal) => Err(refusal),
            None => Ok(Verdict {
                kind: top.label,
                writes: needs.required >= Permit::Write,
                ddl: needs.required >= Permit::Ddl,
                setting,
            }),
        }
    }

    /// The statement's own kind, and EXPLAIN's inner statement.
    fn statement(&self, node: &NodeEnum, needs: &mut Needs) -> Top {
        match node {
            NodeEnum::ExplainStmt(explain) => {
                needs.add(rules::statement("EXPLAIN"), "EXPLAIN");
                // `EXPLAIN ANALYZE`, `EXPLAIN (ANALYZE)`, `(ANALYZE off)`:
                // any ANALYZE option counts, being stricter is harmless.
                let analyze = explain.options.iter().any(|o| {
                    matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze"))
                });
                let inner = explain.query.as_ref().and_then(|q| q.node.as_ref());
                match inner {
                    Some(inner) if analyze => {
                        let inner_top = self.statement(inner, needs);
                        Top {
                            label: "EXPLAIN",
                            plan_only: inner_top.plan_only,
                            own_modifying: inner_top.own_modifying,
                        }
                    }
                    Some(
                        NodeEnum::SelectStmt(_)
                        | NodeEnum::InsertStmt(_)
                        | NodeEnum::UpdateStmt(_)
                        | NodeEnum::DeleteStmt(_)
                        | NodeEnum::MergeStmt(_),
                    ) => Top {
                        label: "EXPLAIN",
                        plan_only: true,
                        own_modifying: 0,
                    },
                    // EXECUTE, DECLARE CURSOR, CREATE TABLE AS, REFRESH …:
                    // judged as if they ran.
                    Some(inner) => {
                        let inner_top = self.statement(inner, needs);
                        Top {
                            label: "EXPLAIN",
                            ..inner_top
                        }
                    }
                    None => {
                        needs.add(&rules::UNKNOWN_STATEMENT, "EXPLAIN");
                        Top::new("EXPLAIN")
                    }
                }
            }
            NodeEnum::CopyStmt(copy) => {
                let binary = copy.options.iter().any(|o| match &o.node {
                    Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("format") => {
                        matches!(
                            d.arg.as_ref().and_then(|a| a.node.as_ref()),
                            Some(NodeEnum::String(s)) if s.sval.eq_ignore_ascii_case("binary")
                        )
                    }
                    _ => false,
                });
                let label = if copy.is_program || !copy.filename.is_empty() {
                    "COPY"
                } else if binary {
                    "COPY (FORMAT binary)"
                } else if copy.is_from {
                    "COPY FROM STDIN"
                } else {
                    "COPY TO STDOUT"
                };
                needs.add(rules::statement(label), label);
                // COPY FROM STDIN writes its table as an INSERT would.
                if copy.is_from {
                    if let Some(rel) = &copy.relation {
                        let name = rel.relname.to_lowercase();
                        let qualified = if rel.schemaname.is_empty() {
                            name
                        } else {
                            format!("{}.{name}", rel.schemaname.to_lowercase())
                        };
                        if let Some(rule) = self.find(RuleKind::WriteTarget, &qualified) {
                            needs.add(rule, qualified);
                        }
                    }
                }
                // COPY (query) TO STDOUT: the query is judged as if it ran
                // on its own.
                let own_modifying = match copy.query.as_ref().and_then(|q| q.node.as_ref()) {
                    Some(inner) => self.statement(inner, needs).own_modifying,
                    None => 0,
                };
                Top {
                    label,
                    plan_only: false,
                    own_modifying,
                }
            }
            NodeEnum::CreateFunctionStmt(create) => {
                let label = if create.is_procedure {
                    "CREATE PROCEDURE"
                } else {
                    "CREATE FUNCTION"
                };
                needs.add(rules::statement(label), label);
                let language = create.options.iter().find_map(|o| match &o.node {
                    Some(NodeEnum::DefElem(d)) if d.defname == "language" => {
                        match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                            Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
                            _ => Some(String::from("?")),
                        }
                    }
                    _ => None,
                });
                // Without LANGUAGE the body is SQL (BEGIN ATOMIC … END), or
                // PostgreSQL refuses the statement.
                if let Some(language) = language {
                    if language != "sql" && language != "plpgsql" {
                        needs.add(
                            rules::statement("CREATE FUNCTION … LANGUAGE (not sql or plpgsql)"),
                            format!("{label} … LANGUAGE {language}"),
                        );
                    }
                }
                Top::new(label)
            }
            other => {
                let label = label(other);
                let rule = rules::statement(label);
                needs.add(rule, if label.is_empty() { "statement" } else { label });
                let own_modifying = usize::from(matches!(
                    other,
                    NodeEnum::InsertStmt(_)
                        | NodeEnum::UpdateStmt(_)
                        | NodeEnum::DeleteStmt(_)
                        | NodeEnum::MergeStmt(_)
                ));
                Top {
                    label: if label.is_empty() {
                        rule.pattern
                    } else {
                        label
                    },
                    plan_only: false,
                    own_modifying,
                }
            }
        }
    }

    fn clauses(&self, facts: &Facts, own_modifying: usize, needs: &mut Needs) {
        if facts.modifying > own_modifying {
            let rule = rules::statement("WITH … INSERT / UPDATE / DELETE / MERGE");
            needs.add(rule, rule.pattern);
        }
        if facts.locking {
            let rule =
                rules::statement("FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE");
            needs.add(rule, rule.pattern);
        }
        if facts.select_into {
            let rule = rules::statement("SELECT … INTO");
            needs.add(rule, rule.pattern);
        }
    }

    /// Functions, operators and types, wherever they are: an allow-list in
    /// read sessions, the refusals of the table in every session.
    fn functions(&self, facts: &Facts, needs: &mut Needs) {
        if unguarded() {
            return;
        }
        let allow = &*self.allow;
        for f in &facts.functions {
            let rule = rules::function_rule(f.schema.as_deref(), &f.name, allow);
            needs.add(rule, shown(f, rule));
        }
        // `'pg_read_file'::regproc` only looks the function up, but what
        // read sessions may not call they need not look up either.
        for f in &facts.function_literals {
            let rule = rules::function_rule(f.schema.as_deref(), &f.name, allow);
            if rule.permit > Permit::Read {
                needs.add(
                    rule,
                    format!("{} (named by a regproc literal)", shown(f, rule)),
                );
            }
        }
        // `(x).name` and `t.c.name` may be a column or name(x): only what is
        // refused outright counts, an unknown name is most likely a column.
        for name in &facts.attributes {
            let rule = rules::function_rule(None, name, allow);
            if rule.permit > Permit::Unchecked {
                needs.add(
                    rule,
                    format!("{} (attribute notation)", name.to_lowercase()),
                );
            }
        }
        for o in &facts.operators {
            let rule = rules::operator_rule(o.schema.as_deref(), &o.name, allow);
            needs.add(rule, qualified(o));
        }
        for o in &facts.operator_literals {
            let rule = rules::operator_rule(o.schema.as_deref(), &o.name, allow);
            if rule.permit > Permit::Read {
                needs.add(
                    rule,
                    format!("{} (named by a regoper literal)", qualified(o)),
                );
            }
        }
        for t in &facts.types {
            let rule = rules::type_rule(t.schema.as_deref(), &t.name, allow);
            needs.add(rule, qualified(t));
        }
    }

    fn relations(&self, facts: &Facts, plan_only: bool, needs: &mut Needs) {
        for relation in &facts.relations {
            let name = relation.name.to_lowercase();
            if !unguarded() {
                if let Some(rule) = self.find(RuleKind::Relation, &name) {
                    needs.add(rule, name.clone());
                }
            }
            if relation.written && !plan_only {
                let qualified = if relation.schema.is_empty() {
                    name
                } else {
                    format!("{}.{name}", relation.schema.to_lowercase())
                };
                if let Some(rule) = self.find(RuleKind::WriteTarget, &qualified) {
                    needs.add(rule, qualified);
                }
            }
        }
    }

    fn find(&self, kind: RuleKind, name: &str) -> Option<&'static GuardRule> {
        self.rules
            .iter()
            .find(|r| r.kind == kind && r.matches(name))
    }
}

/// How a refused function is named: as a reviewed row saw it (lower
/// case), or qualified when a catch-all judged it (the guard does not know
/// it, or knows it only from the catalog).
fn shown(f: &QualName, rule: &GuardRule) -> String {
    let catch_all = rules::CATCH_ALL.iter().any(|r| std::ptr::eq(*r, rule));
    if catch_all && rule.permit != Permit::Never {
        qualified(f)
    } else {
        f.name.to_lowercase()
    }
}

fn qualified(q: &QualName) -> String {
    match &q.schema {
        Some(schema) => format!("{schema}.{}", q.name),
        None => q.name.clone(),
    }
}

#[cfg(feature = "unguarded-for-tests")]
fn unguarded() -> bool {
    static UNGUARDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNGUARDED.get_or_init(|| {
        std::env::var_os("IAM_PGBROKER_UNGUARDED_FOR_TESTS").is_some_and(|v| v == "1")
    })
}

#[cfg(not(feature = "unguarded-for-tests"))]
fn unguarded() -> bool {
    false
}

/// What checking the top statement found out.
struct Top {
    label: &'static str,
    /// EXPLAIN without ANALYZE of a query: planned, not run.
    plan_only: bool,
    /// 1 when the statement itself is INSERT / UPDATE / DELETE / MERGE.
    own_modifying: usize,
}

impl Top {
    fn new(label: &'static str) -> Self {
        Top {
            label,
            plan_only: false,
            own_modifying: 0,
        }
    }
}

/// Whether `sql` is a `COPY` with a header line (`HEADER`, CSV): the
/// broker's row count of `COPY … TO STDOUT` leaves the header out.
pub fn copy_header(sql: &str) -> bool {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return false;
    };
    let Some(NodeEnum::CopyStmt(copy)) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref())
    else {
        return false;
    };
    copy.options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("header") => {
            match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                None => true,
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::String(s)) => {
                    matches!(
                        s.sval.to_ascii_lowercase().as_str(),
                        "true" | "on" | "1" | "match"
                    )
                }
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                _ => false,
            }
        }
        _ => false,
    })
}

/// The table label of a statement; `""` for one the guard does not know.
fn label(node: &NodeEnum) -> &'static str {
    use NodeEnum as N;
    match node {
        N::SelectStmt(s) if !s.values_lists.is_empty() => "VALUES",
        N::SelectStmt(_) => "SELECT",
        N::InsertStmt(_) => "INSERT",
        N::UpdateStmt(_) => "UPDATE",
        N::DeleteStmt(_) => "DELETE",
        N::MergeStmt(_) => "MERGE",
        N::VariableShowStmt(_) => "SHOW",
        N::ExplainStmt(_) => "EXPLAIN",
        N::LockStmt(_) => "LOCK",

        N::TransactionStmt(t) => match t.kind() {
            TransactionStmtKind::TransStmtBegin => "BEGIN",
            TransactionStmtKind::TransStmtStart => "START TRANSACTION",
            TransactionStmtKind::TransStmtCommit => "COMMIT",
            TransactionStmtKind::TransStmtRollback => "ROLLBACK",
            TransactionStmtKind::TransStmtSavepoint => "SAVEPOINT",
            TransactionStmtKind::TransStmtRelease => "RELEASE SAVEPOINT",
            TransactionStmtKind::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
            TransactionStmtKind::TransStmtPrepare => "PREPARE TRANSACTION",
            TransactionStmtKind::TransStmtCommitPrepared => "COMMIT PREPARED",
            TransactionStmtKind::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
            TransactionStmtKind::Undefined => "",
        },
        N::VariableSetStmt(s) => match s.kind() {
            VariableSetKind::VarSetMulti if s.name.starts_with("TRANSACTION") => "SET TRANSACTION",
            VariableSetKind::VarSetMulti if s.name == "SESSION CHARACTERISTICS" => {
                "SET SESSION CHARACTERISTICS"
            }
            VariableSetKind::VarResetAll => "RESET ALL",
            VariableSetKind::VarReset if crate::settings::is_allowed(s) => "RESET",
            VariableSetKind::VarReset => "RESET (other setting)",
            _ if s.name == "role" => "SET ROLE",
            _ if s.name == "session_authorization" => "SET SESSION AUTHORIZATION",
            _ if crate::settings::is_allowed(s) => "SET",
            _ => "SET (other setting)",
        },
        N::ConstraintsSetStmt(_) => "SET CONSTRAINTS",
        N::DiscardStmt(_) => "DISCARD",
        N::ListenStmt(_) => "LISTEN",
        N::UnlistenStmt(_) => "UNLISTEN",
        N::NotifyStmt(_) => "NOTIFY",
        N::PrepareStmt(_) => "PREPARE",
        N::ExecuteStmt(_) => "EXECUTE",
        N::DeallocateStmt(_) => "DEALLOCATE",
        N::DeclareCursorStmt(_) => "DECLARE CURSOR",
        N::FetchStmt(f) if f.ismove => "MOVE",
        N::FetchStmt(_) => "FETCH",
        N::ClosePortalStmt(_) => "CLOSE",

        N::CopyStmt(_) => "COPY",
        N::DoStmt(_) => "DO",
        N::CallStmt(_) => "CALL",
        N::CheckPointStmt(_) => "CHECKPOINT",
        N::LoadStmt(_) => "LOAD",
        N::AlterSystemStmt(_) => "ALTER SYSTEM",
        N::CreatedbStmt(_) => "CREATE DATABASE",
        N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_) => "ALTER DATABASE",
        N::DropdbStmt(_) => "DROP DATABASE",
        N::CreateRoleStmt(_) => "CREATE ROLE",
        N::AlterRoleStmt(_) | N::AlterRoleSetStmt(_) => "ALTER ROLE",
        N::DropRoleStmt(_) => "DROP ROLE",
        N::GrantRoleStmt(g) if g.is_grant => "GRANT ROLE",
        N::GrantRoleStmt(_) => "REVOKE ROLE",
        N::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        N::AlterTableSpaceOptionsStmt(_) => "ALTER TABLESPACE",
        N::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        N::CreatePlangStmt(_) => "CREATE LANGUAGE",
        N::CreateExtensionStmt(_) => "CREATE EXTENSION",
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => "ALTER EXTENSION",
        N::CreateFdwStmt(_) => "CREATE FOREIGN DATA WRAPPER",
        N::AlterFdwStmt(_) => "ALTER FOREIGN DATA WRAPPER",
        N::CreateForeignServerStmt(_) => "CREATE SERVER",
        N::AlterForeignServerStmt(_) => "ALTER SERVER",
        N::CreateUserMappingStmt(_) => "CREATE USER MAPPING",
        N::AlterUserMappingStmt(_) => "ALTER USER MAPPING",
        N::DropUserMappingStmt(_) => "DROP USER MAPPING",
        N::CreateForeignTableStmt(_) => "CREATE FOREIGN TABLE",
        N::ImportForeignSchemaStmt(_) => "IMPORT FOREIGN SCHEMA",
        N::CreateSubscriptionStmt(_) => "CREATE SUBSCRIPTION",
        N::AlterSubscriptionStmt(_) => "ALTER SUBSCRIPTION",
        N::DropSubscriptionStmt(_) => "DROP SUBSCRIPTION",
        N::CreatePublicationStmt(_) => "CREATE PUBLICATION",
        N::AlterPublicationStmt(_) => "ALTER PUBLICATION",

        N::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        N::VacuumStmt(_) => "ANALYZE",
        N::ClusterStmt(_) => "CLUSTER",
        N::ReindexStmt(_) => "REINDEX",
        N::RefreshMatViewStmt(_) => "REFRESH MATERIALIZED VIEW",

        N::CreateFunctionStmt(f) if f.is_procedure => "CREATE PROCEDURE",
        N::CreateFunctionStmt(_) => "CREATE FUNCTION",
        N::AlterFunctionStmt(_) => "ALTER FUNCTION",
        N::CreateStmt(_) => "CREATE TABLE",
        N::CreateTableAsStmt(c) if c.objtype() == ObjectType::ObjectMatview => {
            "CREATE MATERIALIZED VIEW"
        }
        N::CreateTableAsStmt(_) => "CREATE TABLE AS",
        N::ViewStmt(_) => "CREATE VIEW",
        N::IndexStmt(_) => "CREATE INDEX",
        N::CreateSeqStmt(_) => "CREATE SEQUENCE",
        N::AlterSeqStmt(_) => "ALTER SEQUENCE",
        N::AlterTableStmt(_) => "ALTER TABLE",
        N::AlterTableMoveAllStmt(_) => "ALTER TABLE ALL IN TABLESPACE",
        N::DropStmt(_) => "DROP",
        N::TruncateStmt(_) => "TRUNCATE",
        N::CommentStmt(_) => "COMMENT",
        N::SecLabelStmt(_) => "SECURITY LABEL",
        N::GrantStmt(g) if g.objtype() == ObjectType::ObjectParameterAcl => "GRANT ON PARAMETER",
        N::GrantStmt(g) if g.is_grant => "GRANT",
        N::GrantStmt(_) => "REVOKE",
        N::AlterDefaultPrivilegesStmt(_) => "ALTER DEFAULT PRIVILEGES",
        N::CreateSchemaStmt(_) => "CREATE SCHEMA",
        N::CompositeTypeStmt(_) | N::CreateEnumStmt(_) | N::CreateRangeStmt(_) => "CREATE TYPE",
        N::AlterEnumStmt(_) | N::AlterTypeStmt(_) => "ALTER TYPE",
        N::CreateDomainStmt(_) => "CREATE DOMAIN",
        N::AlterDomainStmt(_) => "ALTER DOMAIN",
        N::DefineStmt(d) => match d.kind() {
            ObjectType::ObjectAggregate => "CREATE AGGREGATE",
            ObjectType::ObjectOperator => "CREATE OPERATOR",
            ObjectType::ObjectType => "CREATE TYPE",
            ObjectType::ObjectCollation => "CREATE COLLATION",
            ObjectType::ObjectTsparser
            | ObjectType::ObjectTsdictionary
            | ObjectType::ObjectTstemplate
            | ObjectType::ObjectTsconfiguration => "CREATE TEXT SEARCH",
            _ => "",
        },
        N::AlterOperatorStmt(_) => "ALTER OPERATOR",
        N::CreateOpClassStmt(_) => "CREATE OPERATOR CLASS",
        N::CreateOpFamilyStmt(_) => "CREATE OPERATOR FAMILY",
        N::AlterOpFamilyStmt(_) => "ALTER OPERATOR FAMILY",
        N::AlterCollationStmt(_) => "ALTER COLLATION",
        N::AlterTsdictionaryStmt(_) | N::AlterTsconfigurationStmt(_) => "ALTER TEXT SEARCH",
        N::CreateCastStmt(_) => "CREATE CAST",
        N::CreateConversionStmt(_) => "CREATE CONVERSION",
        N::CreateTransformStmt(_) => "CREATE TRANSFORM",
        N::CreateAmStmt(_) => "CREATE ACCESS METHOD",
        N::CreateStatsStmt(_) => "CREATE STATISTICS",
        N::AlterStatsStmt(_) => "ALTER STATISTICS",
        N::CreateTrigStmt(_) => "CREATE TRIGGER",
        N::CreateEventTrigStmt(_) => "CREATE EVENT TRIGGER",
        N::AlterEventTrigStmt(_) => "ALTER EVENT TRIGGER",
        N::RuleStmt(_) => "CREATE RULE",
        N::CreatePolicyStmt(_) => "CREATE POLICY",
        N::AlterPolicyStmt(_) => "ALTER POLICY",
        // Renaming or re-owning a server-wide object is as sensitive as
        // altering it otherwise.
        N::RenameStmt(r) => server_object_label(r.rename_type()).unwrap_or("ALTER … RENAME"),
        N::AlterOwnerStmt(o) => server_object_label(o.object_type()).unwrap_or("ALTER … OWNER TO"),
        N::AlterObjectSchemaStmt(_) => "ALTER … SET SCHEMA",
        N::AlterObjectDependsStmt(_) => "ALTER … DEPENDS ON EXTENSION",
        N::DropOwnedStmt(_) => "DROP OWNED",
        N::ReassignOwnedStmt(_) => "REASSIGN OWNED",
        _ => "",
    }
}

/// The label for altering a server-wide object of this type.
fn server_object_label(object: ObjectType) -> Option<&'static str> {
    Some(match object {
        ObjectType::ObjectRole => "ALTER ROLE",
        ObjectType::ObjectDatabase => "ALTER DATABASE",
        ObjectType::ObjectTablespace => "ALTER TABLESPACE",
        ObjectType::ObjectSubscription => "ALTER SUBSCRIPTION",
        ObjectType::ObjectPublication => "ALTER PUBLICATION",
        ObjectType::ObjectForeignServer => "ALTER SERVER",
        ObjectType::ObjectFdw => "ALTER FOREIGN DATA WRAPPER",
        ObjectType::ObjectLanguage => "CREATE LANGUAGE",
        ObjectType::ObjectExtension => "ALTER EXTENSION",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn guard_is_shareable() {
        assert_send_sync::<SqlGuard>();
        assert_send_sync::<Refusal>();
    }

    #[test]
    fn syntax_error_is_distinguishable() {
        let refusal = SqlGuard::new()
            .check("SEL/**/ECT 1", Mode::Read)
            .unwrap_err();
        assert!(refusal.is_syntax_error(), "{refusal:?}");
        assert!(refusal.to_string().contains("syntax error"), "{refusal}");
    }

    #[test]
    fn too_deep_is_not_a_syntax_error() {
        let sql = format!("SELECT 1{}", " + 1".repeat(200));
        let refusal = SqlGuard::new().check(&sql, Mode::Read).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Unparsable, "{refusal:?}");
        assert!(!refusal.is_syntax_error());
    }

    #[test]
    fn nul_byte() {
        let refusal = SqlGuard::new()
            .check("SELECT 1\0; DROP TABLE t", Mode::Read)
            .unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Unparsable);
    }

    #[test]
    fn hardest_refusal_wins() {
        let refusal = SqlGuard::new()
            .check("UPDATE t SET a = pg_read_file('/etc/passwd')", Mode::Read)
            .unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::Forbidden);
        assert_eq!(refusal.what(), "pg_read_file");
    }
}
