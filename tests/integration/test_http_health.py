"""/api/health on every node and the FE's /api/bootstrap, as a load balancer or a script calls
them: no credentials, JSON, the FE's counts following the BEs' liveness."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support import assert_eventually

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=3) as resp:  # no Authorization header: open routes
        return resp.status, json.load(resp)


def test_health_and_bootstrap_answer_without_credentials_and_follow_the_backends(cluster_factory):
    cluster = cluster_factory(2, admin_token="s3cret")  # open even when the cluster has a token
    fe = cluster.fe_http_url()
    status, body = get(f"{fe}/api/bootstrap")
    assert status == 200 and (body["status"], body["role"]) == ("OK", "LEADER"), body
    assert body["httpPort"] == cluster.spec.fe_http_port_of(0)
    status, body = get(f"{fe}/api/health")
    assert status == 200 and (body["total_backend_num"], body["online_backend_num"]) == (2, 2), body
    ids = set()
    for i in range(2):
        status, body = get(f"{cluster.be_http_url(i)}/api/health")
        assert status == 200 and body["status"] == "OK", body
        ids.add(body["backend_id"])
    assert len(ids) == 2 and 0 not in ids

    cluster.kill_node("be1")
    assert_eventually(lambda: get(f"{fe}/api/health")[1]["online_backend_num"] == 1, timeout_s=20,
                      what="/api/health to count the killed BE as offline")
    assert get(f"{fe}/api/health")[1]["total_backend_num"] == 2
