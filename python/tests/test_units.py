"""Parts that need no broker: value conversion, error mapping, refused
arguments. In-process, as root."""

import datetime
import decimal
import math
import socket
import uuid

import pytest

try:
    import psycopg2
    import psycopg2.errors
except ImportError:
    psycopg2 = None

import iam_lib_pgconnect
from iam_lib_pgconnect import errors
from iam_lib_pgconnect.values import decoder, encode_params

UTC = datetime.timezone.utc


def decode(type_name, value):
    conv = decoder(type_name)
    return value if conv is None else conv(value)


@pytest.mark.parametrize("text, expected", [
    ("PT0S", datetime.timedelta(0)),
    ("P1Y2M3DT4H5M6.5S", datetime.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.5)),
    ("P-1D", datetime.timedelta(days=-1)),
    ("PT-4H-5M-6S", -datetime.timedelta(hours=4, minutes=5, seconds=6)),
    ("P-1Y-2M-3DT-4H-5M-6.25S",
     -datetime.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.25)),
    ("P10M", datetime.timedelta(days=300)),
    ("P1M15D", datetime.timedelta(days=45)),
    ("PT-0.000001S", datetime.timedelta(microseconds=-1)),
    ("P2W", datetime.timedelta(days=14)),
    ("-P1D", datetime.timedelta(days=-1)),
])
def test_interval_with_psycopg2_month_and_year_lengths(text, expected):
    assert decode("interval", text) == expected


@pytest.mark.parametrize("type_name, text, expected", [
    ("date", "2024-02-29", datetime.date(2024, 2, 29)),
    ("date", "infinity", datetime.date.max),
    ("date", "-infinity", datetime.date.min),
    ("time", "13:14:15.5", datetime.time(13, 14, 15, 500000)),
    ("time", "13:14:15", datetime.time(13, 14, 15)),
    ("time", "24:00:00", datetime.time(0, 0)),
    ("timetz", "13:14:15+02:00",
     datetime.time(13, 14, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))),
    ("timetz", "13:14:15.123-05:30:15",
     datetime.time(13, 14, 15, 123000, tzinfo=datetime.timezone(
         -datetime.timedelta(hours=5, minutes=30, seconds=15)))),
    ("timestamp", "2024-02-29T13:14:15.123456", datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)),
    ("timestamp", "2024-02-29T13:14:15.1", datetime.datetime(2024, 2, 29, 13, 14, 15, 100000)),
    ("timestamp", "infinity", datetime.datetime.max),
    ("timestamp", "-infinity", datetime.datetime.min),
    ("timestamptz", "2024-02-29T12:14:15+00:00", datetime.datetime(2024, 2, 29, 12, 14, 15, tzinfo=UTC)),
    ("timestamptz", "infinity", datetime.datetime.max.replace(tzinfo=UTC)),
    ("numeric", "12.50", decimal.Decimal("12.50")),
    ("float8", 1.5, 1.5),
    ("float4", 2, 2.0),
    ("float8", "Infinity", math.inf),
    ("float8", "-Infinity", -math.inf),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("int8", 9223372036854775807, 9223372036854775807),
    ("jsonb", {"a": [1, None]}, {"a": [1, None]}),
    ("_numeric", [["1.5", None], ["-Infinity", "2"]],
     [[decimal.Decimal("1.5"), None], [decimal.Decimal("-Infinity"), decimal.Decimal("2")]]),
    ("_date", ["2024-01-01", None], [datetime.date(2024, 1, 1), None]),
    ("_text", ["a", None], ["a", None]),
])
def test_decode(type_name, text, expected):
    value = decode(type_name, text)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_and_bytea():
    assert math.isnan(decode("float4", "NaN"))
    assert decode("numeric", "NaN").is_nan()
    value = decode("bytea", "\\xdeadbeef")
    assert isinstance(value, memoryview) and value.tobytes() == b"\xde\xad\xbe\xef"
    assert decode("bytea", "\\x").tobytes() == b""


@pytest.mark.parametrize("type_name, text", [
    ("date", "-0043-03-15"),          # 44 BC
    ("date", "+10000-01-01"),
    ("timestamp", "0000-01-01T00:00:00"),
    ("timestamptz", "+10000-01-01T00:00:00+00:00"),
    ("interval", "P9999999999Y"),
])
def test_values_python_cannot_hold_raise_data_error(type_name, text):
    with pytest.raises(iam_lib_pgconnect.DataError, match="::text"):
        decode(type_name, text)


def test_encode_params():
    moment = datetime.datetime(2024, 2, 29, 13, 14, 15, 5, tzinfo=UTC)
    assert encode_params([
        None, True, 7, 1.5, math.nan, -math.inf, decimal.Decimal("12.50"), b"\x00\xff",
        memoryview(b"\x01"), uuid.UUID(int=1), datetime.date(2024, 2, 29), moment,
        datetime.time(1, 2, 3), datetime.timedelta(days=-1, seconds=5, microseconds=7),
        [1, [2, None]], ("a",), {"k": "v"}, "žluťoučký kůň",
    ]) == [
        None, True, 7, 1.5, "NaN", "-Infinity", "12.50", "\\x00ff",
        "\\x01", "00000000-0000-0000-0000-000000000001", "2024-02-29",
        "2024-02-29T13:14:15.000005+00:00", "01:02:03", "-1 days 5.000007 seconds",
        [1, [2, None]], ["a"], {"k": "v"}, "žluťoučký kůň",
    ]
    assert encode_params(None) == []
    assert encode_params(()) == []


@pytest.mark.parametrize("params", ["admin", {"name": "admin"}, 5])
def test_params_must_be_a_sequence(params):
    with pytest.raises(TypeError, match="list or a tuple"):
        encode_params(params)


def test_unknown_parameter_type():
    with pytest.raises(iam_lib_pgconnect.ProgrammingError, match="can't adapt type 'object'"):
        encode_params([object()])


@pytest.mark.parametrize("sqlstate, cls, base", [
    ("23505", errors.UniqueViolation, iam_lib_pgconnect.IntegrityError),
    ("23999", iam_lib_pgconnect.IntegrityError, iam_lib_pgconnect.DatabaseError),
    ("22012", errors.DivisionByZero, iam_lib_pgconnect.DataError),
    ("42P01", errors.UndefinedTable, iam_lib_pgconnect.ProgrammingError),
    ("42601", errors.SyntaxError, iam_lib_pgconnect.ProgrammingError),
    ("25006", errors.ReadOnlySqlTransaction, iam_lib_pgconnect.InternalError),
    ("25P02", errors.InFailedSqlTransaction, iam_lib_pgconnect.InternalError),
    ("40001", errors.SerializationFailure, iam_lib_pgconnect.TransactionRollbackError),
    ("57014", errors.QueryCanceled, iam_lib_pgconnect.OperationalError),
    ("0A000", errors.FeatureNotSupported, iam_lib_pgconnect.NotSupportedError),
    ("28P01", errors.InvalidPassword, iam_lib_pgconnect.OperationalError),
    ("XX000", iam_lib_pgconnect.InternalError, iam_lib_pgconnect.DatabaseError),
    ("ZZ999", iam_lib_pgconnect.DatabaseError, iam_lib_pgconnect.Error),
])
def test_database_errors_by_sqlstate_as_psycopg2(sqlstate, cls, base):
    exc = errors.from_frame({"code": "database", "message": "boom", "sqlstate": sqlstate,
                             "detail": "the detail", "hint": "the hint"})
    assert errors._own_class(type(exc)) is cls and isinstance(exc, base)
    assert exc.pgcode == sqlstate and exc.code == "database"
    assert exc.pgerror == "ERROR:  boom\nDETAIL:  the detail\nHINT:  the hint\n"
    # psycopg2's str(): libpq's text without the severity
    assert str(exc) == "boom\nDETAIL:  the detail\nHINT:  the hint\n"
    if psycopg2 is not None:
        # and an instance of psycopg2's own class for that SQLSTATE
        try:
            psy = psycopg2.errors.lookup(sqlstate)
        except KeyError:
            psy = {"23": psycopg2.IntegrityError, "XX": psycopg2.InternalError,
                   "ZZ": psycopg2.DatabaseError}[sqlstate[:2]]
        assert isinstance(exc, psy) and type(exc).__name__ == psy.__name__
    assert (exc.diag.sqlstate, exc.diag.message_primary, exc.diag.message_detail,
            exc.diag.message_hint, exc.diag.severity) == (sqlstate, "boom", "the detail",
                                                          "the hint", "ERROR")
    assert exc.diag.constraint_name is None


@pytest.mark.parametrize("code, cls, builtin", [
    ("denied", iam_lib_pgconnect.PolicyDenied, PermissionError),
    ("not_found", iam_lib_pgconnect.ContainerNotFound, RuntimeError),
    ("unavailable", iam_lib_pgconnect.ServiceUnavailable, RuntimeError),
    ("secret", iam_lib_pgconnect.SecretUnavailable, RuntimeError),
    ("forbidden_statement", iam_lib_pgconnect.ForbiddenStatement, iam_lib_pgconnect.ProgrammingError),
    ("bad_request", iam_lib_pgconnect.BadRequest, iam_lib_pgconnect.ProgrammingError),
    ("limit", iam_lib_pgconnect.LimitExceeded, iam_lib_pgconnect.OperationalError),
    ("busy", iam_lib_pgconnect.Busy, iam_lib_pgconnect.OperationalError),
    ("audit_unavailable", iam_lib_pgconnect.AuditUnavailable, iam_lib_pgconnect.OperationalError),
    ("internal", iam_lib_pgconnect.BrokerInternalError, iam_lib_pgconnect.InternalError),
    ("a_code_from_the_future", iam_lib_pgconnect.BrokerInternalError, iam_lib_pgconnect.InternalError),
])
def test_broker_codes(code, cls, builtin):
    exc = errors.from_frame({"code": code, "message": "no"})
    assert errors._own_class(type(exc)) is cls and isinstance(exc, builtin)
    assert isinstance(exc, iam_lib_pgconnect.Error)
    if psycopg2 is not None and code != "denied":  # PolicyDenied is an OSError
        assert isinstance(exc, psycopg2.Error)
    assert exc.code == code and exc.pgcode is None and exc.pgerror is None
    assert str(exc) == "no" and exc.diag.message_primary == "no"


@pytest.mark.parametrize("kwargs, named", [
    ({"host": "10.0.0.1"}, "host="),
    ({"port": 5433}, "port="),
    ({"password_provider": object()}, "password_provider="),
])
def test_moved_settings_raise_value_error_before_connecting(monkeypatch, kwargs, named):
    monkeypatch.setenv("IAM_PGBROKER_SOCKET", "/nonexistent/pgbroker.sock")
    with pytest.raises(ValueError, match=named + ".*decided by the iam-pgbroker service"):
        iam_lib_pgconnect.connect(**kwargs)


def test_missing_socket(monkeypatch):
    monkeypatch.setenv("IAM_PGBROKER_SOCKET", "/nonexistent/pgbroker.sock")
    # the defaults of the moved settings are accepted, also spelled out
    with pytest.raises(iam_lib_pgconnect.BrokerNotRunning) as e:
        iam_lib_pgconnect.connect(password_provider=None, host=None, port=5432)
    assert isinstance(e.value, RuntimeError)
    assert isinstance(e.value, iam_lib_pgconnect.OperationalError)
    assert "/nonexistent/pgbroker.sock" in str(e.value)
    assert "IAM_PGBROKER_SOCKET" in str(e.value)


def test_default_socket(monkeypatch):
    monkeypatch.delenv("IAM_PGBROKER_SOCKET", raising=False)
    from iam_lib_pgconnect.connection import socket_path
    assert socket_path() == "/run/iam-pgbroker/pgbroker.sock"


@pytest.mark.parametrize("close_first", [True, False])
def test_unasked_error_before_close_is_raised(close_first):
    """busy (and an idle connection's limit) come unasked with id null, then
    the broker closes: the client raises that error whether its request
    still went out or already hit the closed socket."""
    client, broker = socket.socketpair()
    conn = iam_lib_pgconnect.IamDbConnection(client)
    broker.sendall(b'{"type":"error","id":null,"error":{"code":"busy","message":"too many"}}\n')
    if close_first:
        broker.close()
    with pytest.raises(iam_lib_pgconnect.Busy, match="too many"):
        conn.query("SELECT 1")
    assert conn.closed
    broker.close()


def test_waiting_for_an_answer_is_not_woken_by_the_broker_reading_the_request(tmp_path):
    """The library's socket waits for input in poll(): the broker reading a
    request does not wake the thread waiting for its answer (a blocking
    recv() is woken then, and sleeps again)."""
    import os
    import threading
    import time

    from iam_lib_pgconnect.connection import _connect_socket

    path = str(tmp_path / "broker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    rounds = 20

    def serve():
        conn, _ = server.accept()
        with conn:
            for _ in range(rounds):
                time.sleep(0.003)
                conn.recv(1)
                time.sleep(0.003)
                conn.sendall(b"a")

    thread = threading.Thread(target=serve)
    thread.start()

    def sleeps():
        with open("/proc/thread-self/status") as f:
            return sum(int(line.split()[1]) for line in f
                       if line.startswith("voluntary_ctxt_switches"))

    sock = _connect_socket(path)
    try:
        before = sleeps()
        for _ in range(rounds):
            sock.sendall(b"q")
            assert sock.recv(1) == b"a"
        slept = sleeps() - before
    finally:
        sock.close()
        thread.join()
        server.close()
        os.unlink(path)
    # One sleep per round (the answer); two with a blocking recv().
    assert slept < rounds * 1.5, "%d sleeps in %d rounds" % (slept, rounds)
