"""Notices, cancel, Ctrl-C and savepoint SQL: the drop-in through the broker
(as demo OS users) side by side with the real psycopg2 straight to the
appliance's PostgreSQL."""

import subprocess
import sys

import pytest

from conftest import WRITER, unique

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.extensions  # noqa: E402
import psycopg2.extras  # noqa: E402


def _direct_dsn(appliance):
    container = appliance.container("czechidm")
    ip = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         container], capture_output=True, text=True, check=True).stdout.strip()
    password = (appliance.root / "data/volumes/czechidm-db/secrets/postgres.pwfile").read_text().strip()
    return dict(host=ip, dbname="czechidm", user="postgres", password=password)


@pytest.fixture(scope="module")
def noisy(appliance):
    """A function raising notices: NOTICE with DETAIL and HINT, WARNING,
    INFO, then `n` more NOTICEs; owned by the app user."""
    name = unique("noisy")
    appliance.psql(
        "CREATE FUNCTION {f}(who text, n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE NOTICE 'ahoj %', who USING DETAIL = 'podrobnosti', HINT = 'rada'; "
        "RAISE WARNING 'pozor'; RAISE INFO 'info'; "
        "FOR i IN 1..n LOOP RAISE NOTICE 'č. %', i; END LOOP; RETURN 1; END $$; "
        "ALTER FUNCTION {f}(text, int) OWNER TO czechidm".format(f=name))
    yield name
    appliance.psql("DROP FUNCTION %s(text, int)" % name)


@pytest.mark.parametrize("extra", [0, 60])
def test_notices_are_psycopg2s(appliance, clients, noisy, extra):
    conn = psycopg2.connect(**_direct_dsn(appliance))
    try:
        cur = conn.cursor()
        cur.execute("SELECT %s('Dvořák', %s)" % (noisy, extra))
        cur.execute("SELECT %s('znovu', 0)" % noisy)
        expected = list(conn.notices)
    finally:
        conn.close()
    got = clients.result(WRITER, """
import iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
db.query("SELECT %s('Dvořák', %d)")
db.execute("SELECT %s('znovu', 0)")
result = db.notices
db.close()
""" % (noisy, extra, noisy))
    assert got == expected
    assert len(got) == (50 if extra else 6)


def test_notices_may_be_any_appendable(clients, noisy):
    got = clients.result(WRITER, """
import collections, iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
db.notices = collections.deque(maxlen=2)
db.query("SELECT %s('a', 3)")
result = list(db.notices)
db.close()
""" % noisy)
    assert got == ["NOTICE:  č. 2\n", "NOTICE:  č. 3\n"]


_LONG = "SELECT count(*) FROM generate_series(1, 3000000000)"


def test_cancel_from_another_thread_as_psycopg2(appliance, clients):
    conn = psycopg2.connect(**_direct_dsn(appliance))
    try:
        import threading
        threading.Timer(0.7, conn.cancel).start()
        with pytest.raises(psycopg2.extensions.QueryCanceledError) as raised:
            conn.cursor().execute(_LONG)
        real = (type(raised.value).__name__, raised.value.pgcode, True)
        conn.rollback()
    finally:
        conn.close()
    got = clients.result(WRITER, """
import threading, time, iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm")
threading.Timer(0.7, db.cancel).start()
started = time.monotonic()
try:
    db.execute(%r)
    outcome = "finished"
except Exception as e:
    import psycopg2.extensions
    outcome = (type(e).__name__, getattr(e, "pgcode", None),
               isinstance(e, psycopg2.extensions.QueryCanceledError))
took = time.monotonic() - started
db.rollback()
result = (outcome, took < 10, db.query("SELECT 42 AS n"))
db.close()
""" % _LONG)
    outcome, quick, after = got
    assert outcome == real == ("QueryCanceled", "57014", True)
    assert quick
    assert after == [{"n": 42}]


_CTRL_C = """
import os, signal, threading, time
threading.Timer(0.7, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    run(%r)
    outcome = "finished"
except BaseException as e:
    outcome = (type(e).__name__, getattr(e, "pgcode", None))
"""


def test_ctrl_c_cancels_the_statement_as_psycopg2_with_wait_select(appliance, clients):
    # psycopg2 cancels on Ctrl-C with its wait_select callback (its
    # documented way to make Ctrl-C work); the drop-in does it always.
    script = ("import psycopg2, psycopg2.extras\n"
              "psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)\n"
              "conn = psycopg2.connect(**%r)\n"
              "run = conn.cursor().execute\n" % (_direct_dsn(appliance),)
              + _CTRL_C % _LONG
              + "conn.rollback()\ncur = conn.cursor()\ncur.execute('SELECT 42')\n"
                "print(repr((outcome, cur.fetchall())))\n")
    real = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert real.returncode == 0, real.stderr
    (outcome, after) = eval(real.stdout)  # noqa: S307 - our own repr
    assert outcome == ("QueryCanceled", "57014")
    assert after == [(42,)]
    got = clients.result(WRITER, """
import iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm")
run = db.execute
""" + _CTRL_C % _LONG + """
db.rollback()
result = (outcome, db.query("SELECT 42 AS n"))
db.close()
""")
    assert got == (outcome, [{"n": 42}])


def test_savepoint_sql_works_as_in_psycopg2(appliance, clients, scratch):
    table = scratch("sp", "n int4 PRIMARY KEY")
    steps = [
        "INSERT INTO {t} VALUES (1)", "SAVEPOINT PŘed", "INSERT INTO {t} VALUES (2)",
        "INSERT INTO {t} VALUES (1)", "ROLLBACK TO SAVEPOINT \"pŘed\"",
        "savepoint b", "INSERT INTO {t} VALUES (3)", "RELEASE b", "RELEASE SAVEPOINT b",
        "rollback to PŘed", "INSERT INTO {t} VALUES (4)",
    ]
    steps = [s.format(t=table) for s in steps]

    conn = psycopg2.connect(**_direct_dsn(appliance))
    expected = []
    try:
        cur = conn.cursor()
        for sql in steps:
            try:
                cur.execute(sql)
                expected.append(("ok", cur.rowcount))
            except psycopg2.Error as e:
                expected.append((type(e).__name__, e.pgcode))
        cur.execute("SELECT string_agg(n::text, ',' ORDER BY n) FROM %s" % table)
        expected.append(cur.fetchone()[0])
    finally:
        conn.rollback()
        conn.close()
    got = clients.result(WRITER, """
import iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
result = []
for sql in %r:
    try:
        result.append(("ok", db.execute(sql)))
    except iam_lib_pgconnect.Error as e:
        result.append((type(e).__name__, e.pgcode))
result.append(db.query("SELECT string_agg(n::text, ',' ORDER BY n) AS s FROM %s")[0]["s"])
db.rollback()
db.close()
""" % (steps, table))
    assert got == expected
    assert expected[-1] == "1,4"


def test_copy_expert_as_psycopg2(appliance, clients, scratch):
    table = scratch("copy", "n int4 PRIMARY KEY, name text",
                    "(1, 'Dvořák'), (2, E'tab\\there'), (3, NULL)")
    outs = ["COPY %s TO STDOUT" % table,
            "COPY (SELECT name, n FROM %s ORDER BY n) TO STDOUT WITH (FORMAT csv, HEADER)" % table]
    conn = psycopg2.connect(**_direct_dsn(appliance))
    try:
        import io
        expected = []
        for sql in outs:
            text, raw = io.StringIO(), io.BytesIO()
            conn.cursor().copy_expert(sql, text)
            conn.cursor().copy_expert(sql, raw)
            expected.append((text.getvalue(), raw.getvalue()))
    finally:
        conn.rollback()
        conn.close()
    got = clients.result(WRITER, """
import io, iam_lib_pgconnect
db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
result = []
for sql in %r:
    text, raw = io.StringIO(), io.BytesIO()
    db.copy_expert(sql, text)
    db.copy_expert(sql, raw)
    result.append((text.getvalue(), raw.getvalue()))
db.copy_expert("COPY %s FROM STDIN", io.BytesIO("4\\tŘehoř\\n5\\tŽ\\n".encode() * 1), size=3)
db.copy_expert("COPY %s (name, n) FROM STDIN WITH (FORMAT csv)", io.StringIO("a,6\\n"))
db.commit()
try:
    db.copy_expert("COPY %s FROM STDIN", io.StringIO("x\\ty\\n"))
    result.append("copied")
except iam_lib_pgconnect.Error as e:
    result.append(e.pgcode)
db.rollback()
db.close()
""" % (outs, table, table, table))
    assert got[:2] == expected
    assert got[2] == "22P02"
    assert appliance.psql("SELECT string_agg(name, ',' ORDER BY n) FROM %s WHERE n > 3"
                          % table) == "Řehoř,Ž,a"
