"""Two-person write approval (`docs/approval.md`): submit a change that
another person approves before it runs; list, show, approve, reject and
cancel change requests.

    from iam_lib_pgconnect import approval

    request = approval.submit(
        "INC-4711: disable a leaver",
        [("UPDATE idm_identity SET disabled = true WHERE username = %s", ["jnovak"])],
        user="czechidm")
    print(request["id"], request["statements"][0]["dry_run_rows"])

    # another person:
    done = approval.approve(request["id"], comment="checked with HR")
    print(done["state"])    # "executed", or "drifted" (nothing committed)

Each call opens its own connection to the broker (no database session);
the broker acts on the caller's OS identity. Requests are dicts as the
broker sends them (`docs/protocol.md`, "The change request object").
Refusals raise the library's usual exceptions: PolicyDenied (no grant, your
own request), ForbiddenStatement, BadRequest (not pending, expired),
ContainerNotFound (no such request), and the database's errors from the
dry run.
"""

from .connection import (
    OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, IamDbConnection, _connect_socket, socket_path)
from .errors import InterfaceError
from .adapt import adapt

__all__ = ["submit", "list_requests", "show", "approve", "reject", "cancel"]


class _Approvals(IamDbConnection):
    """A connection that only says hello: the request_* operations need no
    session."""

    _FINAL = dict(
        IamDbConnection._FINAL,
        request_submit="request",
        request_list="requests",
        request_show="request",
        request_approve="request",
        request_reject="request",
        request_cancel="request",
    )

    def request(self, op, fields):
        hello = self._call(
            "hello", {"version": PROTOCOL_VERSION, "client": "iam-lib-pgconnect (python)"}
        )[0]
        version = hello.get("version")
        if not isinstance(version, int) or not OLDEST_PROTOCOL_VERSION <= version <= PROTOCOL_VERSION:
            raise InterfaceError(
                "the broker speaks protocol version %r, this library versions %d to %d"
                % (version, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION)
            )
        self._max_line = hello.get("max_line_bytes")
        return self._call(op, fields)[-1]


def _call(op, fields):
    conn = _Approvals(_connect_socket(socket_path()))
    try:
        return conn.request(op, fields)
    finally:
        conn._drop()


def submit(reason, statements, db="czechidm", user="postgres", dbname=None):
    """Submits a change: `statements` is a list of SQL strings or
    `(sql, params)` pairs, run in order in one transaction as database user
    `user`. The broker checks them as in a write session, dry-runs them
    (rolled back) and stores the request; returns it, `pending`, with each
    statement's `dry_run_rows`."""
    specs = []
    for statement in statements:
        if isinstance(statement, str):
            sql, params = statement, None
        else:
            sql, params = statement
        sql, values = adapt(sql, params)
        specs.append({"sql": sql, "params": values})
    fields = {"db": db, "user": user, "reason": reason, "statements": specs}
    if dbname is not None:
        fields["dbname"] = dbname
    return _call("request_submit", fields)["request"]


def list_requests(all=False):  # noqa: A002 - the protocol's name
    """The requests you may see (your own, and those you may approve),
    oldest first: pending ones, or every state with `all=True`."""
    return _call("request_list", {"all": bool(all)})["requests"]


def show(request_id):
    """One request: statements, parameters, reason, requester, counts."""
    return _call("request_show", {"request": request_id})["request"]


def approve(request_id, comment=None):
    """Approves someone else's request, which runs it at once; the answer's
    `state` is "executed", or "drifted" when a statement's row count
    differed from its dry run (rolled back, nothing changed)."""
    fields = {"request": request_id}
    if comment is not None:
        fields["comment"] = comment
    return _call("request_approve", fields)["request"]


def reject(request_id, comment):
    """Rejects someone else's request; `comment` says why."""
    return _call("request_reject", {"request": request_id, "comment": comment})["request"]


def cancel(request_id):
    """Withdraws your own pending request."""
    return _call("request_cancel", {"request": request_id})["request"]
