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

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Called functions (also trigger functions and functions being created),
    /// by the last component of their name, as written after the parser's
    /// case folding.
    pub functions: Vec<String>,
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

struct Frame {
    name: &'static str,
    field: &'static str,
    /// Strings gathered for this frame: name components of a function,
    /// a ColumnRef or an A_Indirection, or schema and name of a RangeVar.
    strings: Vec<String>,
    /// RangeVar only: it is the target of a write.
    written: bool,
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
            written,
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
            }
            // `a.b` is table a's column b, or b(a) on a's whole row (a
            // composite, which none of the refused functions accept);
            // `a.b.c` can be c(a.b) on any column type.
            "ColumnRef" => self
                .facts
                .attributes
                .extend(frame.strings.into_iter().skip(2)),
            "AIndirection" => self.facts.attributes.extend(frame.strings),
            _ => {
                if let Some(last) = frame.strings.into_iter().last() {
                    self.facts.functions.push(last);
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
                self.push_string(0, value);
            }
            return;
        }
        // A name component: String.sval in Node.node in a list field.
        if top.name == "String" && top.field == "sval" {
            let is_item = matches!(self.frame(1), Some(f) if f.name == "Node" && f.field == "node");
            let owner = self.frame(2).map(|f| (f.name, f.field));
            let wanted = matches!(
                owner,
                Some((_, "funcname"))
                    | Some(("ColumnRef", "fields"))
                    | Some(("AIndirection", "indirection"))
            );
            if is_item && wanted {
                self.push_string(2, value);
            }
        }
    }

    fn push_string(&mut self, from_top: usize, value: &str) {
        if let Some(i) = self.frames.len().checked_sub(from_top + 1) {
            if let Some(frame) = self.frames.get_mut(i) {
                frame.strings.push(value.to_owned());
            }
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

    #[test]
    fn finds_function_names_last_component() {
        let f = facts("SELECT pg_catalog.\"set_config\"('a', 'b', false), lower(x) FROM t");
        assert_eq!(f.functions, vec!["set_config", "lower"]);
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
