"""Issue 12, 3.2: a coordinator writes only to replicas the FE can count, on alive BEs.

A hung BE (SIGSTOP) that the FE has declared dead is no load target: a load neither waits for it
(the 15 s write timeout) nor, when the quorum cannot be met without it, tries at all.
"""

from __future__ import annotations

import base64
import signal
import time

import pytest

from be.load.coordinator import WRITE_RPC_TIMEOUT_S
from tests.integration.test_transactions import be_node, count, csv_rows, setup_table, stream_load
from tests.support import Admin, assert_eventually

pytestmark = pytest.mark.integration


def _alive(admin: Admin) -> dict[str, bool]:
    return {b["backend_id"]: bool(b.get("alive")) for b in admin.call("ShowBackends")["backends"]}


def test_a_hung_backend_known_dead_neither_slows_nor_takes_loads(cluster):
    admin = Admin(cluster.fe_address)
    setup_table(admin)
    assert stream_load(admin, csv_rows(0, 100), label="base")["status"] == "Success"
    hung_id = sorted(_alive(admin))[2]
    node = be_node(cluster, admin, hung_id)
    cluster.signal_node(node, signal.SIGSTOP)
    try:
        assert_eventually(lambda: not _alive(admin)[hung_id], timeout_s=30,
                          what=f"the FE to declare the hung backend {hung_id} dead")
        # MAJORITY with the hung BE's replicas left out: no write waits for it
        started = time.monotonic()
        res = stream_load(admin, csv_rows(100, 100), label="hung")
        elapsed = time.monotonic() - started
        assert res["status"] == "Success", res
        assert elapsed < WRITE_RPC_TIMEOUT_S / 2, f"the load took {elapsed:.1f} s with a hung backend"
        assert count(admin) == 200
        rows = admin.call("ShowTablets", db="d", table="t")["tablets"]
        hung = [r for r in rows if r["backend_id"] == hung_id]
        assert hung and all(r["version"] == "2" and r["lst_failed_version"] == "3" for r in hung)

        # ALL cannot be met without it: refused before any write, naming the tablet and the counts
        admin.call("AlterTable", db="d", table="t", properties={"write_quorum": "all"})
        started = time.monotonic()
        err = admin.error("StreamLoad", db="d", table="t", label="all",
                          data=base64.b64encode(csv_rows(200, 50)).decode())
        elapsed = time.monotonic() - started
        assert err.code == "Unavailable", err
        assert "reached 2 of the 3 replicas its write quorum needs" in err.message
        assert "only 2 of its 3 replicas are NORMAL on an alive backend" in err.message
        assert elapsed < WRITE_RPC_TIMEOUT_S / 2, f"the refusal took {elapsed:.1f} s with a hung backend"
        assert admin.call("ShowTransactions", db="d", label="all")["transactions"][0]["transaction_status"] == \
            "ABORTED"
        assert count(admin) == 200
    finally:
        cluster.signal_node(node, signal.SIGCONT)
    assert_eventually(lambda: _alive(admin)[hung_id], timeout_s=30,
                      what=f"backend {hung_id} to be alive again after SIGCONT")
