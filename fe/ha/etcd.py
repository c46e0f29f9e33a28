"""FE high availability on etcd: membership, leader election, the follower tail, step-down.

:class:`EtcdFrontend` is the :class:`fe.ha.role.HaState` of an FE started with ``--journal etcd``.
Its phases are :class:`fe.ha.state.RoleMachine`'s; this module is the driver that does the I/O.

- **Lease.** Each FE holds one etcd lease of ``fe_leader_lease_second`` (dynamic config; a new
  value takes effect at the FE's next lease grant: its next start). The lease carries its member
  key (``members/<name>``: alive while present) and, on the leader, the leader key.
- **Keepalive.** A task of its own renews the lease every :meth:`keepalive_interval_s`
  (:class:`LeaseClock` keeps the local deadline). A renewal that fails is tried again at once, each try bounded by what
  is left of the lease, until one gets through or the lease runs out on this FE's clock: a leader
  stops leading at that deadline (before etcd can expire the lease), however long other etcd calls
  hang. Renewals never wait behind the check's writes and reads: while etcd has no raft leader
  (its leader member was killed) those hang until etcd's own timeout, while a keepalive goes
  through as soon as a new etcd leader is elected.
- **Check.** Every :meth:`interval_s` the FE rewrites its member key (replayed journal id, image
  seq, heartbeat), reads the leader and member keys, and publishes its image seq
  (``images/<name>``).
- **Election.** A follower that finds no leader key creates it, attached to its lease, in a
  transaction that requires it to be absent. The key's create revision is the fencing token:
  every journal write compares it (fe/persist/etcdlog.py). The winner cancels its tail, reads the
  journal to its end, makes the journal writable and only then reports LEADER to its listeners
  (fe/node.py starts the leader's daemons there). A campaign whose answer was lost (a timeout, a
  member that died or hung) may still have gone through: an FE that finds the key with its own
  name and its current lease won, and leads from that key's create revision.
- **Losing it.** A leader whose lease ran out on its own clock (SIGSTOPped, or cut from etcd for a
  lease), whose keepalive says the lease is gone, whose leader key changed hands, or whose journal
  write was refused by fencing, steps down: it revokes its lease (best effort) and calls
  ``step_down`` (fe/ha/stepdown.py: the process re-executes itself and comes back as a follower).
  A follower that loses etcd for a lease knows no leader (``leader_address`` None) until it
  has a lease again. A follower whose tail cannot go on (the records it needs were compacted
  away) restarts the same way, and its start fails with :class:`JournalBehindCompaction`.
- **Compaction.** The leader deletes the records that every configured FE's image covers (the
  minimum of ``images/<name>``; an FE that never published one holds everything). Image keys
  have no lease: an FE that is down keeps, in etcd, every record after its last image until it
  comes back and checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
import orjson
from aetcd import rpc

from fe.ha.role import FeRole, FrontendInfo
from fe.ha.state import HaPhase, LeaseClock, RoleMachine
from fe.ha.tail import JournalBehindCompaction, JournalTail
from fe.persist.editlog import Record
from fe.persist.etcdclient import EtcdSession, compare_create, is_transient, op_get, op_put, prefix_end
from fe.persist.etcdlog import EtcdEditLog, Fence
from fe.persist.journal import Journal

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 5.0
REVOKE_TIMEOUT_S = 0.5


class EtcdFrontend:
    """One FE of an etcd-backed cluster (see the module docstring)."""

    def __init__(self, *, info: FrontendInfo, frontends: tuple[tuple[str, str], ...], session: EtcdSession,
                 store: EtcdEditLog, journal: Journal, lease_s: Callable[[], int],
                 step_down: Callable[[str], None], mono: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._info = info
        self._configured = frontends
        self._session = session
        self._store = store
        self._journal = journal
        self._lease_s = lease_s
        self._step_down_fn = step_down
        self._mono = mono
        self._wall_ms = wall_ms
        self.machine = RoleMachine()
        self._lease = LeaseClock()
        self._lease_id = 0
        self._lease_ttl = 0
        self._fence: Fence | None = None
        self._leader: dict | None = None  # the leader key's value, while this FE's lease holds
        self._members: dict[str, dict] = {}
        self._published_image = -1
        self._compacted = 0
        self._last_compact = 0.0
        self._listeners: list[Callable[[FeRole], None]] = []
        self._applied = asyncio.Condition()
        self._tail = JournalTail(store, session, self._apply, lambda: journal.last_seq)
        self._tail_task: asyncio.Task | None = None
        self._check_task: asyncio.Task | None = None
        self._lease_task: asyncio.Task | None = None
        self._stepping: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False  # the FE is stopping: a lost leadership ends with the process

    # ------------------------------------------------------------------ HaState
    @property
    def role(self) -> FeRole:
        """LEADER only while the lease surely holds on this FE's own clock: a leader that wakes from
        a SIGSTOP past its lease claims nothing, even before its next check steps it down."""
        return FeRole.LEADER if self._leads_now() else FeRole.FOLLOWER

    def _leads_now(self) -> bool:
        return self.machine.phase is HaPhase.LEADER and self._lease.holds(self._mono())

    @property
    def phase(self) -> HaPhase:
        return self.machine.phase

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def self_address(self) -> str:
        return self._info.address

    @property
    def leader_address(self) -> str | None:
        if self.machine.phase is HaPhase.LEADER:
            return self._info.address if self._leads_now() else None  # its lease ran out: it knows no leader
        if self._leader is None or not self._lease.holds(self._mono()):
            return None  # no leader known, or this FE lost etcd: it knows nothing current
        return self._leader.get("address")

    @property
    def replayed_journal_id(self) -> int:
        return self._journal.durable_seq

    def frontends(self) -> list[FrontendInfo]:
        if self.machine.phase is HaPhase.LEADER:
            leader_name = self.name if self._leads_now() else None
        else:
            leader_name = self._leader.get("name") if self._leader else None
        names = [name for name, _ in self._configured]
        addresses = dict(self._configured)
        names += sorted(n for n in self._members if n not in addresses)
        out = []
        for name in names:
            member = self._members.get(name)
            if name == self.name:
                member = {**(member or {}), **self._member_record()}
            address = addresses.get(name) or f"{member['host']}:{member['rpc_port']}"  # type: ignore[index]
            host, _, port = address.rpartition(":")
            is_leader = name == leader_name
            out.append(FrontendInfo(
                name=name, host=host, rpc_port=int(port), http_port=int(member.get("http_port", 0)) if member else 0,
                query_port=int(member.get("query_port", 0)) if member else 0,
                role=FeRole.LEADER if is_leader else FeRole.FOLLOWER, is_leader=is_leader,
                cluster_id=self._store.layout.cluster_id, joined=True, alive=member is not None,
                replayed_journal_id=int(member["replayed"]) if member else 0,
                last_heartbeat_ms=int(member["heartbeat_ms"]) if member else 0,
                is_helper=False, err_msg="" if member else "no member key in etcd: the FE is down or cut off",
                start_time_ms=int(member["start_time_ms"]) if member else 0,
                version=str(member["version"]) if member else "",
            ))
        return out

    async def wait_replayed(self, journal_id: int, timeout_s: float) -> bool:
        if self.machine.phase is HaPhase.LEADER:
            try:
                await asyncio.wait_for(self._journal.durable(), timeout_s)
            except TimeoutError:
                return False
            return self._journal.durable_seq >= journal_id
        async with self._applied:
            try:
                await asyncio.wait_for(self._applied.wait_for(lambda: self._journal.durable_seq >= journal_id),
                                       timeout_s)
            except TimeoutError:
                return False
        return True

    def add_listener(self, fn: Callable[[FeRole], None]) -> None:
        self._listeners.append(fn)

    # ------------------------------------------------------------------ life
    def interval_s(self) -> float:
        """How often the lease is checked: a sixth of it, so a dead leader is replaced within
        about a lease and a half. Also what one keepalive try is given."""
        return max(0.1, min(1.0, (self._lease_ttl or self._lease_s()) / 6))

    def keepalive_interval_s(self) -> float:
        """How often the lease is renewed: a twelfth of it. The local deadline counts from the
        last renewal *sent*, so renewing often leaves more of the lease to ride out an etcd
        outage: one shorter than the lease less a try and a backoff (about 2 s of a 3 s lease)
        never costs the leadership. Keepalives are cheap: no raft round, no disk."""
        return max(0.05, min(0.5, (self._lease_ttl or self._lease_s()) / 12))

    async def start(self) -> None:
        """Connect, register, read the journal to its end (FOLLOWER), then keep checking."""
        self._loop = asyncio.get_running_loop()
        self._store.bind(self._loop)
        self._journal.set_writable(False)
        backoff = 0.2
        while True:
            try:
                await self._session.connect()
                await self._grant()
                await self._put_member()
                await self._tail.catch_up()
                break
            except JournalBehindCompaction:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("etcd %s not reachable yet (%s); retrying", ",".join(self._session.endpoints), exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        self.machine.caught_up()
        log.info("FE %s is a FOLLOWER at journal seq %d (image %d)", self.name, self._journal.last_seq,
                 self._store.image_seq)
        self._tail_task = asyncio.create_task(self._run_tail(), name="fe-journal-tail")
        self._lease_task = asyncio.create_task(self._run_lease(), name="fe-lease-keepalive")
        self._check_task = asyncio.create_task(self._run_checks(), name="fe-lease-check")

    async def close(self) -> None:
        tasks = (self._lease_task, self._check_task, self._tail_task, self._stepping)
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing: logged where raised
                    pass
        if self._lease_id and self.machine.phase is not HaPhase.STEPPED_DOWN:
            try:  # leave at once instead of one lease later
                await asyncio.wait_for(self._session.revoke(self._lease_id), REVOKE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - best effort: the lease expires anyway
                log.info("revoking lease %x on close: %s", self._lease_id, _brief(exc))
        self._store.fence(None)
        await self._session.close()

    # ------------------------------------------------------------------ the lease
    async def _run_every(self, step: Callable[[], Awaitable[None]], interval_s: Callable[[], float], what: str,
                         expected: Callable[[BaseException], bool]) -> None:
        """``step`` every ``interval_s()`` until this FE steps down. A failure ``expected`` says is
        etcd being away is logged in a line; the next round tries again (the lease decides)."""
        while not self.machine.phase.is_final:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the lease decides
                if expected(exc):
                    log.info("%s: etcd unavailable or the lease is being renewed (%s)", what, _brief(exc))
                else:
                    log.exception("%s of FE %s failed", what, self.name)
            await asyncio.sleep(interval_s())

    async def _run_lease(self) -> None:
        await self._run_every(self.keep_lease, self.keepalive_interval_s, "lease keepalive", is_transient)

    def _lease_ran_out(self) -> bool:
        """A leader (or one promoting) whose lease ran out on its own clock steps down; True then."""
        if self.machine.holds_leader_key and not self._lease.holds(self._mono()):
            self.step_down(f"the leader lease ran out on this FE's clock ({self._lease_ttl} s without a renewal)")
            return True
        return False

    async def keep_lease(self) -> None:
        """One keepalive round: renew the lease (trying again until it runs out), or, with none,
        get one."""
        if self.machine.phase.is_final or self._lease_ran_out():
            return
        if not self._lease_id:
            await self._grant()
            return
        await self._renew()

    # ------------------------------------------------------------------ the check
    async def _run_checks(self) -> None:
        await self._run_every(self.check, self.interval_s, "check",
                              lambda exc: is_transient(exc) or _lease_not_found(exc))

    async def check(self) -> None:
        """One check (see the module docstring); the lease is kept by :meth:`keep_lease`."""
        if self.machine.phase.is_final or self._lease_ran_out():
            return
        if not self._lease_id:
            return  # lost: the keepalive task gets a new one
        await self._put_member()
        await self._read_view()
        if self.machine.phase.is_final:
            return
        if (self._leader is None and self.machine.phase is HaPhase.FOLLOWER and self._lease_id
                and self._lease.holds(self._mono())):
            await self._campaign()
        if self.machine.phase is HaPhase.LEADER and self._mono() - self._last_compact >= COMPACT_EVERY_S:
            self._last_compact = self._mono()
            await self._compact()

    async def _grant(self) -> None:
        ttl = int(self._lease_s())
        sent = self._mono()
        self._lease_id = await self._session.grant(ttl)
        self._lease_ttl = ttl
        self._lease.granted(sent, ttl)
        log.info("FE %s holds etcd lease %x (%d s)", self.name, self._lease_id, ttl)

    async def _renew(self) -> None:
        """Renew the lease: try again at once after a transient error or a try without an answer
        (each is given :meth:`interval_s`, and never more than what is left of the lease), until
        a renewal gets through or the lease runs out on this FE's clock (then :meth:`_lost_lease`,
        at the deadline and not later).

        A try may get no answer at all while etcd elects a new raft leader: the member forwards
        the keepalive to its dead leader and answers nothing, even once a new leader is there
        (etcd 3.4, its leader member SIGKILLed); the next try answers at once."""
        delay = 0.05
        error: BaseException | None = None
        while True:
            remaining = self._lease.remaining(self._mono())
            if remaining <= 0:
                self._lost_lease(f"no keepalive got through to etcd for the whole lease ({self._lease_ttl} s; "
                                 f"{_brief(error) if error else 'no answer'})")
                return
            sent = self._mono()
            try:
                ttl = await self._session.keepalive(
                    self._lease_id, timeout_s=min(self._session.timeout_s, self.interval_s(), remaining))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                error = exc
                await asyncio.sleep(min(delay, self._lease.remaining(self._mono())))
                delay = min(delay * 2, 0.25)
                continue
            if not self._lease.renewed(sent, ttl):
                self._lost_lease(f"etcd says lease {self._lease_id:x} is gone")
            elif not self._lease.holds(self._mono()):
                self._lost_lease("the keepalive's answer came after the lease ran out on this FE's clock")
            return

    def _lost_lease(self, reason: str) -> None:
        if self.machine.holds_leader_key:
            self.step_down(reason)
            return
        log.warning("FE %s lost its etcd lease (%s): no leader known until it has a new one", self.name, reason)
        self._lease_id = 0
        self._leader = None

    def _member_record(self) -> dict:
        return {"name": self.name, "host": self._info.host, "rpc_port": self._info.rpc_port,
                "http_port": self._info.http_port, "query_port": self._info.query_port,
                "start_time_ms": self._info.start_time_ms, "version": self._info.version,
                "replayed": self._journal.durable_seq, "image_seq": self._store.image_seq,
                "heartbeat_ms": self._wall_ms(), "phase": self.machine.phase.value}

    async def _put_member(self) -> None:
        lay = self._store.layout
        image = self._store.image_seq  # the checkpoint thread may move it while this is in flight
        ops = [op_put(lay.member_key(self.name), orjson.dumps(self._member_record()), lease=self._lease_id)]
        if image != self._published_image:
            ops.append(op_put(lay.image_key(self.name), str(image).encode()))
        await self._session.txn(rpc.TxnRequest(success=ops))
        self._published_image = image

    async def _read_view(self) -> None:
        lay = self._store.layout
        resp = await self._session.txn(rpc.TxnRequest(success=[
            op_get(lay.leader_key),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=lay.members_prefix,
                                                         range_end=prefix_end(lay.members_prefix))),
        ]))
        leader_kvs = resp.responses[0].response_range.kvs
        self._members = {}
        for kv in resp.responses[1].response_range.kvs:
            member = orjson.loads(kv.value)
            self._members[member["name"]] = member
        if self.machine.holds_leader_key:
            assert self._fence is not None
            if not leader_kvs or leader_kvs[0].create_revision != self._fence.revision:
                self.step_down("the leader key is gone or belongs to another FE")
            return
        leader = orjson.loads(leader_kvs[0].value) if leader_kvs else None
        if leader is not None and leader.get("name") == self.name and leader.get("lease") != self._lease_id:
            # the key of this FE's previous run (killed, or re-executed): nobody renews it any more
            log.info("FE %s: the leader key is its previous run's; revoking lease %x", self.name, leader["lease"])
            await self._session.revoke(int(leader["lease"]))
            leader = None
        if (leader is not None and leader.get("name") == self.name and self._lease_id
                and leader.get("lease") == self._lease_id and self.machine.phase is HaPhase.FOLLOWER):
            # this FE's own campaign went through but its answer was lost: it won (its key's
            # create revision is its fencing token); waiting for "the leader" would wait forever
            log.info("FE %s: the leader key is its own (a campaign whose answer was lost): it leads", self.name)
            await self._promote(leader_kvs[0].create_revision)
            return
        if (leader or {}).get("name") != (self._leader or {}).get("name"):
            log.info("FE %s: the leader is %s", self.name, leader["name"] if leader else "unknown")
        if not self.machine.phase.is_final:  # a check that was under way when this FE stepped down
            self._leader = leader

    async def _campaign(self) -> None:
        lay = self._store.layout
        value = orjson.dumps({"name": self.name, "address": self._info.address, "lease": self._lease_id})
        resp = await self._session.txn(rpc.TxnRequest(
            compare=[compare_create(lay.leader_key, 0)],
            success=[op_put(lay.leader_key, value, lease=self._lease_id)],
            failure=[op_get(lay.leader_key)],
        ))
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            self._leader = orjson.loads(kvs[0].value) if kvs else None
            return
        await self._promote(resp.header.revision)

    async def _promote(self, revision: int) -> None:
        self.machine.won_election()
        self._fence = Fence(revision, lambda: self._lease.deadline)
        log.info("FE %s won the election (leader key revision %d); replaying the journal to its end",
                 self.name, revision)
        if self._tail_task is not None:
            self._tail_task.cancel()
            try:
                await self._tail_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the catch-up below reads it all
                pass
            self._tail_task = None
        try:
            await self._tail.catch_up()
        except Exception as exc:  # noqa: BLE001 - cannot lead without the whole journal
            log.exception("FE %s could not read the journal to its end", self.name)
            self.step_down(f"reading the journal to its end failed ({exc})")
            return
        if self.machine.phase is not HaPhase.PROMOTING:
            return  # stepped down meanwhile (the keepalive task found the lease gone)
        if not self._lease.holds(self._mono()):
            self.step_down("the lease ran out while the journal was being replayed")
            return
        self._store.fence(self._fence)
        self._journal.set_writable(True)
        self.machine.replayed_to_end()
        self._leader = {"name": self.name, "address": self._info.address, "lease": self._lease_id}
        log.info("FE %s is the LEADER from journal seq %d", self.name, self._journal.last_seq)
        self._notify(FeRole.LEADER)

    async def _compact(self) -> None:
        lay = self._store.layout
        resp = await self._session.range(lay.images_prefix, prefix_end(lay.images_prefix))
        images = {kv.key[len(lay.images_prefix):].decode(): int(kv.value) for kv in resp.kvs}
        names = {name for name, _ in self._configured} | set(images)
        floor = min((images.get(name, 0) for name in names), default=0)
        if floor > self._compacted:
            await self._store.compact_through(floor)
            self._compacted = floor

    # ------------------------------------------------------------------ replication
    async def _run_tail(self) -> None:
        try:
            await self._tail.run()
        except JournalBehindCompaction as exc:
            # the FE cannot follow any more: its start says so (and how to fix it), once restarted
            log.error("FE %s: the journal tail stopped: %s", self.name, exc)
            self.step_down(str(exc))

    def _apply(self, records: list[Record]) -> None:
        if self.machine.phase is HaPhase.LEADER:
            raise RuntimeError("the leader does not apply replicated records")
        self._journal.apply_replicated(records)
        if records:
            asyncio.ensure_future(self._wake_waiters())

    async def _wake_waiters(self) -> None:
        async with self._applied:
            self._applied.notify_all()

    # ------------------------------------------------------------------ stepping down
    def fatal(self, exc: BaseException) -> None:
        """The journal's ``on_fatal`` (writer thread): a refused or failed write ends the
        leadership of this process."""
        reason = f"journal write failed: {type(exc).__name__}: {exc}"
        log.error("FE %s: %s", self.name, reason)
        if self._loop is None or self._loop.is_closed():
            self._step_down_fn(reason)
            return
        self._loop.call_soon_threadsafe(self.step_down, reason)

    def step_down(self, reason: str) -> None:
        """Leave the leadership for good (see fe/ha/stepdown.py); at most once per process."""
        was = self.machine.phase
        if not self.machine.step_down(reason):
            return
        self._store.fence(None)
        self._journal.set_writable(False)
        self._leader = None  # until it re-executes it knows no leader (its own key is no proof)
        log.warning("FE %s steps down from %s: %s", self.name, was.value, reason)
        if was is HaPhase.LEADER:
            self._notify(FeRole.FOLLOWER)
        self._stepping = asyncio.ensure_future(self._finish_step_down(reason))

    async def _finish_step_down(self, reason: str) -> None:
        if self._lease_id:
            try:  # lets the next leader in at once when etcd still holds our key
                await asyncio.wait_for(self._session.revoke(self._lease_id), REVOKE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - best effort: it expires anyway
                log.info("revoking lease %x while stepping down: %s", self._lease_id, _brief(exc))
        if self.closing:
            log.info("FE %s is stopping: it does not re-execute", self.name)
            return
        self._step_down_fn(reason)

    def _notify(self, role: FeRole) -> None:
        for fn in list(self._listeners):
            try:
                fn(role)
            except Exception:  # noqa: BLE001 - one listener does not stop the others
                log.exception("FE role listener failed on %s", role.value)


def _lease_not_found(exc: BaseException) -> bool:
    """etcd refused a put on this FE's lease: it expired (the keepalive task finds out too)."""
    return (isinstance(exc, grpc.aio.AioRpcError) and exc.code() is grpc.StatusCode.NOT_FOUND
            and "lease not found" in (exc.details() or ""))


def _brief(exc: BaseException) -> str:
    """One line for an etcd error (a gRPC error's repr spans several)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
