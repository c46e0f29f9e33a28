"""The write quorum, one definition for both sides of a load.

How many replicas of a tablet a write needs (ONE = 1, MAJORITY = n/2 + 1, ALL = n) and which
replicas count towards it: NORMAL ones that are not bad. A CLONE replica is still being made and
a bad one is to be replaced; neither takes a load's rows nor counts.

As in StarRocks (OlapTableSink takes a tablet's replicas that can load, on alive backends; the
commit counts the same replicas), the FE gives a coordinator BE only the ``writable`` replicas
and checks the commit with ``counts``; the coordinator writes to those and needs ``needed`` of
them, and refuses before writing anything with ``check_writable`` when fewer exist. So the two
counts agree: a write the coordinator lets through is never refused by the FE for its quorum.
"""

from __future__ import annotations

from common.errors import Unavailable

WRITE_QUORUMS = ("ONE", "MAJORITY", "ALL")
NORMAL = "NORMAL"


def needed(write_quorum: str, replication_num: int) -> int:
    """Replicas that must take a write: ONE = 1, MAJORITY = n/2 + 1, ALL = n."""
    if write_quorum == "ONE":
        return 1
    if write_quorum == "ALL":
        return replication_num
    if write_quorum == "MAJORITY":
        return replication_num // 2 + 1
    raise ValueError(f"invalid write_quorum '{write_quorum}': allowed values are {', '.join(WRITE_QUORUMS)}")


def counts(state: str, bad: bool) -> bool:
    """A replica in ``state`` (a ReplicaState value) counts towards a write quorum."""
    return state == NORMAL and not bad


def writable(state: str, bad: bool, backend_alive: bool) -> bool:
    """A load writes to a replica: it counts, and its backend is alive."""
    return counts(state, bad) and backend_alive


def check_writable(tablet_id: int, writable_num: int, replication_num: int, quorum: int) -> None:
    """Refuse a write a tablet cannot reach its quorum with, before anything is written."""
    if writable_num < quorum:
        raise Unavailable(
            f"tablet {tablet_id} reached {writable_num} of the {quorum} replicas its write quorum needs: only "
            f"{writable_num} of its {replication_num} replicas are NORMAL on an alive backend, nothing was "
            "written (wait for the dead backends to return or the tablet to be repaired: ShowBackends, "
            f"ShowTablet {tablet_id})"
        )
