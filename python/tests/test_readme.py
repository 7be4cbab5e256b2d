"""Every example of the old library's README, unchanged, run as an
unprivileged demo user through the broker."""

import pytest

import iam_lib_pgconnect
from conftest import READER, WRITER


def test_introduction_count(clients, appliance):
    _, out = clients.run(READER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect() as db:
    print(db.query("SELECT count(*) FROM idm_identity"))
""")
    total = int(appliance.psql("SELECT count(*) FROM idm_identity"))
    assert out == "[{'count': %d}]\n" % total


def test_quick_start(clients):
    _, out = clients.run(READER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect() as db:
    rows = db.query("SELECT id, username FROM idm_identity LIMIT 5")
    for row in rows:
        print(row["id"], row["username"])
""")
    lines = out.splitlines()
    assert len(lines) == 5
    # bytea comes back as memoryview, as with psycopg2
    assert all(line.startswith("<memory at ") for line in lines)


def test_reading_data(clients, appliance):
    result, out = clients.run(READER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect() as db:
    # No parameters:
    rows = db.query("SELECT count(*) AS total FROM idm_identity")
    print(rows[0]["total"])

    # With parameters (always via %s, never via string interpolation - SQL injection):
    rows = db.query(
        "SELECT id, username FROM idm_identity WHERE username = %s",
        ["admin"],
    )
    print(rows)
result = [(r["id"].tobytes(), r["username"]) for r in rows]
""")
    total = appliance.psql("SELECT count(*) FROM idm_identity")
    admin_id = appliance.psql("SELECT encode(id, 'hex') FROM idm_identity WHERE username = 'admin'")
    assert out.splitlines()[0] == total
    assert result == [(bytes.fromhex(admin_id), "admin")]


def test_modifying_data(clients, appliance):
    before = appliance.psql("SELECT modified FROM idm_identity WHERE username = 'admin'")
    _, out = clients.run(WRITER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    affected = db.execute(
        "UPDATE idm_identity SET modified = now() WHERE username = %s",
        ["admin"],
    )
    print("rows affected:", affected)
""")
    assert out == "rows affected: 1\n"
    after = appliance.psql("SELECT modified FROM idm_identity WHERE username = 'admin'")
    assert after != before  # committed when the block ended


def test_write_without_readonly_false_fails_with_read_only_sql_transaction(clients, appliance):
    before = appliance.psql("SELECT modified FROM idm_identity WHERE username = 'admin'")
    with pytest.raises(iam_lib_pgconnect.ReadOnlySqlTransaction) as e:
        clients.run(READER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect() as db:
    db.execute("UPDATE idm_identity SET modified = now() WHERE username = %s", ["admin"])
""")
    assert type(e.value).__name__ == "ReadOnlySqlTransaction"
    assert e.value.pgcode == "25006"
    assert isinstance(e.value, iam_lib_pgconnect.DatabaseError)
    assert isinstance(e.value, iam_lib_pgconnect.Error)
    assert e.value.diag.sqlstate == "25006"
    assert "read-only" in e.value.pgerror
    assert appliance.psql("SELECT modified FROM idm_identity WHERE username = 'admin'") == before


def _identity_tables(scratch):
    """Stand-ins for idm_audit_log (which the appliance does not have) and
    idm_identity (so that disabling a user touches nobody else's rows)."""
    log = scratch("audit_log", "msg text")
    identity = scratch("identity", "id bytea PRIMARY KEY, username text, disabled boolean NOT NULL",
                       r"('\x01', 'jan.novák', false), ('\x02', 'žofie.dvořáková', false)")
    return log, identity


def test_multiple_statements_in_one_transaction(clients, appliance, scratch):
    log, identity = _identity_tables(scratch)
    clients.run(WRITER, """
import iam_lib_pgconnect
user_id = b"\\x01"

with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["start"])
    db.execute("UPDATE idm_identity SET disabled = true WHERE id = %s", [user_id])
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["done"])
    # Commit happens only here, after the block finishes successfully.
""".replace("idm_audit_log", log).replace("idm_identity", identity))
    assert appliance.psql("SELECT string_agg(msg, ',' ORDER BY msg) FROM %s" % log) == "done,start"
    assert appliance.psql("SELECT string_agg(username, ',') FROM %s WHERE disabled" % identity) \
        == "jan.novák"


def test_multiple_statements_are_rolled_back_together(clients, appliance, scratch):
    log, identity = _identity_tables(scratch)
    with pytest.raises(KeyError):
        clients.run(WRITER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect(user="czechidm", readonly=False) as db:
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["start"])
    db.execute("UPDATE idm_identity SET disabled = true WHERE id = %s", [b"\\x01"])
    {}["the tool fails here"]
""".replace("idm_audit_log", log).replace("idm_identity", identity))
    assert appliance.psql("SELECT count(*) FROM %s" % log) == "0"
    assert appliance.psql("SELECT count(*) FROM %s WHERE disabled" % identity) == "0"


def test_manual_commit_without_with(clients, appliance, scratch):
    log, identity = _identity_tables(scratch)
    clients.run(WRITER, """
import iam_lib_pgconnect

db = iam_lib_pgconnect.connect(user="czechidm", readonly=False)
try:
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["first"])
    db.commit()
    db.execute("UPDATE idm_identity SET disabled = true WHERE username = %s", ["žofie.dvořáková"])
    db.commit()
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["rolled back"])
    db.rollback()
    db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", ["never committed"])
finally:
    db.close()
result = db.closed
""".replace("idm_audit_log", log).replace("idm_identity", identity))
    assert appliance.psql("SELECT string_agg(msg, ',') FROM %s" % log) == "first"
    assert appliance.psql("SELECT string_agg(username, ',') FROM %s WHERE disabled" % identity) \
        == "žofie.dvořáková"


def test_another_instance(clients):
    _, out = clients.run(READER, """
import iam_lib_pgconnect

with iam_lib_pgconnect.connect(db="bridge") as conn:
    rows = conn.query("SELECT current_database()")
    print(rows)

with iam_lib_pgconnect.connect(db="bridge", user="bridge") as conn:
    rows = conn.query("SELECT current_user")
    print(rows)
""")
    assert out == "[{'current_database': 'bridge'}]\n[{'current_user': 'bridge'}]\n"
