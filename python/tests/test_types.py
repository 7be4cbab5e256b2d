"""Every type of the protocol's value table, from PostgreSQL to Python and
back, through the real broker."""

import datetime
import decimal
import math
import uuid

import pytest

import iam_lib_pgconnect
from conftest import READER

UTC = datetime.timezone.utc
D = decimal.Decimal

# (SQL expression, expected Python value)
CASES = [
    ("NULL::int4", None),
    ("true", True),
    ("32767::int2", 32767),
    ("'-2147483648'::int4", -2147483648),
    ("9223372036854775807::int8", 9223372036854775807),
    ("26::oid", 26),
    ("1.5::float4", 1.5),
    ("-0.1::float8", -0.1),
    ("'Infinity'::float8", math.inf),
    ("'-Infinity'::float4", -math.inf),
    ("12.50::numeric", D("12.50")),
    ("'-0.000000000000000000000001'::numeric", D("-1E-24")),
    ("'Příliš žluťoučký kůň'::text", "Příliš žluťoučký kůň"),
    ("'Dvořák'::varchar(255)", "Dvořák"),
    ("'ab'::char(4)", "ab  "),
    ("'x'::\"char\"", "x"),
    ("'idm_identity'::name", "idm_identity"),
    # psycopg2 without extras.register_uuid(): str, and uuid[] as its text
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("'2024-02-29'::date", datetime.date(2024, 2, 29)),
    ("'infinity'::date", datetime.date.max),
    ("'13:14:15.5'::time", datetime.time(13, 14, 15, 500000)),
    ("'13:14:15+02'::timetz",
     datetime.time(13, 14, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))),
    ("'2024-02-29 13:14:15.123456'::timestamp", datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)),
    ("'-infinity'::timestamp", datetime.datetime.min),
    ("'2024-02-29 13:14:15.5+01'::timestamptz",
     datetime.datetime(2024, 2, 29, 12, 14, 15, 500000, tzinfo=UTC)),
    ("'1 year 2 mons 3 days 04:05:06.5'::interval",
     datetime.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.5)),
    ("'-1 day -00:00:01'::interval", -datetime.timedelta(days=1, seconds=1)),
    ("'{\"a\": [1, 2.5, null], \"č\": \"ř\"}'::json", {"a": [1, 2.5, None], "č": "ř"}),
    ("'[true, {}]'::jsonb", [True, {}]),
    ("'\"text\"'::jsonb", "text"),
    ("'{{1,2},{3,NULL}}'::int4[]", [[1, 2], [3, None]]),
    ("'{1.5,NaN,NULL}'::numeric[]", None),  # checked below: NaN != NaN
    ("ARRAY['Šárka', NULL]::text[]", ["Šárka", None]),
    ("ARRAY['\\x00ff'::bytea]", None),  # checked below: memoryview elements
    ("ARRAY['2024-01-01 00:00:00+00'::timestamptz]", [datetime.datetime(2024, 1, 1, tzinfo=UTC)]),
    ("ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
     "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
    ("ARRAY['2024-02-29'::date, NULL]", [datetime.date(2024, 2, 29), None]),
    ("ARRAY[1.5::float8, 'NaN']", None),  # checked below
]


@pytest.fixture(scope="module")
def row(clients):
    sql = "SELECT " + ", ".join("%s AS c%d" % (expr, i) for i, (expr, _) in enumerate(CASES))
    sql += ", '\\xdeadbeef'::bytea AS bytes, 'NaN'::float8 AS nan, 'NaN'::numeric AS dnan"
    return clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    row = db.query(%r)[0]
result = {k: v.tobytes() if isinstance(v, memoryview) else v for k, v in row.items()}
result["bytes_type"] = type(row["bytes"]).__name__
result["c33"] = [(type(v).__name__, bytes(v)) for v in row["c33"]]
""" % sql)


@pytest.mark.parametrize("i", [i for i, (_, expected) in enumerate(CASES) if expected is not None
                               or CASES[i][0].startswith("NULL")],
                         ids=lambda i: CASES[i][0])
def test_value(row, i):
    value = row["c%d" % i]
    assert value == CASES[i][1]
    assert type(value) is type(CASES[i][1])


def test_bytea_is_memoryview_as_with_psycopg2(row):
    assert row["bytes_type"] == "memoryview"
    assert row["bytes"] == b"\xde\xad\xbe\xef"
    assert row["c33"] == [("memoryview", b"\x00\xff")]


def test_nan(row):
    assert math.isnan(row["nan"]) and isinstance(row["nan"], float)
    assert row["dnan"].is_nan()
    first, nan, null = row["c31"]
    assert first == D("1.5") and nan.is_nan() and null is None
    number, nan = row["c37"]
    assert number == 1.5 and math.isnan(nan)


def test_czechidm_identity_row(clients, appliance):
    result = clients.result(READER, """
import iam_lib_pgconnect
with iam_lib_pgconnect.connect() as db:
    r = db.query("SELECT id, encode(id, 'hex')::uuid AS uid, created, disabled, version, last_name "
                 "FROM idm_identity WHERE username = %s", ["admin"])[0]
result = (r["id"].tobytes(), r["uid"], r["created"], r["disabled"], r["version"], r["last_name"])
""")
    expected = appliance.psql(
        "SELECT encode(id, 'hex'), to_char(created, 'YYYY-MM-DD HH24:MI:SS.US'), disabled, "
        "coalesce(version::text, ''), last_name FROM idm_identity WHERE username = 'admin'").split("|")
    assert result[0].hex() == expected[0]
    assert result[1] == str(uuid.UUID(expected[0]))
    assert result[2] == datetime.datetime.strptime(expected[1], "%Y-%m-%d %H:%M:%S.%f")
    assert result[3] is (expected[2] == "t")
    assert result[4] == (int(expected[3]) if expected[3] else None)
    assert result[5] == expected[4] == "Administrator"


def test_parameters_round_trip(clients):
    result = clients.result(READER, """
import datetime, decimal, uuid
import iam_lib_pgconnect
values = [
    decimal.Decimal("12.50"), b"\\x00\\xfe", uuid.UUID(int=7), datetime.date(2024, 2, 29),
    datetime.datetime(2024, 2, 29, 13, 14, 15, 5, tzinfo=datetime.timezone.utc),
    datetime.datetime(2024, 2, 29, 13, 14, 15), datetime.time(1, 2, 3, 4),
    datetime.timedelta(days=-1, seconds=5, microseconds=7), [[1, 2], [3, None]],
    float("nan"), True, None, "Ředitel ÚDIČ", {"k": [1, "ř"]},
]
with iam_lib_pgconnect.connect() as db:
    row = db.query(
        "SELECT %s::numeric AS a, %s::bytea AS b, %s::uuid AS c, %s::date AS d, "
        "%s::timestamptz AS e, %s::timestamp AS f, %s::time AS g, %s::interval AS h, "
        "%s::int4[] AS i, %s::float8 AS j, %s::bool AS k, %s::text AS l, %s::text AS m, "
        "%s::jsonb AS n", values)[0]
row["b"] = row["b"].tobytes()
row["j"] = repr(row["j"])
values[1] = bytes(values[1])
values[2] = str(values[2])  # uuid comes back as str, as from psycopg2
values[9] = "nan"
result = (list(row.values()), values)
""")
    got, sent = result
    assert got == sent
