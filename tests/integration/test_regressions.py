"""Regression tests for bugs the chaos runs found (one test per bug, named after it)."""

from __future__ import annotations

import pytest

from tests.support import grpcurl

pytestmark = pytest.mark.integration


def test_chaos_seed2_late_drop_never_deletes_a_replica_cloned_back(cluster_factory):
    """`make chaos SEED=2`: a balance move dropped the replica on BE A (the BE drop is delayed by a
    grace period), and a second move cloned the tablet back onto A within that grace; the late drop
    then deleted the new replica, the FE still counted it, and later faults lost the data. Drops
    now name the replica: a BE keeps a replica that is not the one named."""
    cluster = cluster_factory(1)
    token = {"x-cluster-token": cluster.spec.cluster_token}
    be = cluster.be_address(0)

    def call(method: str, data: dict) -> dict:
        res = grpcurl(be, f"tabletsim.v1.BackendService/{method}", data, headers=token)
        assert res.ok, res.stderr
        return res.json

    def tablet_num() -> int:
        return int(call("GetBackendInfo", {}).get("tablet_num", 0))

    # the new replica (id 21) of tablet 7 is on this BE; the late drop names the old one (id 20)
    call("CreateTablets", {"tablets": [{"tablet_id": 7, "replica_id": 21, "version": 1, "schema_json": "[]"}]})
    assert tablet_num() == 1
    assert call("DropTablets", {"tablet_ids": [7], "replica_ids": [20]}).get("dropped", 0) == 0
    assert tablet_num() == 1
    assert call("DropTablets", {"tablet_ids": [7], "replica_ids": [21]})["dropped"] == 1
    assert tablet_num() == 0
    res = grpcurl(be, "tabletsim.v1.BackendService/DropTablets", {"tablet_ids": [7, 8], "replica_ids": [1]},
                  headers=token)
    assert "InvalidArgument" in res.stderr and "one per tablet" in res.stderr
