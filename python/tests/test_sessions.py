"""Transactions, the context manager, parameters and errors, through the
real broker as the real demo users."""

import pytest

import iam_lib_pgconnect
from iam_lib_pgconnect import errors
from conftest import NOBODY, OPERATOR, READER, WRITER


def test_with_commits_and_closes(clients, appliance, scratch):
    table = scratch("with_commit", "n int")
    result = clients.result(WRITER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO %s VALUES (1)")
try:
    db.query("SELECT 1")
except iam_lib_pgconnect.InterfaceError as e:
    result = (db.closed, str(e))
""" % table)
    assert result == (True, "connection already closed")
    assert appliance.psql("SELECT count(*) FROM %s" % table) == "1"


def test_with_rolls_back_closes_and_lets_the_exception_through(clients, appliance, scratch):
    table = scratch("with_rollback", "n int")
    with pytest.raises(ZeroDivisionError) as e:
        clients.run(WRITER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO %s VALUES (1)")
    try:
        1 / 0
    finally:
        print(db.closed)
""" % table)
    assert e.value.client_stdout == "False\n"
    assert appliance.psql("SELECT count(*) FROM %s" % table) == "0"


def test_with_after_a_database_error_inside(clients, appliance, scratch):
    """An error caught inside the block leaves the transaction aborted: the
    commit at the end raises instead of pretending to have committed."""
    table = scratch("with_aborted", "n int PRIMARY KEY", "(1)")
    with pytest.raises(errors.InFailedSqlTransaction) as e:
        clients.run(WRITER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO %s VALUES (2)")
    try:
        db.execute("INSERT INTO %s VALUES (1)")
    except iam_lib_pgconnect.IntegrityError:
        pass
""" % (table, table))
    assert e.value.pgcode == "25P02"
    assert appliance.psql("SELECT count(*) FROM %s" % table) == "1"


def test_close_without_commit_rolls_back(clients, appliance, scratch):
    table = scratch("close", "n int")
    clients.run(WRITER, """
import iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
db.execute("INSERT INTO %s VALUES (1)")
db.close()
db.close()  # twice is fine
""" % table)
    assert appliance.psql("SELECT count(*) FROM %s" % table) == "0"


def test_the_session_is_usable_after_errors_and_rollback(clients):
    result = clients.result(READER, """
import iam_lib_pgconnect
seen = []
with iam_lib_pgconnect.connect() as db:
    try:
        db.execute("UPDATE idm_identity SET modified = now()")
    except iam_lib_pgconnect.ReadOnlySqlTransaction as e:
        seen.append(e.pgcode)
    db.rollback()
    try:
        db.query("SELECT 1/0")
    except iam_lib_pgconnect.DataError as e:
        seen.append(e.pgcode)
    try:
        db.query("SELECT 1")
    except iam_lib_pgconnect.InternalError as e:
        seen.append((type(e).__name__, e.pgcode))
    db.rollback()
    seen.append(db.query("SELECT 1 AS one"))
result = seen
""")
    assert result == ["25006", "22012", ("InFailedSqlTransaction", "25P02"), [{"one": 1}]]


@pytest.mark.parametrize("sql", ["COPY idm_identity TO PROGRAM 'id'", "BEGIN",
                                 "SELECT pg_read_file('/etc/passwd')"])
def test_forbidden_statements(clients, sql):
    with pytest.raises(iam_lib_pgconnect.ForbiddenStatement) as e:
        clients.run(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    db.query(%r)
""" % sql)
    assert isinstance(e.value, iam_lib_pgconnect.ProgrammingError)
    assert e.value.code == "forbidden_statement" and e.value.pgcode is None


@pytest.mark.parametrize("sql, cls, base, sqlstate", [
    ("SELECT 1/0", errors.DivisionByZero, iam_lib_pgconnect.DataError, "22012"),
    ("SELECT * FROM py_no_such_table", errors.UndefinedTable,
     iam_lib_pgconnect.ProgrammingError, "42P01"),
    ("SELEC 1", errors.SyntaxError, iam_lib_pgconnect.ProgrammingError, "42601"),
    ("SELECT 'x'::int", errors.InvalidTextRepresentation, iam_lib_pgconnect.DataError, "22P02"),
])
def test_database_errors(clients, sql, cls, base, sqlstate):
    with pytest.raises(cls) as e:
        clients.run(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    db.query(%r)
""" % sql)
    assert isinstance(e.value, base) and isinstance(e.value, iam_lib_pgconnect.DatabaseError)
    assert e.value.pgcode == sqlstate == e.value.diag.sqlstate
    assert e.value.pgerror.startswith("ERROR:  ")
    assert e.value.diag.message_primary


def test_unique_violation_with_detail(clients, scratch):
    table = scratch("unique", "n int PRIMARY KEY", "(1)")
    with pytest.raises(errors.UniqueViolation) as e:
        clients.run(WRITER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO %s VALUES (%%s)", [1])
""" % table)
    assert isinstance(e.value, iam_lib_pgconnect.IntegrityError)
    assert e.value.pgcode == "23505"
    assert e.value.diag.message_detail == "Key (n)=(1) already exists."
    assert "DETAIL:  Key (n)=(1) already exists." in e.value.pgerror


def test_parameters_and_percent_signs(clients):
    result = clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    result = [
        db.query("SELECT 7 %% 3 AS x, %s AS y, '%s' AS z", ["p"]),
        # psycopg2 code writes LIKE 'Dvo%%': inside literals %% is % too;
        # quoted identifiers stay exactly as written
        db.query("SELECT 'a%%b' AS x, 1 AS \\"p%%q\\", %s AS y", ["p"]),
        # without parameters the SQL is sent as written, as with psycopg2
        db.query("SELECT 'a%%b' AS x"),
        db.query("SELECT %s::int + %s AS n", (40, 2)),
        db.query("SELECT count(*) AS n FROM idm_identity WHERE username = ANY(%s)",
                 [["admin", "jdvorak", "nobody"]]),
    ]
""")
    assert result == [
        [{"x": 1, "y": "p", "z": "%s"}],
        [{"x": "a%b", "p%%q": 1, "y": "p"}],
        [{"x": "a%%b"}],
        [{"n": 42}],
        [{"n": 2}],
    ]


def test_parameter_count_mismatch(clients):
    # as psycopg2: too few values is IndexError, too many TypeError, both
    # before anything is sent
    with pytest.raises(IndexError):
        clients.run(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    db.query("SELECT %s, %s", [1])
""")
    with pytest.raises(TypeError, match="not all arguments converted"):
        clients.run(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    db.query("SELECT %s", [1, 2])
""")


def test_many_rows_stream_in_chunks(clients):
    result = clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    rows = db.query("SELECT n, 'Jiří Novák ' || n AS name FROM generate_series(1, 3000) n")
    result = (len(rows), rows[0], rows[-1], db.execute("SELECT generate_series(1, 3000)"))
""")
    assert result == (3000, {"n": 1, "name": "Jiří Novák 1"},
                      {"n": 3000, "name": "Jiří Novák 3000"}, 3000)


def test_operator_reads_through_its_group(clients):
    # A read session as the superuser postgres runs as the operator's own
    # read role, never as a superuser (docs/security.md, "Read roles").
    rows = clients.result(OPERATOR, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    result = db.query("SELECT current_user AS u, session_user AS s, "
                      "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su")
""")
    assert len(rows) == 1
    assert rows[0]["u"].startswith("iam_pgbroker_read_"), rows
    assert rows[0]["s"] == rows[0]["u"] and rows[0]["su"] is False, rows


@pytest.mark.parametrize("user, kwargs", [
    (NOBODY, {}),
    (READER, {"readonly": False}),
    (WRITER, {"readonly": False}),  # write granted as czechidm, not postgres
    (OPERATOR, {"db": "bridge"}),
])
def test_policy_refusals_raise_permission_error(clients, user, kwargs):
    with pytest.raises(iam_lib_pgconnect.PolicyDenied) as e:
        clients.run(user, "import iam_lib_pgconnect\niam_lib_pgconnect.connect(**%r)" % kwargs)
    assert isinstance(e.value, PermissionError)
    assert e.value.code == "denied"


def test_missing_container(clients):
    # the test broker grants the reader db "ghost", which has no container
    with pytest.raises(iam_lib_pgconnect.ContainerNotFound) as e:
        clients.run(READER, "import iam_lib_pgconnect\niam_lib_pgconnect.connect(db='ghost')")
    assert isinstance(e.value, RuntimeError)
    assert e.value.code == "not_found"


def test_missing_pwfile(clients, broker_without_pwfiles):
    with pytest.raises(iam_lib_pgconnect.SecretUnavailable) as e:
        clients.run(READER, "import iam_lib_pgconnect\niam_lib_pgconnect.connect()",
                    socket_path=broker_without_pwfiles.socket)
    assert isinstance(e.value, RuntimeError)
    assert e.value.code == "secret"
    assert "/nonexistent/czechidm/postgres.pwfile" in str(e.value)


def test_missing_socket(clients, run_dir):
    with pytest.raises(iam_lib_pgconnect.BrokerNotRunning) as e:
        clients.run(READER, "import iam_lib_pgconnect\niam_lib_pgconnect.connect()",
                    socket_path=run_dir / "no-such.sock")
    assert isinstance(e.value, RuntimeError)


@pytest.mark.parametrize("kwargs", ["host='172.17.0.2'", "port=5433",
                                    "password_provider=lambda db, user: 'secret'"])
def test_moved_settings_raise_value_error(clients, kwargs):
    with pytest.raises(ValueError, match="decided by the iam-pgbroker service"):
        clients.run(READER, "import iam_lib_pgconnect\niam_lib_pgconnect.connect(%s)" % kwargs)


def test_dbname(clients):
    assert clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(dbname="czechidm") as db:
    result = db.query("SELECT current_database() AS d")
""") == [{"d": "czechidm"}]


def test_reason_from_the_environment(clients):
    code = """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect(db="bridge", user="bridge") as db:
    result = db.info["rule"]
"""
    with pytest.raises(iam_lib_pgconnect.PolicyDenied):
        clients.run(NOBODY, code)
    assert clients.result(NOBODY, code, env={"IAM_PGBROKER_REASON": "ticket 42"}) == "pytest-reason"


def test_too_long_request_is_refused_before_sending(clients):
    assert clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    try:
        db.query("SELECT %s", ["x" * (2 << 20)])
    except iam_lib_pgconnect.ProgrammingError as e:
        seen = str(e)
    result = (seen.split(";")[1], db.query("SELECT 1 AS one"))
""") == (" the broker accepts at most 1048576", [{"one": 1}])
