"""Dividing a routine load job into tasks and placing the tasks on backends. Pure.

The number of tasks is min(alive BEs, Kafka partitions consumed, desired_concurrent_number,
max_routine_load_task_concurrent_num); partition at index j goes to task j % N (Doris/StarRocks
``divideRoutineLoadJob``); each task goes to the least-loaded alive BE that still has a free slot
(a BE holds at most max_routine_load_task_num_per_be tasks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple


def task_count(alive_be_num: int, partition_num: int, desired_concurrent_number: int,
               max_task_concurrent_num: int) -> int:
    """How many tasks a job runs: the smallest of the four limits, 0 with no partition or no BE."""
    if alive_be_num <= 0 or partition_num <= 0:
        return 0
    return max(0, min(alive_be_num, partition_num, desired_concurrent_number, max_task_concurrent_num))


def divide_partitions(partitions: Sequence[int], n: int) -> list[list[int]]:
    """Split ``partitions`` into ``n`` lists: the partition at index j goes to list j % n.

    Returns exactly ``n`` lists (some are empty when n > len(partitions)).
    """
    if n < 1:
        raise ValueError(f"cannot divide partitions {list(partitions)} into {n} tasks: need n >= 1")
    tasks: list[list[int]] = [[] for _ in range(n)]
    for j, partition in enumerate(partitions):
        tasks[j % n].append(partition)
    return tasks


def choose_backend(load_by_be: Mapping[int, int], alive: set[int] | frozenset[int], max_per_be: int,
                   prefer: int | None = None) -> int | None:
    """The least-loaded alive BE with fewer than ``max_per_be`` tasks, or None if all are full.

    Ties go to ``prefer`` (e.g. the BE the task ran on before), then to the lowest id. A BE
    missing from ``load_by_be`` has no task.
    """
    free = [be for be in alive if load_by_be.get(be, 0) < max_per_be]
    if not free:
        return None
    return min(free, key=lambda be: (load_by_be.get(be, 0), be != prefer, be))


class TaskPlan(NamedTuple):
    partitions: list[int]
    backend_id: int | None
    """None when every alive BE is full: the task waits for a slot (SHOW shows BeId -1)."""


def plan_tasks(partitions: Sequence[int], alive: set[int] | frozenset[int], load_by_be: Mapping[int, int],
               desired_concurrent_number: int, max_task_concurrent_num: int, max_tasks_per_be: int,
               previous_backends: Sequence[int | None] = ()) -> list[TaskPlan]:
    """Divide a job's partitions into tasks and place each task on a BE.

    ``load_by_be`` is the number of tasks (of all jobs) each BE already runs; the plan counts its
    own placements on top, without changing the caller's mapping. ``previous_backends[i]`` is the
    BE task i ran on before, preferred among equally loaded BEs.
    """
    n = task_count(len(alive), len(partitions), desired_concurrent_number, max_task_concurrent_num)
    if n == 0:
        return []
    load = dict(load_by_be)
    plans: list[TaskPlan] = []
    for i, task_partitions in enumerate(divide_partitions(partitions, n)):
        prefer = previous_backends[i] if i < len(previous_backends) else None
        backend = choose_backend(load, alive, max_tasks_per_be, prefer)
        if backend is not None:
            load[backend] = load.get(backend, 0) + 1
        plans.append(TaskPlan(task_partitions, backend))
    return plans
