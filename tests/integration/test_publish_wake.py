"""A commit wakes the publish daemon at once: loads do not wait for its interval (issue 14, 4).

The FE runs with publish_version_interval_ms at its maximum, 60 s: were publishing left to the
interval, each Stream Load below (it answers only once VISIBLE) would take up to a minute.
Concurrent loads into one partition publish together (one round takes consecutive versions).
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import Admin

pytestmark = pytest.mark.integration


def load(admin: Admin, label: str, value: int) -> dict:
    return admin.call("StreamLoad", db="d", table="t", label=label, timeout_s=50,
                      data=base64.b64encode(f"{value}\n".encode()).decode())


def test_loads_become_visible_without_waiting_for_the_publish_interval(cluster_factory):
    cluster = cluster_factory(3, fe_config={"publish_version_interval_ms": "60000"})
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="t", columns=[{"name": "id", "type": "BIGINT"}],
               distributed_by=["id"], buckets=1, properties={"replication_num": "3"})
    config = admin.call("ShowConfig", pattern="publish_version_interval_ms")
    assert "60000" in str(config), config

    started = time.monotonic()
    for i in range(5):
        res = load(admin, f"one-{i}", i)
        assert res["status"] == "Success", res
    assert time.monotonic() - started < 20, "five one-row loads took a publish interval each"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: load(admin, f"many-{i}", 100 + i), range(16)))
    assert all(r["status"] == "Success" for r in results), results
    assert int(admin.call("Query", db="d", table="t", limit=0)["count"]) == 21
    assert time.monotonic() - started < 40
