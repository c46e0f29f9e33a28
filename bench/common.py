"""Shared benchmark plumbing: a throw-away local cluster on free ports, timing, reporting."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import grpc

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, backend_pb2, backend_pb2_grpc, types_pb2
from common.rpc import cluster_channel
from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@contextmanager
def bench_cluster(bes: int = 3, with_broker: bool = False, fe_config: dict[str, str] | None = None,
                  be_config: dict[str, str] | None = None, *, fes: int = 1,
                  keep: bool = False) -> Iterator[LocalCluster]:
    """A cluster on free loopback ports in a temporary run dir, stopped by pid at the end; ``fes``
    > 1: as many FEs on as many etcd members. ``keep``: the run dir (logs) stays, its path printed."""
    tmp = tempfile.mkdtemp(prefix="tabletsim-bench-")
    ports = free_ports(1 + fes + bes)
    cluster = LocalCluster(os.path.join(tmp, "run"))
    spec = ClusterSpec(bes=bes, fe_port=ports[1], broker_port=ports[0], fe_ports=ports[1:1 + fes],
                       be_ports=ports[1 + fes:], with_broker=with_broker, fe_config=fe_config or {},
                       be_config=be_config or {}, fes=fes)
    try:
        cluster.start(spec, timeout_s=60 if fes == 1 else 90)
        yield cluster
    finally:
        cluster.stop()
        if keep:
            print(f"run dir kept: {cluster.run_dir}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


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


# ---------------------------------------------------------------------- long runs (soak, many loads)


def interrupt_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, through the ``finally`` that stops the cluster by pid.

    It is passed on as SIGINT while a Python handler takes SIGINT (asyncio.run's cancels the main
    task, so every ``finally`` of the run gets its turn); with SIGINT ignored it interrupts at once."""

    def _interrupt(signum, frame) -> None:
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
                 min_widths: Mapping[str, int] | None = None) -> list[str]:
    """Rows as aligned text lines (header first); None prints as '-', floats with one decimal.

    ``min_widths`` keeps columns at least that wide, so lines printed one at a time stay aligned."""
    if not rows:
        return []
    columns = list(columns or rows[0])

    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), (min_widths or {}).get(c, 0), *(len(row[i]) for row in cells))
              for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return lines


def write_json(name: str, payload: dict) -> str:
    """Write ``payload`` (plus machine and time) to bench/results/<name>.json; returns the path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"bench": name, "machine": platform.node(), "cpus": os.cpu_count(),
                   "time": time.strftime("%Y-%m-%d %H:%M:%S"), "source": source_version(), **payload}, f, indent=2)
    return path


def rss_mb(pid: int | None) -> float | None:
    """Resident set size of ``pid`` in MB (VmRSS of /proc/<pid>/status); None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds ``pid`` has used (/proc/<pid>/stat); None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def be_nodes(cluster: LocalCluster) -> list[str]:
    return [n for n in cluster.nodes() if n.startswith("be")]


def cluster_rss_mb(cluster: LocalCluster) -> tuple[float | None, list[float | None]]:
    """(FE RSS, [RSS of each BE]) in MB, of the pids the launcher knows (None: not running)."""
    return rss_mb(cluster.pid("fe")), [rss_mb(cluster.pid(n)) for n in be_nodes(cluster)]


async def max_version_count(admin: admin_pb2_grpc.AdminServiceStub, tables: Sequence[tuple[str, str]],
                            timeout_s: float = 10.0) -> int:
    """The highest version_count of any replica (ShowTablets) of the (db, table)s."""
    top = 0
    for db, table in tables:
        resp = await admin.ShowTablets(admin_pb2.ShowTabletsRequest(db=db, table=table), timeout=timeout_s)
        top = max([top, *(r.version_count for r in resp.tablets if r.HasField("version_count"))])
    return top


class BackendInfo:
    """GetBackendInfo on every BE, over channels that carry the cluster token as the FE's do."""

    def __init__(self, cluster: LocalCluster) -> None:
        token = cluster.spec.cluster_token
        self._channels = [cluster_channel(cluster.be_address(int(n[2:])), token) for n in be_nodes(cluster)]
        self._stubs = [backend_pb2_grpc.BackendServiceStub(c) for c in self._channels]

    async def compactions(self, timeout_s: float = 5.0) -> int:
        """Cumulative + base compactions succeeded, summed over every BE (since each BE started)."""
        infos = await asyncio.gather(*(s.GetBackendInfo(backend_pb2.GetBackendInfoRequest(), timeout=timeout_s)
                                       for s in self._stubs))
        return sum(i.cumulative_compactions + i.base_compactions for i in infos)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels), return_exceptions=True)


async def create_one_row_table(admin: admin_pb2_grpc.AdminServiceStub, db: str, table: str) -> None:
    """A 1-bucket RF=3 MAJORITY table with one BIGINT column, for one-row loads."""
    await admin.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=db, if_not_exists=True))
    await admin.CreateTable(admin_pb2.CreateTableRequest(
        db=db, table=table, columns=[admin_pb2.ColumnDef(name="id", type="BIGINT", not_null=True)],
        duplicate_key=["id"], distributed_by=["id"], buckets=1,
        properties={"replication_num": "3", "write_quorum": "MAJORITY"}, if_not_exists=True))


async def timed_loads(admin: admin_pb2_grpc.AdminServiceStub, ids: range, concurrency: int) -> float:
    """One-row Stream Loads of ``ids`` into b.t (label l<id>), ``concurrency`` at a time; the seconds
    they took (bench/txn_rate.py, bench/failover.py)."""
    queue = list(ids)

    async def worker() -> None:
        while queue:
            i = queue.pop()
            res = await admin.StreamLoad(types_pb2.StreamLoadRequest(db="b", table="t", label=f"l{i}",
                                                                     data=f"{i}\n".encode()), timeout=60)
            assert res.status == "Success", res

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


@dataclass
class LoadResult:
    """One call: when it ended (monotonic s), how long it took, and whether it answered Success."""

    t: float
    latency_ms: float
    ok: bool
    error: str = ""


async def one_row_load(admin: admin_pb2_grpc.AdminServiceStub, db: str, table: str, value: int, label: str,
                       timeout_s: int = 60) -> LoadResult:
    """One StreamLoad of one row. The FE answers Success only once the txn is VISIBLE."""
    start = time.perf_counter()
    try:
        res = await admin.StreamLoad(types_pb2.StreamLoadRequest(
            db=db, table=table, label=label, data=b"%d\n" % value, timeout_s=timeout_s), timeout=timeout_s + 30)
        ok, error = res.status == "Success", "" if res.status == "Success" else f"{res.status}: {res.message}"
    except grpc.aio.AioRpcError as exc:
        ok, error = False, f"{exc.code().name}: {exc.details()}"
    return LoadResult(t=time.monotonic(), latency_ms=(time.perf_counter() - start) * 1000, ok=ok, error=error)


def source_version() -> str:
    """The commit the benchmark ran on, '+dirty' with uncommitted changes (read-only git; '' outside git)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = ["git", "-C", repo, "--no-optional-locks"]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=30).returncode
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")
