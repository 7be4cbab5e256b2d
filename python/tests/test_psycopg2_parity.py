"""The drop-in is psycopg2 for a tool: one table of cases, run through real
psycopg2 (straight to the appliance's PostgreSQL as the superuser, with
RealDictCursor, as the old library did) and through the drop-in (as a demo
OS user, through the broker), comparing `repr` of every value and the type
of every exception. In two time zones of the database (UTC and
Europe/Prague).
"""

import json
import subprocess

import pytest

from conftest import READER, WRITER

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.extras  # noqa: E402

# SQL expressions, each run as `SELECT <expr> AS v`. NULL of each type too.
TYPES = [
    "true", "false", "32767::int2", "(-2147483648)::int4", "9223372036854775807::int8",
    "26::oid", "1.5::float4", "-0.1::float8", "'Infinity'::float8", "'-Infinity'::float4",
    "'NaN'::float8", "12.50::numeric", "'-0.000000000000000000000001'::numeric",
    "'NaN'::numeric", "1e2::numeric", "'Příliš žluťoučký kůň'::text", "'Dvořák'::varchar(255)",
    "'ab'::char(4)", "'x'::\"char\"", "'idm_identity'::name", "'ŠÁrka'::citext",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "'\\xdeadbeef'::bytea", "''::bytea",
    "'2024-02-29'::date", "'infinity'::date", "'-infinity'::date", "'13:14:15.5'::time",
    "'24:00:00'::time", "'13:14:15+02'::timetz", "'13:14:15.123-05:30'::timetz",
    "'2024-02-29 13:14:15.123456'::timestamp", "'infinity'::timestamp", "'-infinity'::timestamp",
    "'2024-02-29 13:14:15.5+01'::timestamptz", "'2024-07-01 00:00:00+00'::timestamptz",
    "'infinity'::timestamptz", "'1850-01-01 12:00:00+00'::timestamptz",
    "'1 year 2 mons 3 days 04:05:06.5'::interval", "'-1 day -00:00:01'::interval",
    "'-1 year -2 mons +3 days -04:05:06.25'::interval", "'0'::interval",
    "'1000000 hours'::interval",
    "'{\"a\": [1, 2.5, null], \"č\": \"ř\"}'::json", "'{\"a\": 1, \"a\": 2}'::json",
    "'{\"b\": 1, \"a\": 2.50, \"c\": 1e2}'::json", "'[true, {}]'::jsonb", "'null'::jsonb",
    "'\"text\"'::jsonb", "'{\"a\": 1, \"a\": 2}'::jsonb",
    "'{{1,2},{3,NULL}}'::int4[]", "'{1,2}'::int2[]", "'{1,2}'::int8[]", "'{1.5,NaN,NULL}'::numeric[]",
    "ARRAY['Šárka', NULL, 'a,b', 'q\"uote', 'back\\slash', 'NULL', '']::text[]",
    "ARRAY['x']::varchar[]", "ARRAY['x']::bpchar[]", "ARRAY['x']::name[]",
    "ARRAY['\\x00ff'::bytea, NULL]", "ARRAY['2024-01-01 00:00:00+00'::timestamptz]",
    "ARRAY['2024-01-01 00:00:00'::timestamp]", "ARRAY['2024-02-29'::date, NULL, 'infinity']",
    "ARRAY['13:14'::time]", "ARRAY['13:14+01'::timetz]", "ARRAY['1 day'::interval]",
    "ARRAY[1.5::float8, 'NaN']", "ARRAY[1.5::float4]", "ARRAY[true, false, NULL]",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]", "ARRAY[26::oid]",
    "ARRAY['{\"a\":1}'::json]", "ARRAY['{\"a\":1}'::jsonb, NULL]",
    "ARRAY['10.0.0.1'::inet]", "ARRAY['10.0.0.0/8'::cidr]", "ARRAY['08:00:2b:01:02:03'::macaddr]",
    "ARRAY['a'::citext]", "'{{a,b},{c,d}}'::text[]", "'[0:1]={1,2}'::int4[]", "'{}'::int4[]",
    "'10.1.0.0/16'::cidr", "'10.1.2.3'::inet", "'08:00:2b:01:02:03'::macaddr",
    "'pg_class'::regclass", "'int4'::regtype", "'now'::regproc", "'=(int4,int4)'::regoperator",
    "'123'::xid", "'5'::cid", "'(0,1)'::tid", "'0/16B3748'::pg_lsn", "12.34::money",
    "'<a>x</a>'::xml", "'a fat cat'::tsvector", "'fat & cat'::tsquery", "'(1,2)'::point",
    "'[(0,0),(1,1)]'::lseg", "'((0,0),(1,1))'::box", "'<(0,0),1>'::circle", "B'101'::bit(3)",
    "B'1'::varbit", "'[1,5)'::int4range", "'(,)'::int8range", "'[1.5,2.5]'::numrange",
    "'empty'::daterange", "'[2024-01-01,2024-02-01)'::daterange",
    "'[2024-01-01 10:00,2024-01-01 12:00)'::tsrange",
    "'[2024-01-01 10:00+00,2024-01-01 12:00+00)'::tstzrange",
    "ARRAY['[1,2)'::int4range, NULL]", "ARRAY['[2024-01-01,infinity)'::daterange]",
    "'[\"2024-01-01 10:00\",)'::tsrange", "'{[1,3),[5,7)}'::int4multirange", "'{}'::datemultirange", "ROW(1, 'a', NULL)",
    "'a=>1, b=>NULL'::hstore", "ARRAY['a=>1'::hstore]", "'1 2 3'::int2vector",
    "'1 2'::oidvector", "'{1,2}'::int4[]::text", "'ab'::bytea::text", "NULL",
    "'2024-02-29 13:14:15'::timestamptz AT TIME ZONE 'Asia/Kolkata'",
    "'1 day 02:03:04'::interval * 1000", "'00:00:00.000001'::interval",
    "'-178956970 years -8 mons'::interval",
    "'2000-01-01 BC'::date", "'10000-01-01'::date",
]

# each type's NULL
NULLS = ["NULL::%s" % t for t in (
    "bool", "int2", "int4", "int8", "oid", "float4", "float8", "numeric", "text", "varchar",
    "bpchar", "name", "citext", "uuid", "bytea", "date", "time", "timetz", "timestamp",
    "timestamptz", "interval", "json", "jsonb", "int4[]", "text[]", "uuid[]", "xid", "int4range",
    "hstore", "regclass", "money")]

CASES = TYPES + NULLS

# (sql, params) run as the reader; parameters adapted as psycopg2 adapts them
PARAMS = [
    ("SELECT %s AS v", [5]), ("SELECT %s AS v", [2 ** 40]), ("SELECT %s AS v", [2 ** 70]),
    ("SELECT %s AS v", [-5]), ("SELECT %s AS v", [1.5]), ("SELECT %s AS v", ["__nan__"]),
    ("SELECT %s AS v", ["__ninf__"]), ("SELECT %s AS v", ["Dvořák"]),
    ("SELECT %s AS v", [None]), ("SELECT %s AS v", [True]),
    ("SELECT %s AS v", ["__decimal__"]), ("SELECT %s AS v", ["__date__"]),
    ("SELECT %s AS v", ["__datetime__"]), ("SELECT %s AS v", ["__datetimetz__"]),
    ("SELECT %s AS v", ["__time__"]), ("SELECT %s AS v", ["__timedelta__"]),
    ("SELECT %s AS v", ["__bytes__"]), ("SELECT %s AS v", ["__memoryview__"]),
    ("SELECT %s AS v", ["__json__"]), ("SELECT %s AS v", [[1, 2, None]]),
    ("SELECT %s AS v", [[[1, 2], [3, 4]]]), ("SELECT %s AS v", [["a", "b"]]),
    ("SELECT %s::int[] AS v", [[]]),
    ("SELECT count(*) AS v FROM idm_identity WHERE username IN %s", [("admin", "nobody")]),
    ("SELECT 1 AS v WHERE 2 IN %s", [(1, 2, 3)]),
    ("SELECT %(a)s AS v, %(b)s AS w, %(a)s AS x", {"a": 1, "b": "x"}),
    ("SELECT 7 %% 3 AS v, %s AS w", ["p"]), ("SELECT 'a%%b' AS v, %s AS w", [1]),
    ("SELECT %s AS v", ("t",)), ("SELECT %s || %s AS v", ["a", "b"]),
]

_SETUP_PARAMS = """
import datetime, decimal, json
def fix(v):
    special = {
        "__decimal__": decimal.Decimal("12.50"), "__date__": datetime.date(2024, 2, 29),
        "__datetime__": datetime.datetime(2024, 2, 29, 13, 14, 15, 5),
        "__datetimetz__": datetime.datetime(2024, 2, 29, 13, 14, 15,
            tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "__time__": datetime.time(1, 2, 3, 4),
        "__timedelta__": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "__bytes__": b"\\x00\\xfe", "__memoryview__": memoryview(b"\\x01"),
        "__nan__": float("nan"), "__ninf__": float("-inf"),
    }
    if v == "__json__":
        import psycopg2.extras
        return psycopg2.extras.Json({"k": [1, "ř"]})
    return special.get(v, v) if isinstance(v, str) else v
def fixed(params):
    if isinstance(params, dict):
        return params
    return type(params)(fix(v) for v in params)
"""

_CANON = """
def canon(v):
    if isinstance(v, memoryview):
        return "memoryview(%r)" % v.tobytes()
    if isinstance(v, list):
        return "[" + ", ".join(canon(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%r: %s" % (k, canon(x)) for k, x in v.items()) + "}"
    return "%s %r" % (type(v).__name__, v)

def psycopg2_class(e):
    import psycopg2
    for cls in type(e).__mro__:
        if cls.__module__.startswith("psycopg2"):
            return cls.__module__ + "." + cls.__name__
    return type(e).__module__ + "." + type(e).__name__

DIAG = ("sqlstate", "message_primary", "message_detail", "message_hint", "statement_position",
        "context", "schema_name", "table_name", "column_name", "datatype_name",
        "constraint_name", "internal_query", "internal_position", "severity")

def outcome(run):
    try:
        rows = run()
    except Exception as e:
        diag = getattr(e, "diag", None)
        return ("error", psycopg2_class(e), getattr(e, "pgcode", None),
                {k: getattr(diag, k, None) for k in DIAG} if diag is not None else None,
                getattr(e, "pgerror", None))
    return [{k: canon(v) for k, v in row.items()} for row in rows]
"""

_DROPIN_SCRIPT = _CANON + _SETUP_PARAMS + """
import iam_lib_pgconnect
cases, params, writes, setup = @@DATA@@
result = {"cases": [], "params": [], "writes": []}
if cases or params or setup:
  with iam_lib_pgconnect.connect() as db:
    for expr in cases:
        result["cases"].append(outcome(lambda: db.query("SELECT %s AS v" % expr)))
        db.rollback()
    for sql, p in params:
        result["params"].append(outcome(lambda: db.query(sql, fixed(p))))
        db.rollback()
    for sql in setup:
        result["writes"].append(outcome(lambda: db.query(sql)))
        db.rollback()
if writes:
    with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
        for sql in writes:
            result["writes"].append(outcome(lambda: db.query(sql)))
            db.rollback()
"""

ns = {}
exec(_CANON + _SETUP_PARAMS, ns)


def _direct_connection(appliance):
    container = appliance.container("czechidm")
    ip = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         container], capture_output=True, text=True, check=True).stdout.strip()
    password = (appliance.root / "data/volumes/czechidm-db/secrets/postgres.pwfile").read_text().strip()
    return psycopg2.connect(host=ip, dbname="czechidm", user="postgres", password=password)


def _through_psycopg2(appliance, cases, params, writes, reads_that_write):
    conn = _direct_connection(appliance)
    try:
        cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

        def run(sql, p=None, readonly=True):
            conn.rollback()
            conn.set_session(readonly=readonly)

            def go():
                cur.execute(sql, p)
                return cur.fetchall() if cur.description else []
            out = ns["outcome"](go)
            conn.rollback()
            return out

        result = {
            "cases": [run("SELECT %s AS v" % expr) for expr in cases],
            "params": [run(sql, ns["fixed"](p)) for sql, p in params],
            "writes": [run(sql) for sql in reads_that_write]
                      + [run(sql, readonly=False) for sql in writes],
        }
    finally:
        conn.close()
    return result


@pytest.fixture(scope="module")
def extensions(appliance):
    appliance.psql("CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS hstore")


@pytest.fixture(scope="module")
def error_table(appliance, extensions):
    name = "py_parity_errors"
    appliance.psql(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (n int4 PRIMARY KEY, "
        "label text NOT NULL, amount int4 CONSTRAINT {t}_amount_positive CHECK (amount > 0)); "
        "ALTER TABLE {t} OWNER TO czechidm; INSERT INTO {t} VALUES (1, 'one', 1)".format(t=name))
    yield name
    appliance.psql("DROP TABLE IF EXISTS %s" % name)


def _errors(table):
    reads = [
        "SELEC 1", "SELECT 1/0", "SELECT 'abc'::int4", "SELECT * FROM py_no_such_table",
        "SELECT no_such_column FROM idm_identity", "SELECT generate_series(1, 10, 0)",
        "SELECT 2147483647::int4 + 1", "SELECT '2024-02-30'::date", "SELECT 'x'::uuid",
        "SELECT 1 FROM idm_identity WHERE username = 1",
        "UPDATE %s SET label = 'x' WHERE false" % table,
        "SELECT repeat('x', 10) FROM",
    ]
    writes = [
        "INSERT INTO %s VALUES (1, 'dup', 1)" % table,
        "INSERT INTO %s VALUES (2, NULL, 1)" % table,
        "INSERT INTO %s VALUES (3, 'neg', -1)" % table,
        "INSERT INTO %s VALUES ('x', 'bad', 1)" % table,
        "UPDATE %s SET amount = 1/0" % table,
        # a read session's guard refuses unknown functions before PostgreSQL
        "SELECT py_no_such_function()",
    ]
    return reads, writes


@pytest.fixture(scope="module", params=["UTC", "Europe/Prague"])
def zone(request, appliance):
    appliance.psql("ALTER DATABASE czechidm SET timezone TO '%s'" % request.param)
    yield request.param
    appliance.psql("ALTER DATABASE czechidm RESET timezone")


@pytest.fixture(scope="module")
def both(zone, appliance, clients, extensions, error_table):
    reads, writes = _errors(error_table)
    direct = _through_psycopg2(appliance, CASES, PARAMS, writes, reads)
    dropin = clients.result(READER, _DROPIN_SCRIPT.replace("@@DATA@@", repr((CASES, PARAMS, [], reads))))
    dropin_writes = clients.result(WRITER, _DROPIN_SCRIPT.replace("@@DATA@@", repr(([], [], writes, []))))
    dropin["writes"] += dropin_writes["writes"]
    return direct, dropin, reads + writes


def _differences(direct, dropin, labels):
    return [(label, want, got) for label, want, got in zip(labels, direct, dropin) if want != got]


def test_every_type_as_psycopg2(both):
    direct, dropin, _ = both
    assert len(direct["cases"]) == len(dropin["cases"]) == len(CASES)
    assert _differences(direct["cases"], dropin["cases"], CASES) == []


def test_parameters_as_psycopg2(both):
    direct, dropin, _ = both
    labels = ["%s %r" % case for case in PARAMS]
    assert _differences(direct["params"], dropin["params"], labels) == []


def test_errors_as_psycopg2(both):
    direct, dropin, labels = both
    assert len(direct["writes"]) == len(dropin["writes"]) == len(labels)
    type_diffs, diag_diffs = [], []
    for label, want, got in zip(labels, direct["writes"], dropin["writes"]):
        assert want[0] == "error", (label, want)
        # the exception's psycopg2 class and SQLSTATE
        if (want[1], want[2]) != (got[1], got[2]):
            type_diffs.append((label, want[1:3], got[1:3]))
            continue
        # Syntax errors found by the broker's guard too: it passes on the
        # parser's position, so diag and the LINE/caret are psycopg2's.
        expected, actual = dict(want[3]), dict(got[3])
        if expected != actual:
            diag_diffs.append((label, {k: (expected[k], actual[k]) for k in expected
                                       if expected[k] != actual[k]}))
        else:
            assert want[4] == got[4], label  # pgerror, LINE/caret included
    assert type_diffs == []
    assert diag_diffs == []
