import pytest

from fe.routineload.division import TaskPlan, choose_backend, divide_partitions, plan_tasks, task_count

# ---- task_count: min(alive BEs, partitions, desired, max_routine_load_task_concurrent_num) ----------

@pytest.mark.parametrize("alive,partitions,desired,max_conc,expected", [
    (5, 7, 5, 5, 5),   # seed 000: min(5,7,5,5) with desired raised to 5
    (5, 7, 3, 5, 3),   # seed 000: the default desired_concurrent_number 3
    (3, 7, 5, 5, 3),   # only 3 BEs alive
    (5, 2, 5, 5, 2),   # fewer partitions than anything else
    (5, 7, 8, 4, 4),   # capped by the FE's max_routine_load_task_concurrent_num
    (1, 3, 3, 5, 1),   # seed 004 test: one alive BE -> one task
    (0, 7, 3, 5, 0),   # no BE alive
    (5, 0, 3, 5, 0),   # no partition
])
def test_task_count(alive, partitions, desired, max_conc, expected):
    assert task_count(alive, partitions, desired, max_conc) == expected


def test_task_count_never_negative():
    assert task_count(3, 3, 0, 5) == 0
    assert task_count(-1, 3, 3, 5) == 0


# ---- divide_partitions: partition at index j goes to task j % n ---------------------------------

def test_divide_seed_004_example():
    assert divide_partitions([1, 4, 6], 2) == [[1, 6], [4]]


@pytest.mark.parametrize("partitions,n,expected", [
    ([0, 1, 2, 3, 4, 5, 6], 5, [[0, 5], [1, 6], [2], [3], [4]]),
    ([0, 1, 2, 3, 4, 5, 6], 3, [[0, 3, 6], [1, 4], [2, 5]]),
    ([0, 1, 2, 3, 4], 1, [[0, 1, 2, 3, 4]]),
    ([7, 3], 2, [[7], [3]]),
    ([0], 3, [[0], [], []]),
    ([], 2, [[], []]),
])
def test_divide_partitions(partitions, n, expected):
    assert divide_partitions(partitions, n) == expected


def test_divide_keeps_every_partition_once():
    parts = list(range(23))
    tasks = divide_partitions(parts, 4)
    assert sorted(p for t in tasks for p in t) == parts
    assert [len(t) for t in tasks] == [6, 6, 6, 5]


@pytest.mark.parametrize("n", [0, -1])
def test_divide_refuses_no_task(n):
    with pytest.raises(ValueError) as ei:
        divide_partitions([0, 1], n)
    assert str(ei.value) == f"cannot divide partitions [0, 1] into {n} tasks: need n >= 1"


# ---- choose_backend ---------------------------------------------------------------------------------

def test_choose_least_loaded():
    assert choose_backend({1: 2, 2: 0, 3: 1}, {1, 2, 3}, 5) == 2


def test_choose_missing_load_counts_as_zero():
    assert choose_backend({1: 1, 2: 1}, {1, 2, 3}, 5) == 3


def test_choose_ties_by_lowest_id():
    assert choose_backend({1: 1, 2: 1, 3: 1}, {3, 2, 1}, 5) == 1


def test_choose_prefer_wins_ties_only():
    assert choose_backend({1: 1, 2: 1, 3: 1}, {1, 2, 3}, 5, prefer=3) == 3
    assert choose_backend({1: 0, 2: 1, 3: 1}, {1, 2, 3}, 5, prefer=3) == 1


def test_choose_prefer_not_alive_or_full_is_ignored():
    assert choose_backend({1: 0, 2: 0}, {1, 2}, 5, prefer=9) == 1
    assert choose_backend({1: 0, 2: 2}, {1, 2}, 2, prefer=2) == 1


def test_choose_skips_full_backends():
    assert choose_backend({1: 0, 2: 3}, {2}, 3) is None
    assert choose_backend({1: 3, 2: 2}, {1, 2}, 3) == 2


def test_choose_ignores_dead_backends():
    assert choose_backend({1: 0, 2: 4}, {2}, 5) == 2


def test_choose_none_when_all_full_or_none_alive():
    assert choose_backend({1: 2, 2: 2}, {1, 2}, 2) is None
    assert choose_backend({}, set(), 2) is None


# ---- plan_tasks -------------------------------------------------------------------------------------

def test_plan_spreads_tasks_over_backends():
    plans = plan_tasks([0, 1, 2, 3, 4, 5, 6], {1, 2, 3, 4, 5}, {}, 5, 5, 10)
    assert plans == [([0, 5], 1), ([1, 6], 2), ([2], 3), ([3], 4), ([4], 5)]
    assert plans[0] == TaskPlan([0, 5], 1)


def test_plan_uses_desired():
    assert plan_tasks([0, 1, 2, 3, 4, 5, 6], {1, 2, 3, 4, 5}, {}, 3, 5, 10) == [
        ([0, 3, 6], 1), ([1, 4], 2), ([2, 5], 3)]


def test_plan_uses_existing_load():
    assert plan_tasks([0, 1], {1, 2, 3}, {1: 4, 2: 1, 3: 0}, 3, 5, 10) == [([0], 3), ([1], 2)]


def test_plan_does_not_change_callers_load():
    load = {1: 1}
    plan_tasks([0, 1, 2], {1, 2}, load, 3, 5, 10)
    assert load == {1: 1}


def test_plan_respects_per_backend_limit():
    # 3 tasks, 2 BEs holding at most 2 tasks each, BE 1 already holds one
    assert plan_tasks([0, 1, 2], {1, 2, 3}, {1: 1, 3: 2}, 3, 5, 2) == [([0], 2), ([1], 1), ([2], 2)]


def test_plan_leaves_tasks_unplaced_when_full():
    assert plan_tasks([0, 1, 2], {1, 2, 3}, {1: 1, 2: 1, 3: 2}, 3, 5, 2) == [([0], 1), ([1], 2), ([2], None)]


def test_plan_prefers_previous_backends():
    assert plan_tasks([0, 1, 2], {1, 2, 3}, {}, 3, 5, 10, previous_backends=[3, None, 1]) == [
        ([0], 3), ([1], 1), ([2], 2)]


def test_plan_empty_without_partitions_or_backends():
    assert plan_tasks([], {1, 2}, {}, 3, 5, 10) == []
    assert plan_tasks([0, 1], set(), {}, 3, 5, 10) == []
