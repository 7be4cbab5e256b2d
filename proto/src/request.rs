use crate::error::DecodeError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request line: an `id` chosen by the client and an operation.
///
/// The broker echoes `id` on every frame of the answer, so a client can match
/// answers to requests; ids need not be unique, but the client libraries
/// count up from 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// Echoed on every frame of the answer.
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
}

/// The operations of the protocol. On the wire the variant is the `op` field
/// (`"hello"`, `"open"`, …) and the variant's fields sit beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Exchange protocol versions. Optional; must come first when sent.
    Hello {
        /// The client's protocol version.
        version: u32,
        /// Free-form client name and version, for the log (`iam-pg/0.1.0`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Open the session's database connection. Exactly once per connection.
    Open(OpenParams),
    /// Run one statement and stream its rows back.
    Query {
        /// One SQL statement, with `$1..$n` or `%s` placeholders.
        sql: String,
        /// Parameter values, bound as text (see `docs/protocol.md`).
        #[serde(default)]
        params: Vec<Value>,
    },
    /// Run one statement and answer with the number of rows it affected.
    Execute {
        /// One SQL statement, with `$1..$n` or `%s` placeholders.
        sql: String,
        /// Parameter values, bound as text.
        #[serde(default)]
        params: Vec<Value>,
    },
    /// Commit the open transaction (a no-op when none is open).
    Commit,
    /// Roll back the open transaction (a no-op when none is open).
    Rollback,
    /// Roll back whatever is open and end the session. The broker closes
    /// the connection after answering.
    Close,
    /// Liveness check; answered with `pong`.
    Ping,
    /// The broker's counters (root and the admin group only); answered with
    /// `status`. Needs no session.
    Status,
    /// The open sessions (root and the admin group only); answered with
    /// `sessions`. Needs no session.
    Sessions,
    /// The instances the caller's rules name (running ones for `"*"`);
    /// answered with `instances`. Needs no session (shell completion).
    Instances,
    /// Cancel the statement session `session` runs now (its own OS user,
    /// root and the admin group); answered with `ok`. Audited.
    Cancel {
        /// The session id (`opened.session`).
        session: String,
    },
    /// End session `session`: its statement cancelled, its transaction
    /// rolled back, its connection closed (root and the admin group);
    /// answered with `ok`. Audited.
    Terminate {
        /// The session id.
        session: String,
    },
    /// `SAVEPOINT name` in the broker's transaction (which it begins when
    /// none is open); answered with `ok`. Audited. The SQL form is refused
    /// by the guard: transaction control is the broker's.
    Savepoint {
        /// The savepoint's name as PostgreSQL keeps it (case matters: SQL's
        /// `SAVEPOINT Foo` is `foo`); 1–63 bytes, no NUL.
        name: String,
    },
    /// `RELEASE SAVEPOINT name`; answered with `ok`. Audited.
    ReleaseSavepoint {
        /// The savepoint's name.
        name: String,
    },
    /// `ROLLBACK TO SAVEPOINT name`: undoes what ran since, and makes a
    /// transaction that failed after the savepoint usable again; answered
    /// with `ok`. Audited.
    RollbackToSavepoint {
        /// The savepoint's name.
        name: String,
    },
    /// Run `COPY … TO STDOUT` (text or CSV format); answered with
    /// `copy_data` frames holding the data as PostgreSQL sends it, then
    /// `done`. Audited as the statement.
    CopyOut {
        /// One `COPY … TO STDOUT` statement.
        sql: String,
    },
    /// Start `COPY … FROM STDIN` (write sessions); answered with
    /// `copy_ready`. Then send the data as `copy_data` requests (not
    /// answered) and end with `copy_done` (answered with `done`) or
    /// `copy_fail` (answered with the error PostgreSQL gives).
    CopyIn {
        /// One `COPY … FROM STDIN` statement.
        sql: String,
    },
    /// A piece of `COPY FROM STDIN` data (any split: rows may span
    /// pieces). Not answered; an error shows at `copy_done`.
    CopyData {
        /// The data, as text.
        data: String,
    },
    /// The end of `COPY FROM STDIN` data; answered with `done`.
    CopyDone,
    /// Abandon `COPY FROM STDIN`: PostgreSQL fails the statement with
    /// `message`; answered with that error.
    CopyFail {
        /// Why, for PostgreSQL's error.
        message: String,
    },
    /// Submit a change for approval: guard, dry run, store. Answered with
    /// `request`. Needs no session (as all `request_*` operations).
    RequestSubmit(crate::SubmitParams),
    /// The change requests the caller may see; answered with `requests`.
    RequestList {
        /// Requests in every state, not only pending ones.
        #[serde(default)]
        all: bool,
    },
    /// One change request; answered with `request`.
    RequestShow {
        /// The request's id.
        request: String,
    },
    /// Approve a change request, which runs it; answered with `request`.
    RequestApprove {
        /// The request's id.
        request: String,
        /// The approver's comment, for the requester and the audit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Reject a change request; answered with `request`.
    RequestReject {
        /// The request's id.
        request: String,
        /// Why (required).
        comment: String,
    },
    /// Withdraw one's own change request; answered with `request`.
    RequestCancel {
        /// The request's id.
        request: String,
    },
}

/// Parameters of [`Op::Open`]. Every field has the seed library's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenParams {
    /// Database instance: the container is `{db}-db`. Default `czechidm`.
    #[serde(default = "default_db")]
    pub db: String,
    /// Database user to connect as. Default `postgres`.
    #[serde(default = "default_user")]
    pub user: String,
    /// Database name inside the instance. Default: the instance name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// Read-only session (the default). `false` asks for a write session,
    /// which the policy must grant.
    #[serde(default = "default_true")]
    pub readonly: bool,
    /// Why the session is opened; kept for the audit, required by rules
    /// with `require_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub(crate) fn default_db() -> String {
    crate::DEFAULT_DB.to_owned()
}

pub(crate) fn default_user() -> String {
    crate::DEFAULT_DB_USER.to_owned()
}

fn default_true() -> bool {
    true
}

impl Default for OpenParams {
    fn default() -> Self {
        OpenParams {
            db: default_db(),
            user: default_user(),
            dbname: None,
            readonly: true,
            reason: None,
        }
    }
}

const OPS: &[&str] = &[
    "hello",
    "open",
    "query",
    "execute",
    "commit",
    "rollback",
    "close",
    "ping",
    "status",
    "request_submit",
    "request_list",
    "request_show",
    "request_approve",
    "request_reject",
    "request_cancel",
    "sessions",
    "instances",
    "cancel",
    "terminate",
    "savepoint",
    "release_savepoint",
    "rollback_to_savepoint",
    "copy_out",
    "copy_in",
    "copy_data",
    "copy_done",
    "copy_fail",
];

/// `text` as a JSON string, quotes included.
pub fn json_string(text: &str) -> String {
    // Serializing a string does not fail.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

impl Request {
    /// Decodes one line (with or without its trailing newline).
    ///
    /// The error says which rule the line broke; [`Request::peek_id`] recovers
    /// the `id` of a line that did not decode, so the error frame can carry it.
    pub fn decode(line: &[u8]) -> Result<Request, DecodeError> {
        let text = std::str::from_utf8(line).map_err(|_| DecodeError::NotUtf8)?;
        match Request::decode_statement(text) {
            Some(request) => Ok(request),
            None => Request::decode_general(text),
        }
    }

    /// Any line, through a generic JSON value: which rule a bad line broke.
    fn decode_general(text: &str) -> Result<Request, DecodeError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(DecodeError::InvalidJson("expected an object".into()));
        };
        let id = match map.remove("id") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                DecodeError::InvalidField("`id` must be a non-negative integer".into())
            })?,
            Some(_) => {
                return Err(DecodeError::InvalidField(
                    "`id` must be a non-negative integer".into(),
                ))
            }
            None => return Err(DecodeError::InvalidField("missing field `id`".into())),
        };
        match map.get("op") {
            Some(Value::String(op)) if OPS.contains(&op.as_str()) => {}
            Some(Value::String(op)) => return Err(DecodeError::UnknownOp(op.clone())),
            Some(_) => return Err(DecodeError::InvalidField("`op` must be a string".into())),
            None => return Err(DecodeError::InvalidField("missing field `op`".into())),
        }
        let op = serde_json::from_value::<Op>(Value::Object(map))
            .map_err(|e| DecodeError::InvalidField(e.to_string()))?;
        Ok(Request { id, op })
    }

    /// A `query` or `execute` line (`op`), with the statement text given
    /// as JSON already ([`json_string`]): what [`Request::encode`] makes
    /// of it. A client sending the same text again can keep its JSON.
    /// `None` only if the parameters did not serialize (they always do).
    pub fn statement_line(id: u64, op: &str, sql_json: &str, params: &[Value]) -> Option<Vec<u8>> {
        let params = serde_json::to_vec(params).ok()?;
        Some(Request::statement_line_raw(id, op, sql_json, &params))
    }

    /// [`Request::statement_line`] with the parameters' JSON array given as
    /// bytes (`[…]`), for a client that writes them itself.
    pub fn statement_line_raw(id: u64, op: &str, sql_json: &str, params_json: &[u8]) -> Vec<u8> {
        let mut line = Vec::with_capacity(sql_json.len() + params_json.len() + 48);
        line.extend_from_slice(b"{\"id\":");
        line.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        line.extend_from_slice(b",\"op\":\"");
        line.extend_from_slice(op.as_bytes());
        line.extend_from_slice(b"\",\"sql\":");
        line.extend_from_slice(sql_json.as_bytes());
        line.extend_from_slice(b",\"params\":");
        line.extend_from_slice(params_json);
        line.extend_from_slice(b"}\n");
        line
    }

    /// The common lines, `query` and `execute`, decoded in one pass
    /// straight into the request. `None` for everything else, and for any
    /// line this pass does not take as it is (an escaped `op`, a duplicate
    /// or unknown field, a wrong type): [`Request::decode`] then takes the
    /// general path, which accepts exactly what it always did and says
    /// precisely what is wrong.
    fn decode_statement(text: &str) -> Option<Request> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Line<'a> {
            id: u64,
            #[serde(borrow)]
            op: &'a str,
            sql: String,
            #[serde(default)]
            params: Vec<Value>,
        }
        let line: Line<'_> = serde_json::from_str(text).ok()?;
        let op = match line.op {
            "query" => Op::Query {
                sql: line.sql,
                params: line.params,
            },
            "execute" => Op::Execute {
                sql: line.sql,
                params: line.params,
            },
            _ => return None,
        };
        Some(Request { id: line.id, op })
    }

    /// Best-effort `id` of a line that may not decode as a whole.
    pub fn peek_id(line: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: u64,
        }
        serde_json::from_slice::<IdOnly>(line).ok().map(|r| r.id)
    }

    /// Encodes the request as one line, newline included.
    pub fn encode(&self) -> String {
        // The statement lines by hand, in the form serde gives them (its
        // flattened enum goes through a map of its own).
        let statement = match &self.op {
            Op::Query { sql, params } => Some(("query", sql, params)),
            Op::Execute { sql, params } => Some(("execute", sql, params)),
            _ => None,
        };
        if let Some((op, sql, params)) = statement {
            let line = Request::statement_line(self.id, op, &json_string(sql), params);
            // Made of strings and JSON: UTF-8.
            if let Some(Ok(line)) = line.map(String::from_utf8) {
                return line;
            }
        }
        // Serializing plain data into a String cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

impl Op {
    /// The operation's wire name (`"query"`, …), for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Open(_) => "open",
            Op::Query { .. } => "query",
            Op::Execute { .. } => "execute",
            Op::Commit => "commit",
            Op::Rollback => "rollback",
            Op::Close => "close",
            Op::Ping => "ping",
            Op::Status => "status",
            Op::Sessions => "sessions",
            Op::Instances => "instances",
            Op::Cancel { .. } => "cancel",
            Op::Terminate { .. } => "terminate",
            Op::Savepoint { .. } => "savepoint",
            Op::ReleaseSavepoint { .. } => "release_savepoint",
            Op::RollbackToSavepoint { .. } => "rollback_to_savepoint",
            Op::CopyOut { .. } => "copy_out",
            Op::CopyIn { .. } => "copy_in",
            Op::CopyData { .. } => "copy_data",
            Op::CopyDone => "copy_done",
            Op::CopyFail { .. } => "copy_fail",
            Op::RequestSubmit(_) => "request_submit",
            Op::RequestList { .. } => "request_list",
            Op::RequestShow { .. } => "request_show",
            Op::RequestApprove { .. } => "request_approve",
            Op::RequestReject { .. } => "request_reject",
            Op::RequestCancel { .. } => "request_cancel",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_op() {
        let cases: &[(&str, &str)] = &[
            (r#"{"id":1,"op":"hello","version":1}"#, "hello"),
            (r#"{"id":2,"op":"open"}"#, "open"),
            (r#"{"id":3,"op":"query","sql":"SELECT 1"}"#, "query"),
            (
                r#"{"id":4,"op":"execute","sql":"x","params":[1,"a",null]}"#,
                "execute",
            ),
            (r#"{"id":5,"op":"commit"}"#, "commit"),
            (r#"{"id":6,"op":"rollback"}"#, "rollback"),
            (r#"{"id":7,"op":"close"}"#, "close"),
            (r#"{"id":8,"op":"ping"}"#, "ping"),
            (r#"{"id":8,"op":"savepoint","name":"a"}"#, "savepoint"),
            (
                r#"{"id":8,"op":"release_savepoint","name":"a"}"#,
                "release_savepoint",
            ),
            (
                r#"{"id":8,"op":"rollback_to_savepoint","name":"a"}"#,
                "rollback_to_savepoint",
            ),
            (
                r#"{"id":8,"op":"copy_out","sql":"COPY t TO STDOUT"}"#,
                "copy_out",
            ),
            (
                r#"{"id":8,"op":"copy_in","sql":"COPY t FROM STDIN"}"#,
                "copy_in",
            ),
            (r#"{"id":8,"op":"copy_data","data":"1\n"}"#, "copy_data"),
            (r#"{"id":8,"op":"copy_done"}"#, "copy_done"),
            (r#"{"id":8,"op":"copy_fail","message":"no"}"#, "copy_fail"),
            (
                r#"{"id":9,"op":"request_submit","reason":"INC-1","statements":[{"sql":"UPDATE t SET x = %s","params":[1]}]}"#,
                "request_submit",
            ),
            (
                r#"{"id":10,"op":"request_list","all":true}"#,
                "request_list",
            ),
            (
                r#"{"id":11,"op":"request_show","request":"ab"}"#,
                "request_show",
            ),
            (
                r#"{"id":12,"op":"request_approve","request":"ab"}"#,
                "request_approve",
            ),
            (
                r#"{"id":13,"op":"request_reject","request":"ab","comment":"no"}"#,
                "request_reject",
            ),
            (
                r#"{"id":14,"op":"request_cancel","request":"ab"}"#,
                "request_cancel",
            ),
        ];
        for (line, name) in cases {
            let req = Request::decode(line.as_bytes()).unwrap();
            assert_eq!(req.op.name(), *name);
        }
    }

    #[test]
    fn the_statement_pass_decodes_as_the_general_one() {
        let lines = [
            r#"{"id":3,"op":"query","sql":"SELECT 1"}"#,
            r#"{"op":"execute","id":4,"params":[1,"a",null,[1,2],{"k":"v"}],"sql":"x"}"#,
            r#"  {"id":5,"op":"query","sql":"SELECT \"é\" \u00e9 %s","params":["\n"]}  "#,
            "{\"id\":6,\"op\":\"query\",\"sql\":\"SELECT 1\"}\n",
            r#"{"id":7,"op":"qu\u0065ry","sql":"SELECT 1"}"#,
            r#"{"id":8,"op":"query","sql":"a","sql":"b"}"#,
            r#"{"id":9,"id":10,"op":"query","sql":"a"}"#,
            r#"{"id":11,"op":"query","sql":"a","extra":1}"#,
            r#"{"id":12,"op":"query","sql":"a","params":null}"#,
            r#"{"id":13,"op":"query"}"#,
            r#"{"id":14.0,"op":"query","sql":"a"}"#,
            r#"{"id":-1,"op":"query","sql":"a"}"#,
            r#"{"id":15,"op":"execute","sql":5}"#,
            r#"{"id":16,"op":"querx","sql":"a"}"#,
            r#"{"id":17,"op":"ping","sql":"a"}"#,
            r#"{"id":18,"op":"query","sql":"a"} x"#,
        ];
        for line in lines {
            assert_eq!(
                Request::decode(line.as_bytes()),
                Request::decode_general(line),
                "{line}"
            );
        }
        assert!(Request::decode_statement(lines[0]).is_some());
        assert!(Request::decode_statement(lines[1]).is_some());
    }

    #[test]
    fn statement_lines_encode_as_serde_does() {
        let requests = [
            Request {
                id: 1,
                op: Op::Query {
                    sql: "SELECT \"é\"\n %s".into(),
                    params: vec![
                        Value::from("a\u{1}"),
                        Value::Null,
                        serde_json::json!({"k": [1.5]}),
                    ],
                },
            },
            Request {
                id: u64::MAX,
                op: Op::Execute {
                    sql: String::new(),
                    params: vec![],
                },
            },
        ];
        for r in requests {
            let mut serde = serde_json::to_string(&r).unwrap();
            serde.push('\n');
            assert_eq!(r.encode(), serde);
        }
    }

    #[test]
    fn open_defaults_follow_the_seed() {
        let req = Request::decode(br#"{"id":1,"op":"open"}"#).unwrap();
        assert_eq!(req.op, Op::Open(OpenParams::default()));
        let Op::Open(p) = req.op else { unreachable!() };
        assert_eq!(
            (p.db.as_str(), p.user.as_str(), p.readonly),
            ("czechidm", "postgres", true)
        );
    }

    #[test]
    fn round_trips() {
        let req = Request {
            id: 9,
            op: Op::Open(OpenParams {
                db: "bridge".into(),
                readonly: false,
                reason: Some("fix".into()),
                ..OpenParams::default()
            }),
        };
        let line = req.encode();
        assert!(line.ends_with('\n'));
        assert_eq!(Request::decode(line.trim_end().as_bytes()).unwrap(), req);
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        assert_eq!(Request::decode(b"\xff\xfe"), Err(DecodeError::NotUtf8));
        assert!(matches!(
            Request::decode(b"{"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            Request::decode(b"[1]"),
            Err(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            Request::decode(b"{\"op\":\"ping\"}"),
            Err(DecodeError::InvalidField(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"id":-1,"op":"ping"}"#),
            Err(DecodeError::InvalidField(_))
        ));
        assert_eq!(
            Request::decode(br#"{"id":1,"op":"drop_everything"}"#),
            Err(DecodeError::UnknownOp("drop_everything".into()))
        );
        assert!(matches!(
            Request::decode(br#"{"id":1,"op":"query","sql":42}"#),
            Err(DecodeError::InvalidField(_))
        ));
        assert!(matches!(
            Request::decode(br#"{"id":1,"op":"open","read_only":false}"#),
            Err(DecodeError::InvalidField(_))
        ));
        assert_eq!(Request::peek_id(br#"{"id":7,"op":"nope"}"#), Some(7));
        assert_eq!(Request::peek_id(b"garbage"), None);
    }
}
