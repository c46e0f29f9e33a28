"""FE high availability, the journal's side, on real processes (3 etcd members, 3 FEs, 1 BE):

- compaction: every FE takes images, the leader deletes the records older than all of them from
  etcd, an FE that is down keeps its records there, a restarted follower catches up, and an FE
  whose image is older than the compaction stops with the JournalBehindCompaction message (and
  starts once given a newer image, as the message says);
- etcd members SIGKILLed one at a time (the one the leader FE talks to, then etcd's raft leader),
  then the one it talks to SIGSTOPped for longer than a lease: loads go on committing, followers
  go on replaying, and the leader FE keeps its leadership;
- a leader SIGSTOPped past its lease wakes up: fencing refuses its writes, not one more record
  reaches etcd, and it comes back as a follower of the new leader.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, types_pb2
from deploy.cluster import CLUSTER_ID, ClusterSpec, LocalCluster
from deploy.ports import free_ports
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PREFIX = f"/tabletsim/{CLUSTER_ID}/"
COLUMNS = [admin_pb2.ColumnDef(name="id", type="BIGINT", not_null=True),
           admin_pb2.ColumnDef(name="v", type="VARCHAR(16)")]


@pytest.fixture
def ha_cluster(tmp_path, request) -> Iterator[LocalCluster]:
    ports = free_ports(4)
    cluster = LocalCluster(os.path.join(tmp_path, "ha"))
    extra = getattr(request, "param", {})
    spec = ClusterSpec(bes=1, fes=3, fe_ports=ports[:3], be_ports=ports[3:], with_broker=False,
                       fe_config={"heartbeat_timeout_second": "3", "fe_leader_lease_second": "3", **extra})
    try:
        cluster.start(spec, timeout_s=90)
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------------- etcd, as an operator sees it
def _etcd_post(cluster: LocalCluster, path: str, body: dict) -> dict:
    last: Exception | None = None
    for port in cluster.spec.etcd_client_ports:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                return json.loads(resp.read())
        except OSError as exc:
            last = exc
    raise AssertionError(f"no etcd member answers {path}: {last}")


def etcd_range(cluster: LocalCluster, prefix: str) -> dict[str, bytes]:
    """Every key under ``prefix`` (etcd's v3 JSON gateway) -> value."""
    key = prefix.encode()
    end = key[:-1] + bytes([key[-1] + 1])
    answer = _etcd_post(cluster, "/v3/kv/range", {"key": base64.b64encode(key).decode(),
                                                   "range_end": base64.b64encode(end).decode()})
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")) for kv in answer.get("kvs", [])}


def journal(cluster: LocalCluster) -> dict[int, bytes]:
    """seq -> record, of the records left in etcd."""
    return {int(k.rsplit("/", 1)[1]): v for k, v in etcd_range(cluster, PREFIX + "journal/").items()}


def compacted(cluster: LocalCluster) -> int:
    value = etcd_range(cluster, PREFIX + "journal_compacted").get(PREFIX + "journal_compacted")
    return int(value) if value else 0


def images(cluster: LocalCluster) -> dict[str, int]:
    return {k.rsplit("/", 1)[1]: int(v) for k, v in etcd_range(cluster, PREFIX + "images/").items()}


def etcd_status(cluster: LocalCluster) -> dict[str, dict]:
    """etcd member name -> its maintenance status, for the members that answer."""
    out = {}
    for name, port in zip(cluster.spec.etcd_names(), cluster.spec.etcd_client_ports, strict=True):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/maintenance/status", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                out[name] = json.loads(resp.read())
        except OSError:
            continue
    return out


def raft_leader(cluster: LocalCluster) -> str:
    """The etcd member that is etcd's raft leader."""
    statuses = etcd_status(cluster)
    by_id = {status["header"]["member_id"]: name for name, status in statuses.items()}
    return by_id[next(iter(statuses.values()))["leader"]]


def move_raft_leader_off(cluster: LocalCluster, member: str) -> None:
    """Make another member etcd's raft leader (MoveLeader, sent to the leader). A raft leader
    that is SIGSTOPped revokes, when it wakes, every lease it thinks expired meanwhile although
    the new leader renewed them (etcd issue 15247, fixed in 3.4.28; Debian has 3.4.23)."""
    statuses = etcd_status(cluster)
    if raft_leader(cluster) != member:
        return
    target = next(status["header"]["member_id"] for name, status in statuses.items() if name != member)
    port = cluster.spec.etcd_client_ports[cluster.spec.etcd_names().index(member)]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/maintenance/transfer-leadership",
                                     data=json.dumps({"targetID": target}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        resp.read()
    assert_eventually(lambda: raft_leader(cluster) != member and etcd_settled(cluster), timeout_s=10,
                      what=f"etcd's raft leadership to move off {member}")


def etcd_settled(cluster: LocalCluster) -> bool:
    """Every member answers, they agree on the raft leader and each applied (nearly) all of its
    log: a member that has just restarted reports itself healthy before that, and killing
    another member then leaves etcd without a leader for seconds (every FE's lease runs out:
    rightly)."""
    statuses = etcd_status(cluster)
    if len(statuses) < len(cluster.spec.etcd_names()):
        return False
    leaders = {status["leader"] for status in statuses.values()}
    newest = max(int(status["raftIndex"]) for status in statuses.values())
    return (len(leaders) == 1 and "0" not in leaders
            and all(newest - int(status.get("raftAppliedIndex", 0)) <= 20 for status in statuses.values()))


def etcd_member_of(cluster: LocalCluster, node: str) -> str | None:
    """The etcd member the process of ``node`` has a connection to (/proc: its sockets)."""
    pid = cluster.pid(node)
    if pid is None:
        return None
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = dict(zip(cluster.spec.etcd_client_ports, cluster.spec.etcd_names(), strict=True))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # gRPC dials IPv4 from dual-stack sockets: tcp6
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                remote_port, state, inode = int(cols[2].rsplit(":", 1)[1], 16), cols[3], cols[9]
                if inode in inodes and state == "01" and remote_port in ports:  # 01: ESTABLISHED
                    return ports[remote_port]
    return None


# ---------------------------------------------------------------------- the FEs
def admin(address: str) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(address))


def databases(address: str) -> set[str]:
    try:
        return {row.name for row in admin(address).ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=3).databases}
    except grpc.RpcError:
        return set()


def log_of(cluster: LocalCluster, node: str) -> str:
    with open(cluster.log_path(node), errors="replace") as f:
        return f.read()


def _log_time(line: str) -> float:
    """Seconds of the day of a log line (``2026-01-01 12:00:00.123 ...``)."""
    hms = line.split()[1]
    h, m, sec = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def step_downs(cluster: LocalCluster) -> list[str]:
    return [line for node in cluster.spec.fe_names() for line in log_of(cluster, node).splitlines()
            if " steps down from " in line]


def newest_image(meta_dir: str) -> tuple[str, int]:
    """(path, seq) of the newest whole image file in an FE's meta dir."""
    folder = os.path.join(meta_dir, "image")
    seqs = [int(f[6:]) for f in os.listdir(folder) if re.fullmatch(r"image\.\d+", f)]
    return os.path.join(folder, f"image.{max(seqs)}"), max(seqs)


# ---------------------------------------------------------------------- compaction
@pytest.mark.parametrize("ha_cluster", [{"edit_log_roll_num": "10"}], indirect=True)
def test_compaction_keeps_what_an_fe_needs_and_names_the_fe_left_behind(ha_cluster):
    cluster = ha_cluster
    name, address = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
    followers = [n for n in cluster.spec.fe_names() if n != name]
    leader = admin(address)
    for i in range(25):
        leader.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=f"a{i}"), timeout=10)
    first = {f"a{i}" for i in range(25)}

    # every FE took an image; the leader deleted the records older than all of them
    assert_eventually(lambda: len(images(cluster)) == 3 and min(images(cluster).values()) >= 20, timeout_s=20,
                      what="every FE to publish an image of seq >= 20")
    assert_eventually(lambda: compacted(cluster) >= 20, timeout_s=20, what="the leader to compact the journal")
    left = journal(cluster)
    assert min(left, default=compacted(cluster) + 1) == compacted(cluster) + 1, "records at or below the mark"
    assert compacted(cluster) <= min(images(cluster).values())

    # a follower goes down with its image: the records after it stay in etcd while it is away
    away = followers[0]
    cluster.kill_node(away)
    saved = os.path.join(cluster.run_dir, "saved-meta")
    shutil.copytree(cluster.data_dir(away), saved)
    its_image = images(cluster)[away]  # published; the newest file in its meta dir may be newer
    saved_seq = newest_image(saved)[1]
    assert saved_seq >= its_image
    for i in range(25):
        leader.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=f"b{i}"), timeout=10)
    everything = first | {f"b{i}" for i in range(25)}
    live = [n for n in cluster.spec.fe_names() if n != away]
    assert_eventually(lambda: all(images(cluster)[n] > its_image + 10 for n in live), timeout_s=20,
                      what="the FEs that are up to take newer images")
    assert compacted(cluster) <= its_image
    assert set(journal(cluster)) >= set(range(its_image + 1, max(journal(cluster)) + 1))

    # it comes back, catches up from its image, takes a newer one: compaction passes its old image
    cluster.start_node(away)
    assert_eventually(lambda: everything <= databases(cluster.fe_address_of(away)), timeout_s=30,
                      what=f"{away} to catch up")
    assert_eventually(lambda: compacted(cluster) > saved_seq, timeout_s=30,
                      what="compaction past the image the restarted FE had")

    # the same FE with its old meta dir: older than the compaction, it stops and says what to do
    cluster.kill_node(away)
    shutil.rmtree(cluster.data_dir(away))
    shutil.copytree(saved, cluster.data_dir(away))
    cluster.start_node(away)
    assert_eventually(lambda: cluster.pid(away) is None, timeout_s=30, what=f"{away} to stop")
    failure = log_of(cluster, away)
    assert "JournalBehindCompaction" in failure and "copy the newest image file" in failure, failure[-2000:]
    assert f"replayed up to journal seq {saved_seq} " in failure

    # done as the message says: the newest image of another FE, then a restart
    newest, _ = newest_image(cluster.data_dir(live[0]))
    shutil.copy(newest, os.path.join(cluster.data_dir(away), "image"))
    cluster.start_node(away)
    assert_eventually(lambda: everything <= databases(cluster.fe_address_of(away)), timeout_s=30,
                      what=f"{away} to start from the copied image and catch up")
    assert cluster.leader() == (name, address)
    assert not step_downs(cluster)


# ---------------------------------------------------------------------- etcd member kills
OUTAGE_SPARED_S = 2.0
"""An etcd outage shorter than this never costs the leader FE its leadership (a 3 s lease, less a
keepalive try and a backoff: fe/ha/etcd.py). A longer one may: then no FE can renew, and the
leader's deadline on its own clock is all that keeps two FEs from leading at once."""


@dataclass
class Loader:
    """StreamLoads, one after another, to one FE, as a careful client sends them: a load that fails
    is sent again with the same label until it is committed (a retry of a committed label answers
    "Label Already Exists" with its status)."""

    address: str
    rows: int = 20
    ok: int = 0
    retries: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def _run(self) -> None:
        stub = admin(self.address)
        i = 0
        while not self._stop.is_set():
            data = "".join(f"{i * self.rows + r},v{r}\n" for r in range(self.rows)).encode()
            started = time.monotonic()
            while True:
                try:
                    result = stub.StreamLoad(types_pb2.StreamLoadRequest(db="d", table="t", label=f"l{i}",
                                                                         data=data), timeout=30)
                    if result.status == "Success" or (result.status == "Label Already Exists"
                                                      and result.existing_job_status in ("COMMITTED", "VISIBLE")):
                        self.ok += 1
                        break
                    outcome = f"{result.status} {result.existing_job_status} {result.message}"
                except grpc.RpcError as exc:
                    outcome = f"{exc.code().name} {exc.details()}"
                self.retries.append(f"l{i}: {outcome}")
                if time.monotonic() - started > 30:
                    self.lost.append(f"l{i}: {outcome}")
                    break
                self._stop.wait(0.2)
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            i += 1


class EtcdProbe:
    """Linearizable reads through every etcd member, every 0.1 s, from this test: how long etcd as
    a whole could not answer (no raft leader), whatever the FEs did."""

    def __init__(self, cluster: LocalCluster) -> None:
        self._ports = list(cluster.spec.etcd_client_ports)
        self.answered: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etcd-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        body = json.dumps({"key": base64.b64encode(PREFIX.encode() + b"leader").decode()}).encode()
        while not self._stop.is_set():
            for port in self._ports:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range", data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=0.5) as resp:
                        resp.read()
                except OSError:
                    continue
                self.answered.append(time.monotonic())
                break
            self._stop.wait(0.1)

    def longest_outage(self, start: float, end: float) -> float:
        times = [start] + [t for t in self.answered if start < t < end] + [end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_etcd_member_kills_and_a_hung_member_leave_the_leader_fe_leading(ha_cluster):
    cluster = ha_cluster
    name, address = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
    leader = admin(address)
    leader.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d"), timeout=10)
    leader.CreateTable(admin_pb2.CreateTableRequest(db="d", table="t", columns=COLUMNS, duplicate_key=["id"],
                                                    distributed_by=["id"], buckets=2,
                                                    properties={"replication_num": "1"}), timeout=10)
    probe = EtcdProbe(cluster)
    loader = Loader(address)
    loader.start()
    follower = next(n for n in cluster.spec.fe_names() if n != name)
    kills: list[tuple[str, bool, float, float]] = []  # victim, was raft leader, killed at, back at
    stopped = ""
    try:
        assert_eventually(lambda: loader.ok >= 3, timeout_s=20, what="loads to commit")
        # SIGKILL the member the leader FE talks to, then etcd's raft leader (or the next one);
        # then SIGSTOP the member the leader FE talks to for longer than a lease (not etcd's raft
        # leader: see move_raft_leader_off)
        for how, pick in (("kill", lambda: etcd_member_of(cluster, name)), ("kill", lambda: raft_leader(cluster)),
                          ("stop", lambda: etcd_member_of(cluster, name))):
            victim = pick()
            if not kills:
                assert victim is not None, f"no connection from {name} to an etcd member found in /proc"
            if victim is None or (how == "kill" and victim in [k[0].split()[0] for k in kills]):
                victim = next(n for n in cluster.spec.etcd_names() if n not in [k[0].split()[0] for k in kills])
            if how == "stop":
                move_raft_leader_off(cluster, victim)
            was_raft_leader = victim == raft_leader(cluster)
            before = loader.ok
            hit_at = time.monotonic()
            if how == "kill":
                cluster.kill_node(victim)
            else:
                stopped = victim
                cluster.signal_node(victim, signal.SIGSTOP)
            assert_eventually(lambda b=before, t=hit_at: loader.ok >= b + 5 and time.monotonic() - t > 4,
                              timeout_s=15, what=f"loads to commit with {victim} {how}ped (raft leader: "
                                                 f"{was_raft_leader}), for longer than a lease")
            if how == "kill":
                cluster.start_node(victim)
            else:
                db = f"while_{victim}_hangs"
                leader.CreateDatabase(admin_pb2.CreateDatabaseRequest(db=db), timeout=10)
                assert_eventually(lambda d=db: d in databases(cluster.fe_address_of(follower)), timeout_s=10,
                                  what=f"{follower} to go on replaying while {victim} hangs")
                cluster.signal_node(victim, signal.SIGCONT)
                stopped = ""
            assert_eventually(lambda: etcd_settled(cluster), timeout_s=20, what=f"{victim} back in the etcd cluster")
            kills.append((f"{victim} {how}", was_raft_leader, hit_at, time.monotonic()))
        assert_eventually(lambda b=loader.ok: loader.ok >= b + 3, timeout_s=15, what="loads after the restarts")
    finally:
        if stopped:
            cluster.signal_node(stopped, signal.SIGCONT)
        loader.stop()
        probe.stop()
    outages = [(victim, raft, round(probe.longest_outage(start, end), 2)) for victim, raft, start, end in kills]
    print(f"\netcd members hit (member, raft leader, longest etcd outage s): {outages}; "
          f"{loader.ok} loads, {len(loader.retries)} retries, slowest {loader.slowest_s:.1f} s")
    assert not loader.lost, loader.lost
    assert loader.slowest_s < 10, f"a load took {loader.slowest_s:.1f} s"
    stepped = step_downs(cluster)
    if not stepped:
        assert cluster.leader() == (name, address)
        assert not loader.retries, loader.retries
    else:
        # only when etcd answered nobody for a lease (no raft leader: see OUTAGE_SPARED_S): then
        # every other FE lost its lease at the same moment, and etcd was out for seconds
        assert max(outage for _, _, outage in outages) >= OUTAGE_SPARED_S, (outages, stepped)
        for line in stepped:
            at = _log_time(line)
            for other in cluster.spec.fe_names():
                lost = [_log_time(x) for x in log_of(cluster, other).splitlines()
                        if " lost its etcd lease " in x or " steps down from " in x]
                assert any(abs(t - at) < 1.0 for t in lost), f"a needless step-down: {other} kept its lease: {line}"
        assert_eventually(cluster.leader, timeout_s=15, what="an FE to lead again")
    count = assert_eventually(
        lambda: (n := leader.Query(admin_pb2.QueryRequest(db="d", table="t", limit=0), timeout=10).count)
        == loader.ok * loader.rows and n, timeout_s=20, what="every committed load visible")
    assert count == loader.ok * loader.rows


# ---------------------------------------------------------------------- a leader SIGSTOPped past its lease
def test_a_leader_stopped_past_its_lease_writes_nothing_when_it_wakes(ha_cluster):
    cluster = ha_cluster
    name, address = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
    pid = cluster.pid(name)
    stale = admin(address)
    stale.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="before"), timeout=10)

    cluster.signal_node(name, signal.SIGSTOP)
    try:
        new_name, new_address = assert_eventually(
            lambda: (lead := cluster.leader()) and lead[0] != name and lead, timeout_s=15, what="another FE to lead")
        admin(new_address).CreateDatabase(admin_pb2.CreateDatabaseRequest(db="after"), timeout=10)
        last_seq = max(journal(cluster))
        # a write reaches the stopped leader: it runs first thing when the process wakes
        pending = stale.CreateDatabase.future(admin_pb2.CreateDatabaseRequest(db="stale"), timeout=30)
    finally:
        cluster.signal_node(name, signal.SIGCONT)
    try:
        pending.result()
        answered = "ok"
    except grpc.RpcError as exc:
        answered = exc.code().name

    # it steps down (same process, re-executed) and follows the new leader
    assert_eventually(lambda: {"before", "after"} <= databases(address), timeout_s=30,
                      what=f"{name} back as a follower of {new_name}")
    assert cluster.pid(name) == pid  # os.execv: the same process
    assert cluster.leader()[0] == new_name
    reasons = [line for line in step_downs(cluster) if "fe.ha.etcd: FE " + name in line]
    print(f"\n{name} woke after {new_name} took over: the write sent to it answered {answered}; it stepped "
          f"down: {[r.split(' steps down from ', 1)[1] for r in reasons]}")
    assert reasons and all("lease ran out on this FE's clock" in r or "refused by fencing" in r for r in reasons), \
        reasons

    # not one record of the stale leader's reached etcd: a write it answered OK was forwarded
    records = journal(cluster)
    stale_records = [seq for seq, value in records.items() if b'"stale"' in value]
    if answered == "ok":
        assert len(stale_records) == 1 and stale_records[0] > last_seq
        assert_eventually(lambda: "stale" in databases(new_address), timeout_s=10, what="the forwarded write")
    else:
        assert not stale_records, (answered, stale_records)
        assert "stale" not in databases(new_address)
    assert sorted(records) == list(range(min(records), max(records) + 1))
