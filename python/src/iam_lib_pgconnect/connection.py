"""The connection: JSON lines over the broker's Unix socket
(`docs/protocol.md`): version 2 (every value as PostgreSQL's text, decoded
here by type OID as psycopg2 decodes it), or version 1 against an older
broker."""

import codecs
import io
import json
import os
import re
import socket
import threading

from . import errors
from .errors import (
    BrokerNotRunning,
    Error,
    InterfaceError,
    PolicyDenied,
    ProgrammingError,
    ServiceUnavailable,
)
from .adapt import adapt
from .typecasts import caster
from .values import decoder

PROTOCOL_VERSION = 2
#: the oldest broker protocol this library still speaks (typed JSON values)
OLDEST_PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/iam-pgbroker/pgbroker.sock"
SOCKET_ENV = "IAM_PGBROKER_SOCKET"
# Optional: sent as the session's `reason`, for policy rules with
# require_reason (tools cannot pass one through connect()).
REASON_ENV = "IAM_PGBROKER_REASON"
_DEFAULT_PORT = 5432


# Savepoint statements, which the broker runs as operations of its own (its
# guard refuses the SQL: transaction control is the broker's). A psycopg2
# program sends them as SQL, so the drop-in maps them.
_NAME = r'("(?:[^"]|"")+"|[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)'
_SAVEPOINT_SQL = [
    (re.compile(r"\s*SAVEPOINT\s+%s\s*;?\s*\Z" % _NAME, re.I), "savepoint"),
    (re.compile(r"\s*RELEASE\s+(?:SAVEPOINT\s+)?%s\s*;?\s*\Z" % _NAME, re.I),
     "release_savepoint"),
    (re.compile(r"\s*ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?%s\s*;?\s*\Z"
                % _NAME, re.I), "rollback_to_savepoint"),
]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _savepoint_op(sql):
    """(op, name) when `sql` is a savepoint statement, else None. The name
    as PostgreSQL keeps it: folded to lower case unless quoted."""
    if not isinstance(sql, str):
        return None
    for pattern, op in _SAVEPOINT_SQL:
        m = pattern.match(sql)
        if m:
            name = m.group(1)
            if name.startswith('"'):
                name = name[1:-1].replace('""', '"')
            else:
                # PostgreSQL folds only ASCII letters of unquoted names
                name = name.translate(_ASCII_LOWER)
            return op, name
    return None


_COPY_FROM_STDIN = re.compile(r"\bFROM\s+STDIN\b", re.I)


def socket_path():
    """The broker's socket: $IAM_PGBROKER_SOCKET, else the default path."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def _refuse_moved_settings(password_provider, host, port):
    # The old library chose the password source and the address itself; the
    # broker does now. A value the caller passed must not be silently ignored.
    moved = []
    if password_provider is not None:
        moved.append("password_provider=%r" % (password_provider,))
    if host is not None:
        moved.append("host=%r" % (host,))
    if str(port) != str(_DEFAULT_PORT):
        moved.append("port=%r" % (port,))
    if moved:
        raise ValueError(
            "iam_lib_pgconnect.connect(): %s is not supported: the password, "
            "the address and the port are decided by the iam-pgbroker service "
            "now (its configuration and policy, see /etc/iam-pgbroker/); "
            "remove the argument" % ", ".join(moved)
        )


# A thread blocked in recv() on a Unix stream socket is woken each time the
# broker reads what it sent (the kernel announces the freed room to every
# waiter), then sleeps again until the answer: a wake-up for nothing per
# statement, paid by both processes. With a timeout set, Python waits in
# poll() for input first, which only input wakes. The timeout is as long as
# poll() takes (24 days), so no statement ever meets it: "no timeout".
_WAIT_FOR_INPUT = 24 * 24 * 3600


def _connect_socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        sock.close()
        raise BrokerNotRunning(
            "cannot connect to the iam-pgbroker socket %s: %s (is iam-pgbroker "
            "running? set %s to use another socket)" % (path, e.strerror, SOCKET_ENV)
        ) from e
    except PermissionError as e:
        sock.close()
        raise PolicyDenied(
            "cannot connect to the iam-pgbroker socket %s: %s (only members of "
            "the socket's group, normally iam-pgbroker, may connect)" % (path, e.strerror)
        ) from e
    except OSError as e:
        sock.close()
        raise ServiceUnavailable(
            "cannot connect to the iam-pgbroker socket %s: %s" % (path, e)
        ) from e
    # After connect(): a blocking connect waits for a full backlog to drain,
    # a connect with a timeout would fail at once (EAGAIN).
    sock.settimeout(_WAIT_FOR_INPUT)
    return sock


def connect(db="czechidm", user="postgres", password_provider=None, host=None,
            port=5432, dbname=None, readonly=True):
    """Opens a session with PostgreSQL instance `db` as database user `user`
    through the iam-pgbroker service and returns an `IamDbConnection`.

    The session is read-only unless `readonly=False`, which the broker's
    policy must grant to the calling OS user. `password_provider`, `host` and
    `port` are decided by the broker: passing anything but the defaults
    raises ValueError.
    """
    _refuse_moved_settings(password_provider, host, port)
    fields = {"db": db, "user": user, "readonly": bool(readonly)}
    if dbname is not None:
        fields["dbname"] = dbname
    reason = os.environ.get(REASON_ENV)
    if reason:
        fields["reason"] = reason
    path = socket_path()
    conn = IamDbConnection(_connect_socket(path))
    conn._socket_path = path
    try:
        conn._open(fields)
    except BaseException:
        conn._drop()
        raise
    return conn


class IamDbConnection:
    """One session with one database through the broker.

    The first statement after connect(), commit() or rollback() starts a
    transaction; commit() and rollback() end it; close() rolls back whatever
    is still open. Used with `with`: commit and close when the block succeeds,
    rollback and close when it raises.
    """

    def __init__(self, sock):
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._lock = threading.Lock()
        self._next_id = 0
        self._max_line = None
        #: the protocol version agreed with the broker
        self.protocol = None
        #: the `opened` frame: session id, db, dbname, user, readonly, rule
        #: and the identity the broker saw
        self.info = {}
        #: PostgreSQL's notices (NOTICE, WARNING, INFO, ...) as psycopg2
        #: keeps them: "NOTICE:  text\n" strings, oldest first, the last 50
        #: while it is a list (any object with append() may replace it)
        self.notices = []
        self._socket_path = None

    # ------------------------------------------------------------ API

    def query(self, sql, params=None):
        """Runs one statement and returns its rows as a list of dicts keyed
        by column name."""
        sql, values = adapt(sql, params)
        savepoint = _savepoint_op(sql)
        if savepoint is not None:
            self._call(savepoint[0], {"name": savepoint[1]})
            return []
        frames = self._call("query", {"sql": sql, "params": values})
        columns = frames[0]["columns"]
        names = [c["name"] for c in columns]
        if self.protocol >= 2:
            casters = (caster(c.get("oid")) for c in columns)
        else:
            casters = (decoder(c["type"]) for c in columns)
        converters = [(i, conv) for i, conv in enumerate(casters) if conv is not None]
        result = []
        for frame in frames[1:-1]:
            for row in frame["rows"]:
                for i, conv in converters:
                    if row[i] is not None:
                        row[i] = conv(row[i])
                result.append(dict(zip(names, row)))
        return result

    def execute(self, sql, params=None):
        """Runs one statement and returns the number of rows it affected (or
        returned)."""
        sql, values = adapt(sql, params)
        savepoint = _savepoint_op(sql)
        if savepoint is not None:
            # psycopg2's rowcount for a statement that reports none
            self._call(savepoint[0], {"name": savepoint[1]})
            return -1
        frames = self._call("execute", {"sql": sql, "params": values})
        return frames[-1]["rows"]

    def commit(self):
        """Commits the transaction (nothing happens when none is open)."""
        self._call("commit", {})

    def rollback(self):
        """Rolls the transaction back (nothing happens when none is open)."""
        self._call("rollback", {})

    def cancel(self):
        """Cancels the statement this connection runs now, from another
        thread (psycopg2's `connection.cancel()`): the statement fails with
        QueryCanceledError (SQLSTATE 57014) and the transaction is aborted;
        roll back to go on. Sent over a socket of its own, so it does not
        wait for the running statement."""
        session = self.info.get("session")
        if session is None or self._socket_path is None:
            raise InterfaceError("the connection has no open session to cancel in")
        sock = _connect_socket(self._socket_path)
        try:
            sock.settimeout(5)
            reader = sock.makefile("rb")
            try:
                for n, (op, fields) in enumerate(
                        [("hello", {"version": PROTOCOL_VERSION,
                                    "client": "iam-lib-pgconnect (python, cancel)"}),
                         ("cancel", {"session": session})], 1):
                    sock.sendall(json.dumps(dict(fields, id=n, op=op)).encode() + b"\n")
                    frame = json.loads(reader.readline() or b"null")
                    if not isinstance(frame, dict):
                        raise ServiceUnavailable("iam-pgbroker closed the cancel connection")
                    if frame.get("type") == "error":
                        raise errors.from_frame(frame.get("error") or {})
            finally:
                reader.close()
        except OSError as e:
            if isinstance(e, Error):
                raise
            raise ServiceUnavailable("cancelling through iam-pgbroker failed: %s" % e) from e
        finally:
            sock.close()

    def copy_expert(self, sql, file, size=8192):
        """psycopg2's `cursor.copy_expert()`: `COPY ... TO STDOUT` writes
        the data to `file` (str for a text file, else UTF-8 bytes) as it
        arrives; `COPY ... FROM STDIN` (write sessions) reads `file` in
        pieces of `size` and sends them. Text and CSV formats."""
        if not _COPY_FROM_STDIN.search(sql):
            text = isinstance(file, io.TextIOBase)

            def write(frame):
                data = frame.get("data", "")
                file.write(data if text else data.encode("utf-8"))
            self._call("copy_out", {"sql": sql}, on_data=write)
            return
        with self._lock:
            self._call("copy_in", {"sql": sql}, locked=True)
            decoder = codecs.getincrementaldecoder("utf-8")()
            failure = None
            try:
                while True:
                    piece = file.read(size)
                    if not piece:
                        rest = decoder.decode(b"", final=True)
                        if rest:
                            self._send("copy_data", {"data": rest})
                        break
                    if isinstance(piece, bytes):
                        piece = decoder.decode(piece)
                    if piece:
                        self._send("copy_data", {"data": piece})
            except Exception as e:  # the file's error, or bad UTF-8
                failure = e
            if failure is None:
                self._call("copy_done", {}, locked=True)
                return
            try:
                self._call("copy_fail", {"message": str(failure)}, locked=True)
            except Error:
                pass  # PostgreSQL's error for the abandoned COPY
            raise failure

    def close(self):
        """Closes the session; an open transaction is rolled back. Closing a
        closed connection does nothing."""
        if self._sock is None:
            return
        try:
            self._call("close", {})
        except Error:
            pass  # the broker rolls back when the socket closes anyway
        finally:
            self._drop()

    @property
    def closed(self):
        """True once the connection is closed (by close() or a lost
        connection)."""
        return self._sock is None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.commit()
            elif not self.closed:
                try:
                    self.rollback()
                except Error:
                    pass  # the block's exception is the one to see; close rolls back
        finally:
            self.close()
        return False

    def __repr__(self):
        state = "closed" if self.closed else "session %s" % self.info.get("session")
        return "<IamDbConnection %s@%s (%s)>" % (
            self.info.get("user"), self.info.get("db"), state)

    # ------------------------------------------------------------ protocol

    def _open(self, fields):
        hello = self._call(
            "hello", {"version": PROTOCOL_VERSION, "client": "iam-lib-pgconnect (python)"}
        )[0]
        version = hello.get("version")
        # A broker answers with the highest version both speak; an older
        # one (version 1 only) answers 1 whatever was asked.
        if not isinstance(version, int) or not OLDEST_PROTOCOL_VERSION <= version <= PROTOCOL_VERSION:
            raise InterfaceError(
                "the broker speaks protocol version %r, this library versions %d to %d"
                % (version, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION)
            )
        self.protocol = version
        self._max_line = hello.get("max_line_bytes")
        self.info = self._call("open", fields)[0]

    # The frames that end the answer to each operation.
    _FINAL = {"hello": "hello", "open": "opened", "query": "done", "execute": "done",
              "commit": "ok", "rollback": "ok", "close": "ok", "savepoint": "ok",
              "release_savepoint": "ok", "rollback_to_savepoint": "ok", "copy_out": "done",
              "copy_in": "copy_ready", "copy_done": "done", "copy_fail": "done"}

    def _call(self, op, fields, on_data=None, locked=False):
        """Sends one request and returns the frames of its answer, the final
        one last; an `error` frame is raised as its exception. `copy_data`
        frames go to `on_data` as they come."""
        if locked:
            return self._call_locked(op, fields, on_data)
        with self._lock:
            return self._call_locked(op, fields, on_data)

    def _send(self, op, fields):
        """Sends a request that is not answered (copy_data)."""
        self._next_id += 1
        line = json.dumps(dict(fields, id=self._next_id, op=op)).encode() + b"\n"
        try:
            self._sock.sendall(line)
        except OSError as e:
            raise self._lost(e) from e

    def _call_locked(self, op, fields, on_data):
        if self._sock is None:
            raise InterfaceError("connection already closed")
        self._next_id += 1
        request = dict(fields, id=self._next_id, op=op)
        try:
            line = json.dumps(request, allow_nan=False).encode() + b"\n"
        except (TypeError, ValueError) as e:
            raise ProgrammingError("can't send the parameters: %s" % e) from None
        if self._max_line is not None and len(line) > self._max_line:
            raise ProgrammingError(
                "the request is %d bytes; the broker accepts at most %d"
                % (len(line), self._max_line)
            )
        try:
            self._sock.sendall(line)
        except OSError as e:
            # The broker may have said why before closing (busy right
            # after connecting, an idle connection's limit): that frame
            # is still in our receive buffer.
            said = self._unasked_error()
            if said is not None:
                raise said from None
            raise self._lost(e) from e
        return self._read_answer(self._next_id, self._FINAL[op], fields.get("sql"), on_data)

    def _unasked_error(self):
        """The error frame the broker sent before closing the connection,
        as its exception, or None."""
        try:
            self._sock.settimeout(1)
            frame = json.loads(self._reader.readline())
            if frame.get("type") == "error":
                self._drop()
                return errors.from_frame(frame.get("error") or {})
        except (OSError, ValueError, AttributeError):
            pass
        return None

    def _read_answer(self, request_id, final, sql=None, on_data=None):
        frames = []
        while True:
            try:
                raw = self._reader.readline()
            except OSError as e:
                raise self._lost(e) from e
            except KeyboardInterrupt:
                # Ctrl-C while PostgreSQL works: cancel the statement and
                # read its answer (QueryCanceledError), as psycopg2 does with
                # its wait_select callback; the connection stays usable.
                if final != "done":
                    raise
                try:
                    self.cancel()
                except Error:
                    self._drop()
                    raise
                continue
            if not raw:
                raise self._lost("it closed the connection")
            try:
                frame = json.loads(raw)
                kind = frame["type"]
                frame_id = frame["id"]
            except (ValueError, KeyError, TypeError):
                self._drop()
                raise InterfaceError("unexpected answer from iam-pgbroker: %r" % raw[:200])
            if kind == "error":
                if frame_id is None:
                    # unasked (busy, an idle connection's limit) or for a
                    # request it could not read: the broker closes the
                    # connection after it
                    self._drop()
                raise errors.from_frame(frame.get("error") or {}, sql)
            if kind == "notice":
                self._notice(frame.get("notice") or {})
                continue
            if frame_id != request_id:
                self._drop()
                raise InterfaceError(
                    "iam-pgbroker answered request %r while %d was expected"
                    % (frame_id, request_id))
            if kind == "copy_data" and on_data is not None:
                on_data(frame)
                continue
            frames.append(frame)
            if kind == final:
                return frames

    _NOTICES_KEPT = 50

    def _notice(self, notice):
        """Keeps a notice as psycopg2 does: libpq's text of it (severity,
        message, then DETAIL and HINT lines), appended to `notices`, a list
        trimmed to its last 50."""
        text = "%s:  %s\n" % (notice.get("severity") or "NOTICE", notice.get("message", ""))
        if notice.get("detail") is not None:
            text += "DETAIL:  %s\n" % notice["detail"]
        if notice.get("hint") is not None:
            text += "HINT:  %s\n" % notice["hint"]
        self.notices.append(text)
        if isinstance(self.notices, list) and len(self.notices) > self._NOTICES_KEPT:
            del self.notices[:-self._NOTICES_KEPT]

    def _lost(self, cause):
        # Only socket errors land here: PolicyDenied is an OSError too, so
        # error frames must never pass through an `except OSError`.
        self._drop()
        return ServiceUnavailable("lost the connection to iam-pgbroker: %s" % cause)

    def _drop(self):
        """Forgets the socket without a goodbye (the broker rolls back)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._reader.close()
            sock.close()
