//! A walk over the whole parse tree that cannot skip a node.
//!
//! pg_query's own `nodes()` iterator visits only the node types it cares
//! about (it says so in its source), so a function call in, say, a `LIMIT`
//! or a window clause could go unseen. Instead of enumerating positions by
//! hand, this walk drives pg_query's `serde::Serialize` implementations (every
//! protobuf type derives it) with a serializer that records what the guard
//! needs. serde visits every field of every struct, so a new node type or
//! field in a future PostgreSQL grammar is walked without a code change here.
//!
//! The walk keeps a stack of `(struct name, current field)` frames and
//! recognises facts by the path that leads to a string, e.g. a
//! `String.sval` inside a `Node.node` inside a field named `funcname`.
//!
//! Depth: the tree's depth is bounded by prost's decoding recursion limit
//! (100 nested messages), which pg_query's `parse` enforces before we ever see
//! the tree, so this recursion cannot overflow the stack.

use std::fmt;

use serde::ser::{self, Serialize, Serializer};

/// A relation referenced in the statement.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RelationRef {
    pub schema: String,
    pub name: String,
    /// The target of INSERT / UPDATE / DELETE / MERGE / LOCK.
    pub written: bool,
}

/// A possibly schema-qualified name, as PostgreSQL sees it after folding
/// unquoted identifiers: `pg_catalog.pg_read_file` → schema `pg_catalog`,
/// name `pg_read_file`. A three-part name's first part (the database) is
/// dropped: PostgreSQL accepts only the current one there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct QualName {
    pub schema: Option<String>,
    pub name: String,
}

impl QualName {
    fn from_parts(mut parts: Vec<String>) -> Option<QualName> {
        let name = parts.pop()?;
        Some(QualName {
            schema: parts.pop(),
            name,
        })
    }

    /// The name a `regproc`, `regprocedure`, `regoper` or `regoperator`
    /// literal gives, parsed as PostgreSQL's input functions do:
    /// `pg_catalog.pg_read_file(text)` → `pg_catalog`, `pg_read_file`;
    /// unquoted parts folded to lower case, `"Quoted"` ones kept.
    pub(crate) fn from_reg_literal(text: &str) -> Option<QualName> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.trim().chars().peekable();
        let mut quoted_part = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    quoted_part = true;
                    while let Some(q) = chars.next() {
                        if q == '"' {
                            if chars.peek() == Some(&'"') {
                                chars.next();
                                current.push('"');
                            } else {
                                break;
                            }
                        } else {
                            current.push(q);
                        }
                    }
                }
                '.' => {
                    parts.push(std::mem::take(&mut current));
                    quoted_part = false;
                }
                // regprocedure / regoperator: the argument list follows.
                '(' => break,
                c if c.is_whitespace() && !quoted_part => {}
                c => current.extend(c.to_lowercase()),
            }
        }
        if !current.is_empty() {
            parts.push(current);
        }
        QualName::from_parts(parts)
    }
}

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Called functions (also trigger functions and functions being created,
    /// and TABLESAMPLE methods, which are functions too).
    pub functions: Vec<QualName>,
    /// Operators: `a = b`, `x IN (…)`, `ORDER BY x USING >`,
    /// `OPERATOR(pg_catalog.+)`.
    pub operators: Vec<QualName>,
    /// Named types: casts, column definitions, `interval '1 day'`.
    pub types: Vec<QualName>,
    /// Functions named by a `'…'::regproc` or `'…'::regprocedure` literal.
    pub function_literals: Vec<QualName>,
    /// Operators named by a `'…'::regoper` or `'…'::regoperator` literal.
    pub operator_literals: Vec<QualName>,
    /// Names after a `.` that PostgreSQL may resolve as a function call in
    /// attribute notation: `(expr).name`, and `a.b.name` beyond the second
    /// component.
    pub attributes: Vec<String>,
    /// Every relation referenced.
    pub relations: Vec<RelationRef>,
    /// INSERT / UPDATE / DELETE / MERGE statements anywhere, the top one
    /// included.
    pub modifying: usize,
    /// A locking clause (`FOR UPDATE`, …) anywhere.
    pub locking: bool,
    /// `SELECT … INTO` anywhere.
    pub select_into: bool,
}

/// Walks `node` (any pg_query protobuf value) and returns what it found.
///
/// Our serializer never fails; an error could only come from a serde
/// implementation we do not control, and the caller must then refuse.
pub(crate) fn walk<T: Serialize + ?Sized>(node: &T) -> Result<Facts, WalkError> {
    let mut walker = Walker {
        frames: Vec::with_capacity(32),
        facts: Facts::default(),
    };
    node.serialize(&mut walker)?;
    Ok(walker.facts)
}

/// Which list field a frame's name components came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    None,
    Function,
    Operator,
    Type,
    Attribute,
}

struct Frame {
    name: &'static str,
    field: &'static str,
    /// Strings gathered for this frame: name components of a function, an
    /// operator, a type, a ColumnRef or an A_Indirection, or schema and
    /// name of a RangeVar.
    strings: Vec<String>,
    names: Names,
    /// RangeVar only: it is the target of a write.
    written: bool,
    /// TypeCast only: the string constant cast, and the type it is cast to.
    literal: Option<String>,
    cast_to: Option<QualName>,
}

struct Walker {
    frames: Vec<Frame>,
    facts: Facts,
}

impl Walker {
    fn frame(&self, from_top: usize) -> Option<&Frame> {
        self.frames
            .len()
            .checked_sub(from_top + 1)
            .and_then(|i| self.frames.get(i))
    }

    fn frame_mut(&mut self, from_top: usize) -> Option<&mut Frame> {
        let i = self.frames.len().checked_sub(from_top + 1)?;
        self.frames.get_mut(i)
    }

    fn enter(&mut self, name: &'static str) {
        match name {
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => self.facts.modifying += 1,
            "LockingClause" => self.facts.locking = true,
            "IntoClause" => {
                if matches!(self.frame(0), Some(f) if f.name == "SelectStmt") {
                    self.facts.select_into = true;
                }
            }
            _ => {}
        }
        let written = name == "RangeVar" && self.is_write_target();
        self.frames.push(Frame {
            name,
            field: "",
            strings: Vec::new(),
            names: Names::None,
            written,
            literal: None,
            cast_to: None,
        });
    }

    /// A RangeVar about to be entered is the target of a write when it sits
    /// directly in `relation` of a modifying statement, or in the `relations`
    /// list of LOCK (where each item is wrapped in a `Node`).
    fn is_write_target(&self) -> bool {
        match self.frame(0) {
            Some(f)
                if f.field == "relation"
                    && matches!(
                        f.name,
                        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt"
                    ) =>
            {
                true
            }
            Some(f) if f.name == "Node" => {
                matches!(self.frame(1), Some(g) if g.name == "LockStmt" && g.field == "relations")
            }
            _ => false,
        }
    }

    fn leave(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        match frame.name {
            "RangeVar" => {
                let mut strings = frame.strings.into_iter();
                let schema = strings.next().unwrap_or_default();
                let name = strings.next().unwrap_or_default();
                self.facts.relations.push(RelationRef {
                    schema,
                    name,
                    written: frame.written,
                });
                return;
            }
            "TypeCast" => {
                if let (Some(literal), Some(to)) = (frame.literal, frame.cast_to) {
                    let named = QualName::from_reg_literal(&literal);
                    match to.name.as_str() {
                        "regproc" | "regprocedure" => {
                            self.facts.function_literals.extend(named);
                        }
                        "regoper" | "regoperator" => {
                            self.facts.operator_literals.extend(named);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        match frame.names {
            Names::None => {}
            // `a.b` is table a's column b, or b(a) on a's whole row (a
            // composite, which none of the refused functions accept);
            // `a.b.c` can be c(a.b) on any column type.
            Names::Attribute if frame.name == "ColumnRef" => self
                .facts
                .attributes
                .extend(frame.strings.into_iter().skip(2)),
            Names::Attribute => self.facts.attributes.extend(frame.strings),
            Names::Function => self
                .facts
                .functions
                .extend(QualName::from_parts(frame.strings)),
            Names::Operator => match QualName::from_parts(frame.strings) {
                // `a BETWEEN x AND y` is PostgreSQL's `a >= x AND a <= y`
                // (the parser names the construct, not the operators).
                Some(q) if q.schema.is_none() && q.name.contains("BETWEEN") => {
                    for op in [">=", "<="] {
                        self.facts.operators.push(QualName {
                            schema: None,
                            name: op.to_owned(),
                        });
                    }
                }
                Some(q) => self.facts.operators.push(q),
                None => {}
            },
            Names::Type => {
                if let Some(qual) = QualName::from_parts(frame.strings) {
                    if let Some(parent) = self.frame_mut(0) {
                        if parent.name == "TypeCast" && parent.field == "type_name" {
                            parent.cast_to = Some(qual.clone());
                        }
                    }
                    self.facts.types.push(qual);
                }
            }
        }
    }

    fn field(&mut self, key: &'static str) {
        if let Some(frame) = self.frames.last_mut() {
            frame.field = key;
        }
    }

    fn string(&mut self, value: &str) {
        let Some(top) = self.frame(0) else {
            return;
        };
        if top.name == "RangeVar" {
            if matches!(top.field, "schemaname" | "relname") {
                self.push_string(0, Names::None, value);
            }
            return;
        }
        if top.name != "String" || top.field != "sval" {
            return;
        }
        // A name component: String.sval in Node.node in a list field.
        let is_item = matches!(self.frame(1), Some(f) if f.name == "Node" && f.field == "node");
        if is_item {
            let names = match self.frame(2).map(|f| (f.name, f.field)) {
                Some((_, "funcname")) | Some(("RangeTableSample", "method")) => Names::Function,
                Some(("ColumnRef", "fields")) | Some(("AIndirection", "indirection")) => {
                    Names::Attribute
                }
                Some(("AExpr", "name"))
                | Some(("SubLink", "oper_name"))
                | Some(("SortBy", "use_op")) => Names::Operator,
                Some(("TypeName", "names")) => Names::Type,
                _ => Names::None,
            };
            if names != Names::None {
                self.push_string(2, names, value);
            }
            return;
        }
        // A string constant cast to a type: `'pg_read_file'::regproc`.
        let is_cast_constant = matches!(self.frame(1), Some(f) if f.name == "AConst")
            && matches!(self.frame(2), Some(f) if f.name == "Node" && f.field == "node")
            && matches!(self.frame(3), Some(f) if f.name == "TypeCast" && f.field == "arg");
        if is_cast_constant {
            if let Some(cast) = self.frame_mut(3) {
                cast.literal = Some(value.to_owned());
            }
        }
    }

    fn push_string(&mut self, from_top: usize, names: Names, value: &str) {
        if let Some(frame) = self.frame_mut(from_top) {
            frame.strings.push(value.to_owned());
            frame.names = names;
        }
    }
}

/// The serializer never fails; serde still needs an error type.
#[derive(Debug)]
pub(crate) struct WalkError;

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parse tree walk failed")
    }
}

impl std::error::Error for WalkError {}

impl ser::Error for WalkError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        WalkError
    }
}

type Res = Result<(), WalkError>;

impl Serializer for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Res {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Res {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Res {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Res {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Res {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Res {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Res {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Res {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Res {
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Res {
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Res {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Res {
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Res {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Res {
        Ok(())
    }
    fn serialize_none(self) -> Res {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Res {
        // The oneof `Node` enum: the variant's payload is a struct that
        // announces its own name in `serialize_struct`.
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, WalkError> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self, WalkError> {
        self.enter(name);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, WalkError> {
        self.enter(variant);
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.field(key);
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.leave();
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Walker {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        self.field(key);
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.leave();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(sql: &str) -> Facts {
        let parsed = pg_query::parse(sql, 0).unwrap();
        walk(&parsed.protobuf).unwrap()
    }

    fn names(list: &[QualName]) -> Vec<String> {
        list.iter()
            .map(|q| match &q.schema {
                Some(s) => format!("{s}.{}", q.name),
                None => q.name.clone(),
            })
            .collect()
    }

    #[test]
    fn finds_function_names_with_their_schema() {
        let f =
            facts("SELECT pg_catalog.\"set_config\"('a', 'b', false), lower(x), db.s.f() FROM t");
        assert_eq!(
            names(&f.functions),
            vec!["pg_catalog.set_config", "lower", "s.f"]
        );
    }

    #[test]
    fn finds_operators_types_and_reg_literals() {
        let f = facts(
            "SELECT a OPERATOR(pg_catalog.+) 1, b = ANY (SELECT 1), x::int, CAST(y AS public.mood), \
             'pg_read_file'::regproc, 'pg_catalog.\"Odd\"(text)'::regprocedure, '+'::regoper \
             FROM t TABLESAMPLE system (1) ORDER BY c USING >",
        );
        assert_eq!(names(&f.operators), vec!["pg_catalog.+", "=", ">"]);
        assert_eq!(
            names(&f.types),
            vec![
                "pg_catalog.int4",
                "public.mood",
                "regproc",
                "regprocedure",
                "regoper"
            ]
        );
        assert_eq!(
            names(&f.function_literals),
            vec!["pg_read_file", "pg_catalog.Odd"]
        );
        assert_eq!(names(&f.operator_literals), vec!["+"]);
        assert_eq!(names(&f.functions), vec!["system"]);
    }

    #[test]
    fn between_is_its_two_comparisons() {
        for sql in [
            "SELECT 1 WHERE 2 BETWEEN 1 AND 3",
            "SELECT 1 WHERE 2 NOT BETWEEN SYMMETRIC 3 AND 1",
        ] {
            assert_eq!(names(&facts(sql).operators), vec![">=", "<="], "{sql}");
        }
    }

    #[test]
    fn reg_literals_fold_like_postgresql() {
        let q = |t: &str| QualName::from_reg_literal(t).map(|q| names(&[q])[0].clone());
        assert_eq!(q("PG_READ_FILE").as_deref(), Some("pg_read_file"));
        assert_eq!(
            q(" pg_catalog . pg_ls_dir (text)").as_deref(),
            Some("pg_catalog.pg_ls_dir")
        );
        assert_eq!(q("\"a\"\"b\".\"C d\"").as_deref(), Some("a\"b.C d"));
        assert_eq!(q(""), None);
    }

    #[test]
    fn finds_relations_and_targets() {
        let f = facts("WITH d AS (DELETE FROM s.t RETURNING *) UPDATE u SET a = 1 FROM d, pg_catalog.pg_authid");
        let rels: Vec<(&str, &str, bool)> = f
            .relations
            .iter()
            .map(|r| (r.schema.as_str(), r.name.as_str(), r.written))
            .collect();
        assert!(rels.contains(&("s", "t", true)), "{rels:?}");
        assert!(rels.contains(&("", "u", true)), "{rels:?}");
        assert!(rels.contains(&("", "d", false)), "{rels:?}");
        assert!(
            rels.contains(&("pg_catalog", "pg_authid", false)),
            "{rels:?}"
        );
        assert_eq!(f.modifying, 2);
    }

    #[test]
    fn lock_targets() {
        let f = facts("LOCK TABLE a, b.c IN ACCESS EXCLUSIVE MODE");
        assert!(f.relations.iter().all(|r| r.written), "{:?}", f.relations);
        assert_eq!(f.relations.len(), 2);
    }

    #[test]
    fn attributes() {
        let f = facts("SELECT ('x'::text).pg_read_file, t.c.lo_get, t.c FROM t");
        assert_eq!(f.attributes, vec!["pg_read_file", "lo_get"]);
    }

    #[test]
    fn string_constants_are_not_names() {
        let f = facts("SELECT 'pg_read_file', \"pg_read_file\" FROM t WHERE a = 'lo_import'");
        assert!(f.functions.is_empty(), "{:?}", f.functions);
        assert!(f.attributes.is_empty(), "{:?}", f.attributes);
    }

    #[test]
    fn locking_and_into() {
        assert!(facts("SELECT * FROM (SELECT * FROM t FOR UPDATE) s").locking);
        assert!(facts("SELECT * INTO n FROM t").select_into);
        assert!(!facts("CREATE TABLE n AS SELECT * FROM t").select_into);
    }
}
