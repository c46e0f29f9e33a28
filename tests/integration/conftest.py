"""Fixtures that start real broker/FE/BE processes on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports

pytestmark = pytest.mark.integration

# Fast failure detection for tests; each test may override through ``cluster_factory``.
TEST_FE_CONFIG = {"heartbeat_timeout_second": "3"}


class ClusterFactory:
    """Starts clusters under a temporary directory and always stops them by pid."""

    def __init__(self, base_dir: str) -> None:
        self._base_dir = base_dir
        self._clusters: list[LocalCluster] = []

    def __call__(
        self,
        bes: int = 3,
        *,
        with_broker: bool = False,
        admin_token: str = "",
        fe_config: dict[str, str] | None = None,
        be_config: dict[str, str] | None = None,
        name: str | None = None,
        debug_points: bool = False,
    ) -> LocalCluster:
        ports = free_ports(2 + bes)
        cluster = LocalCluster(os.path.join(self._base_dir, name or f"cluster{len(self._clusters)}"))
        self._clusters.append(cluster)
        spec = ClusterSpec(
            bes=bes,
            fe_port=ports[0],
            broker_port=ports[1],
            be_ports=ports[2:],
            admin_token=admin_token,
            with_broker=with_broker,
            fe_config={**TEST_FE_CONFIG, **(fe_config or {})},
            be_config=dict(be_config or {}),
            debug_points=debug_points,
        )
        cluster.start(spec, timeout_s=60)
        return cluster

    def stop_all(self) -> None:
        for cluster in self._clusters:
            cluster.stop()


@pytest.fixture
def cluster_factory(tmp_path) -> Iterator[ClusterFactory]:
    factory = ClusterFactory(str(tmp_path))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def cluster(cluster_factory) -> LocalCluster:
    """A FE and 3 BEs (no broker)."""
    return cluster_factory(3)
