use crate::error::ErrorInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One frame sent by the broker. On the wire the variant is the `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to `hello`.
    Hello {
        /// Echo of the request id.
        id: u64,
        /// The broker's protocol version.
        version: u32,
        /// Broker name and version, e.g. `iam-pgbroker/0.1.0`.
        server: String,
        /// The broker's hard limit on one request line, in bytes.
        max_line_bytes: usize,
    },
    /// Answer to `open`: the session is ready.
    Opened(Opened),
    /// First frame of a `query` answer: the result's columns.
    Columns {
        /// Echo of the request id.
        id: u64,
        /// Columns in result order.
        columns: Vec<Column>,
    },
    /// A chunk of rows, each an array in column order.
    Rows {
        /// Echo of the request id.
        id: u64,
        /// The rows of this chunk.
        rows: Vec<Vec<Value>>,
    },
    /// Last frame of `query` and the only frame of `execute`.
    Done {
        /// Echo of the request id.
        id: u64,
        /// Rows returned (query) or affected (execute).
        rows: u64,
        /// The command tag's verb: `SELECT`, `UPDATE`, …
        command: String,
    },
    /// Answer to `commit`, `rollback` and `close`.
    Ok {
        /// Echo of the request id.
        id: u64,
    },
    /// Answer to `ping`.
    Pong {
        /// Echo of the request id.
        id: u64,
    },
    /// Answer to `status`: the broker's counters (see `docs/protocol.md`).
    Status {
        /// Echo of the request id.
        id: u64,
        /// Uptime, version, sessions, statements, errors, pools.
        status: Value,
    },
    /// Answer to `instances`.
    Instances {
        /// Echo of the request id.
        id: u64,
        /// Instance names, sorted.
        instances: Vec<String>,
    },
    /// Answer to `sessions`.
    Sessions {
        /// Echo of the request id.
        id: u64,
        /// Each open session: `session`, `uid`, `user`, `pid`, `process`,
        /// `cmdline`, `unit`, `db`, `dbname`, `db_user`, `mode`, `rule`,
        /// `opened`, `state`, `transaction_age_ms`, `statement`,
        /// `statement_ms`, `backend_pid`.
        sessions: Vec<Value>,
    },
    /// Answer to `request_submit`, `request_show`, `request_approve`,
    /// `request_reject` and `request_cancel`: the change request as it is
    /// now.
    Request {
        /// Echo of the request id.
        id: u64,
        /// The change request (boxed: it is much larger than the other
        /// frames).
        request: Box<crate::ApprovalRequest>,
    },
    /// Answer to `request_list`.
    Requests {
        /// Echo of the request id.
        id: u64,
        /// The change requests the caller may see, oldest first.
        requests: Vec<crate::ApprovalRequest>,
        /// Ids of request files the broker refused to read because they
        /// were changed outside the broker (their MAC does not match).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<String>,
    },
    /// A piece of `COPY … TO STDOUT` data, as PostgreSQL sends it (whole
    /// rows, text or CSV); the answer to `copy_out` ends with `done`.
    CopyData {
        /// Echo of the request id.
        id: u64,
        /// The data.
        data: String,
    },
    /// The answer to `copy_in`: PostgreSQL waits for the data.
    CopyReady {
        /// Echo of the request id.
        id: u64,
    },
    /// A message PostgreSQL sent while the request ran (`NOTICE`,
    /// `WARNING`, `INFO`, … as `client_min_messages` lets through), in the
    /// order it sent them, before the frame that ends the answer. Protocol
    /// version 2 only.
    Notice {
        /// Echo of the request id.
        id: u64,
        /// `severity`, `sqlstate`, `message` and every other field
        /// PostgreSQL sent (`code` is `database`).
        notice: ErrorInfo,
    },
    /// The request failed. For `query`, an error may also follow a
    /// `columns` frame and some `rows` (the statement failed midway).
    Error {
        /// Echo of the request id; `null` when the line had no readable id.
        id: Option<u64>,
        /// What went wrong.
        error: ErrorInfo,
    },
}

/// Body of the `opened` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    /// Echo of the request id.
    pub id: u64,
    /// The broker's session id (also in the audit and in PostgreSQL's
    /// `application_name`).
    pub session: String,
    /// Database instance.
    pub db: String,
    /// Database name.
    pub dbname: String,
    /// Database user.
    pub user: String,
    /// Whether the session is read-only.
    pub readonly: bool,
    /// Name of the policy rule that granted the session.
    pub rule: String,
    /// Who the broker believes the client is (from the kernel).
    pub identity: Identity,
}

/// A peer's identity as the broker read it from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// User name, when the user database knows it.
    pub user: Option<String>,
    /// Primary group id.
    pub gid: u32,
    /// Names of all groups (primary and supplementary).
    pub groups: Vec<String>,
    /// Process id.
    pub pid: i32,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as PostgreSQL reports it.
    pub name: String,
    /// PostgreSQL type name (`int8`, `varchar`, `_text` for `text[]`, …).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The type's OID (protocol version 2), to decode the text form by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<u32>,
}

impl Response {
    /// The request id this frame answers, if any.
    pub fn id(&self) -> Option<u64> {
        match self {
            Response::Hello { id, .. }
            | Response::Columns { id, .. }
            | Response::Rows { id, .. }
            | Response::Done { id, .. }
            | Response::Ok { id }
            | Response::Pong { id }
            | Response::Status { id, .. }
            | Response::Sessions { id, .. }
            | Response::Instances { id, .. }
            | Response::Request { id, .. }
            | Response::Requests { id, .. }
            | Response::Notice { id, .. }
            | Response::CopyData { id, .. }
            | Response::CopyReady { id } => Some(*id),
            Response::Opened(o) => Some(o.id),
            Response::Error { id, .. } => *id,
        }
    }

    /// Encodes the frame as one line, newline included.
    pub fn encode(&self) -> String {
        // Serializing plain data (no maps with non-string keys) cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Decodes one frame (with or without the trailing newline).
    ///
    /// `rows` frames — nearly all the bytes of a big result — skip serde's
    /// generic path for internally tagged enums, which first buffers the
    /// whole frame into an intermediate tree to find `type`: a line that
    /// starts the way the broker writes them is read straight into its
    /// fields. Any other spelling takes the generic path, with the same
    /// result.
    pub fn decode(line: &[u8]) -> Result<Response, serde_json::Error> {
        const ROWS: &[u8] = br#"{"type":"rows","#;
        if line.starts_with(ROWS) {
            // One UTF-8 check of the whole frame, instead of one per string
            // inside it; invalid bytes fail the generic path's way.
            let frame: RowsFrame = match std::str::from_utf8(line) {
                Ok(text) => serde_json::from_str(text)?,
                Err(_) => serde_json::from_slice(line)?,
            };
            return Ok(Response::Rows {
                id: frame.id,
                rows: frame.rows.0,
            });
        }
        // The other two frames of every query, straight into their variant
        // (serde buffers an internally tagged enum's fields first). Any
        // line this pass does not take as it is goes the generic way,
        // which decides what it is.
        const COLUMNS: &[u8] = br#"{"type":"columns","#;
        const DONE: &[u8] = br#"{"type":"done","#;
        if line.starts_with(COLUMNS) {
            if let Ok(f) = serde_json::from_slice::<ColumnsFrame>(line) {
                return Ok(Response::Columns {
                    id: f.id,
                    columns: f.columns,
                });
            }
        } else if line.starts_with(DONE) {
            if let Ok(f) = serde_json::from_slice::<DoneFrame>(line) {
                return Ok(Response::Done {
                    id: f.id,
                    rows: f.rows,
                    command: f.command,
                });
            }
        }
        serde_json::from_slice(line)
    }
}

/// A `columns` frame without the tag (see [`Response::decode`]).
#[derive(Deserialize)]
struct ColumnsFrame {
    #[serde(rename = "type")]
    _type: serde::de::IgnoredAny,
    id: u64,
    columns: Vec<Column>,
}

/// A `done` frame without the tag (see [`Response::decode`]).
#[derive(Deserialize)]
struct DoneFrame {
    #[serde(rename = "type")]
    _type: serde::de::IgnoredAny,
    id: u64,
    rows: u64,
    command: String,
}

/// A `rows` frame without the tag (see [`Response::decode`]).
#[derive(Deserialize)]
struct RowsFrame {
    #[serde(rename = "type")]
    _type: serde::de::IgnoredAny,
    id: u64,
    rows: RowList,
}

/// Rows, each allocated at the width of the row before it (serde's `Vec`
/// starts small and grows: two allocations per seven-column row).
struct RowList(Vec<Vec<Value>>);

impl<'de> Deserialize<'de> for RowList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> serde::de::Visitor<'de> for Rows {
            type Value = RowList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of rows")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RowList, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                let mut width = 0;
                while let Some(row) = seq.next_element_seed(Row { width })? {
                    width = row.len();
                    rows.push(row);
                }
                Ok(RowList(rows))
            }
        }
        struct Row {
            width: usize,
        }
        impl<'de> serde::de::DeserializeSeed<'de> for Row {
            type Value = Vec<Value>;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Vec<Value>, D::Error> {
                d.deserialize_seq(self)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Row {
            type Value = Vec<Value>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a row (an array of values)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<Value>, A::Error> {
                // Bounded: a hostile width cannot reserve much.
                let mut row = Vec::with_capacity(self.width.min(4096));
                while let Some(v) = seq.next_element()? {
                    row.push(v);
                }
                Ok(row)
            }
        }
        d.deserialize_seq(Rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn rows_frames_decode_the_same_by_either_path() {
        let line = br#"{"type":"rows","id":7,"rows":[[1,"a\u00e9",null,[1,2],{"k":1.5}],[2,"b",true,[],{}]]}"#;
        let fast = Response::decode(line).unwrap();
        let generic: Response = serde_json::from_slice(line).unwrap();
        assert_eq!(fast, generic);
        // Another field order takes the generic path.
        let reordered = br#"{"id":7,"rows":[[1]],"type":"rows"}"#;
        assert_eq!(
            Response::decode(reordered).unwrap(),
            Response::Rows {
                id: 7,
                rows: vec![vec![Value::from(1)]]
            }
        );
        // Rows of differing widths keep their own widths.
        let ragged = br#"{"type":"rows","id":1,"rows":[[1,2,3],[],[4],[5,6,7,8,9]]}"#;
        assert_eq!(
            Response::decode(ragged).unwrap(),
            serde_json::from_slice::<Response>(ragged).unwrap()
        );
        // Invalid UTF-8 inside a string fails like the generic path.
        let mut bad = br#"{"type":"rows","id":1,"rows":[["x"]]}"#.to_vec();
        bad[32] = 0xff;
        assert!(Response::decode(&bad).is_err());
        assert!(serde_json::from_slice::<Response>(&bad).is_err());
        // Broken frames fail either way.
        assert!(Response::decode(br#"{"type":"rows","id":7}"#).is_err());
        assert!(Response::decode(br#"{"type":"rows","id":7,"rows":[[1]"#).is_err());
    }

    #[test]
    fn the_quick_passes_decode_as_the_generic_one() {
        let lines = [
            r#"{"type":"columns","id":3,"columns":[{"name":"n","type":"int8","oid":20},{"name":"é\"","type":"_text"}]}"#,
            r#"{"type":"columns","id":3,"columns":[],"extra":[1,2]}"#,
            r#"{"type":"columns","id":3,"id":4,"columns":[]}"#,
            r#"{"type":"columns","id":-3,"columns":[]}"#,
            r#"{"type":"columns","id":3}"#,
            r#"{"type":"columns","id":3,"columns":[{"name":"n"}]}"#,
            r#"{"type":"done","id":4,"rows":2,"command":"SELECT"}"#,
            r#"{"type":"done","id":4,"rows":2,"command":"SELECT","type":"ok"}"#,
            r#"{"type":"done","id":4,"rows":2}"#,
            r#"{"type":"done","id":4,"rows":2.5,"command":"x"}"#,
            r#"{"type":"done","id":4,"rows":2,"command":"\u00e9"}  "#,
        ];
        for line in lines {
            let quick = Response::decode(line.as_bytes()).map_err(|e| e.to_string());
            let generic =
                serde_json::from_slice::<Response>(line.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(quick, generic, "{line}");
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Response::Columns {
                id: 3,
                columns: vec![Column {
                    name: "n".into(),
                    type_name: "int8".into(),
                    oid: Some(20),
                }],
            },
            Response::Rows {
                id: 3,
                rows: vec![vec![Value::from(1)], vec![Value::Null]],
            },
            Response::Done {
                id: 3,
                rows: 2,
                command: "SELECT".into(),
            },
            Response::Notice {
                id: 3,
                notice: ErrorInfo {
                    severity: Some("NOTICE".into()),
                    sqlstate: Some("00000".into()),
                    ..ErrorInfo::new(ErrorCode::Database, "ahoj")
                },
            },
            Response::CopyData {
                id: 4,
                data: "1\tDvořák\n".into(),
            },
            Response::CopyReady { id: 5 },
            Response::Error {
                id: None,
                error: ErrorInfo {
                    sqlstate: Some("25006".into()),
                    ..ErrorInfo::new(ErrorCode::ReadOnly, "cannot execute UPDATE")
                },
            },
        ];
        for frame in frames {
            let line = frame.encode();
            assert_eq!(Response::decode(line.as_bytes()).unwrap(), frame);
        }
    }

    #[test]
    fn unknown_codes_decode() {
        let line = br#"{"type":"error","id":1,"error":{"code":"brand_new","message":"x"}}"#;
        let Response::Error { error, .. } = Response::decode(line).unwrap() else {
            panic!("not an error frame")
        };
        assert_eq!(error.code, ErrorCode::Unknown);
    }
}
