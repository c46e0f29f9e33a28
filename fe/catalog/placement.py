"""Where new replicas go: distinct alive BEs, spread by replica count (pure)."""

from __future__ import annotations

from common.errors import FailedPrecondition


def place_replicas(
    tablet_count: int, replication_num: int, replicas_per_be: dict[int, int]
) -> list[list[int]]:
    """For each new tablet, ``replication_num`` distinct BEs with the fewest replicas.

    ``replicas_per_be`` holds every candidate (alive, not decommissioned) BE and how many
    replicas it has; the count grows as this places, so 10 tablets x 3 replicas over 5 empty
    BEs gives exactly 6 each. Ties go to the lowest BackendId.
    """
    if len(replicas_per_be) < replication_num:
        raise FailedPrecondition(
            f"replication_num is {replication_num} but only {len(replicas_per_be)} alive backends can "
            f"take replicas; start more BEs or lower replication_num"
        )
    load = dict(replicas_per_be)
    placement = []
    for _ in range(tablet_count):
        chosen = sorted(load, key=lambda be: (load[be], be))[:replication_num]
        for be in chosen:
            load[be] += 1
        placement.append(sorted(chosen))
    return placement
