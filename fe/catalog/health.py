"""Is a replica healthy right now? (ADMIN SHOW REPLICA STATUS's OK)

A replica is healthy when its BE is alive and not decommissioned, it is not bad, it is in
NORMAL state and it has every version up to the partition's visible version. Tablet-level
verdicts (UnhealthyTabletNum) come from the tablet checker in fe/clone.
"""

from __future__ import annotations

from fe.catalog.model import Partition, Replica, ReplicaState
from fe.system.backends import BackendRegistry


def replica_is_healthy(r: Replica, partition: Partition, backends: BackendRegistry) -> bool:
    be = backends.get(r.backend_id)
    return (
        be is not None
        and be.alive
        and not be.decommissioned
        and not r.bad
        and r.state is ReplicaState.NORMAL
        and r.version >= partition.visible_version
        and r.last_failed_version < 0
    )
