"""Many one-row loads: N StreamLoad calls, one after another, into a 1-bucket RF=3 MAJORITY table.

    .venv/bin/python -m bench.many_loads [--loads 5000] [--bes 3] [--max-seconds 3600]

The repeatable form of the "5,000 one-row loads" measurement, on a fresh cluster of its own
(free loopback ports, a temporary run dir, stopped by pid at the end, also on Ctrl-C). The FE
answers a StreamLoad Success only once its transaction is VISIBLE, so a call's latency is the
one-row load latency. For the first, middle and last tenth of the loads (1-500, 2,501-3,000 and
4,501-5,000 of 5,000) it prints the median and p95 latency and the FE RSS at the end of that
tenth, then the final max version_count of the table's replicas (ShowTablets). Writes
bench/results/many_loads.json. A benchmark, not a test: a load that fails is counted (with its
error) and the run goes on; the exit code is 1 only when the run itself could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

import grpc

from bench.common import (
    BackendInfo,
    LoadResult,
    bench_cluster,
    cluster_rss_mb,
    create_one_row_table,
    format_table,
    interrupt_on_sigterm,
    max_version_count,
    one_row_load,
    percentile,
    write_json,
)
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import admin_channel
from deploy.cluster import LocalCluster

DB, TABLE = "many", "one_row"
LOAD_TIMEOUT_S = 60
ERRORS_KEPT = 20


# ---------------------------------------------------------------------- pure


def tenth_slices(n: int) -> list[tuple[int, int]]:
    """[start, end) of the first, middle and last tenth of ``n`` loads (0-based; 5,000: 0-500,
    2,500-3,000, 4,500-5,000). A slice that repeats an earlier one is left out."""
    if n <= 0:
        return []
    tenth = max(1, n // 10)
    mid = min(n // 2, n - tenth)
    out: list[tuple[int, int]] = []
    for s in ((0, tenth), (mid, mid + tenth), (n - tenth, n)):
        if s not in out:
            out.append(s)
    return out


def slice_label(start: int, end: int) -> str:
    """1-based and inclusive, as a person counts loads: (2500, 3000) -> '2,501-3,000'."""
    return f"{start + 1:,}-{end:,}"


def slice_row(start: int, end: int, results: list[LoadResult], fe_rss_mb: float | None,
              be_rss_mb: float | None) -> dict:
    """The figures of loads [start, end) (``results`` indexed by load number)."""
    mine = results[start:end]
    ok = [r.latency_ms for r in mine if r.ok]
    p50, p95 = percentile(ok, 50), percentile(ok, 95)
    return {
        "loads": slice_label(start, end),
        "ok": len(ok),
        "failed": len(mine) - len(ok),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
        "fe_rss_mb": None if fe_rss_mb is None else round(fe_rss_mb, 1),
        "be_rss_sum_mb": None if be_rss_mb is None else round(be_rss_mb, 1),
    }


# ---------------------------------------------------------------------- the run


def _rss(cluster: LocalCluster) -> tuple[float | None, float | None]:
    fe, bes = cluster_rss_mb(cluster)
    known = [v for v in bes if v is not None]
    return fe, (sum(known) if known else None)


async def run(cluster: LocalCluster, loads: int, max_seconds: float, out: dict) -> None:
    slices = tenth_slices(loads)
    ends = {end: (start, end) for start, end in slices}
    results: list[LoadResult] = []
    errors: Counter[str] = Counter()
    rows: list[dict] = out["slices"]
    progress_every = max(1, loads // 10)
    backends = BackendInfo(cluster)
    async with admin_channel(cluster.fe_address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            await create_one_row_table(admin, DB, TABLE)
            fe0, be0 = _rss(cluster)
            out["fe_rss_mb_before"], out["be_rss_sum_mb_before"] = fe0, be0
            print(f"{loads:,} one-row loads into {DB}.{TABLE} (1 bucket, RF=3 MAJORITY); FE RSS "
                  f"{'-' if fe0 is None else f'{fe0:.1f}'} MB", flush=True)
            began = time.monotonic()
            for i in range(loads):
                if time.monotonic() - began > max_seconds:
                    raise TimeoutError(f"only {i:,} of {loads:,} loads within --max-seconds {max_seconds:g}")
                res = await one_row_load(admin, DB, TABLE, i, f"many-{i}", LOAD_TIMEOUT_S)
                results.append(res)
                if not res.ok:
                    errors[res.error[:200]] += 1
                if i + 1 in ends:
                    fe, be = _rss(cluster)
                    rows.append(slice_row(*ends[i + 1], results, fe, be))
                if (i + 1) % progress_every == 0 or i + 1 == loads:
                    recent = [r.latency_ms for r in results[-progress_every:] if r.ok]
                    p50 = percentile(recent, 50)
                    print(f"  {i + 1:>7,} loads  {time.monotonic() - began:7.1f} s  last {len(recent):,} ok: "
                          f"p50 {'-' if p50 is None else f'{p50:.1f}'} ms  failed so far {sum(errors.values()):,}",
                          flush=True)
            out["seconds"] = round(time.monotonic() - began, 1)
            out["loads_per_s"] = round(loads / out["seconds"], 1)
        finally:
            out["done"] = sum(1 for r in results if r.ok)
            out["failed"] = sum(1 for r in results if not r.ok)
            out["errors"] = dict(errors.most_common(ERRORS_KEPT))
            try:
                out["max_version_count"] = await max_version_count(admin, [(DB, TABLE)])
                out["compactions"] = await backends.compactions()
                out["visible_rows"] = (await admin.Query(admin_pb2.QueryRequest(db=DB, table=TABLE, limit=0),
                                                         timeout=30)).count
            except grpc.aio.AioRpcError as exc:
                out["final_read_error"] = f"{exc.code().name}: {exc.details()}"
            await backends.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-many-loads", description=__doc__.splitlines()[0])
    p.add_argument("--loads", type=int, default=5000, help="one-row loads, one after another")
    p.add_argument("--bes", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=3600.0, help="give up (and report) after this long")
    args = p.parse_args(argv)
    if args.loads < 1:
        p.error("--loads must be at least 1")
    if args.bes < 3:
        p.error("--bes must be at least 3 (the table has 3 replicas)")
    interrupt_on_sigterm()
    out: dict = {"config": {**vars(args), "table": f"{DB}.{TABLE}", "buckets": 1, "replication_num": 3,
                            "write_quorum": "MAJORITY", "load_timeout_s": LOAD_TIMEOUT_S},
                 "slices": []}
    failure = ""
    interrupted = False
    try:
        with bench_cluster(args.bes) as cluster:
            asyncio.run(run(cluster, args.loads, args.max_seconds, out))
    except KeyboardInterrupt:
        interrupted, failure = True, "interrupted"
        print("\ninterrupted: the cluster was stopped", file=sys.stderr)
    except (TimeoutError, grpc.aio.AioRpcError, OSError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
        print(f"error: {failure}", file=sys.stderr)
    out["failure"] = failure
    path = write_json("many_loads", out)
    print()
    if out["slices"]:
        print("\n".join(format_table(out["slices"])))
    print(f"\nfinal max version_count (ShowTablets): {out.get('max_version_count', '-')}   "
          f"compactions (all BEs): {out.get('compactions', '-')}   visible rows: {out.get('visible_rows', '-')}")
    print(f"loads ok {out.get('done', 0):,}, failed {out.get('failed', 0):,}"
          + (f", {out['loads_per_s']} loads/s" if "loads_per_s" in out else ""))
    for msg, n in out.get("errors", {}).items():
        print(f"  {n:>6,} x {msg}")
    if failure:
        print(f"run ended early: {failure}")
    print(f"written to {path}")
    if interrupted:
        return 130
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
