"""Exceptions, shaped like psycopg2's so that existing `except` clauses keep
working.

The DB-API classes (`Error`, `DatabaseError`, `IntegrityError`, ...) sit where
psycopg2 puts them, and a PostgreSQL error becomes the class psycopg2 would
raise for its SQLSTATE (`UniqueViolation` for 23505, `ReadOnlySqlTransaction`
for 25006, else the DB-API class of its SQLSTATE class). Errors that come from
the broker rather than from PostgreSQL get classes of their own, each also a
subclass of the built-in exception the old library raised in that situation:
`PermissionError` for a policy refusal, `RuntimeError` for a missing
container, an unavailable database or a missing password.

Every exception carries:

- `code`: the broker's error code (`denied`, `database`, `read_only`, ...),
  or None for errors raised by this library itself;
- `pgcode`: the SQLSTATE, or None;
- `pgerror`: PostgreSQL's error text as libpq prints it, or None;
- `diag`: a `Diagnostics` object (`message_primary`, `sqlstate`,
  `message_detail`, `message_hint`, ...; None where unknown).
"""

import builtins

# ---------------------------------------------------------------- DB-API


class Warning(builtins.Exception):  # noqa: A001 (the DB-API name)
    """DB-API warning (never raised; here for `except` clauses)."""


class Diagnostics:
    """psycopg2's `Error.diag`: the fields PostgreSQL reported (strings, as
    libpq gives them; None where PostgreSQL sent none)."""

    __slots__ = (
        "sqlstate", "message_primary", "message_detail", "message_hint", "severity",
        "severity_nonlocalized", "column_name", "constraint_name", "context",
        "datatype_name", "internal_position", "internal_query", "schema_name",
        "source_file", "source_function", "source_line", "statement_position",
        "table_name",
    )

    # broker's error field -> psycopg2's diag attribute
    _WIRE = {
        "position": "statement_position", "internal_position": "internal_position",
        "internal_query": "internal_query", "context": "context", "schema": "schema_name",
        "table": "table_name", "column": "column_name", "datatype": "datatype_name",
        "constraint": "constraint_name", "file": "source_file", "line": "source_line",
        "routine": "source_function",
    }

    def __init__(self, sqlstate=None, message_primary=None, message_detail=None,
                 message_hint=None, fields=None):
        for name in self.__slots__:
            setattr(self, name, None)
        self.sqlstate = sqlstate
        self.message_primary = message_primary
        self.message_detail = message_detail
        self.message_hint = message_hint
        if sqlstate is not None:
            self.severity = self.severity_nonlocalized = "ERROR"
        for wire, name in self._WIRE.items():
            value = (fields or {}).get(wire)
            if value is not None:
                setattr(self, name, str(value))
        severity = (fields or {}).get("severity")
        if severity:
            self.severity = severity
            if severity in ("ERROR", "FATAL", "PANIC"):
                self.severity_nonlocalized = severity

    def __repr__(self):
        return "Diagnostics(sqlstate=%r, message_primary=%r)" % (
            self.sqlstate, self.message_primary)

    def __reduce__(self):
        return (_diagnostics, ({name: getattr(self, name) for name in self.__slots__},))


def _diagnostics(state):
    d = Diagnostics()
    for name, value in state.items():
        setattr(d, name, value)
    return d


class Error(builtins.Exception):
    """Base class of every exception this library raises.

    With psycopg2 importable, every instance is also an instance of the
    psycopg2 class psycopg2 raises in that situation (see `_twin`)."""

    code = None
    pgcode = None
    pgerror = None
    cursor = None

    def __new__(cls, *args, **kwargs):
        if "_psycopg2" not in cls.__dict__:
            cls = _twin(cls)
        psy = cls.__dict__.get("_psycopg2")
        if psy is not None:
            # psycopg2's instance layout: only its __new__ may allocate it
            return psy.__new__(cls, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args):
        super().__init__(*args)

    @property
    def diag(self):
        d = self.__dict__.get("_diag")
        if d is None:
            d = self._diag = Diagnostics()
        return d

    def __reduce__(self):
        own = _own_class(type(self))
        psy = type(self).__dict__.get("_psycopg2")
        return (_rebuild, (own.__name__, psy and (psy.__module__, psy.__name__),
                           self.args, dict(self.__dict__)))

    def __setstate__(self, state):
        self.__dict__.update(state)


class InterfaceError(Error):
    """The library or the conversation with the broker went wrong (closed
    connection, unexpected answer, protocol version mismatch)."""


class DatabaseError(Error):
    """An error about the database or the statement."""


class DataError(DatabaseError):
    """SQLSTATE class 22, or a value that has no Python equivalent."""


class OperationalError(DatabaseError):
    """The database cannot be used right now; psycopg2 raises it when the
    connection fails."""


class IntegrityError(DatabaseError):
    """SQLSTATE class 23: a constraint was violated."""


class InternalError(DatabaseError):
    """SQLSTATE classes 24, 25, 2B, 2D, 2F, 38, 39, 3B, F0, P0, XX."""


class ProgrammingError(DatabaseError):
    """SQLSTATE classes 20, 21, 26, 3D, 3F, 42, 44; and statements or
    parameters the broker refuses."""


class NotSupportedError(DatabaseError):
    """SQLSTATE class 0A."""


# psycopg2.extensions
class TransactionRollbackError(OperationalError):
    """SQLSTATE class 40 (serialization failure, deadlock)."""


class QueryCanceledError(OperationalError):
    """SQLSTATE 57014 (statement timeout, cancel)."""


# ---------------------------------------------------------------- broker codes


class PolicyDenied(OperationalError, PermissionError):
    """`denied`: the broker's policy grants this OS user no such access (or
    only read access and `readonly=False` was asked). Also raised when the
    socket itself refuses the user (file mode/group)."""


class ContainerNotFound(OperationalError, RuntimeError):
    """`not_found`: no container `{db}-db` exists."""


class ServiceUnavailable(OperationalError, RuntimeError):
    """`unavailable`: Docker, the container or PostgreSQL cannot serve now,
    the connection was lost, or the broker is shutting down."""


class BrokerNotRunning(ServiceUnavailable):
    """The broker's socket is missing or refuses connections."""


class SecretUnavailable(OperationalError, RuntimeError):
    """`secret`: the broker could not read the password (pwfile missing,
    unreadable or empty)."""


class ForbiddenStatement(ProgrammingError):
    """`forbidden_statement`: the broker's SQL guard refused the statement
    (transaction control, SET, COPY, DO, functions reaching outside the
    database, ...); nothing reached PostgreSQL."""


class BadRequest(ProgrammingError):
    """`bad_request`: the broker refused the request, e.g. the number of
    parameters does not match the placeholders, or a result column has a
    type the protocol cannot carry (cast it to text)."""


class LimitExceeded(OperationalError):
    """`limit`: a configured limit was reached (result size, timeout)."""


class Busy(OperationalError):
    """`busy`: too many sessions; retry later."""


class AuditUnavailable(OperationalError):
    """`audit_unavailable`: the audit record could not be written, so nothing
    ran."""


class BrokerInternalError(InternalError):
    """`internal` (a broker bug), or an error code this library does not
    know."""


# ---------------------------------------------------------------- SQLSTATEs
# The psycopg2.errors classes that tools most often name. Any other SQLSTATE
# raises the DB-API class of its SQLSTATE class (see lookup).


class IntegrityConstraintViolation(IntegrityError):
    sqlstate = "23000"


class RestrictViolation(IntegrityError):
    sqlstate = "23001"


class NotNullViolation(IntegrityError):
    sqlstate = "23502"


class ForeignKeyViolation(IntegrityError):
    sqlstate = "23503"


class UniqueViolation(IntegrityError):
    sqlstate = "23505"


class CheckViolation(IntegrityError):
    sqlstate = "23514"


class ExclusionViolation(IntegrityError):
    sqlstate = "23P01"


class DataException(DataError):
    sqlstate = "22000"


class StringDataRightTruncation(DataError):
    sqlstate = "22001"


class NumericValueOutOfRange(DataError):
    sqlstate = "22003"


class InvalidDatetimeFormat(DataError):
    sqlstate = "22007"


class DatetimeFieldOverflow(DataError):
    sqlstate = "22008"


class DivisionByZero(DataError):
    sqlstate = "22012"


class InvalidTextRepresentation(DataError):
    sqlstate = "22P02"


class ActiveSqlTransaction(InternalError):
    sqlstate = "25001"


class ReadOnlySqlTransaction(InternalError):
    sqlstate = "25006"


class InFailedSqlTransaction(InternalError):
    sqlstate = "25P02"


class InvalidAuthorizationSpecification(OperationalError):
    sqlstate = "28000"


class InvalidPassword(OperationalError):
    sqlstate = "28P01"


class InvalidCatalogName(ProgrammingError):
    sqlstate = "3D000"


class InvalidSchemaName(ProgrammingError):
    sqlstate = "3F000"


class SerializationFailure(TransactionRollbackError):
    sqlstate = "40001"


class DeadlockDetected(TransactionRollbackError):
    sqlstate = "40P01"


class InsufficientPrivilege(ProgrammingError):
    sqlstate = "42501"


# psycopg2.errors shadows the built-in SyntaxError with this name too.
class SyntaxError(ProgrammingError):  # noqa: A001
    sqlstate = "42601"


class UndefinedColumn(ProgrammingError):
    sqlstate = "42703"


class UndefinedFunction(ProgrammingError):
    sqlstate = "42883"


class UndefinedTable(ProgrammingError):
    sqlstate = "42P01"


class UndefinedObject(ProgrammingError):
    sqlstate = "42704"


class DuplicateTable(ProgrammingError):
    sqlstate = "42P07"


class AmbiguousColumn(ProgrammingError):
    sqlstate = "42702"


class DatatypeMismatch(ProgrammingError):
    sqlstate = "42804"


class TooManyConnections(OperationalError):
    sqlstate = "53300"


class ObjectInUse(OperationalError):
    sqlstate = "55006"


class LockNotAvailable(OperationalError):
    sqlstate = "55P03"


class QueryCanceled(QueryCanceledError):
    sqlstate = "57014"


class AdminShutdown(OperationalError):
    sqlstate = "57P01"


class FeatureNotSupported(NotSupportedError):
    sqlstate = "0A000"


class RaiseException(InternalError):
    sqlstate = "P0001"



def _by_sqlstate():
    table = {}
    stack = [Error]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "sqlstate" in cls.__dict__:
            table[cls.sqlstate] = cls
    return table


_SQLSTATE_CLASSES = _by_sqlstate()

# psycopg2's mapping of SQLSTATE classes (the first two characters) to
# DB-API exceptions (psycopg/error_type.c, base_exception_from_sqlstate).
_CLASS_BASES = {
    "0A": NotSupportedError,
    "20": ProgrammingError, "21": ProgrammingError, "22": DataError,
    "23": IntegrityError, "24": InternalError, "25": InternalError,
    "26": OperationalError, "27": OperationalError, "28": OperationalError,
    "2B": InternalError, "2D": InternalError, "2F": InternalError,
    "34": OperationalError, "38": InternalError, "39": InternalError,
    "3B": InternalError, "3D": ProgrammingError, "3F": ProgrammingError,
    "40": TransactionRollbackError, "42": ProgrammingError, "44": ProgrammingError,
    "53": OperationalError, "54": OperationalError, "55": OperationalError,
    "57": OperationalError, "58": OperationalError, "F0": InternalError,
    "HV": OperationalError, "P0": InternalError, "XX": InternalError,
}


def lookup(sqlstate):
    """The exception class raised for `sqlstate` (like psycopg2.errors.lookup,
    but falling back to the DB-API class of the SQLSTATE class, then to
    DatabaseError, instead of raising KeyError)."""
    cls = _SQLSTATE_CLASSES.get(sqlstate)
    if cls is None:
        cls = _CLASS_BASES.get((sqlstate or "")[:2], DatabaseError)
    return cls


_CODE_CLASSES = {
    "denied": PolicyDenied,
    "bad_request": BadRequest,
    "forbidden_statement": ForbiddenStatement,
    "read_only": ReadOnlySqlTransaction,
    "not_found": ContainerNotFound,
    "unavailable": ServiceUnavailable,
    "secret": SecretUnavailable,
    "limit": LimitExceeded,
    "busy": Busy,
    "audit_unavailable": AuditUnavailable,
    "internal": BrokerInternalError,
}


# ---------------------------------------------------------------- psycopg2

try:  # pragma: no branch
    import psycopg2 as _psycopg2
    import psycopg2.errors as _psycopg2_errors
    import psycopg2.extensions as _psycopg2_extensions
except ImportError:  # the drop-in works without psycopg2: its own classes only
    _psycopg2 = None

_TWINS = {}


def _own_class(cls):
    """The library's own class of an instance's class (a twin's first base)."""
    while "_psycopg2" in cls.__dict__:
        cls = cls.__bases__[0]
    return cls


def _psycopg2_base(cls):
    """psycopg2's class for one of ours without a SQLSTATE: the DB-API class
    at the same place in the tree."""
    for klass in cls.__mro__:
        name = klass.__name__
        if klass.__module__ != __name__:
            continue
        if name in ("TransactionRollbackError", "QueryCanceledError"):
            return getattr(_psycopg2_extensions, name)
        if name in ("InterfaceError", "DatabaseError", "DataError", "OperationalError",
                    "IntegrityError", "InternalError", "ProgrammingError",
                    "NotSupportedError", "Error", "Warning"):
            return getattr(_psycopg2, name)
    return None


def psycopg2_class(sqlstate):
    """psycopg2's class for a SQLSTATE (psycopg2.errors.lookup, else the
    DB-API class psycopg2 falls back to), or None without psycopg2."""
    if _psycopg2 is None:
        return None
    try:
        return _psycopg2_errors.lookup(sqlstate)
    except KeyError:
        return _psycopg2_base(lookup(sqlstate))


def _twin(cls, psy=None):
    """`cls` joined with psycopg2's class `psy` (by default the one for
    `cls`'s SQLSTATE, else its DB-API class): a class that is both, so
    `except iam_lib_pgconnect.X` and `except psycopg2.errors.Y` both catch
    it. Without psycopg2, or for a class that is also an OSError (whose
    layout cannot be combined with psycopg2's), `cls` itself."""
    if _psycopg2 is None or issubclass(cls, OSError):
        return cls
    if psy is None:
        sqlstate = getattr(cls, "sqlstate", None)
        psy = psycopg2_class(sqlstate) if sqlstate else _psycopg2_base(cls)
        if psy is None:
            return cls
    key = (cls, psy)
    twin = _TWINS.get(key)
    if twin is None:
        twin = type(psy.__name__, (cls, psy), {
            "_psycopg2": psy,
            "__module__": __name__,
            "__doc__": cls.__doc__,
        })
        twin.__qualname__ = "%s|%s.%s" % (cls.__name__, psy.__module__, psy.__name__)
        _TWINS[key] = twin
    return twin


def _rebuild(own_name, psy_name, args, state):
    cls = globals().get(own_name, Error)
    psy = None
    if psy_name is not None and _psycopg2 is not None:
        module, name = psy_name
        psy = getattr(_psycopg2_errors if module == "psycopg2.errors" else
                      _psycopg2_extensions if module == "psycopg2.extensions" else
                      _psycopg2, name, None)
    exc = _twin(cls, psy) if psy is not None else cls
    obj = exc.__new__(exc, *args)
    obj.args = args
    obj.__dict__.update(state)
    return obj


# ---------------------------------------------------------------- frames

_DISPLAY_SIZE = 60
_MIN_RIGHT_CUT = 10


def _error_position(query, loc):
    """libpq's reportErrorPosition: the `LINE n: ...` line and the caret
    under position `loc` (1-based, in characters)."""
    loc -= 1
    if loc < 0 or query is None:
        return ""
    text = query.replace("\t", " ")
    slen = len(text)
    if loc > slen:
        return ""
    scr = [0] * (slen + 1)
    col = 0
    loc_line, ibeg, iend = 1, 0, -1
    i = 0
    while i < slen:
        scr[i] = col
        ch = text[i]
        if ch in "\n\r":
            if i < loc:
                loc_line += 1
                if ch == "\r" and i + 1 < slen and text[i + 1] == "\n":
                    i += 1
                    scr[i] = col
                ibeg = i + 1
            elif iend < 0:
                iend = i
        else:
            col += 2 if _wide(ch) else 1
        i += 1
    scr[slen] = col
    if iend < 0:
        iend = slen
    beg_trunc = end_trunc = False
    if scr[iend] - scr[ibeg] > _DISPLAY_SIZE:
        if scr[ibeg] + _DISPLAY_SIZE >= scr[loc] + _MIN_RIGHT_CUT:
            while scr[iend] - scr[ibeg] > _DISPLAY_SIZE:
                iend -= 1
            end_trunc = True
        else:
            if scr[loc] + _MIN_RIGHT_CUT < scr[iend]:
                iend -= 1
                while scr[loc] + _MIN_RIGHT_CUT < scr[iend]:
                    iend -= 1
                end_trunc = True
            while scr[iend] - scr[ibeg] > _DISPLAY_SIZE:
                ibeg += 1
                beg_trunc = True
    prefix = "LINE %d: " % loc_line
    line = prefix + ("..." if beg_trunc else "") + text[ibeg:iend] + ("..." if end_trunc else "")
    offset = scr[loc] - scr[ibeg] + len(prefix) + (3 if beg_trunc else 0)
    return line + "\n" + " " * offset + "^\n"


def _wide(ch):
    import unicodedata
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _pgerror(message, detail, hint, fields=None, query=None, severity="ERROR"):
    """PostgreSQL's error as libpq prints it with default verbosity (what
    psycopg2 puts into `pgerror`)."""
    fields = fields or {}
    text = "%s:  %s\n" % (severity, message)
    position = fields.get("position")
    if position is not None and query is not None:
        text += _error_position(query, int(position))
    elif fields.get("internal_position") is not None and fields.get("internal_query"):
        text += _error_position(fields["internal_query"], int(fields["internal_position"]))
    if detail:
        text += "DETAIL:  %s\n" % detail
    if hint:
        text += "HINT:  %s\n" % hint
    if fields.get("internal_query"):
        text += "QUERY:  %s\n" % fields["internal_query"]
    if fields.get("context"):
        text += "CONTEXT:  %s\n" % fields["context"]
    return text


def from_frame(error, query=None):
    """The exception for the `error` object of an `error` frame; `query` is
    the statement as sent, for the error position's display."""
    code = error.get("code")
    message = error.get("message") or code or "unknown error"
    sqlstate = error.get("sqlstate")
    detail = error.get("detail")
    hint = error.get("hint")
    if code == "database":
        cls = lookup(sqlstate)
    else:
        # Unknown codes are treated like `internal` (docs/protocol.md).
        cls = _CODE_CLASSES.get(code, BrokerInternalError)
    psy = psycopg2_class(sqlstate) if sqlstate else None
    cls = _twin(cls, psy)
    if sqlstate is not None:
        severity = error.get("severity") or "ERROR"
        pgerror = _pgerror(message, detail, hint, error, query, severity)
        # psycopg2's str(exc): libpq's text without the severity prefix
        text = pgerror[len(severity) + 3:]
    else:
        pgerror = None
        text = message
    exc = cls(text)
    exc.code = code
    exc.pgcode = sqlstate
    exc.pgerror = pgerror
    exc._diag = Diagnostics(sqlstate, message, detail, hint, error)
    return exc


__all__ = ["Diagnostics", "lookup", "psycopg2_class"] + sorted(
    name for name, obj in globals().items()
    if isinstance(obj, type) and issubclass(obj, (Error, Warning)) and not name.startswith("_")
)
