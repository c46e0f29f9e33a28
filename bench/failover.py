"""FE failover time and HA commit throughput (issue 13), each beside a same-run baseline.

    .venv/bin/python -m bench.failover [--kills 20] [--loads 300] [--concurrency 8] [--clients 4]
    .venv/bin/python -m bench.failover --kills 3 --loads 100       # a quick try, under a minute

Throughput: one-row StreamLoads into an RF=3 table, ``--concurrency`` at a time, as
bench/txn_rate.py runs them, on a single-FE cluster (local RocksDB journal) and a 3-FE cluster
(journal in a 3-member etcd; loads to the leader), both up at once and measured in alternating
rounds so that a busy machine weighs on both alike. Target: HA rate >= 0.5 x single-FE rate.
Baselines: synced RocksDB edit-log appends (txn_rate's), and sequential etcd writes with aetcd on
the HA cluster's own etcd: single-key puts, and fenced txns (compare + put) as the journal does.

Failover: on the 3-FE cluster (fe_leader_lease_second 3) ``--clients`` clients keep one-row loads
going against the FEs not about to be killed (a follower forwards to the leader). A failed attempt
is retried with the same label until Success, or "Label Already Exists" COMMITTED/VISIBLE (an
earlier attempt committed it): never lost, never doubled. A label stuck PREPARE (begun on the dead
leader; it waits for its txn timeout) is parked and asked every 0.5 s while its client goes on.
t0 is taken just before the leader FE's SIGKILL; the failover time is reply time - t0 of the first
attempt *sent after the killed process was gone* that answered Success. That attempt began its txn
after the kill (a used label answers "Label Already Exists", not Success), so it is the first txn
begun and committed (VISIBLE) by the new leader, as a client sees it. Beside it: when etcd named
the new leader; from the new leader's log when it won the election, was LEADER (journal replayed)
and began its first replica repair (a clone of a replica that fell behind around the failover);
from the BEs' logs when a BE's calls first went to it as the leader ('-': none had to switch).
The killed FE is restarted; the next kill waits until every FE's ShowFrontends shows 3 alive FEs
and the same LEADER, replayed ids reach the leader's id from when they first agreed, and the
leader has 3 alive BEs and every replica OK (ShowReplicaStatus). Target: every kill <= 5 s.

At the end every committed load must be in the table exactly once (rows == committed, ids
distinct, each a committed load's). Writes bench/results/failover.json; exit code 0 only when
both targets pass and the table is right.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from aetcd import rpc

from bench.common import (
    bench_cluster,
    create_one_row_table,
    format_table,
    interrupt_on_sigterm,
    percentile,
    timed_loads,
    write_json,
)
from bench.txn_rate import editlog_appends_per_s
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from common.rpc import admin_channel
from deploy.cluster import LocalCluster
from fe.persist.etcdclient import EtcdSession, compare_create, op_put

DB, TABLE = "fo", "t"
LEASE_S, TARGET_S, RATIO_TARGET = 3, 5.0, 0.5
ROUNDS = 4              # alternating throughput rounds per cluster
CALL_TIMEOUT_S = 10.0   # one attempt
LOAD_DEADLINE_S = 60.0  # one load, all its attempts
TXN_TIMEOUT_S = 20
RETRY_S, PARKED_RETRY_S, PACE_S = 0.05, 0.5, 0.05
FAILOVER_WAIT_S = 30.0  # a kill without a commit by then counts as failed
SETTLE_S = 60.0
ETCD_OPS, ETCD_MAX_S = 500, 8.0
LEADER_HEADER = "x-leader-address"
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) ")
_MARKS = {"won_s": b"won the election", "leader_s": b"is the LEADER from journal seq", "repair_s": b": REPAIR "}
COLUMNS = ["kill", "killed", "new_leader", "etcd_leader_s", "won_s", "leader_s", "be_found_s", "repair_s",
           "failover_s", "failed_tries", "settle_s"]


def ha_cluster(keep: bool):
    """3 etcd members, fe0..fe2 and 3 BEs on free loopback ports; stopped by pid at the end."""
    return bench_cluster(3, fe_config={"fe_leader_lease_second": str(LEASE_S)}, fes=3, keep=keep)


async def rates(single_fe: str, ha_fe: str, loads: int, concurrency: int) -> tuple[float, float]:
    """(single-FE, HA) loads/s over ROUNDS alternating rounds, after one untimed warm-up round."""
    async with admin_channel(single_fe) as c1, admin_channel(ha_fe) as c2:
        stubs = [admin_pb2_grpc.AdminServiceStub(c) for c in (c1, c2)]
        seconds, per_round, first = [0.0, 0.0], max(1, loads // ROUNDS), concurrency
        for admin in stubs:
            await create_one_row_table(admin, "b", "t")
            await timed_loads(admin, range(first), concurrency)
        for r in range(ROUNDS):
            for k in (0, 1) if r % 2 == 0 else (1, 0):
                seconds[k] += await timed_loads(stubs[k], range(first + r * per_round, first + (r + 1) * per_round),
                                                concurrency)
        for admin in stubs:
            count = await admin.Query(admin_pb2.QueryRequest(db="b", table="t", limit=0))
            assert count.count == first + ROUNDS * per_round, count
        return ROUNDS * per_round / seconds[0], ROUNDS * per_round / seconds[1]


async def etcd_rates(endpoints: list[str]) -> tuple[float, float]:
    """(sequential single-key puts/s, sequential fenced txns/s) on the cluster's etcd."""
    session = EtcdSession(tuple(endpoints), timeout_s=5.0)
    await session.connect()
    try:
        out = []
        fence = (await session.put(b"/bench/fence", b"x")).header.revision
        for fenced in (False, True):
            began, n = time.perf_counter(), 0
            while n < ETCD_OPS and time.perf_counter() - began < ETCD_MAX_S:
                if fenced:
                    await session.txn(rpc.TxnRequest(
                        compare=[compare_create(b"/bench/fence", fence)],
                        success=[op_put(b"/bench/journal/%020d" % n, b'{"op":"txn.commit","data":{}}')]))
                else:
                    await session.put(b"/bench/put", b"%d" % n)
                n += 1
            out.append(n / (time.perf_counter() - began))
        return out[0], out[1]
    finally:
        await session.close()


@dataclass
class Attempt:
    sent: float
    replied: float
    ok: bool
    by: str = ""  # the FE that ran it (the leader), when ok


class Stream:
    """Clients keeping one-row loads going against ``targets`` (see the module docstring)."""

    def __init__(self, stubs: dict[str, admin_pb2_grpc.AdminServiceStub], targets: list[str], until: float) -> None:
        self.stubs, self.targets, self.until = stubs, targets, until
        self.stop = False
        self.ids = itertools.count()
        self.attempts: list[Attempt] = []
        self.committed: dict[int, str] = {}  # value -> "Success" | "Publish Timeout" | "Label Already Exists"
        self.unresolved: list[int] = []
        self.parked: list[asyncio.Task] = []
        self.errors: Counter[str] = Counter()

    async def client(self) -> None:
        while not self.stop and time.monotonic() < self.until:
            i = next(self.ids)
            req = types_pb2.StreamLoadRequest(db=DB, table=TABLE, label=f"fo-{i}", data=b"%d\n" % i,
                                              timeout_s=TXN_TIMEOUT_S)
            await self.load(i, req, time.monotonic() + LOAD_DEADLINE_S, parked=False)
            await asyncio.sleep(PACE_S)

    async def load(self, i: int, req: types_pb2.StreamLoadRequest, deadline: float, parked: bool) -> None:
        for attempt in itertools.count():
            if attempt and time.monotonic() > deadline:
                self.unresolved.append(i)
                return
            target = self.targets[(i + attempt) % len(self.targets)]
            sent = time.monotonic()
            call = self.stubs[target].StreamLoad(req, timeout=CALL_TIMEOUT_S)
            try:
                res = await call
                meta = dict(await call.trailing_metadata() or ())
            except grpc.aio.AioRpcError as exc:
                self.attempts.append(Attempt(sent, time.monotonic(), False))
                self.errors[re.sub(r"[0-9]+", "N", f"{exc.code().name}: {exc.details()}")[:100]] += 1
                await asyncio.sleep(PARKED_RETRY_S if parked else RETRY_S)
                continue
            done = res.status in ("Success", "Publish Timeout")
            self.attempts.append(Attempt(sent, time.monotonic(), done, str(meta.get(LEADER_HEADER) or target)))
            if done or (res.status == "Label Already Exists" and res.existing_job_status in ("COMMITTED", "VISIBLE")):
                self.committed[i] = res.status
                return
            self.errors[re.sub(r"[0-9]+", "N", f"{res.status} {res.existing_job_status}: {res.message}")[:100]] += 1
            if res.status == "Label Already Exists" and not parked:  # PREPARE: ask again later, go on meanwhile
                self.parked.append(asyncio.create_task(self.load(i, req, deadline, parked=True)))
                return
            await asyncio.sleep(PARKED_RETRY_S if parked else RETRY_S)


def log_lines(path: str, offset: int, wall0: float) -> Iterator[tuple[float, bytes]]:
    """(seconds after ``wall0``, line) of the log lines written after ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    for line in lines:
        m = _STAMP.match(line)
        if m:
            yield time.mktime(time.strptime(m[1].decode(), "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000 - wall0, line


def log_marks(cluster: LocalCluster, leader: str, offsets: dict[str, int], wall0: float) -> dict[str, float]:
    """From the logs: when the new leader won, led and began its first repair, and when a BE's
    calls first went to it once it led (its FeRouter found it)."""
    out: dict[str, float] = {}
    for t, line in log_lines(cluster.log_path(leader), offsets[leader], wall0):
        for key, text in _MARKS.items():
            if text in line and key not in out:
                out[key] = round(t, 2)
    found = b"FE calls now go to " + cluster.fe_address_of(leader).encode()
    for be in (n for n in offsets if n.startswith("be")):
        t = next((t for t, line in log_lines(cluster.log_path(be), offsets[be], wall0)
                  if found in line and t >= out.get("leader_s", 0)), None)
        if t is not None and t < out.get("be_found_s", t + 1):
            out["be_found_s"] = round(t, 2)
    return out


async def settle(cluster: LocalCluster, stubs: dict[str, admin_pb2_grpc.AdminServiceStub],
                 names: dict[str, str]) -> float:
    """Wait (bounded) for 3 alive FEs that agree on one leader, caught up, with 3 alive BEs and
    every replica OK; returns how long it took."""
    began, mark = time.monotonic(), None
    while time.monotonic() - began < SETTLE_S:
        try:
            views = [list((await stub.ShowFrontends(admin_pb2.ShowFrontendsRequest(), timeout=2)).frontends)
                     for stub in stubs.values()]
            leaders = {r.name for v in views for r in v if r.is_master}
            if len(leaders) == 1 and all(len(v) == len(stubs) and all(r.alive for r in v) for v in views):
                leader = leaders.pop()
                ids = {r.name: r.replayed_journal_id for r in views[list(names.values()).index(leader)]}
                mark = ids[leader] if mark is None else mark
                admin = stubs[cluster.fe_address_of(leader)]
                bes = await admin.ShowBackends(admin_pb2.ShowBackendsRequest(), timeout=2)
                replicas = await admin.ShowReplicaStatus(admin_pb2.ShowReplicaStatusRequest(db=DB, table=TABLE),
                                                         timeout=2)
                if (min(ids.values()) >= mark and sum(b.alive for b in bes.backends) == cluster.spec.bes
                        and all(r.status == "OK" for r in replicas.replicas)):
                    return time.monotonic() - began
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the FEs did not settle within {SETTLE_S:g} s; see {cluster.run_dir}")


async def one_kill(cluster: LocalCluster, stream: Stream, stubs, names: dict[str, str], k: int) -> dict:
    killed, _ = await asyncio.to_thread(cluster.leader) or (None, None)
    if killed is None:
        raise RuntimeError("no leader FE in etcd before a kill")
    stream.targets = [a for a, n in names.items() if n != killed]
    offsets = {n: os.path.getsize(cluster.log_path(n)) for n in cluster.nodes() if n.startswith(("fe", "be"))}
    seen = len(stream.attempts)
    wall0, t0 = time.time(), time.monotonic()
    await asyncio.to_thread(cluster.kill_node, killed)
    gone = time.monotonic()
    row: dict = {"kill": k, "killed": killed, "new_leader": None, "etcd_leader_s": None}
    first = None
    while first is None and time.monotonic() - t0 < FAILOVER_WAIT_S:
        if row["etcd_leader_s"] is None:
            lead = await asyncio.to_thread(cluster.leader)
            if lead and lead[0] != killed:
                row["etcd_leader_s"] = round(time.monotonic() - t0, 2)
        first = next((a for a in stream.attempts[seen:] if a.ok and a.sent >= gone), None)
        await asyncio.sleep(0.05)
    row["new_leader"] = None if first is None else names.get(first.by, first.by)
    row["failover_s"] = None if first is None else round(first.replied - t0, 3)
    end = first.replied if first else time.monotonic()
    row["failed_tries"] = sum(1 for a in stream.attempts[seen:] if not a.ok and t0 <= a.sent <= end)
    await asyncio.to_thread(cluster.start_node, killed)
    row["settle_s"] = round(await settle(cluster, stubs, names), 1)
    if row["new_leader"] in names.values():  # read once settled: a repair comes after the first commit
        row.update(log_marks(cluster, row["new_leader"], offsets, wall0))
    return row


async def failovers(cluster: LocalCluster, args, out: dict) -> None:
    names = {cluster.fe_address_of(n): n for n in cluster.spec.fe_names()}
    leader = await asyncio.to_thread(cluster.leader)
    assert leader is not None
    channels = {a: admin_channel(a) for a in names}
    stubs = {a: admin_pb2_grpc.AdminServiceStub(c) for a, c in channels.items()}
    stream = Stream(stubs, [a for a in names if a != leader[1]],
                    time.monotonic() + 60 + args.kills * (FAILOVER_WAIT_S + SETTLE_S + 15))
    clients: list[asyncio.Task] = []
    try:
        await create_one_row_table(stubs[leader[1]], DB, TABLE)
        await settle(cluster, stubs, names)
        clients = [asyncio.create_task(stream.client()) for _ in range(args.clients)]
        warm = time.monotonic() + 30
        while sum(a.ok for a in stream.attempts) < 4 * args.clients and time.monotonic() < warm:
            await asyncio.sleep(0.1)
        for k in range(1, args.kills + 1):
            row = await one_kill(cluster, stream, stubs, names, k)
            out["kills"].append(row)
            print("\n".join(kill_lines([row])[(0 if k == 1 else 1):]), flush=True)
        stream.stop = True
        await asyncio.wait_for(asyncio.gather(*clients), LOAD_DEADLINE_S + 15)
        await asyncio.wait_for(asyncio.gather(*stream.parked), LOAD_DEADLINE_S + 15)  # none is parked any more
        await check_table(stubs[cluster.fe_address], stream, out)
    finally:
        stream.stop = True
        for task in clients + stream.parked:
            task.cancel()
        await asyncio.gather(*clients, *stream.parked, return_exceptions=True)
        out["errors"] = dict(stream.errors.most_common(12))
        for c in channels.values():
            await c.close()


async def check_table(admin: admin_pb2_grpc.AdminServiceStub, stream: Stream, out: dict) -> None:
    """Every committed load in the table exactly once, nothing else."""
    committed = set(stream.committed)
    resp = await admin.Query(admin_pb2.QueryRequest(db=DB, table=TABLE, limit=len(committed) + 1000), timeout=60)
    ids = [int(r.values[0]) for r in resp.rows]
    how = Counter(stream.committed.values())
    c = out["check"] = {
        "loads_committed": len(committed), "by_success": how["Success"] + how["Publish Timeout"],
        "by_label_already_exists": how["Label Already Exists"], "unresolved": len(stream.unresolved),
        "rows": resp.count, "distinct_ids": len(set(ids)), "missing": len(committed - set(ids)),
        "duplicated": len(ids) - len(set(ids)), "not_committed_in_table": len(set(ids) - committed),
        "attempts": len(stream.attempts), "failed_attempts": sum(not a.ok for a in stream.attempts)}
    c["ok"] = (c["rows"] == len(ids) == c["loads_committed"] and not c["missing"] and not c["duplicated"]
               and not c["not_committed_in_table"] and not c["unresolved"])


def kill_lines(rows: list[dict]) -> list[str]:
    """The kills as aligned lines, seconds with 2 decimals."""
    cells = [{c: f"{r[c]:.2f}" if isinstance(r.get(c), float) else r.get(c) for c in COLUMNS} for r in rows]
    return format_table(cells, COLUMNS, min_widths={c: 6 for c in COLUMNS})


def summary(out: dict, args) -> list[str]:
    samples = [r["failover_s"] for r in out["kills"]]
    done = [s for s in samples if s is not None]
    lines = [f"\nfailover (SIGKILL of the leader FE -> first txn committed by the new leader, lease {LEASE_S} s), "
             f"{len(samples)} kills, {len(done)} with a commit within {FAILOVER_WAIT_S:g} s:"]
    if done:
        q = {k: percentile(done, p) for k, p in (("min", 0), ("p50", 50), ("p90", 90), ("max", 100))}
        out["failover_s"] = {k: round(v, 3) for k, v in q.items() if v is not None}
        lines.append("  " + "  ".join(f"{k} {v:.2f} s" for k, v in q.items()))
        lines.append("  samples: " + " ".join("-" if s is None else f"{s:.2f}" for s in samples))
    out["failover_pass"] = bool(samples) and len(done) == len(samples) and max(done) <= TARGET_S
    lines.append(f"{'PASS' if out['failover_pass'] else 'FAIL'}  failover <= {TARGET_S:g} s on every kill"
                 + (f" (max {max(done):.2f} s)" if done else ""))
    base, single, ha = out.get("editlog_appends_per_s"), out.get("single_loads_per_s"), out.get("ha_loads_per_s")
    put, txn = out.get("etcd_puts_per_s"), out.get("etcd_fenced_txns_per_s")
    rows = [
        {"figure": "synced edit-log appends (single-FE baseline)", "per_s": base, "ratio": "1.00"},
        {"figure": f"single FE: 1-row stream loads, RF=3, {args.concurrency} at a time", "per_s": single,
         "ratio": f"{single / base:.3f} of edit-log appends" if single and base else "-"},
        {"figure": "etcd sequential single-key puts (HA baseline)", "per_s": put, "ratio": "1.00"},
        {"figure": "etcd sequential fenced txns (compare + put)", "per_s": txn,
         "ratio": f"{txn / put:.3f} of etcd puts" if txn and put else "-"},
        {"figure": f"3 FEs: 1-row stream loads to the leader, {args.concurrency} at a time", "per_s": ha,
         "ratio": f"{ha / put:.3f} of etcd puts" if ha and put else "-"},
    ]
    lines += ["", *format_table(rows)]
    ratio = ha / single if ha and single else None
    out["ha_over_single"] = None if ratio is None else round(ratio, 3)
    out["throughput_pass"] = ratio is not None and ratio >= RATIO_TARGET
    lines.append(f"{'PASS' if out['throughput_pass'] else 'FAIL'}  HA / single-FE commit rate "
                 f"{'-' if ratio is None else f'{ratio:.3f}'} (target >= {RATIO_TARGET})")
    c = out.get("check")
    if c:
        lines.append(f"\n{'OK' if c['ok'] else 'WRONG'}  table check: {c['loads_committed']:,} loads committed "
                     f"({c['by_success']:,} Success, {c['by_label_already_exists']:,} by an earlier attempt), "
                     f"{c['rows']:,} rows, {c['distinct_ids']:,} distinct, missing {c['missing']}, duplicated "
                     f"{c['duplicated']}, not committed {c['not_committed_in_table']}, unresolved {c['unresolved']}; "
                     f"{c['attempts']:,} attempts, {c['failed_attempts']:,} failed (retried)")
    lines += [f"  {n:>6,} x {msg}" for msg, n in out.get("errors", {}).items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tabletsim-bench-failover", description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="leader FE kills (each one measured)")
    p.add_argument("--loads", type=int, default=300, help="timed one-row loads per throughput figure")
    p.add_argument("--concurrency", type=int, default=8, help="loads at a time for the throughput figures")
    p.add_argument("--clients", type=int, default=4, help="clients of the load stream during the kills")
    p.add_argument("--keep", action="store_true", help="keep the HA cluster's run dir (logs) at the end")
    args = p.parse_args(argv)
    if min(args.kills, args.loads, args.concurrency, args.clients) < 1:
        p.error("--kills, --loads, --concurrency and --clients must be at least 1")
    interrupt_on_sigterm()
    out: dict = {"config": {**vars(args), "fe_leader_lease_second": LEASE_S, "target_s": TARGET_S,
                            "ratio_target": RATIO_TARGET, "rounds": ROUNDS}, "kills": []}
    failure = ""
    try:
        out["editlog_appends_per_s"] = round(editlog_appends_per_s(), 1)
        with ha_cluster(args.keep) as ha:
            with bench_cluster(3) as single:
                one, three = asyncio.run(rates(single.fe_address, ha.fe_address, args.loads, args.concurrency))
            out["single_loads_per_s"], out["ha_loads_per_s"] = round(one, 1), round(three, 1)
            put, txn = asyncio.run(etcd_rates(ha.spec.etcd_endpoints()))
            out["etcd_puts_per_s"], out["etcd_fenced_txns_per_s"] = round(put, 1), round(txn, 1)
            print(f"loads/s: single FE {one:.1f}, 3 FEs {three:.1f}; etcd {put:.0f} puts/s, {txn:.0f} fenced txns/s",
                  flush=True)
            asyncio.run(failovers(ha, args, out))
    except KeyboardInterrupt:
        failure = "interrupted"
    except (TimeoutError, RuntimeError, AssertionError, grpc.aio.AioRpcError, OSError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    out["failure"] = failure
    print("\n".join(summary(out, args)))
    if failure:
        print(f"run ended early: {failure}")
    print(f"written to {write_json('failover', out)}")
    passed = out["failover_pass"] and out["throughput_pass"] and out.get("check", {}).get("ok", False)
    return 0 if passed and not failure else 1


if __name__ == "__main__":
    sys.exit(main())
