"""Issue 13 (the gRPC side), on the default one-FE cluster, driven with grpcurl as an operator would:
SHOW FRONTENDS lists the one FE as the LEADER, and writes still work (the FE leads, nothing is
forwarded)."""

from __future__ import annotations

import re

import pytest

from tests.support import Admin, assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_show_frontends_lists_one_leader(cluster_factory):
    cluster = cluster_factory(1)
    admin = Admin(cluster.fe_address)
    [fe] = admin.call("ShowFrontends")["frontends"]
    host, port = cluster.fe_address.rsplit(":", 1)
    assert fe["role"] == "LEADER" and fe["is_master"] is True and fe["alive"] is True
    assert fe["ip"] == host and fe["rpc_port"] == int(port)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", fe["start_time"])

    admin.call("CreateDatabase", db="d")  # a write on the leader runs there
    assert_eventually(lambda: int(admin.call("ShowFrontends")["frontends"][0]["replayed_journal_id"]) > 0,
                      timeout_s=10, what="the journal id to count the CreateDatabase")
    proc = admin.call("ShowProc", path="/frontends")
    assert proc["column_names"][:8] == ["Name", "IP", "EditLogPort", "HttpPort", "QueryPort", "RpcPort",
                                        "Role", "IsMaster"]
    [row] = proc["rows"]
    assert row["values"][6:8] == ["LEADER", "true"]
