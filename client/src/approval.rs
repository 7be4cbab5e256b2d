//! Two-person write approval: submit a change for someone else to approve,
//! list, show, approve, reject and cancel change requests.
//!
//! These operations need no database session: the broker acts on the
//! identity it reads from the kernel, so [`Config::approvals`] only says
//! hello. The database, user and reason of a change are given with the
//! [`Change`] itself.

use crate::param::{to_values, ToParam};
use crate::socket::Socket;
use crate::{wire, Config, Error};
use iam_pgbroker_proto::{
    ApprovalRequest, Op, Request, Response, StatementSpec, SubmitParams, DEFAULT_DB,
    DEFAULT_DB_USER, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use std::fmt;
use std::io::{BufReader, Write};

/// A change to submit for approval: statements that run in one
/// transaction, as one database user, once another person approves.
///
/// ```
/// use iam_pgconnect::Change;
///
/// let change = Change::new("INC-4711: disable a leaver")
///     .user("czechidm")
///     .statement(
///         "UPDATE idm_identity SET disabled = true WHERE username = %s",
///         &[&"jnovak"],
///     );
/// # let _ = change;
/// ```
#[derive(Debug, Clone)]
pub struct Change {
    params: SubmitParams,
}

impl Change {
    /// A change with no statements yet, on `czechidm` as `postgres`.
    /// `reason` (a ticket number) is required: the approver reads it.
    pub fn new(reason: impl Into<String>) -> Change {
        Change {
            params: SubmitParams {
                db: DEFAULT_DB.to_owned(),
                user: DEFAULT_DB_USER.to_owned(),
                dbname: None,
                reason: reason.into(),
                statements: Vec::new(),
            },
        }
    }

    /// The database instance, e.g. `"bridge"`.
    pub fn db(mut self, db: impl Into<String>) -> Change {
        self.params.db = db.into();
        self
    }

    /// The database user the change runs as, e.g. `"czechidm"`.
    pub fn user(mut self, user: impl Into<String>) -> Change {
        self.params.user = user.into();
        self
    }

    /// The database name inside the instance, when it differs from `db`.
    pub fn dbname(mut self, dbname: impl Into<String>) -> Change {
        self.params.dbname = Some(dbname.into());
        self
    }

    /// Appends a statement with its parameters (`%s` or `$n`).
    pub fn statement(mut self, sql: impl Into<String>, params: &[&dyn ToParam]) -> Change {
        self.params.statements.push(StatementSpec {
            sql: sql.into(),
            params: to_values(params),
        });
        self
    }
}

/// The answer to [`Approvals::list`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RequestList {
    /// The requests the caller may see, oldest first.
    pub requests: Vec<ApprovalRequest>,
    /// Ids of request files the broker refused to read because they were
    /// changed outside the broker.
    pub refused: Vec<String>,
}

/// A connection to the broker for change requests (no database session).
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// use iam_pgconnect::{Change, Config};
///
/// // The requester:
/// let mut approvals = Config::new().approvals()?;
/// let request = approvals.submit(
///     &Change::new("INC-4711: disable a leaver")
///         .user("czechidm")
///         .statement(
///             "UPDATE idm_identity SET disabled = true WHERE username = %s",
///             &[&"jnovak"],
///         ),
/// )?;
/// println!("{} waits for approval; dry run: {} row(s)", request.id, request.statements[0].dry_run_rows);
///
/// // Another person, later:
/// let done = Config::new().approvals()?.approve(&request.id, Some("checked"))?;
/// println!("{}", done.state);
/// # Ok(()) }
/// ```
pub struct Approvals {
    reader: BufReader<Socket>,
    next_id: u64,
    broken: Option<String>,
}

impl fmt::Debug for Approvals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approvals")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Connects to the broker for change requests: submit, list, show,
    /// approve, reject, cancel. The session settings of this `Config`
    /// (db, user, readonly, reason) are not used; the socket, timeouts and
    /// client name are.
    pub fn approvals(&self) -> Result<Approvals, Error> {
        let path = self.socket_path();
        let mut stream = Socket::connect(&path).map_err(|e| Error::connect(&path, e))?;
        let (read, write) = self.timeouts();
        stream
            .set_read_timeout(read)
            .and_then(|()| stream.set_write_timeout(write))
            .map_err(|e| Error::io("setting socket timeouts", e))?;
        let mut approvals = Approvals {
            reader: BufReader::new(stream),
            next_id: 1,
            broken: None,
        };
        let hello = Op::Hello {
            version: PROTOCOL_VERSION,
            client: Some(self.name().to_owned()),
        };
        match approvals.call(hello, "saying hello to iam-pgbroker")? {
            Response::Hello {
                version, server, ..
            } if !(OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) => {
                Err(Error::protocol(format!(
                    "{server} speaks protocol version {version}, this client speaks versions \
                     {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
                )))
            }
            Response::Hello { .. } => Ok(approvals),
            other => Err(wire::unexpected(&other, "hello")),
        }
    }
}

impl Approvals {
    /// Submits a change. The broker checks every statement as it would in
    /// a write session, runs them in a transaction it rolls back (the dry
    /// run), and stores the request with each statement's row count. The
    /// answer is the pending request: its `id` is what the approver needs.
    ///
    /// Fails with [`Error::is_denied`] without a `request` (or `write`)
    /// grant, `forbidden_statement` for a statement the guard refuses, and
    /// the database's error when the dry run fails (nothing is stored then).
    pub fn submit(&mut self, change: &Change) -> Result<ApprovalRequest, Error> {
        self.request(Op::RequestSubmit(change.params.clone()))
    }

    /// The requests the caller may see: its own, and those it may approve.
    /// Pending ones only, unless `all`.
    pub fn list(&mut self, all: bool) -> Result<RequestList, Error> {
        match self.call(Op::RequestList { all }, "listing change requests")? {
            Response::Requests {
                requests, refused, ..
            } => Ok(RequestList { requests, refused }),
            other => Err(self.violation(&other, "requests")),
        }
    }

    /// One request, with its statements, parameters and counts.
    pub fn show(&mut self, id: &str) -> Result<ApprovalRequest, Error> {
        self.request(Op::RequestShow {
            request: id.to_owned(),
        })
    }

    /// Approves a request, which runs it at once: the answer says whether
    /// it was `executed` or `drifted` (rolled back because a statement's
    /// row count differed from its dry run). Nobody may approve their own
    /// request.
    pub fn approve(&mut self, id: &str, comment: Option<&str>) -> Result<ApprovalRequest, Error> {
        self.request(Op::RequestApprove {
            request: id.to_owned(),
            comment: comment.map(str::to_owned),
        })
    }

    /// Rejects a request, saying why.
    pub fn reject(&mut self, id: &str, comment: &str) -> Result<ApprovalRequest, Error> {
        self.request(Op::RequestReject {
            request: id.to_owned(),
            comment: comment.to_owned(),
        })
    }

    /// Withdraws one's own pending request.
    pub fn cancel(&mut self, id: &str) -> Result<ApprovalRequest, Error> {
        self.request(Op::RequestCancel {
            request: id.to_owned(),
        })
    }

    fn request(&mut self, op: Op) -> Result<ApprovalRequest, Error> {
        let doing = format!("waiting for the answer to {}", op.name());
        match self.call(op, &doing)? {
            Response::Request { request, .. } => Ok(*request),
            other => Err(self.violation(&other, "request")),
        }
    }

    /// The instances the caller's rules name (for shell completion).
    pub fn instances(&mut self) -> Result<Vec<String>, Error> {
        match self.call(Op::Instances, "listing instances")? {
            Response::Instances { instances, .. } => Ok(instances),
            other => Err(self.violation(&other, "instances")),
        }
    }

    fn call(&mut self, op: Op, doing: &str) -> Result<Response, Error> {
        if let Some(why) = &self.broken {
            return Err(Error::closed(why));
        }
        let id = self.next_id;
        self.next_id += 1;
        let line = Request { id, op }.encode();
        let written = self.reader.get_mut().write_all(line.as_bytes());
        written.map_err(|e| self.broke(Error::io(doing, e)))?;
        let frame = wire::read_frame(&mut self.reader, doing).map_err(|e| self.broke(e))?;
        wire::answer(frame, id, doing).map_err(|e| self.broke(e))
    }

    fn broke(&mut self, err: Error) -> Error {
        if err.breaks_connection() && self.broken.is_none() {
            self.broken = Some(err.message().to_owned());
        }
        err
    }

    fn violation(&mut self, got: &Response, wanted: &str) -> Error {
        self.broke(wire::unexpected(got, wanted))
    }
}
