"""Two-person write approval from Python: one demo user asks, another
approves (the appliance's demo-requester and demo-approvers rules)."""

import pytest

from iam_lib_pgconnect import errors

REQUESTER = "iam-demo-requester"  # mode = "request" on czechidm as czechidm
APPROVER = "iam-demo-approver"    # approve = true on czechidm as czechidm


def test_a_change_asked_by_one_person_runs_when_another_approves(clients, appliance, scratch):
    table = scratch("approval", "id int, note text", "(1, 'Novák')")
    request = clients.result(REQUESTER, """
from iam_lib_pgconnect import approval
result = approval.submit(
    "INC-4711: příjmení",
    [("UPDATE %s SET note = %%s WHERE id = %%s", ["Nováková", 1])],
    user="czechidm")
""" % table)
    assert request["state"] == "pending"
    assert request["statements"][0]["dry_run_rows"] == 1
    assert appliance.psql("SELECT note FROM %s" % table) == "Novák"

    with pytest.raises(errors.PolicyDenied) as e:
        clients.run(REQUESTER, """
from iam_lib_pgconnect import approval
approval.approve(%r)
""" % request["id"])
    assert "own change request" in str(e.value)

    seen = clients.result(APPROVER, """
from iam_lib_pgconnect import approval
result = [r["id"] for r in approval.list_requests()], approval.show(%r)["reason"]
""" % request["id"])
    assert request["id"] in seen[0]
    assert seen[1] == "INC-4711: příjmení"

    done = clients.result(APPROVER, """
from iam_lib_pgconnect import approval
result = approval.approve(%r, comment="ok")
""" % request["id"])
    assert done["state"] == "executed"
    assert done["statements"][0]["rows"] == 1
    assert appliance.psql("SELECT note FROM %s" % table) == "Nováková"

    with pytest.raises(errors.BadRequest):
        clients.run(APPROVER, """
from iam_lib_pgconnect import approval
approval.approve(%r)
""" % request["id"])


def test_a_refused_statement_is_not_submitted(clients):
    with pytest.raises(errors.ForbiddenStatement):
        clients.run(REQUESTER, """
from iam_lib_pgconnect import approval
approval.submit("x", ["COPY (SELECT 1) TO PROGRAM 'id'"], user="czechidm")
""")
