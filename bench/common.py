"""Shared benchmark plumbing: a throw-away local cluster on free ports, timing, reporting."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@contextmanager
def bench_cluster(bes: int = 3, with_broker: bool = False, fe_config: dict[str, str] | None = None
                  ) -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="tabletsim-bench-") as tmp:
        ports = free_ports(2 + bes)
        cluster = LocalCluster(os.path.join(tmp, "run"))
        spec = ClusterSpec(bes=bes, fe_port=ports[0], broker_port=ports[1], be_ports=ports[2:],
                           with_broker=with_broker, fe_config=fe_config or {})
        try:
            cluster.start(spec, timeout_s=60)
            yield cluster
        finally:
            cluster.stop()


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def report(name: str, rows: list[dict]) -> str:
    """Print a table and write JSON to bench/results/<name>.json; returns the JSON path."""
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"bench": name, "machine": platform.node(), "cpus": os.cpu_count(),
                   "time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}, f, indent=2)
    print(f"\nwritten to {path}")
    return path
