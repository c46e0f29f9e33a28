"""The chaos schedule is a pure function of (seed, duration, bes, max_down)."""

from __future__ import annotations

import pytest

from deploy.chaos_schedule import (
    BE_KINDS,
    HA_KINDS,
    KINDS,
    LINK_KINDS,
    SLOW_LINK_DELAY_MS,
    Fault,
    generate,
    kinds_for,
    parse_kinds,
    quorum_tolerance,
)

SUITE_SEED, SUITE_DURATION = 83, 45  # tests/chaos/test_chaos.py


def test_same_seed_gives_the_same_schedule_and_text():
    a, b = generate(7, 300), generate(7, 300)
    assert a == b
    assert a.text() == b.text()
    assert a.to_json() == b.to_json()


def test_different_seeds_give_different_schedules():
    texts = {generate(seed, 300).text().split("\n", 1)[1] for seed in range(1, 21)}
    assert len(texts) == 20


@pytest.mark.parametrize("max_down", [1, 2])
@pytest.mark.parametrize("seed", range(1, 41))
def test_max_down_is_never_exceeded(seed, max_down):
    s = generate(seed, 600, bes=4, max_down=max_down)
    assert 1 <= s.max_concurrent_down() <= max_down
    # BE faults that overlap (start to settled) are on distinct BEs (both BEs of a partition)
    be_faults = [f for f in s.faults if f.takes_be_down]
    for f in be_faults:
        overlapping = [g for g in be_faults if g is not f and g.start_s < f.settled_s and f.start_s < g.settled_s]
        assert not set(f.bes) & {be for g in overlapping for be in g.bes}
        assert len(overlapping) + 1 <= max_down


def test_a_partition_between_bes_counts_as_one_down():
    shared = 0
    for seed in range(1, 41):
        faults = generate(seed, 600, bes=4, max_down=2).faults
        for f in faults:
            if f.kind == "be_be_partition":
                # with max_down 2 it may share its start with one more BE fault, on the other BEs
                batch = [g for g in faults if g.start_s == f.start_s and g is not f]
                assert len(batch) <= 1
                shared += len(batch)
    assert shared


@pytest.mark.parametrize("seed", range(1, 41))
def test_faults_fit_the_duration_and_control_faults_never_overlap(seed):
    s = generate(seed, 120)
    assert s.faults, "a 120 s run has faults"
    for f in s.faults:
        assert 0 < f.start_s < f.end_s <= 120
        assert f.kind in KINDS
        assert f.target == ("fe" if f.kind == "fe_kill" else "job" if f.kind == "job_pause" else f.target)
        if f.kind in BE_KINDS or f.kind == "broker_unreachable":
            assert len(f.bes) == (2 if f.kind == "be_be_partition" else 1)
            assert set(f.bes) <= {f"be{i}" for i in range(4)} and f.target == "|".join(f.bes)
        assert (f.delay_ms > 0) == (f.kind == "slow_link")
    ordered = sorted(s.faults, key=lambda f: f.start_s)
    for prev, nxt in zip(ordered, ordered[1:], strict=False):
        if prev.start_s != nxt.start_s:  # concurrent BE faults share a start; anything else waits
            assert nxt.start_s >= prev.settled_s


@pytest.mark.parametrize("seed", range(1, 31))
def test_all_fault_kinds_appear_in_a_long_enough_run(seed):
    assert generate(seed, 300).kinds() == set(KINDS) - set(HA_KINDS)
    assert generate(seed, 300, fes=3).kinds() == set(KINDS) - {"fe_kill"}


def test_the_short_suite_run_has_several_faults_and_a_link_fault():
    s = generate(SUITE_SEED, SUITE_DURATION)
    assert 3 <= len(s.faults) <= 5
    assert s.kinds() & set(LINK_KINDS)
    assert "be_kill_in_compaction" in s.kinds()  # the suite run also kills inside a compaction


@pytest.mark.parametrize("seed", range(1, 21))
def test_link_faults(seed):
    faults = generate(seed, 600, max_down=2).faults
    for f in faults:
        if f.kind == "slow_link":
            assert SLOW_LINK_DELAY_MS[0] <= f.delay_ms <= SLOW_LINK_DELAY_MS[1]
            assert f"by {f.delay_ms} ms" in f.describe()
        if f.kind == "be_be_partition":
            a, b = f.bes
            assert a != b and f"partition {a} | {b}" in f.describe()
        if f.kind == "fe_be_partition":
            assert f"partition fe | {f.target}" in f.describe()
        if f.kind == "broker_unreachable":  # not a BE down, and alone
            assert not f.takes_be_down
            assert not [g for g in faults if g is not f and g.start_s < f.settled_s and f.start_s < g.settled_s]


def test_which_faults_take_a_be_down():
    down = {k for k in KINDS if Fault(1, k, 3.0, 4.0, "be1").takes_be_down}
    assert down == {"be_kill", "be_wipe", "be_stop", "be_quick_restart", "be_kill_in_compaction",
                    "fe_be_partition", "be_be_partition", "slow_link"}
    assert Fault(1, "be_be_partition", 3.0, 4.0, "be0|be2").bes == ("be0", "be2")
    assert Fault(1, "fe_kill", 3.0, 4.0, "fe").bes == ()


def test_no_be_faults_when_nothing_may_be_down():
    s = generate(3, 300, max_down=0)
    assert s.faults and not any(f.takes_be_down for f in s.faults)
    assert s.max_concurrent_down() == 0
    assert s.kinds() == {"fe_kill", "job_pause", "broker_unreachable"}


def test_a_partition_between_bes_needs_two():
    s = generate(5, 300, bes=1, kinds=("be_be_partition", "be_kill"))
    assert s.kinds() == {"be_kill"}


def test_quorum_tolerance():
    assert quorum_tolerance(3, "MAJORITY") == 1
    assert quorum_tolerance(3, "ONE") == 2
    assert quorum_tolerance(3, "ALL") == 0
    assert quorum_tolerance(5, "majority") == 2


def test_the_schedule_text_names_every_fault():
    s = generate(1, 300)
    text = s.text()
    assert text.startswith("chaos schedule: seed 1, duration 300 s")
    assert len(text.splitlines()) == len(s.faults) + 1
    for f in s.faults:
        assert f"#{f.index:<2} t=" in text


def test_kinds_narrow_the_schedule_and_unknown_kinds_are_refused():
    assert parse_kinds(None) == kinds_for(1) and parse_kinds("") == kinds_for(1)
    assert parse_kinds("", fes=3) == kinds_for(3)
    assert parse_kinds("be_quick_restart, fe_kill,be_quick_restart") == ("be_quick_restart", "fe_kill")
    with pytest.raises(ValueError, match="unknown fault kind.*'be_nap'.*kinds: be_kill"):
        parse_kinds("be_kill,be_nap")
    for seed in range(1, 11):
        s = generate(seed, 300, bes=4, max_down=2, kinds=("be_quick_restart", "job_pause"))
        assert s.kinds() == {"be_quick_restart", "job_pause"}
    assert generate(3, 300, kinds=("be_kill",)).kinds() == {"be_kill"}


@pytest.mark.parametrize("seed", range(1, 21))
def test_a_quick_restart_is_back_before_the_heartbeat_timeout(seed):
    # chaos runs with heartbeat_timeout_second 3; a BE takes about 1 s to start and heartbeat
    quick = [f for f in generate(seed, 600, max_down=2).faults if f.kind == "be_quick_restart"]
    assert quick and all(f.duration_s <= 0.8 for f in quick)


def test_a_kill_inside_a_compaction_leaves_time_to_wait_for_one():
    from deploy.chaos_schedule import COMPACTION_WAIT_S, Fault
    f = Fault(1, "be_kill_in_compaction", 10.0, 4.0, "be1")
    assert f.end_s == 10.0 + COMPACTION_WAIT_S + 4.0
    assert "inside a compaction" in f.describe()
    assert Fault(2, "be_kill", 10.0, 4.0, "be1").end_s == 14.0


def test_one_fe_and_several_fes_draw_their_own_fe_kinds():
    assert "fe_kill" in kinds_for(1) and not set(HA_KINDS) & set(kinds_for(1))
    assert set(HA_KINDS) <= set(kinds_for(3)) and "fe_kill" not in kinds_for(3)
    with pytest.raises(ValueError, match=r"\['fe_leader_kill'\] need more than one FE"):
        parse_kinds("be_kill,fe_leader_kill")
    with pytest.raises(ValueError, match=r"\['fe_kill'\] need a single FE.*fe_leader_kill"):
        parse_kinds("fe_kill", fes=3)
    assert parse_kinds("fe_leader_stop,etcd_member_kill", fes=3) == ("fe_leader_stop", "etcd_member_kill")
    with pytest.raises(ValueError, match="odd number"):
        generate(1, 300, fes=2)


@pytest.mark.parametrize("seed", range(1, 21))
def test_ha_faults_name_their_target_and_never_overlap_anything(seed):
    s = generate(seed, 300, fes=3)
    assert s.fes == 3 and s.text().startswith(f"chaos schedule: seed {seed}, duration 300 s, 3 FEs on etcd, 4 BEs")
    ha = [f for f in s.faults if f.kind in HA_KINDS]
    assert ha
    for f in ha:
        expected = {"fe_leader_kill": {"leader"}, "fe_leader_stop": {"leader"},
                    "fe_follower_kill": {"follower:0", "follower:1"},
                    "etcd_member_kill": {"etcd0", "etcd1", "etcd2"}}[f.kind]
        assert f.target in expected and not f.takes_be_down and not f.bes
        others = [g for g in s.faults if g is not f]
        assert all(g.settled_s <= f.start_s or g.start_s >= f.settled_s for g in others), f
    # a SIGSTOP outlasts the 3 s lease, so that a follower takes over while the leader is stopped
    assert all(f.duration_s > 3.0 for f in s.faults if f.kind == "fe_leader_stop")


def test_the_suites_ha_run_kills_and_stops_the_leader():
    # tests/chaos/test_chaos_ha.py: seed 54, 45 s, 3 FEs
    kinds = [f.kind for f in generate(54, 45, fes=3).faults]
    assert {"fe_leader_kill", "fe_leader_stop"} <= set(kinds)
