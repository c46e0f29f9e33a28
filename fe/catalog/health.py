"""Is a tablet healthy right now? (the quick verdict behind UnhealthyTabletNum)

A replica is healthy when its BE is alive and not decommissioned, it is not bad, it is in
NORMAL state and it has every version up to the partition's visible version. A tablet is
healthy when exactly ``replication_num`` of its replicas are healthy and it has no others.
The tablet checker (fe/clone) classifies the unhealthy ones further.
"""

from __future__ import annotations

from fe.catalog.model import Partition, Replica, ReplicaState, TabletLocation
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


def tablet_is_unhealthy(loc: TabletLocation, backends: BackendRegistry) -> bool:
    replicas = loc.tablet.replicas
    healthy = sum(1 for r in replicas if replica_is_healthy(r, loc.partition, backends))
    return healthy != loc.table.replication_num or len(replicas) != loc.table.replication_num
